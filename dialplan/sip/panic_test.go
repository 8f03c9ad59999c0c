package sip_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr"
)

// A bug that panics on a call's RTP reader, or in its turn of the shared
// RTP sender, ends that call (end reason error, logged with the stack,
// counted in ivr_panics_total), and the process and the other calls live
// on: the third call still hears the menu and ends with its key.
func TestPanicOnAdapterGoroutinesEndsOnlyThatCall(t *testing.T) {
	l := startLine(t, nil)
	var doomed sync.Map // call id -> "rtp" or "send"
	sip.SetTestHook(l.srv, func(where, id string) {
		if w, ok := doomed.Load(id); ok && w == where {
			doomed.Delete(id)
			panic("test: a bug in the " + where + " path")
		}
	})
	reader := l.answered(t)
	sender := l.answered(t)
	healthy := l.answered(t)
	doomed.Store(reader.d.InviteRequest.CallID().Value(), "rtp")
	doomed.Store(sender.d.InviteRequest.CallID().Value(), "send")

	for name, c := range map[string]*call{"reader": reader, "sender": sender} {
		if !c.waitEnded(10 * time.Second) {
			t.Fatalf("the call whose %s panicked was not hung up", name)
		}
		id := c.d.InviteRequest.CallID().Value()
		if !waitFor(5*time.Second, func() bool {
			rec, err := l.store.Call(context.Background(), id)
			return err == nil && rec.EndReason == string(ivr.EndError)
		}) {
			rec, err := l.store.Call(context.Background(), id)
			t.Errorf("the %s's call record ends with %q (%v), want %q", name, rec.EndReason, err, ivr.EndError)
		}
	}
	if n := l.eng.Metrics.Panics.Load(); n != 2 {
		t.Errorf("ivr_panics_total = %d, want 2", n)
	}
	l.logs.mu.Lock()
	logs := l.logs.buf.String()
	l.logs.mu.Unlock()
	for _, want := range []string{"where=\"sip rtp reader\"", "where=\"sip rtp sender\"", "test: a bug in the rtp path", "goroutine "} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the log", want)
		}
	}
	// The third call goes on: it hears the menu and ends with its key.
	from := healthy.heardLen()
	if !waitFor(5*time.Second, func() bool { return healthy.heardSpeech(from) > 0 }) {
		t.Fatal("the other call hears nothing after the panics")
	}
	healthy.pressToEnd('0')
}
