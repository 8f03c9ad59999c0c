package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/internal/pgtest"
)

// Two ivrd on one PostgreSQL: a call recorded by engine A is played
// through engine B's console by a signed-in operator (B fetches it from
// A, signed with the engines' secret), refused to a supervisor, audited
// in the shared database; once A is stopped, B says which engine keeps
// the recording instead of failing.
func TestClusterRecordingPlayedOnAnotherEngine(t *testing.T) {
	url := pgtest.Start(t).NewDatabase(t)
	const secret = "the engines' shared secret, 32 bytes"
	a := startDaemon(t, "IVR_STORE_URL="+url, "IVR_ENGINE_NAME=engine-a", "IVR_RECORDINGS_SECRET="+secret)
	b := startDaemon(t, "IVR_STORE_URL="+url, "IVR_ENGINE_NAME=engine-b", "IVR_RECORDINGS_SECRET="+secret,
		fmt.Sprintf("IVR_RECORDINGS_PEERS=engine-a=http://127.0.0.1:%d", a.consolePort))
	_, ivrctl := binaries(t)
	for name, role := range map[string]string{"ana": "operator", "sue": "supervisor"} {
		cmd := exec.Command(ivrctl, "users", "add", "--role", role, "--store", url, name)
		cmd.Stdin = strings.NewReader("a long enough password\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ivrctl users add %s: %v\n%s", name, err, out)
		}
	}

	// A call on engine A, a few seconds of it recorded.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := invite(ctx, newUA(t), sip.Uri{User: "1919", Host: "127.0.0.1", Port: a.sipPort}, diago.InviteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	call.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id, rec string
	if !waitFor(5*time.Second, func() bool {
		return db.QueryRow(`SELECT id, recording FROM calls WHERE engine = 'engine-a' AND end_ns IS NOT NULL`).Scan(&id, &rec) == nil
	}) {
		t.Fatal("engine A's call did not end in PostgreSQL")
	}
	want, err := os.ReadFile(rec)
	if err != nil || len(want) < 1000 {
		t.Fatalf("engine A's recording %s: %d bytes, %v", rec, len(want), err)
	}

	get := func(user string) (int, []byte) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"name": user, "password": "a long enough password"})
		res, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/api/login", b.consolePort), "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var in struct{ Token string }
		_ = json.NewDecoder(res.Body).Decode(&in)
		res.Body.Close()
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/api/calls/%s/recording", b.consolePort, id), nil)
		req.Header.Set("Authorization", "Bearer "+in.Token)
		res, err = (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		got, _ := io.ReadAll(res.Body)
		return res.StatusCode, got
	}
	if code, got := get("ana"); code != http.StatusOK || !bytes.Equal(got, want) {
		t.Errorf("the operator plays engine A's recording on engine B: %d, %d bytes, want 200 and the %d bytes of %s", code, len(got), len(want), rec)
	}
	if code, _ := get("sue"); code != http.StatusForbidden {
		t.Errorf("a supervisor plays a recording: %d, want 403", code)
	}
	var audited int
	if err := db.QueryRow(`SELECT count(*) FROM audit WHERE action = 'recording_play' AND target = $1 AND "user" = 'ana' AND ok = 1`, id).Scan(&audited); err != nil || audited != 1 {
		t.Errorf("%d audit entries of the play (%v), want 1", audited, err)
	}

	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code, got := get("ana"); code != http.StatusBadGateway || !strings.Contains(string(got), `engine \"engine-a\"`) {
		t.Errorf("engine A stopped: %d %s, want 502 naming engine-a", code, got)
	}
}
