package esl

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
)

// A bug that panics on the event socket connection's goroutine (after the
// media leg is up), on its event loop, or in the flow the engine serves
// (recovered in Engine.Serve) ends that call (end reason error, counted in
// ivr_panics_total) and frees its media leg; the process and the other
// calls live on: the fourth call still gets its key and ends as usual.
func TestPanicOnAdapterGoroutinesEndsOnlyThatCall(t *testing.T) {
	var flowDoomed sync.Map // call id whose flow panics
	wait := waitFlow(nil)
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome {
		if _, ok := flowDoomed.Load(f.CallID); ok {
			panic("test: a bug in the flow")
		}
		return wait(ctx, f, ch, svc)
	})
	e := startEngine(t, flow, nil)
	var doomed sync.Map // call id -> "setup" or "event"
	h := func(where, id string) {
		if w, ok := doomed.Load(id); ok && w == where {
			doomed.Delete(id)
			panic("test: a bug in the " + where + " path")
		}
	}
	e.srv.testHook.Store(&h)

	conn, events, inFlow, healthy := newFakeFS(t), newFakeFS(t), newFakeFS(t), newFakeFS(t)
	doomed.Store(conn.uuid, "setup")
	flowDoomed.Store(inFlow.uuid, true)
	for _, fs := range []*fakeFS{conn, events, inFlow, healthy} {
		fs.dial(e)
	}
	legs := map[*fakeFS]*legPhone{}
	for _, fs := range []*fakeFS{conn, events, inFlow, healthy} {
		legs[fs] = fs.waitLeg()
	}
	doomed.Store(events.uuid, "event")
	events.dtmf('5') // its event loop panics on this event

	for name, fs := range map[string]*fakeFS{"connection": conn, "event loop": events, "flow": inFlow} {
		r, _ := e.record(t, fs.uuid)
		if r.EndReason != string(ivr.EndError) {
			t.Errorf("the call whose %s panicked ended %q, want %q", name, r.EndReason, ivr.EndError)
		}
		if !waitFor(10*time.Second, legs[fs].ended) {
			t.Errorf("the media leg of the call whose %s panicked is still up", name)
		}
	}
	if n := e.eng.Metrics.Panics.Load(); n != 3 {
		t.Errorf("ivr_panics_total = %d, want 3", n)
	}
	// The fourth call goes on: its key reaches its flow, which ends it.
	healthy.dtmf('0')
	if r, _ := e.record(t, healthy.uuid); r.EndReason != string(ivr.EndEngineHangup) || r.DTMF != "0" {
		t.Errorf("the other call ended %q with keys %q", r.EndReason, r.DTMF)
	}
}
