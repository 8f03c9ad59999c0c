package audio

// JitterStats counts what a JitterBuffer saw. Every pushed packet is counted
// in Received and ends up exactly one of: popped, Late, Duplicate or
// Overflow (or still held/ready).
type JitterStats struct {
	Received  uint64 // packets pushed
	Lost      uint64 // sequence numbers declared lost (each is one concealed slot, except those skipped by a resync)
	Late      uint64 // packets dropped because their slot was already released (played or concealed)
	Duplicate uint64 // packets dropped because the same sequence number was already held or released
	Reordered uint64 // packets accepted after a packet with a higher sequence number
	Overflow  uint64 // packets dropped because nobody popped and the ready queue was full
	Resets    uint64 // restarts: new SSRC, or a sequence jump too large to be loss or reordering
}

const (
	jbMinWindow     = 64  // reorder window, in sequence numbers (power of two)
	jbMaxMisorder   = 100 // older than this by sequence: possibly a restarted stream (RFC 3550 A.1)
	jbInitialPacket = 256 // initial storage per packet; grows (once) for larger payloads
	jbMinReady      = 32  // ready queue entries: one release after a gap fits with room to spare
)

// JitterBuffer reorders the inbound RTP packets of one stream by sequence
// number. It is deterministic and has no timers:
//
//   - a packet in sequence is ready at once (no added latency);
//   - after a gap, later packets are held until the missing one arrives or
//     more than Depth packets are held; then the missing slots are declared
//     lost (Pop reports them so the decoder conceals them) and the held
//     packets become ready;
//   - a packet for a slot already released is Late and dropped; a sequence
//     number already held or released is a Duplicate and dropped;
//   - sequence numbers wrap at 16 bits; a new SSRC releases what is held and
//     restarts, and so does a jump forward by more than the reorder window
//     (64 or 2×(Depth+1)) or two consecutive packets far behind (RFC 3550's
//     probation for a restarted sender).
//
// Push copies the payload into storage the buffer preallocated, so the
// caller may reuse its buffer right after Push. Ready packets wait in a
// bounded queue for Pop; if nobody pops, the oldest are dropped (Overflow).
// Nothing allocates after construction except when a payload is larger than
// any seen before. Not safe for concurrent use: one goroutine (the RTP
// reader, or a loop fed by it) pushes and pops.
type JitterBuffer struct {
	depth int
	w     int // window, power of two
	mask  uint16

	ring    []int32  // slot index held for seq&mask, -1 if none
	relSeq  []uint16 // last released seq at seq&mask
	relMark []uint8  // relNone, relPlayed, relLost

	slots []jbSlot
	free  []int32

	fifo  []int32 // ready queue: slot index, or -1 for a lost slot
	fhead int
	flen  int
	lent  int32 // slot returned by the last Pop, reclaimed at the next call

	started  bool
	ssrc     uint32
	next     uint16 // next seq to release
	highest  uint16 // highest seq accepted
	held     int
	badSeq   uint16
	badValid bool

	lastTS uint32

	stats JitterStats
}

type jbSlot struct {
	buf []byte
	ts  uint32
}

const (
	relNone uint8 = iota
	relPlayed
	relLost
)

// NewJitterBuffer returns a jitter buffer that holds at most depth packets
// after a gap before declaring the gap lost. depth < 1 is taken as 1. At
// 20 ms per packet, depth is the most latency it adds, in frames.
func NewJitterBuffer(depth int) *JitterBuffer {
	depth = max(depth, 1)
	w := jbMinWindow
	for w < 2*(depth+1) {
		w *= 2
	}
	if w > 1<<15 {
		w = 1 << 15
		depth = min(depth, w/2-1)
	}
	j := &JitterBuffer{
		depth:   depth,
		w:       w,
		mask:    uint16(w - 1),
		ring:    make([]int32, w),
		relSeq:  make([]uint16, w),
		relMark: make([]uint8, w),
		fifo:    make([]int32, max(jbMinReady, 2*(depth+2))),
		lent:    -1,
	}
	n := depth + 2 + len(j.fifo)
	j.slots = make([]jbSlot, n)
	j.free = make([]int32, 0, n)
	backing := make([]byte, n*jbInitialPacket)
	for i := range j.slots {
		j.slots[i].buf = backing[i*jbInitialPacket : i*jbInitialPacket : (i+1)*jbInitialPacket]
		j.free = append(j.free, int32(n-1-i))
	}
	for i := range j.ring {
		j.ring[i] = -1
	}
	return j
}

// Depth returns the most packets held after a gap.
func (j *JitterBuffer) Depth() int { return j.depth }

// Ready returns how many slots Pop can return now.
func (j *JitterBuffer) Ready() int { return j.flen }

// Held returns how many packets wait behind a gap.
func (j *JitterBuffer) Held() int { return j.held }

// Timestamp returns the RTP timestamp of the packet last returned by Pop.
func (j *JitterBuffer) Timestamp() uint32 { return j.lastTS }

