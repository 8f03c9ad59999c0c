package tickets

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestTranscriptAppendAndRead(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	turns := []Turn{
		{Speaker: SpeakerIVR, Text: "Bună ziua, cu ce vă pot ajuta?", At: t0, Mode: ModeSpeech, Confidence: 1, Interrupted: true},
		{Speaker: SpeakerCaller, Text: "buletinul meu a expirat", At: t0.Add(3 * time.Second), Mode: ModeSpeech, Confidence: 0.82},
		{Speaker: SpeakerCaller, Text: "3", At: t0.Add(9 * time.Second), Mode: ModeDTMF, Confidence: 1},
		{Speaker: SpeakerIVR, Text: "Vă transfer la un operator.", At: t0.Add(10 * time.Second)},
		{Speaker: SpeakerAgent, Text: "Bună ziua, sunt Ana.", At: t0.Add(40 * time.Second), Mode: ModeSpeech, Confidence: 0.9},
	}
	// Another call's turns interleave: they stay apart.
	for i, tu := range turns {
		must(t, s.AppendTurn(ctx, "call-1", tu))
		must(t, s.AppendTurn(ctx, "call-2", Turn{Speaker: SpeakerCaller, Text: fmt.Sprint("other ", i), At: t0}))
	}
	got, err := s.Transcript(ctx, "call-1")
	must(t, err)
	if len(got) != len(turns) {
		t.Fatalf("%d turns, want %d", len(got), len(turns))
	}
	for i := range turns {
		want := turns[i]
		if want.Mode == "" {
			want.Mode = ModeNone
		}
		if got[i] != want {
			t.Errorf("turn %d: %+v, want %+v", i, got[i], want)
		}
	}
	empty, err := s.Transcript(ctx, "no-such-call")
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("unknown call: %v %v, want an empty slice", empty, err)
	}
	for _, bad := range []Turn{
		{Speaker: "robot", Text: "x"},
		{Speaker: SpeakerCaller, Mode: "telepathy"},
		{Speaker: SpeakerCaller, Confidence: 1.5},
		{Speaker: SpeakerCaller, Confidence: math.NaN()},
	} {
		if err := s.AppendTurn(ctx, "call-1", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("AppendTurn(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := s.AppendTurn(ctx, "", turns[0]); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty call id: %v", err)
	}
	if _, err := rawExec(s, `UPDATE transcript_turns SET text = 'forged'`); err == nil {
		t.Error("a transcript turn was updated")
	}
}

// The child half of TestTranscriptSurvivesKill: append turns and report
// each one on stdout once AppendTurn has returned.
func TestHelperTurnWriter(t *testing.T) {
	path := os.Getenv("IVR_TEST_TURN_WRITER_DB")
	if path == "" {
		t.Skip("helper process for TestTranscriptSurvivesKill")
	}
	s, err := Open(path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if err := s.AppendTurn(context.Background(), "call-kill", Turn{Speaker: SpeakerCaller, Text: "turn " + strconv.Itoa(i), Mode: ModeSpeech, Confidence: 0.5}); err != nil {
			fmt.Println("append:", err)
			os.Exit(3)
		}
		fmt.Fprintln(out, i)
		out.Flush()
	}
}

// TestTranscriptSurvivesKill kills (SIGKILL) a process that appends turns
// and checks that every turn it had been told was written is in the
// database, which opens clean.
func TestTranscriptSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), DBFile)
	s, err := Open(path) // migrate before the child starts
	must(t, err)
	s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTurnWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), "IVR_TEST_TURN_WRITER_DB="+path)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	acked := -1
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("child: %s", sc.Text())
		}
		acked = n
		if acked == 300 {
			break
		}
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	if acked < 300 {
		t.Fatalf("child acknowledged only %d turns", acked)
	}

	s, err = Open(path)
	must(t, err)
	defer s.Close()
	var check string
	must(t, s.db.QueryRowContext(context.Background(), `PRAGMA integrity_check`).Scan(&check))
	if check != "ok" {
		t.Fatalf("integrity_check: %s", check)
	}
	turns, err := s.Transcript(context.Background(), "call-kill")
	must(t, err)
	if len(turns) < acked+1 {
		t.Fatalf("%d turns after the kill, want at least the %d acknowledged", len(turns), acked+1)
	}
	for i, tu := range turns {
		if tu.Text != "turn "+strconv.Itoa(i) {
			t.Fatalf("turn %d is %q", i, tu.Text)
		}
	}
	t.Logf("acknowledged %d turns, %d in the database after SIGKILL", acked+1, len(turns))
}

// TestAppendTurnGroupCommit: turns queued while another committer holds
// the slot are committed together when it is released; a caller that
// gives up while waiting has its turn withdrawn, not written later.
func TestAppendTurnGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	s.turns.committer <- struct{}{} // the test is the committer
	unlock := func() { <-s.turns.committer }
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.AppendTurn(short, "call-x", Turn{Speaker: SpeakerCaller, Text: "given up"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled append: %v", err)
	}
	errs := make(chan error, 20)
	for i := range 20 {
		go func() { errs <- s.AppendTurn(ctx, "call-x", Turn{Speaker: SpeakerCaller, Text: strconv.Itoa(i)}) }()
	}
	time.Sleep(50 * time.Millisecond) // let them queue
	s.turns.mu.Lock()
	queued := len(s.turns.pending)
	s.turns.mu.Unlock()
	unlock()
	for range 20 {
		must(t, <-errs)
	}
	got, err := s.Transcript(ctx, "call-x")
	must(t, err)
	if len(got) != 20 {
		t.Fatalf("%d turns, want the 20 acknowledged (the cancelled one withdrawn)", len(got))
	}
	for _, tu := range got {
		if tu.Text == "given up" {
			t.Fatal("the cancelled turn was written")
		}
	}
	if queued < 2 {
		t.Fatalf("only %d turns were queued behind the lock: no group commit exercised", queued)
	}
}
