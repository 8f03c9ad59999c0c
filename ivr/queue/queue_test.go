package queue

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// clock is a settable clock for the queue.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }

func newQueues(t *testing.T, s Strategy, ck *clock) *Queues {
	t.Helper()
	q, err := New(Config{Queues: map[string]QueueConfig{"level1": {Strategy: s}, "level2": {}}, HandleTime: 4 * time.Minute, RetryDelay: 10 * time.Second, Now: ck.now})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func agent(name string, queues ...string) Agent { return Agent{Name: name, Queues: queues} }

func names(ts []Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Agent)
	}
	return out
}

func TestLongestIdleRingsTheAgentFreeLongest(t *testing.T) {
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	q := newQueues(t, LongestIdle, ck)
	q.Register(agent("bob", "level1"), "sip:bob@127.0.0.1:5070", ck.t.Add(time.Hour))
	ck.add(time.Second)
	q.Register(agent("alice", "level1"), "sip:alice@127.0.0.1:5071", ck.t.Add(time.Hour))
	q.Register(agent("carol", "level2"), "sip:carol@127.0.0.1:5072", ck.t.Add(time.Hour))

	w1, _ := q.Join("level1", "c1")
	w2, _ := q.Join("level1", "c2")
	if w2.Claim() != nil {
		t.Fatal("the second caller claimed an agent before the first")
	}
	if got := names(w1.Claim()); len(got) != 1 || got[0] != "bob" {
		t.Fatalf("first caller rings %v, want bob (idle longest)", got)
	}
	// The next caller gets the next free agent of its queue, never carol.
	if got := names(w2.Claim()); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("second caller rings %v, want alice", got)
	}
	// bob does not answer: he rests, and nobody else is free.
	w1.Unclaim("")
	if got := w1.Claim(); got != nil {
		t.Fatalf("rang %v during bob's rest", names(got))
	}
	ck.add(11 * time.Second)
	if got := names(w1.Claim()); len(got) != 1 || got[0] != "bob" {
		t.Fatalf("after the rest: %v, want bob", got)
	}
	// alice answers the second caller; bob answers the first.
	w2.Unclaim("alice")
	w2.Leave()
	w1.Unclaim("bob")
	w1.Leave()
	if n := q.Waiting("level1"); n != 0 {
		t.Fatalf("%d waiting", n)
	}
	ck.add(time.Minute)
	q.Done("alice", time.Minute)
	ck.add(time.Minute)
	q.Done("bob", time.Minute)
	// alice is now the longest idle.
	w3, _ := q.Join("level1", "c3")
	if got := names(w3.Claim()); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("after the calls: %v, want alice (free since earlier)", got)
	}
}

func TestRingAllRingsEveryFreeAgent(t *testing.T) {
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	q := newQueues(t, RingAll, ck)
	q.Register(agent("alice", "level1"), "sip:a@h", ck.t.Add(time.Hour))
	q.Register(agent("bob", "level1", "level2"), "sip:b@h", ck.t.Add(time.Hour))
	w1, _ := q.Join("level1", "c1")
	w2, _ := q.Join("level1", "c2")
	if got := names(w1.Claim()); len(got) != 2 {
		t.Fatalf("ring all rang %v", got)
	}
	if w2.Claim() != nil {
		t.Fatal("the second caller rang an agent already ringing")
	}
	w1.Unclaim("bob")
	w1.Leave()
	if got := names(w2.Claim()); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("second caller rings %v, want alice (bob is busy)", got)
	}
}

