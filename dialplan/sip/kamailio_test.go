package sip_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emiago/diago"

	"github.com/govline/ivr/internal/kamtest"
	"github.com/govline/ivr/ivr/queue"
)

// The shipped Kamailio configuration in front of two engines and a dead
// destination: calls through it are answered by both engines (none lost
// to the dead one: failover); a draining engine answers the probes with
// 503 and new calls go to the other while its own calls go on.
func TestThroughKamailio(t *testing.T) {
	a, b := startLine(t, nil), startLine(t, nil)
	dead := freePort(t) // nothing listens there
	kam := kamtest.Start(t, fmt.Sprint("127.0.0.1:", a.port), fmt.Sprint("127.0.0.1:", dead), fmt.Sprint("127.0.0.1:", b.port))
	via := &line{port: kam}
	dial := func() *call {
		t.Helper()
		c, err := newPhone(t).dial(via, "1919", diago.InviteOptions{})
		if err != nil {
			t.Fatalf("a call through kamailio was not answered: %v", err)
		}
		return c
	}
	const first = 4
	for range first {
		dial()
	}
	na, nb := a.eng.Metrics.ActiveCalls.Load(), b.eng.Metrics.ActiveCalls.Load()
	if na+nb != first || na == 0 || nb == 0 {
		t.Fatalf("engines hold %d and %d calls, want the %d calls through kamailio on both", na, nb, first)
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drained <- b.eng.Drain(ctx)
	}()
	// Probing every 2 s: B is out of the set after its next probe's 503,
	// so no new INVITE reaches it (without the probe's 503 they would,
	// and be refused, and fail over).
	time.Sleep(5 * time.Second)
	refusedBefore := b.logs.count("call refused")
	for range 3 {
		dial()
	}
	if n := b.logs.count("call refused") - refusedBefore; n != 0 {
		t.Errorf("draining engine B was sent %d new calls after its probes answered 503", n)
	}
	if got := a.eng.Metrics.ActiveCalls.Load(); got != na+3 {
		t.Errorf("engine A holds %d calls after 3 more, want %d (B drains)", got, na+3)
	}
	if got := b.eng.Metrics.ActiveCalls.Load(); got != nb {
		t.Errorf("draining engine B holds %d calls, want its %d calls going on", got, nb)
	}
	select {
	case err := <-drained:
		t.Fatalf("engine B finished draining with its calls still up: %v", err)
	default:
	}
}

// count returns how many log lines hold sub.
func (s *logSink) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Count(s.buf.Bytes(), []byte(sub))
}

// Agents' phones register through the shipped Kamailio configuration with
// two engines behind it: the REGISTER that answers an engine's digest
// challenge reaches that same engine (each engine signs its nonces with a
// key of its own, so another would challenge again and the phone give
// up), and every registration succeeds.
func TestRegisterThroughKamailio(t *testing.T) {
	qc := queue.Config{Queues: map[string]queue.QueueConfig{"level1": {MaxWait: time.Minute}}}
	a, _ := startQueueLine(t, qc)
	b, _ := startQueueLine(t, qc)
	kam := kamtest.Start(t, fmt.Sprint("127.0.0.1:", a.port), fmt.Sprint("127.0.0.1:", b.port))
	for i := range 4 {
		if err := newAgentPhone(t, 1000).register(&line{port: kam}, "alice", agentPass, time.Minute); err != nil {
			t.Fatalf("registration %d through kamailio: %v", i+1, err)
		}
	}
}
