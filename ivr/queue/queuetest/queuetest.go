// Package queuetest is the conformance kit of the agent queue's shared
// state (package ivr/queue): every backend's tests call TestBoard with two
// engines over one state (queue.Local: one engine's memory, the same Board
// twice; queue.Shared: two handles on one PostgreSQL database) and
// TestDirectory with two handles on one database, so the embedded line and
// a line of many engines keep the same promises: callers served in the
// order they arrived on any engine, no agent offered two calls, a caller's
// position counting every engine's callers, a dead engine's places and
// claims released.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govline/ivr/ivr/queue"
)

// Engines are two engines of one line over one shared state.
type Engines struct {
	A, B queue.Board
	// Kill makes engine A stop as a crashed engine does, releasing
	// nothing; nil when the backend holds one engine only.
	Kill func()
	// Lease is how long the backend takes to release a dead engine's
	// places and claims (with Kill).
	Lease time.Duration
}

// Opener makes a fresh shared state for the queues of cfg and returns two
// engines on it, closed when the test ends.
type Opener func(t *testing.T, cfg queue.Config) Engines

// RetryDelay is the rest of an agent after a ring nobody answered, in the
// kit's queues.
const RetryDelay = 300 * time.Millisecond

func config(s queue.Strategy) queue.Config {
	return queue.Config{Queues: map[string]queue.QueueConfig{"level1": {Strategy: s}, "level2": {}},
		RetryDelay: RetryDelay, HandleTime: 4 * time.Minute}
}

// TestBoard checks open's boards against the queue.Board contract.
func TestBoard(t *testing.T, open Opener) {
	t.Run("served in order across engines", func(t *testing.T) { servedInOrder(t, open) })
	t.Run("no agent offered two calls", func(t *testing.T) { oneCallPerAgent(t, open) })
	t.Run("ring all", func(t *testing.T) { ringAll(t, open) })
	t.Run("no answer rests the agents", func(t *testing.T) { noAnswerRests(t, open) })
	t.Run("leaving while ringing frees the agents", func(t *testing.T) { leaveWhileRinging(t, open) })
	t.Run("registrations expire", func(t *testing.T) { registrationsExpire(t, open) })
	t.Run("changes wake the other engine", func(t *testing.T) { changesWake(t, open) })
	t.Run("expected wait", func(t *testing.T) { expectedWait(t, open) })
	t.Run("a dead engine's places and claims are released", func(t *testing.T) { deadEngine(t, open) })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var ctx = context.Background()

func register(t testing.TB, b queue.Board, name string, until time.Duration, queues ...string) {
	t.Helper()
	must(t, b.Register(ctx, queue.Agent{Name: name, Queues: queues}, "sip:"+name+"@127.0.0.1:5070", time.Now().Add(until)))
}

func join(t testing.TB, b queue.Board, q, callID string) queue.Place {
	t.Helper()
	p, err := b.Join(ctx, q, callID)
	must(t, err)
	return p
}

// claim returns the names of the agents Claim gave.
func claim(t testing.TB, p queue.Place) []string {
	t.Helper()
	ts, err := p.Claim(ctx)
	must(t, err)
	var out []string
	for _, x := range ts {
		out = append(out, x.Agent)
		if x.Contact != "sip:"+x.Agent+"@127.0.0.1:5070" {
			t.Errorf("agent %s rung at %q", x.Agent, x.Contact)
		}
	}
	slices.Sort(out)
	return out
}

func position(t testing.TB, p queue.Place) int {
	t.Helper()
	s, err := p.Look(ctx)
	must(t, err)
	return s.Position
}

func want(t testing.TB, what string, got []string, w ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("%s: %v, want %v", what, got, w)
	}
}

