package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo/sip"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx", to read what the engines wrote

	"github.com/govline/ivr/internal/kamtest"
	"github.com/govline/ivr/internal/pgtest"
)

// The PostgreSQL server of the cluster test (started by the first test
// that needs it).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Two ivrd sharing one PostgreSQL behind the shipped Kamailio
// configuration: calls through Kamailio reach both engines; after kill -9
// of one, every new call is answered by the other (Kamailio fails over
// and its probe takes the dead engine out), and the dead engine's calls
// are in PostgreSQL up to the crash. The test logs the failover figures.
func TestClusterKillOneEngine(t *testing.T) {
	url := pgtest.Start(t).NewDatabase(t)
	a := startDaemon(t, "IVR_STORE_URL="+url, "IVR_ENGINE_NAME=engine-a")
	b := startDaemon(t, "IVR_STORE_URL="+url, "IVR_ENGINE_NAME=engine-b")
	kam := kamtest.Start(t, fmt.Sprint("127.0.0.1:", a.sipPort), fmt.Sprint("127.0.0.1:", b.sipPort))
	dg := newUA(t)
	dial := func(limit time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		t0 := time.Now()
		d, err := invite(ctx, dg, sip.Uri{User: "1919", Host: "127.0.0.1", Port: kam}, diago.InviteOptions{})
		if err != nil {
			return time.Since(t0), err
		}
		t.Cleanup(func() { d.Close() })
		return time.Since(t0), nil
	}
	active := func(d *daemon) int {
		n, _ := strconv.Atoi(d.metric(t, "ivr_active_calls"))
		return n
	}
	const first = 4
	for range first {
		if _, err := dial(10 * time.Second); err != nil {
			t.Fatalf("a call through kamailio: %v", err)
		}
	}
	if !waitFor(5*time.Second, func() bool { return active(a)+active(b) == first }) || active(a) == 0 || active(b) == 0 {
		t.Fatalf("engines hold %d and %d calls, want the %d calls through kamailio on both", active(a), active(b), first)
	}
	onB := active(b)

	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	const after = 8
	var failed int
	var firstAnswer, slowest time.Duration
	for i := range after {
		setup, err := dial(10 * time.Second)
		if err != nil {
			failed++
			t.Logf("call %d after the kill failed after %s: %v", i+1, setup.Round(time.Millisecond), err)
			continue
		}
		if firstAnswer == 0 {
			firstAnswer = time.Since(killed)
		}
		slowest = max(slowest, setup)
	}
	t.Logf("kill -9 of engine A: %d of %d new calls failed; first new call answered %s after the kill; slowest setup %s",
		failed, after, firstAnswer.Round(time.Millisecond), slowest.Round(time.Millisecond))
	if failed > 0 {
		t.Errorf("%d of %d calls after kill -9 of one engine were not answered", failed, after)
	}
	if !waitFor(5*time.Second, func() bool { return active(b) == onB+after-failed }) {
		t.Errorf("engine B holds %d calls, want its %d and the %d new ones", active(b), onB, after-failed)
	}

	// What engine A wrote before it died is in the shared database.
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var onA int
	if err := db.QueryRow(`SELECT count(*) FROM calls WHERE engine = 'engine-a'`).Scan(&onA); err != nil {
		t.Fatal(err)
	}
	if onA != first-onB {
		t.Errorf("%d calls of engine A in PostgreSQL, want the %d it answered before the kill", onA, first-onB)
	}
}
