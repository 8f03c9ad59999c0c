package audio

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// pkt builds a payload that names its sequence number.
func pkt(seq uint16) []byte { return []byte(fmt.Sprintf("p%d", seq)) }

// drain pops everything ready and renders it: "p5 p6 L p8" (L = lost).
func drain(j *JitterBuffer) string {
	var out []string
	for {
		p, lost, ok := j.Pop()
		if !ok {
			return strings.Join(out, " ")
		}
		if lost {
			if p != nil {
				panic("lost slot with a payload")
			}
			out = append(out, "L")
		} else {
			out = append(out, string(p))
		}
	}
}

func push(j *JitterBuffer, ssrc uint32, seqs ...uint16) {
	for _, s := range seqs {
		j.Push(s, uint32(s)*160, ssrc, pkt(s))
	}
}

func TestJitterInOrderPassesStraightThrough(t *testing.T) {
	j := NewJitterBuffer(3)
	for s := uint16(100); s < 110; s++ {
		push(j, 1, s)
		if got := drain(j); got != fmt.Sprintf("p%d", s) {
			t.Fatalf("push %d: popped %q, want it at once", s, got)
		}
	}
	if st := j.Stats(); st != (JitterStats{Received: 10}) {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterReorder(t *testing.T) {
	j := NewJitterBuffer(3)
	push(j, 1, 1, 3, 4)
	if got := drain(j); got != "p1" {
		t.Fatalf("after 1 3 4: %q, want p1 (3 and 4 held)", got)
	}
	push(j, 1, 2)
	if got := drain(j); got != "p2 p3 p4" {
		t.Fatalf("after 2 arrives: %q", got)
	}
	st := j.Stats()
	if st.Reordered != 1 || st.Lost != 0 || st.Received != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterLoss(t *testing.T) {
	j := NewJitterBuffer(3)
	push(j, 1, 1, 3, 4, 5)
	if got := drain(j); got != "p1" {
		t.Fatalf("3 held packets at depth 3: %q, want only p1", got)
	}
	push(j, 1, 6) // 4 held > depth: 2 is declared lost
	if got := drain(j); got != "L p3 p4 p5 p6" {
		t.Fatalf("after depth exceeded: %q", got)
	}
	push(j, 1, 2) // too late now
	push(j, 1, 7)
	if got := drain(j); got != "p7" {
		t.Fatalf("late packet not dropped: %q", got)
	}
	st := j.Stats()
	if st.Lost != 1 || st.Late != 1 || st.Received != 7 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterDuplicates(t *testing.T) {
	j := NewJitterBuffer(3)
	push(j, 1, 1, 1, 3, 3, 2, 2, 3)
	if got := drain(j); got != "p1 p2 p3" {
		t.Fatalf("%q", got)
	}
	st := j.Stats()
	if st.Duplicate != 4 || st.Late != 0 {
		t.Errorf("stats %+v: want 4 duplicates (1 held-dup, 3 released dups)", st)
	}
}

func TestJitterSequenceWrap(t *testing.T) {
	j := NewJitterBuffer(4)
	push(j, 7, 65534, 65535, 1, 0, 2)
	if got := drain(j); got != "p65534 p65535 p0 p1 p2" {
		t.Fatalf("across the wrap: %q", got)
	}
	push(j, 7, 65535) // released before the wrap: a duplicate, not a new packet
	if got := drain(j); got != "" {
		t.Fatalf("old packet after wrap came out: %q", got)
	}
	if st := j.Stats(); st.Duplicate != 1 || st.Lost != 0 || st.Reordered != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterSSRCChange(t *testing.T) {
	j := NewJitterBuffer(3)
	push(j, 1, 10, 12) // 12 held behind the gap
	drain(j)
	push(j, 2, 5000, 5001)
	if got := drain(j); got != "L p12 p5000 p5001" {
		t.Fatalf("new SSRC: %q, want the old stream's held packet then the new stream", got)
	}
	if st := j.Stats(); st.Resets != 1 || st.Late != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterFlushAndJumps(t *testing.T) {
	j := NewJitterBuffer(5)
	push(j, 1, 1, 3, 5)
	drain(j)
	j.Flush()
	if got := drain(j); got != "L p3 L p5" {
		t.Fatalf("flush: %q", got)
	}
	push(j, 1, 6)
	if got := drain(j); got != "p6" {
		t.Fatalf("after flush: %q", got)
	}
	// A big jump forward restarts without conceal-spam.
	push(j, 1, 1006)
	if got := drain(j); got != "p1006" {
		t.Fatalf("jump: %q", got)
	}
	// A sender restarting its sequence far behind: first is late, the next
	// in sequence confirms the restart.
	push(j, 1, 40, 41, 42)
	if got := drain(j); got != "p41 p42" {
		t.Fatalf("restart behind: %q", got)
	}
	if st := j.Stats(); st.Resets != 2 || st.Late != 1 || st.Lost != 2+999 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterCopiesPayload(t *testing.T) {
	j := NewJitterBuffer(2)
	buf := []byte("aaaa")
	j.Push(1, 0, 1, buf)
	copy(buf, "bbbb")
	j.Push(3, 0, 1, buf)
	copy(buf, "cccc")
	j.Push(2, 0, 1, buf)
	if got := drain(j); got != "aaaa cccc bbbb" {
		t.Fatalf("%q", got)
	}
}

func TestJitterOverflowWhenNobodyPops(t *testing.T) {
	j := NewJitterBuffer(2)
	for s := range uint16(1000) {
		push(j, 1, s)
	}
	st := j.Stats()
	n := len(strings.Fields(drain(j)))
	if uint64(n)+st.Overflow != 1000 || st.Overflow == 0 {
		t.Errorf("popped %d, overflow %d, want together 1000", n, st.Overflow)
	}
	if a := testing.AllocsPerRun(100, func() { push(j, 1, 0) }); a > 1 { // pkt() allocates once
		t.Errorf("Push allocates: %.1f", a)
	}
}

// FuzzJitterBuffer drives the buffer with arbitrary packet sequences and
// checks it never panics and that every packet is accounted for, comes out
// with its own payload, and (within one stream) in increasing order.
func FuzzJitterBuffer(f *testing.F) {
	f.Add(uint8(3), []byte{0, 1, 0, 2, 0, 4, 0, 3, 0, 9, 1, 0, 255, 255, 0, 0})
	f.Add(uint8(1), []byte{0, 0, 0, 0, 0, 0, 128, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, depth uint8, ops []byte) {
		j := NewJitterBuffer(int(depth % 20))
		var delivered uint64
		var last uint16
		haveLast := false
		resets := uint64(0)
		pay := make([]byte, 8)
		check := func() {
			// Each reset since the last batch restarts the order once,
			// somewhere in this batch.
			allowed := j.Stats().Resets - resets
			resets = j.Stats().Resets
			for {
				p, lost, ok := j.Pop()
				if !ok {
					return
				}
				if lost {
					if p != nil {
						t.Fatal("lost slot with payload")
					}
					if haveLast {
						last++
					}
					continue
				}
				delivered++
				if len(p) < 2 {
					t.Fatalf("payload %x lost its tag", p)
				}
				seq := binary.BigEndian.Uint16(p)
				if haveLast && int16(seq-last) <= 0 {
					if allowed > 0 {
						allowed--
						last = seq
						continue
					}
					t.Fatalf("seq %d delivered after %d", seq, last)
				}
				last, haveLast = seq, true
			}
		}
		seq := uint16(0)
		ssrc := uint32(1)
		for i := 0; i+1 < len(ops); i += 2 {
			switch op := ops[i]; {
			case op == 255:
				ssrc++
				seq = uint16(ops[i+1]) << 8
			case op == 254:
				j.Flush()
			case op >= 128:
				seq += uint16(ops[i+1]) << 6 // big jumps
			default:
				seq += uint16(int8(ops[i+1])) // small steps back and forth
			}
			binary.BigEndian.PutUint16(pay, seq)
			j.Push(seq, uint32(seq)*160, ssrc, pay[:2+int(ops[i])%6])
			if j.Held() > j.Depth() {
				t.Fatalf("holding %d > depth %d", j.Held(), j.Depth())
			}
			if ops[i]%3 == 0 {
				check()
			}
		}
		j.Flush()
		check()
		st := j.Stats()
		if got := delivered + st.Late + st.Duplicate + st.Overflow; got != st.Received {
			t.Fatalf("received %d, accounted %d (delivered %d %+v)", st.Received, got, delivered, st)
		}
	})
}

func TestJitterZeroAllocs(t *testing.T) {
	j := NewJitterBuffer(4)
	pay := make([]byte, 160)
	seq := uint16(0)
	a := testing.AllocsPerRun(1000, func() {
		j.Push(seq+1, 0, 1, pay)
		j.Push(seq, 0, 1, pay)
		for {
			if _, _, ok := j.Pop(); !ok {
				break
			}
		}
		seq += 2
	})
	if a != 0 {
		t.Errorf("%.2f allocs per push/pop", a)
	}
}
