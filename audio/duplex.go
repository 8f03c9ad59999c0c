package audio

import "context"

// Duplex is a call's audio as its session sees it, the same for every
// telephony adapter: the caller's frames (In: the adapter's Receiver
// offers them, the session reads) and the engine's (Out: the session
// writes, the adapter's sender takes one every 20 ms). Embedded in an
// adapter's call, it gives the call ReadFrame and WriteFrame (ivr.Media).
// Safe for concurrent use, like its queues.
type Duplex struct {
	In  *FrameQueue // caller frames for the session
	Out *FrameQueue // engine frames for the sender
	end context.Context
}

// NewDuplex returns the queues of a call whose frames are at rate, inDepth
// and outDepth frames deep; end is the call's context: once it is done,
// reads and writes return its cause.
func NewDuplex(end context.Context, rate, inDepth, outDepth int) Duplex {
	n := SamplesPerFrame(rate)
	return Duplex{In: NewFrameQueue(inDepth, n), Out: NewFrameQueue(outDepth, n), end: end}
}

// ReadFrame waits for the caller's next frame and copies it into dst,
// returning the samples copied; it returns ctx's error, or the call's end
// cause.
func (d *Duplex) ReadFrame(ctx context.Context, dst []int16) (int, error) {
	return d.In.Read(ctx, d.end, dst)
}

// WriteFrame queues one engine frame for the caller, waiting while the
// (short) outbound queue is full, so a writer is paced by the sender; it
// returns ctx's error, or the call's end cause.
func (d *Duplex) WriteFrame(ctx context.Context, frame []int16) error {
	return d.Out.Write(ctx, d.end, frame)
}
