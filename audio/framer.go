package audio

// Framer cuts a stream of samples, written in pieces of any length (the
// decoded payloads of 10 to 120 ms packets), into frames of one fixed size
// (20 ms at the call's rate). Samples short of a whole frame wait for the
// next Write. Not safe for concurrent use: one goroutine (the RTP reader)
// owns it.
type Framer struct {
	size int
	acc  []int16
}

// NewFramer returns a framer of frames of size samples that preallocates
// room for capacity samples (the largest write plus a frame: then Write
// never allocates).
func NewFramer(size, capacity int) *Framer {
	return &Framer{size: size, acc: make([]int16, 0, max(capacity, size))}
}

// Write appends samples and hands every whole frame to emit, oldest first.
// The frame is the framer's storage: emit copies what it keeps.
func (f *Framer) Write(samples []int16, emit func(frame []int16)) {
	f.acc = append(f.acc, samples...)
	off := 0
	for len(f.acc)-off >= f.size {
		emit(f.acc[off : off+f.size])
		off += f.size
	}
	n := copy(f.acc, f.acc[off:])
	f.acc = f.acc[:n]
}