func TestPositionAndExpectedWait(t *testing.T) {
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	q := newQueues(t, LongestIdle, ck)
	var ws []*Waiter
	for _, id := range []string{"a", "b", "c"} {
		w, err := q.Join("level1", id)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	// No agent: every caller ahead takes a full handle time.
	for i, want := range []time.Duration{4 * time.Minute, 8 * time.Minute, 12 * time.Minute} {
		if p := ws[i].Position(); p != i+1 {
			t.Errorf("caller %d at position %d", i, p)
		}
		if got := ws[i].ExpectedWait(); got != want {
			t.Errorf("caller %d expects %s, want %s", i, got, want)
		}
	}
	// Two agents share the queue.
	q.Register(agent("x", "level1"), "sip:x@h", ck.t.Add(time.Hour))
	q.Register(agent("y", "level1"), "sip:y@h", ck.t.Add(time.Hour))
	if got := ws[2].ExpectedWait(); got != 8*time.Minute {
		t.Errorf("third caller with two agents expects %s, want 8m", got)
	}
	ws[0].Leave()
	ws[0].Leave() // twice is harmless
	if p := ws[2].Position(); p != 2 {
		t.Errorf("after the first left, third is at %d, want 2", p)
	}
	if p := ws[0].Position(); p != 0 {
		t.Errorf("a caller who left is at %d, want 0", p)
	}
	// The measured talk time moves the estimate.
	q.Done("x", 12*time.Minute) // (4*7+12)/8 = 5 min
	if got := ws[1].ExpectedWait(); got != 5*time.Minute {
		t.Errorf("after a 12 min call, first caller expects %s, want 5m", got)
	}
}

func TestRegistrationExpires(t *testing.T) {
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	q := newQueues(t, LongestIdle, ck)
	q.Register(agent("alice", "level1"), "sip:a@h", ck.t.Add(time.Minute))
	if _, ok := q.Registered("alice"); !ok {
		t.Fatal("not registered")
	}
	w, _ := q.Join("level1", "c1")
	ck.add(61 * time.Second)
	if _, ok := q.Registered("alice"); ok {
		t.Fatal("registered past its expiry")
	}
	if got := w.Claim(); got != nil {
		t.Fatalf("an expired agent was rung: %v", names(got))
	}
	if len(q.Agents()) != 0 {
		t.Fatalf("expired agents listed: %+v", q.Agents())
	}
	q.Register(agent("alice", "level1"), "sip:a@h", ck.t.Add(time.Minute))
	q.Unregister("alice")
	if _, ok := q.Registered("alice"); ok {
		t.Fatal("registered after unregister")
	}
}

func TestChangedFires(t *testing.T) {
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	q := newQueues(t, LongestIdle, ck)
	ch := q.Changed()
	q.Register(agent("alice", "level1"), "sip:a@h", ck.t.Add(time.Minute))
	select {
	case <-ch:
	default:
		t.Fatal("Changed did not fire on a registration")
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "queue.queues"},
		{Config{Queues: map[string]QueueConfig{"Level 1": {}}}, "queue.queues.Level 1"},
		{Config{Queues: map[string]QueueConfig{"level1": {Strategy: "random"}}}, "queue.queues.level1.strategy"},
		{Config{Queues: map[string]QueueConfig{"level1": {Service: "pets"}}}, "queue.queues.level1.service"},
		{Config{Queues: map[string]QueueConfig{"level1": {}}, RingTimeout: -1}, "queue.ring_timeout"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	q, err := New(Config{Queues: map[string]QueueConfig{"level1": {}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Join("nope", "c"); !errors.Is(err, ErrUnknownQueue) {
		t.Errorf("join unknown queue: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestHA1(t *testing.T) {
	// RFC 2617 3.5: Mufasa, testrealm@host.com, Circle Of Life.
	if got := HA1("Mufasa", "testrealm@host.com", "Circle Of Life"); got != "939e7578ed9e3c518a452acee763bce9" {
		t.Fatalf("HA1 = %s", got)
	}
}

// A caller who hangs up while an agent's phone rings (Leave without
// Unclaim) leaves the agent free for the next caller, not ringing forever.
func TestLeaveReleasesTheRingingAgents(t *testing.T) {
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	q := newQueues(t, LongestIdle, ck)
	q.Register(agent("alice", "level1"), "sip:alice@127.0.0.1:5070", ck.t.Add(time.Hour))
	w1, _ := q.Join("level1", "c1")
	if got := names(w1.Claim()); len(got) != 1 {
		t.Fatalf("claim %v", got)
	}
	w1.Leave()
	w2, _ := q.Join("level1", "c2")
	if got := names(w2.Claim()); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("the next caller rings %v, want alice", got)
	}
	if st := q.Agents(); len(st) != 1 || st[0].State != "ringing" {
		t.Fatalf("agents %+v", st)
	}
}