func servedInOrder(t *testing.T, open Opener) {
	e := open(t, config(queue.LongestIdle))
	register(t, e.A, "alice", time.Hour, "level1")
	c1 := join(t, e.A, "level1", "c1")
	c2 := join(t, e.B, "level1", "c2")
	c3 := join(t, e.A, "level1", "c3")
	other := join(t, e.B, "level2", "o1")
	for i, p := range []queue.Place{c1, c2, c3, other} {
		if got, w := position(t, p), []int{1, 2, 3, 1}[i]; got != w {
			t.Fatalf("caller %d at position %d, want %d (callers of both engines count, per queue)", i+1, got, w)
		}
	}
	want(t, "the second caller's claim before the first", claim(t, c2))
	want(t, "the first caller's claim", claim(t, c1), "alice")
	want(t, "the first caller's claim again", claim(t, c1))
	want(t, "the second caller's claim, no agent free", claim(t, c2))
	want(t, "level2's caller's claim (alice answers level1 only)", claim(t, other))
	register(t, e.B, "bob", time.Hour, "level1", "level2")
	want(t, "the second caller's claim once bob registered", claim(t, c2), "bob")
	want(t, "the third caller's claim", claim(t, c3))
	must(t, c1.Settle(ctx, "alice", true))
	if p1, p2, p3 := position(t, c1), position(t, c2), position(t, c3); p1 != 0 || p2 != 1 || p3 != 2 {
		t.Fatalf("positions after the first caller left: %d %d %d, want 0 1 2", p1, p2, p3)
	}
	want(t, "the third caller's claim while alice talks", claim(t, c3))
	must(t, e.B.Done(ctx, "alice", time.Minute))
	want(t, "the third caller's claim once alice is done", claim(t, c3), "alice")
}

