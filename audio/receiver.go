package audio

import "fmt"

// Receiver is the receive path of one inbound RTP audio stream, the same
// for every telephony adapter: jitter buffer -> decoder -> resampler ->
// 20 ms frames at the call's rate -> the adapter's sink (its inbound frame
// queue). The adapter keeps only what its transport needs: it reads the
// packets, splits off what is not audio (RFC 4733 events go to their own
// handler first), and pushes the audio payloads here.
//
// Not safe for concurrent use: the adapter's RTP reader owns it.
type Receiver struct {
	rate   int
	jb     *JitterBuffer
	frames PCMWriter     // 20 ms frames at rate -> sink; kept across codec changes
	dec    PayloadWriter // decode -> resample -> frames
	drain  func([]byte)  // jb.Drain's callback, bound once
	// lost and late are the jitter buffer's counts already reported.
	lost, late uint64
	counted    func(lost, late uint64)
}

// ReceiverConfig describes a Receiver.
type ReceiverConfig struct {
	// Rate is the PCM rate of the frames the sink receives.
	Rate int
	// JitterDepth is the jitter buffer's depth in packets (see
	// NewJitterBuffer).
	JitterDepth int
	// Sink receives every 20 ms frame, oldest first. The frame is the
	// receiver's storage: Sink copies what it keeps (FrameQueue.Offer
	// does).
	Sink func(frame []int16)
	// Counted, when set, is told after each push or flush how many more
	// packets the jitter buffer declared lost and dropped as late (only
	// when one of them grew), for the call's statistics and the metrics.
	Counted func(lost, late uint64)
}

// NewReceiver returns the receive path for packets of dec's codec; call
// SetDecoder when a re-INVITE changes the codec.
func NewReceiver(cfg ReceiverConfig, dec Decoder) (*Receiver, error) {
	r := &Receiver{
		rate:    cfg.Rate,
		jb:      NewJitterBuffer(cfg.JitterDepth),
		counted: cfg.Counted,
		frames:  FrameWriter(&sinkWriter{rate: cfg.Rate, sink: cfg.Sink}),
	}
	r.drain = r.decode
	if err := r.SetDecoder(dec); err != nil {
		return nil, err
	}
	return r, nil
}

// SetDecoder switches the stream to another codec's decoder; the samples
// of the previous codec short of a whole frame and the jitter buffer's
// packets stay in the stream.
func (r *Receiver) SetDecoder(dec Decoder) error {
	w, err := DecodeWriter(dec, r.frames)
	if err != nil {
		return err
	}
	r.dec = w
	return nil
}

// Push takes one audio packet (payload is copied: the caller may reuse its
// buffer at once) and delivers every frame it completes.
func (r *Receiver) Push(seq uint16, ts uint32, ssrc uint32, payload []byte) {
	r.jb.Push(seq, ts, ssrc, payload)
	r.release()
}

// Flush releases the packets the jitter buffer holds while it waits for a
// missing one: no packet came for a while (the read timed out), so the
// missing ones will not come either.
func (r *Receiver) Flush() {
	r.jb.Flush()
	r.release()
}

// Stats returns the jitter buffer's counts.
func (r *Receiver) Stats() JitterStats { return r.jb.Stats() }

// String describes the path, e.g. "jitter buffer (5) -> decode PCMU/8000
// decoder -> 20 ms frames at 8000 Hz -> sink".
func (r *Receiver) String() string {
	return fmt.Sprintf("jitter buffer (%d) -> %s", r.jb.Depth(), r.dec)
}

func (r *Receiver) decode(payload []byte) { _ = r.dec.WriteSample(payload) }

// release decodes what the jitter buffer has ready and reports the new
// losses.
func (r *Receiver) release() {
	r.jb.Drain(r.drain)
	st := r.jb.Stats()
	if r.counted != nil && (st.Lost != r.lost || st.Late != r.late) {
		r.counted(st.Lost-r.lost, st.Late-r.late)
	}
	r.lost, r.late = st.Lost, st.Late
}

// sinkWriter is the receive path's last stage: the adapter's Sink.
type sinkWriter struct {
	rate int
	sink func([]int16)
}

func (w *sinkWriter) WriteSample(frame []int16) error { w.sink(frame); return nil }
func (w *sinkWriter) SampleRate() int                 { return w.rate }
func (w *sinkWriter) String() string                  { return "sink" }
