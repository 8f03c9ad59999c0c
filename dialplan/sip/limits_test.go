package sip

import "testing"

// The four limits of admission, and that every slot comes back.
func TestAdmission(t *testing.T) {
	a := newAdmission(Config{MaxCalls: 5, MaxCallsPerSource: 3, MaxPending: 3, MaxPendingPerSource: 2})
	for i, c := range []struct{ src, want string }{
		{"A", ""}, {"A", ""}, {"A", "max_pending_per_source"}, // two pending from A
		{"B", ""}, {"C", "max_pending"}, // three pending in all
	} {
		if got := a.admit(c.src); got != c.want {
			t.Fatalf("admission %d from %s: %q, want %q", i+1, c.src, got, c.want)
		}
	}
	a.confirmed("A")
	a.confirmed("A")
	a.confirmed("B")
	if got := a.admit("A"); got != "" {
		t.Fatalf("a third call from A once the others are confirmed: %q", got)
	}
	a.confirmed("A")
	if got := a.admit("A"); got != "max_calls_per_source" {
		t.Fatalf("a fourth call from A: %q", got)
	}
	if got := a.admit("C"); got != "" {
		t.Fatalf("a fifth call in all, from C: %q", got)
	}
	a.confirmed("C")
	if got := a.admit("D"); got != "max_calls" {
		t.Fatalf("a sixth call in all: %q", got)
	}
	a.release("C", false)
	a.release("A", false)
	a.release("A", false)
	a.release("A", false)
	a.release("B", false)
	if a.calls != 0 || a.pending != 0 || len(a.bySource) != 0 {
		t.Fatalf("after every release: %d calls, %d pending, %d sources", a.calls, a.pending, len(a.bySource))
	}
	// A call that never got its ACK gives back both slots.
	a.admit("D")
	a.release("D", true)
	if a.calls != 0 || a.pending != 0 || len(a.bySource) != 0 {
		t.Fatalf("after releasing a pending call: %d calls, %d pending", a.calls, a.pending)
	}
}
