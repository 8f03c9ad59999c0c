package limit

import (
	"fmt"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	e := NewEvery(10*time.Second, 3)
	now := time.Unix(1000, 0)
	e.now = func() time.Time { return now }
	if ok, _ := e.Allow("a"); !ok {
		t.Fatal("first event held back")
	}
	for range 5 {
		if ok, _ := e.Allow("a"); ok {
			t.Fatal("a second event within the period went through")
		}
	}
	now = now.Add(10 * time.Second)
	if ok, held := e.Allow("a"); !ok || held != 5 {
		t.Fatalf("after the period: %v, %d held; want true, 5", ok, held)
	}
	// Many keys: memory stays bounded, new keys share one slot.
	for i := range 100 {
		e.Allow(fmt.Sprint("k", i))
	}
	if n := len(e.keys); n > 4 {
		t.Fatalf("%d keys remembered, want at most 3 and the overflow", n)
	}
}

func TestBuckets(t *testing.T) {
	b := NewBuckets(6, 2) // one token every 10 s, 6 at once
	now := time.Unix(1000, 0)
	for i := range 6 {
		if _, ok := b.Take("x", now); !ok {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	wait, ok := b.Take("x", now)
	if ok || wait != 10*time.Second {
		t.Fatalf("seventh take: %v, wait %s; want refused, 10s", ok, wait)
	}
	if _, ok := b.Take("x", now.Add(10*time.Second)); !ok {
		t.Fatal("a token after 10 s refused")
	}
	for i := range 50 {
		b.Take(fmt.Sprint("k", i), now)
	}
	if n := len(b.m); n > 3 {
		t.Fatalf("%d buckets remembered", n)
	}
}