// Callers on two engines claim the one agent at the same time, over and
// over: never two at once, and in the order they joined.
func oneCallPerAgent(t *testing.T, open Opener) {
	e := open(t, config(queue.LongestIdle))
	register(t, e.B, "alice", time.Hour, "level1")
	const callers = 12
	places := make([]queue.Place, callers)
	for i := range places {
		places[i] = join(t, []queue.Board{e.A, e.B}[i%2], "level1", fmt.Sprintf("c%02d", i))
	}
	var holder atomic.Int32
	holder.Store(-1)
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second)
	for i, p := range places {
		b := []queue.Board{e.A, e.B}[i%2]
		wg.Go(func() {
			for time.Now().Before(deadline) {
				changed := b.Changed()
				ts, err := p.Claim(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ts) == 0 {
					select {
					case <-changed:
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				if !holder.CompareAndSwap(-1, int32(i)) {
					t.Errorf("caller %d got alice while caller %d holds her", i, holder.Load())
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
				holder.Store(-1)
				if err := p.Settle(ctx, "alice", true); err != nil {
					t.Error(err)
				}
				if err := b.Done(ctx, "alice", time.Second); err != nil {
					t.Error(err)
				}
				return
			}
			t.Errorf("caller %d never served", i)
		})
	}
	wg.Wait()
	for i, c := range order {
		if c != i {
			t.Fatalf("served in the order %v, want the order of joining", order)
		}
	}
}

func ringAll(t *testing.T, open Opener) {
	e := open(t, config(queue.RingAll))
	register(t, e.A, "alice", time.Hour, "level1")
	register(t, e.B, "bob", time.Hour, "level1")
	register(t, e.B, "carol", time.Hour, "level1")
	c1 := join(t, e.A, "level1", "c1")
	c2 := join(t, e.B, "level1", "c2")
	want(t, "ring all", claim(t, c1), "alice", "bob", "carol")
	want(t, "the next caller while all ring", claim(t, c2))
	must(t, c1.Settle(ctx, "bob", true))
	// The others stop ringing and are free at once (no rest: the call was
	// answered); bob talks.
	want(t, "the next caller once bob answered", claim(t, c2), "alice", "carol")
}

func noAnswerRests(t *testing.T, open Opener) {
	e := open(t, config(queue.LongestIdle))
	register(t, e.A, "alice", time.Hour, "level1")
	c1 := join(t, e.B, "level1", "c1")
	want(t, "claim", claim(t, c1), "alice")
	start := time.Now()
	must(t, c1.Settle(ctx, "", false))
	got := claim(t, c1)
	if time.Since(start) < RetryDelay {
		want(t, "claim while alice rests", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		got = claim(t, c1)
	}
	want(t, "claim after her rest", got, "alice")
	if rest := time.Since(start); rest < RetryDelay {
		t.Fatalf("alice rang again after %s, want a rest of %s", rest, RetryDelay)
	}
}

// A caller who hangs up while phones ring leaves no agent ringing.
func leaveWhileRinging(t *testing.T, open Opener) {
	e := open(t, config(queue.LongestIdle))
	register(t, e.A, "alice", time.Hour, "level1")
	c1 := join(t, e.A, "level1", "c1")
	want(t, "claim", claim(t, c1), "alice")
	must(t, c1.Settle(ctx, "", true))
	c2 := join(t, e.B, "level1", "c2")
	if p := position(t, c2); p != 1 {
		t.Fatalf("the next caller at position %d, want 1", p)
	}
	deadline := time.Now().Add(5 * time.Second)
	got := claim(t, c2)
	for len(got) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		got = claim(t, c2)
	}
	want(t, "the next caller's claim", got, "alice")
}

func registrationsExpire(t *testing.T, open Opener) {
	e := open(t, config(queue.LongestIdle))
	register(t, e.A, "alice", 400*time.Millisecond, "level1")
	if c, ok, err := e.B.Registered(ctx, "alice"); err != nil || !ok || c != "sip:alice@127.0.0.1:5070" {
		t.Fatalf("registered on the other engine: %q %v %v", c, ok, err)
	}
	time.Sleep(600 * time.Millisecond)
	if _, ok, err := e.B.Registered(ctx, "alice"); err != nil || ok {
		t.Fatalf("an expired registration still counts: %v %v", ok, err)
	}
	c1 := join(t, e.A, "level1", "c1")
	want(t, "claim of an expired agent", claim(t, c1))
	register(t, e.B, "alice", time.Hour, "level1")
	want(t, "claim once she registered again", claim(t, c1), "alice")
	register(t, e.A, "bob", time.Hour, "level1")
	register(t, e.A, "bob", -time.Second, "level1") // unregistered
	if _, ok, _ := e.B.Registered(ctx, "bob"); ok {
		t.Fatal("an unregistered agent still counts")
	}
}

func changesWake(t *testing.T, open Opener) {
	e := open(t, config(queue.LongestIdle))
	for _, change := range []struct {
		what string
		do   func()
	}{
		{"a caller joining on the other engine", func() { join(t, e.A, "level1", "c1") }},
		{"an agent registering on the other engine", func() { register(t, e.A, "alice", time.Hour, "level1") }},
		{"an agent done on the other engine", func() { must(t, e.A.Done(ctx, "alice", 0)) }},
	} {
		ch := e.B.Changed()
		change.do()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: engine B's Changed did not fire", change.what)
		}
	}
}

func expectedWait(t *testing.T, open Opener) {
	e := open(t, config(queue.LongestIdle))
	register(t, e.A, "alice", time.Hour, "level1")
	register(t, e.B, "bob", time.Hour, "level1")
	var ps []queue.Place
	for i := range 3 {
		ps = append(ps, join(t, []queue.Board{e.A, e.B}[i%2], "level1", fmt.Sprintf("c%d", i)))
	}
	look := func(p queue.Place) queue.Standing {
		s, err := p.Look(ctx)
		must(t, err)
		return s
	}
	// Two agents: the first two callers wait one round, the third two.
	for i, w := range []time.Duration{4 * time.Minute, 4 * time.Minute, 8 * time.Minute} {
		if s := look(ps[i]); s.Wait != w {
			t.Fatalf("caller %d: expected wait %s, want %s", i+1, s.Wait, w)
		}
	}
	// A measured conversation of 2 minutes moves the mean talk time an
	// eighth of the way: (7 * 4 + 2) / 8 = 3m45s.
	must(t, e.B.Done(ctx, "alice", 2*time.Minute))
	if s := look(ps[2]); s.Wait != 2*(3*time.Minute+45*time.Second) {
		t.Fatalf("after a 2-minute call: %s, want 7m30s", s.Wait)
	}
	must(t, ps[0].Settle(ctx, "", true))
	if s := look(ps[0]); s.Position != 0 || s.Wait != 0 {
		t.Fatalf("a caller who left: %+v", s)
	}
}

func deadEngine(t *testing.T, open Opener) {
	e := open(t, config(queue.LongestIdle))
	if e.Kill == nil {
		t.Skip("one engine: nothing outlives it")
	}
	register(t, e.B, "alice", time.Hour, "level1")
	c1 := join(t, e.A, "level1", "c1")
	c2 := join(t, e.B, "level1", "c2")
	want(t, "the first caller's claim", claim(t, c1), "alice")
	killed := time.Now()
	e.Kill()
	deadline := killed.Add(3 * e.Lease)
	for {
		got := claim(t, c2)
		if fmt.Sprint(got) == "[alice]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine A died %s ago and its caller still holds alice (position of B's caller %d)",
				time.Since(killed).Round(time.Millisecond), position(t, c2))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p := position(t, c2); p != 1 {
		t.Fatalf("B's caller at position %d after A died, want 1", p)
	}
	t.Logf("alice rings for engine B's caller %s after engine A died (lease %s)", time.Since(killed).Round(time.Millisecond), e.Lease)
}

// TestDirectory checks the agents and lockouts of open's directories (two
// handles on one database): what one handle writes the other reads.
func TestDirectory(t *testing.T, open func(t *testing.T) (a, b queue.Directory)) {
	d, other := open(t)
	if err := d.Add(ctx, "alice", "r", "long-password", []string{"level1", "level2"}); err != nil {
		t.Fatal(err)
	}
	a, err := other.Lookup(ctx, "alice")
	must(t, err)
	if a.HA1 != queue.HA1("alice", "r", "long-password") || !a.Serves("level2") || a.Serves("level3") {
		t.Fatalf("agent %+v", a)
	}
	// A new password replaces the old one.
	must(t, other.Add(ctx, "alice", "r", "another-password", []string{"level1"}))
	if a, _ := d.Lookup(ctx, "alice"); a.HA1 != queue.HA1("alice", "r", "another-password") || a.Serves("level2") {
		t.Fatalf("after update: %+v", a)
	}
	if _, err := d.Lookup(ctx, "bob"); !errors.Is(err, queue.ErrUnknownAgent) {
		t.Fatalf("unknown agent: %v", err)
	}
	must(t, d.Disable(ctx, "alice"))
	if _, err := other.Lookup(ctx, "alice"); !errors.Is(err, queue.ErrUnknownAgent) {
		t.Fatalf("disabled agent: %v", err)
	}
	if err := d.Disable(ctx, "bob"); !errors.Is(err, queue.ErrUnknownAgent) {
		t.Fatalf("disable an unknown agent: %v", err)
	}
	for _, bad := range []struct {
		name, pw string
		q        []string
	}{
		{"al ice", "long-password", []string{"level1"}},
		{"x'; DROP TABLE sip_agents; --", "long-password", []string{"level1"}},
		{"bob", "short", []string{"level1"}},
		{"bob", "long-password", nil},
		{"bob", "long-password", []string{"Level 1"}},
	} {
		if err := d.Add(ctx, bad.name, "r", bad.pw, bad.q); err == nil {
			t.Errorf("Add(%q, %q, %v) accepted", bad.name, bad.pw, bad.q)
		}
	}
	all, err := other.List(ctx)
	if err != nil || len(all) != 1 || !all[0].Disabled {
		t.Fatalf("list: %+v %v", all, err)
	}

	// Lockouts set by one engine hold on the other, until they end or
	// are lifted.
	until := time.Now().Add(time.Hour)
	must(t, d.Lock(ctx, queue.Lock{Kind: queue.LockAgent, Target: "alice", Until: until, Failures: 10}))
	must(t, d.Lock(ctx, queue.Lock{Kind: queue.LockAddress, Target: "203.0.113.9", Until: until, Failures: 20}))
	must(t, d.Lock(ctx, queue.Lock{Kind: queue.LockAddress, Target: "198.51.100.1", Until: time.Now().Add(-time.Second)}))
	l, ok, err := other.Locked(ctx, "alice", "203.0.113.9")
	if err != nil || !ok || l.Kind != queue.LockAgent || l.Failures != 10 || !l.Until.Equal(until) {
		t.Fatalf("locked: %+v %v %v (the agent's lock first)", l, ok, err)
	}
	if l, ok, _ := other.Locked(ctx, "", "203.0.113.9"); !ok || l.Kind != queue.LockAddress {
		t.Fatalf("the address's lock: %+v %v", l, ok)
	}
	if _, ok, _ := other.Locked(ctx, "bob", "198.51.100.1"); ok {
		t.Fatal("an ended lock holds")
	}
	if ls, err := other.Locks(ctx); err != nil || len(ls) != 2 {
		t.Fatalf("locks in force: %+v %v", ls, err)
	}
	must(t, other.Unlock(ctx, queue.LockAgent, "alice"))
	if err := d.Unlock(ctx, queue.LockAgent, "alice"); !errors.Is(err, queue.ErrNotLocked) {
		t.Fatalf("unlock twice: %v", err)
	}
	if _, ok, _ := d.Locked(ctx, "alice", ""); ok {
		t.Fatal("a lifted lock holds")
	}
}

// TestCallbacks checks two handles on one database (open) against the
// callbacks' contract: a callback added on one is pending on the other,
// in the order they were created; each attempt counts with its result; a
// callback done or failed is pending no more and changes no more.
func TestCallbacks(t *testing.T, open func(t *testing.T) (a, b queue.Callbacks)) {
	a, b := open(t)
	t0 := time.Now().Add(-time.Minute)
	second, err := a.Add(ctx, queue.Callback{Queue: "level1", Number: "0721000002", Lang: "en", Ticket: "T-2", CallID: "c2", Created: t0.Add(time.Second)})
	must(t, err)
	first, err := b.Add(ctx, queue.Callback{Queue: "level1", Number: "0721000001", Lang: "ro", Ticket: "T-1", CallID: "c1", Created: t0})
	must(t, err)
	if first == second {
		t.Fatalf("two callbacks got one id %d", first)
	}
	if _, err := a.Add(ctx, queue.Callback{Queue: "level1"}); err == nil {
		t.Error("a callback without a number was added")
	}
	pending, err := b.List(ctx, queue.CallbackPending, 0)
	must(t, err)
	if len(pending) != 2 || pending[0].ID != first || pending[1].ID != second {
		t.Fatalf("pending %+v, want %d then %d (created first, served first)", pending, first, second)
	}
	if p := pending[0]; p.Number != "0721000001" || p.Lang != "ro" || p.Ticket != "T-1" || p.CallID != "c1" || p.Queue != "level1" ||
		p.State != queue.CallbackPending || p.Attempts != 0 || !p.Created.Equal(time.Unix(0, t0.UnixNano())) {
		t.Errorf("callback read back as %+v", p)
	}

	must(t, a.Attempted(ctx, first, "busy", queue.CallbackPending))
	must(t, b.Attempted(ctx, first, "no_answer", queue.CallbackFailed))
	must(t, a.Attempted(ctx, second, "answered", queue.CallbackDone))
	if err := b.Attempted(ctx, first, "busy", queue.CallbackPending); !errors.Is(err, queue.ErrUnknownCallback) {
		t.Errorf("an attempt on a failed callback: %v, want ErrUnknownCallback", err)
	}
	if err := b.Attempted(ctx, second, "busy", "ringing"); err == nil {
		t.Error("an unknown state was accepted")
	}
	if p, _ := a.List(ctx, queue.CallbackPending, 0); len(p) != 0 {
		t.Errorf("still pending: %+v", p)
	}
	all, err := b.List(ctx, "", 0)
	must(t, err)
	if len(all) != 2 {
		t.Fatalf("%d callbacks, want 2", len(all))
	}
	if f := all[0]; f.State != queue.CallbackFailed || f.Attempts != 2 || f.LastReason != "no_answer" {
		t.Errorf("failed callback %+v: want failed after 2 attempts, the last no_answer", f)
	}
	if d := all[1]; d.State != queue.CallbackDone || d.Attempts != 1 || d.LastReason != "answered" {
		t.Errorf("done callback %+v", d)
	}
	if one, _ := a.List(ctx, "", 1); len(one) != 1 || one[0].ID != first {
		t.Errorf("limit 1: %+v", one)
	}
}
