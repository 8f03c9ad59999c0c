package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"

	"github.com/govline/ivr/dialplan/sip/siptest"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// citizenTrunk is a SIP trunk on loopback (a second diago stack) with the
// citizen's phone behind it: busy (486) while busy is set, else it answers
// and hangs up after a second.
type citizenTrunk struct {
	port int
	mu   sync.Mutex
	busy bool
	got  []string // the Request-URI user of each INVITE
	up   int      // calls answered
}

func newCitizenTrunk(t *testing.T) *citizenTrunk {
	t.Helper()
	tk := &citizenTrunk{busy: true}
	handler := func(d *diago.DialogServerSession) {
		tk.mu.Lock()
		tk.got = append(tk.got, d.InviteRequest.Recipient.User)
		busy := tk.busy
		tk.mu.Unlock()
		if busy {
			_ = d.Respond(486, "Busy Here", nil)
			return
		}
		if err := d.Answer(); err != nil {
			return
		}
		tk.mu.Lock()
		tk.up++
		tk.mu.Unlock()
		time.Sleep(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = d.Hangup(ctx)
	}
	_, tk.port = siptest.NewAnsweringPhone(t, "test-trunk", handler)
	return tk
}

func (tk *citizenTrunk) seen() (invites []string, answered int) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return append([]string(nil), tk.got...), tk.up
}

// callbacksIn reads the callbacks of a data folder.
func callbacksIn(t *testing.T, dataDir string) []queue.Callback {
	t.Helper()
	db, err := store.Open(context.Background(), store.SQLiteURL(tickets.DBPath(dataDir)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cbs, err := queue.Callbacks{DB: db}.List(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return cbs
}

// TestCallbackKeptAcrossKill: a caller in the operators' queue presses 1;
// the callback's first attempt finds the number busy (486) and waits its
// backoff (an hour). ivrd is killed (SIGKILL) and started again on the
// same data: the pending callback is taken up at start, the number called
// again, answered, and the callback is done after two attempts.
func TestCallbackKeptAcrossKill(t *testing.T) {
	tk := newCitizenTrunk(t)
	conf := alwaysOpen(t)
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[sip]\ntrunk = \"sip:127.0.0.1:%d\"\ncaller_id = \"080012345\"\n[sip.outbound]\nbackoff = \"1h\"\nmax_backoff = \"2h\"\nretries = 3\nring_timeout = \"5s\"\nper_second = 10.0\n", tk.port)
	f.Close()
	env := []string{"IVR_CONFIG=" + conf, "IVR_SPEECH=false"}
	d := startDaemon(t, env...)
	if !waitFor(90*time.Second, func() bool { return strings.Contains(d.logs.String(), `"msg":"prompts ready"`) }) {
		t.Fatal("the flows' sentences were not rendered at start")
	}
	dg, _ := siptest.NewPhone(t, callerNumber)
	c, err := dialRTP(t, dg, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.hangup()
	time.Sleep(2 * time.Second) // the welcome plays
	c.press('0')
	if !waitFor(20*time.Second, func() bool { _, ok := flowEnded(c); return ok }) {
		t.Fatal("the call was not transferred to the queue")
	}
	inQueue := time.Now()
	if !waitFor(15*time.Second, func() bool { return c.loudIn(inQueue.Add(100*time.Millisecond), time.Now()) > 300*time.Millisecond }) {
		t.Fatal("no announcement in the queue")
	}
	c.press('1')
	if !waitFor(20*time.Second, func() bool {
		got, _ := tk.seen()
		return len(got) == 1
	}) {
		t.Fatal("the callback's first attempt never reached the trunk")
	}
	if !waitFor(5*time.Second, func() bool {
		cbs := callbacksIn(t, d.dataDir)
		return len(cbs) == 1 && cbs[0].Attempts == 1 && cbs[0].State == queue.CallbackPending
	}) {
		t.Fatalf("callbacks before the kill: %+v, want one pending after a busy attempt", callbacksIn(t, d.dataDir))
	}
	if got, _ := tk.seen(); got[0] != callerNumber {
		t.Errorf("the trunk was asked for %q, want the caller's number", got[0])
	}

	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	d.exited <- nil
	tk.mu.Lock()
	tk.busy = false
	tk.mu.Unlock()

	d2, err := tryDaemonIn(t, d.dataDir, env...)
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(90*time.Second, func() bool {
		_, up := tk.seen()
		return up == 1
	}) {
		t.Fatalf("the pending callback was not called after the restart\n%s", d2.logs.String())
	}
	if !waitFor(15*time.Second, func() bool {
		cbs := callbacksIn(t, d.dataDir)
		return len(cbs) == 1 && cbs[0].State == queue.CallbackDone && cbs[0].Attempts == 2
	}) {
		t.Fatalf("callbacks after the restart: %+v, want one done after 2 attempts", callbacksIn(t, d.dataDir))
	}
}
