package email_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/govline/ivr/channels/email"
	"github.com/govline/ivr/internal/imaptest"
	"github.com/govline/ivr/tickets"
)

// The child process of TestKill9LosesNothingDuplicatesNothing: the
// mailbox's intake on the database and mailbox the parent names, run
// until the parent kills it.
const childEnv = "IVR_EMAIL_TEST_CHILD_DB"

func TestMain(m *testing.M) {
	if db := os.Getenv(childEnv); db != "" {
		os.Exit(child(db))
	}
	os.Exit(m.Run())
}

func child(db string) int {
	st, err := tickets.Open(db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	mb, err := email.NewMailbox(email.Config{IMAPURL: os.Getenv("IVR_EMAIL_IMAP_URL"), SMTPURL: "smtp://127.0.0.1:1",
		Address: line, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}, st)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// IVR_EMAIL_TEST_PAUSE=N: stop for good after the N-th commit, before
	// its mark, and say so: the parent kills the process there.
	if n, _ := strconv.Atoi(os.Getenv("IVR_EMAIL_TEST_PAUSE")); n > 0 {
		commits := 0
		mb.AfterCommit = func(uint32) {
			if commits++; commits == n {
				fmt.Println("paused")
				select {}
			}
		}
	}
	_ = mb.Run(context.Background())
	return 0
}

func count(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A mailbox process killed with SIGKILL three times while it takes 300
// messages: after the last run every message has exactly one ticket and
// one acknowledgement queued, and every message is marked processed.
func TestKill9LosesNothingDuplicatesNothing(t *testing.T) {
	srv := imaptest.Start(t)
	srv.AddUser(t, "support", "s3cret")
	const total = 300
	for i := range total {
		srv.Deliver(t, "support", msg(fmt.Sprintf("citizen%d@example.org", i), fmt.Sprintf("k%d@example.org", i),
			fmt.Sprintf("request %d", i), "", "text"))
	}
	dbPath := filepath.Join(t.TempDir(), tickets.DBFile)
	st, err := tickets.Open(dbPath) // creates the schema
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// pause > 0: killed while stopped between the pause-th commit and
	// its mark; else killed once killAt messages are in.
	run := func(killAt, pause int) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dbPath, "IVR_EMAIL_IMAP_URL="+srv.URL("support", "s3cret"),
			"IVR_EMAIL_TEST_PAUSE="+strconv.Itoa(pause))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if pause > 0 {
			line, _ := bufio.NewReader(out).ReadString('\n')
			if strings.TrimSpace(line) != "paused" {
				_ = cmd.Process.Kill()
				t.Fatalf("the child said %q", line)
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			return
		}
		deadline := time.Now().Add(60 * time.Second)
		for count(t, db, `SELECT count(*) FROM email_messages WHERE direction = 'in'`) < killAt {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("the child took fewer than %d messages in 60 s", killAt)
			}
			time.Sleep(2 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	run(0, 40) // committed, not marked
	if n, u := count(t, db, `SELECT count(*) FROM tickets`), unprocessed(t, srv); n != 40 || u != total-39 {
		t.Fatalf("after a kill between the 40th commit and its mark: %d tickets, %d messages unmarked; want 40 and %d", n, u, total-39)
	}
	run(130, 0)   // wherever it is
	run(0, 60)    // committed, not marked (the run starts with the one left before)
	run(total, 0) // takes the rest; killed once all are in
	if n := count(t, db, `SELECT count(*) FROM tickets`); n != total {
		t.Fatalf("%d tickets for %d messages", n, total)
	}
	if n := count(t, db, `SELECT count(DISTINCT message_id) FROM email_messages WHERE direction = 'in'`); n != total {
		t.Fatalf("%d messages stored", n)
	}
	if n := count(t, db, `SELECT count(*) FROM email_messages WHERE direction = 'out' AND kind = 'ack'`); n != total {
		t.Fatalf("%d acknowledgements queued for %d tickets", n, total)
	}
	// Whatever was not marked before the last kill is taken (as a
	// duplicate) and marked by one more run.
	st2, err := tickets.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	mb, err := email.NewMailbox(email.Config{IMAPURL: srv.URL("support", "s3cret"), SMTPURL: "smtp://127.0.0.1:1", Address: line}, st2)
	if err != nil {
		t.Fatal(err)
	}
	unmarked := unprocessed(t, srv)
	dups := 0
	done := make(chan struct{}, total)
	mb.Ingested = func(_ uint32, res tickets.EmailIntakeResult) {
		if !res.Duplicate {
			t.Errorf("a new ticket after all were taken: %+v", res)
		}
		dups++
		done <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = mb.Run(ctx) }()
	for range unmarked {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the unmarked messages were not taken")
		}
	}
	cancel()
	<-stopped
	if n := unprocessed(t, srv); n != 0 {
		t.Fatalf("%d messages still unmarked", n)
	}
	t.Logf("%d message(s) committed but not marked at the last kill were recognised as duplicates", dups)
}
