// Package limit holds the small rate limits the engine puts in front of
// what a stranger can make it do: Every lets one event per key through per
// period (a log line, an audit entry, whatever a flood would repeat), and
// Buckets gives each key a token bucket (sign-ins per client address).
//
// Both keep a bounded amount of memory whatever the number of keys (an
// attacker chooses the keys: addresses, names), and are safe for
// concurrent use.
package limit

import (
	"math"
	"sync"
	"time"
)

// DefaultMaxKeys is how many keys a limit remembers by default.
const DefaultMaxKeys = 10000

// overflow is the key that stands for every new key once a limit
// remembers its maximum and none can be forgotten.
const overflow = "\x00overflow"

// Every lets one event per key through per period and counts the events
// it holds back.
type Every struct {
	period  time.Duration
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*every
}

type every struct {
	next time.Time
	held int
}

// NewEvery returns a limit of one event per key per period, remembering
// at most maxKeys keys (DefaultMaxKeys when maxKeys <= 0).
func NewEvery(period time.Duration, maxKeys int) *Every {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Every{period: period, maxKeys: maxKeys, now: time.Now, keys: map[string]*every{}}
}

// Allow reports whether an event of key may go through now, and how many
// of its events were held back since the last one that did.
func (e *Every) Allow(key string) (ok bool, held int) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.keys[key]
	if st == nil {
		if len(e.keys) >= e.maxKeys {
			for k, s := range e.keys {
				if !now.Before(s.next) && s.held == 0 {
					delete(e.keys, k)
				}
			}
			if len(e.keys) >= e.maxKeys {
				key = overflow
				st = e.keys[key]
			}
		}
		if st == nil {
			st = &every{}
			e.keys[key] = st
		}
	}
	if now.Before(st.next) {
		st.held++
		return false, 0
	}
	held = st.held
	st.held, st.next = 0, now.Add(e.period)
	return true, held
}

// Buckets is a token bucket per key: perMinute tokens a minute, as many at
// once.
type Buckets struct {
	rate, burst float64 // tokens per second, most held
	maxKeys     int

	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewBuckets returns buckets of perMinute tokens a minute (and as many at
// once), remembering at most maxKeys keys (DefaultMaxKeys when <= 0).
func NewBuckets(perMinute, maxKeys int) *Buckets {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Buckets{rate: float64(perMinute) / 60, burst: float64(perMinute), maxKeys: maxKeys, m: map[string]*bucket{}}
}

// Take takes a token of key at now, or says how long until one is there.
func (b *Buckets) Take(key string, now time.Time) (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.m[key]
	if bk == nil {
		if len(b.m) >= b.maxKeys {
			for k, x := range b.m { // full buckets are as good as new
				if x.tokens+now.Sub(x.at).Seconds()*b.rate >= b.burst {
					delete(b.m, k)
				}
			}
			if len(b.m) >= b.maxKeys {
				key = overflow
				bk = b.m[key]
			}
		}
		if bk == nil {
			bk = &bucket{tokens: b.burst, at: now}
			b.m[key] = bk
		}
	}
	bk.tokens = math.Min(b.burst, bk.tokens+now.Sub(bk.at).Seconds()*b.rate)
	bk.at = now
	if bk.tokens < 1 {
		return time.Duration((1 - bk.tokens) / b.rate * float64(time.Second)), false
	}
	bk.tokens--
	return 0, true
}
