package ari

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/ivr"
)

// A bug that panics on a call's goroutine (its set-up), its RTP reader,
// or in its turn of the shared RTP sender ends that call (end reason
// error, logged with the stack, counted in ivr_panics_total) and leaves
// nothing in Asterisk; the process and the other calls live on: the
// fourth caller still hears the greeting and ends the menu with a key.
func TestPanicOnAdapterGoroutinesEndsOnlyThatCall(t *testing.T) {
	l := startLine(t, nil)
	var doomed sync.Map // caller number -> "call", "rtp" or "send"
	var mu sync.Mutex
	numbers := map[string]string{} // call id -> caller number
	h := func(where, id string) {
		// The call's goroutine may start before Call returned its id.
		var number string
		for i := range 200 {
			mu.Lock()
			number = numbers[id]
			mu.Unlock()
			if number != "" || where != "call" || i == 199 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if w, ok := doomed.Load(number); ok && w == where {
			doomed.Delete(number)
			panic("test: a bug in the " + where + " path")
		}
	}
	l.srv.testHook.Store(&h)
	doomed.Store("+40721000001", "call")
	doomed.Store("+40721000002", "rtp")
	doomed.Store("+40721000003", "send")
	var doomedCallers []string
	for _, number := range []string{"+40721000001", "+40721000002", "+40721000003"} {
		c := l.ast.Call(number, "1919")
		mu.Lock()
		numbers[c.ID] = number
		mu.Unlock()
		doomedCallers = append(doomedCallers, c.ID)
		if number == "+40721000002" {
			bridged(t, c)
			c.Say(tone(c.Rate(), 300*time.Millisecond))
		}
		select {
		case <-c.Gone():
		case <-time.After(15 * time.Second):
			t.Fatalf("the call of %s, whose goroutine panicked, was not hung up", number)
		}
	}
	healthy := l.ast.Call("+40721000004", "1919")
	mu.Lock()
	numbers[healthy.ID] = "+40721000004"
	mu.Unlock()
	bridged(t, healthy)
	for _, id := range doomedCallers {
		if rec := l.record(id); rec.EndReason != string(ivr.EndError) {
			t.Errorf("call %s ended %q, want %q", id, rec.EndReason, ivr.EndError)
		}
	}
	if n := l.eng.Metrics.Panics.Load(); n != 3 {
		t.Errorf("ivr_panics_total = %d, want 3", n)
	}
	logs := l.logs.String()
	for _, want := range []string{`"where":"ari call"`, `"where":"ari rtp reader"`, `"where":"ari rtp sender"`, `goroutine `} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %s in the log", want)
		}
	}
	rate := healthy.Rate()
	if !waitFor(10*time.Second, func() bool { return speechFrames(healthy.Heard(), rate) > 25 }) {
		t.Fatal("the other call hears no greeting after the panics")
	}
	healthy.Press("0")
	select {
	case <-healthy.Gone():
	case <-time.After(20 * time.Second):
		t.Fatal("the other call did not end with its key")
	}
	if rec := l.record(healthy.ID); rec.EndReason != string(ivr.EndEngineHangup) {
		t.Errorf("the other call ended %q", rec.EndReason)
	}
	l.clean()
}