// Stats returns the counters so far.
func (j *JitterBuffer) Stats() JitterStats { return j.stats }

func (j *JitterBuffer) reclaim() {
	if j.lent >= 0 {
		j.free = append(j.free, j.lent)
		j.lent = -1
	}
}

// Push adds one RTP packet (its sequence number, timestamp, SSRC and
// payload). The payload is copied.
func (j *JitterBuffer) Push(seq uint16, ts uint32, ssrc uint32, payload []byte) {
	j.reclaim()
	j.stats.Received++
	switch {
	case !j.started:
		j.restart(seq, ssrc)
	case ssrc != j.ssrc:
		j.Flush()
		j.stats.Resets++
		j.restart(seq, ssrc)
	}
	d := int(int16(seq - j.next))
	switch {
	case d < -jbMaxMisorder:
		if !j.badValid || seq != j.badSeq {
			j.badSeq, j.badValid = seq+1, true
			j.stats.Late++
			return
		}
		// Two in a row far behind: the sender restarted its sequence.
		j.Flush()
		j.stats.Resets++
		j.restart(seq, ssrc)
	case d < 0:
		pos := seq & j.mask
		if -d <= j.w && j.relSeq[pos] == seq && j.relMark[pos] == relPlayed {
			j.stats.Duplicate++
		} else {
			j.stats.Late++
		}
		return
	case d >= j.w:
		// Too far ahead to be reordering: a burst of loss or a jump. Release
		// what is held and restart at this packet; the skipped numbers are
		// counted lost but not concealed one by one.
		j.Flush()
		if skipped := int(int16(seq - j.next)); skipped > 0 && skipped < 3000 {
			j.stats.Lost += uint64(skipped)
		}
		j.stats.Resets++
		j.restart(seq, ssrc)
	}
	j.badValid = false
	pos := seq & j.mask
	if j.ring[pos] >= 0 {
		j.stats.Duplicate++
		return
	}
	if int16(seq-j.highest) < 0 {
		j.stats.Reordered++
	} else {
		j.highest = seq
	}
	si := j.free[len(j.free)-1]
	j.free = j.free[:len(j.free)-1]
	s := &j.slots[si]
	s.buf = append(s.buf[:0], payload...)
	s.ts = ts
	j.ring[pos] = si
	j.held++
	j.release(false)
}

func (j *JitterBuffer) restart(seq uint16, ssrc uint32) {
	j.started = true
	j.ssrc = ssrc
	j.next = seq
	j.highest = seq
	j.badValid = false
	clear(j.relMark)
}

// release moves ready packets to the queue: those in sequence at the head,
// and, while more than depth are held (or all, if force), declares the
// missing head slot lost.
func (j *JitterBuffer) release(force bool) {
	for {
		for {
			pos := j.next & j.mask
			si := j.ring[pos]
			if si < 0 {
				break
			}
			j.ring[pos] = -1
			j.held--
			j.relSeq[pos], j.relMark[pos] = j.next, relPlayed
			j.enqueue(si)
			j.next++
		}
		if j.held == 0 || (!force && j.held <= j.depth) {
			return
		}
		pos := j.next & j.mask
		j.relSeq[pos], j.relMark[pos] = j.next, relLost
		j.stats.Lost++
		j.enqueue(-1)
		j.next++
	}
}

func (j *JitterBuffer) enqueue(e int32) {
	if j.flen == len(j.fifo) {
		old := j.fifo[j.fhead]
		j.fhead = (j.fhead + 1) % len(j.fifo)
		j.flen--
		if old >= 0 {
			j.free = append(j.free, old)
			j.stats.Overflow++
		}
	}
	j.fifo[(j.fhead+j.flen)%len(j.fifo)] = e
	j.flen++
}

// Pop returns the next released slot. ok is false when nothing is ready.
// lost is true when the slot is missing and must be concealed (payload is
// nil). payload is owned by the buffer and valid until the next Push or Pop.
func (j *JitterBuffer) Pop() (payload []byte, lost bool, ok bool) {
	j.reclaim()
	if j.flen == 0 {
		return nil, false, false
	}
	e := j.fifo[j.fhead]
	j.fhead = (j.fhead + 1) % len(j.fifo)
	j.flen--
	if e < 0 {
		return nil, true, true
	}
	j.lent = e
	s := &j.slots[e]
	j.lastTS = s.ts
	return s.buf[:len(s.buf):len(s.buf)], false, true
}

// Drain pops every ready slot, in order, into fn: the payload, or nil for
// a lost slot the decoder conceals. The payload is valid only during fn.
func (j *JitterBuffer) Drain(fn func(payload []byte)) {
	for {
		payload, lost, ok := j.Pop()
		if !ok {
			return
		}
		if lost {
			payload = nil
		}
		fn(payload)
	}
}

// Flush releases everything held, declaring the gaps between held packets
// lost (use it when the stream goes quiet, e.g. on RTP inactivity). Later
// packets continue the sequence after the last one released.
func (j *JitterBuffer) Flush() {
	if j.held > 0 {
		j.release(true)
	}
}
