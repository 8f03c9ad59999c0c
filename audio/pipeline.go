package audio

import (
	"fmt"
)

// Writer is one stage of a media pipeline: it takes samples of type T
// (encoded payloads as []byte, PCM as []int16) at SampleRate, does its work
// and passes the result to the next stage it wraps. String describes the
// stage and every stage after it, so a whole pipeline prints as one line
// ("decode PCMU/8000 decoder -> resample 8000->16000 -> 20 ms frames at
// 16000 Hz -> session").
//
// WriteSample does not keep sample after it returns (a stage copies what
// it holds on to); an error from a later stage is returned as is. A
// pipeline is owned by one goroutine: stages are not safe for concurrent
// use.
type Writer[T any] interface {
	WriteSample(sample T) error
	SampleRate() int
	String() string
}

// PCMWriter takes 16-bit linear PCM; PayloadWriter takes RTP payloads of
// one codec.
type (
	PCMWriter     = Writer[[]int16]
	PayloadWriter = Writer[[]byte]
)

// WriterFunc is the last stage of a pipeline: fn receives each sample. name
// describes it in the pipeline's String.
func WriterFunc[T any](rate int, name string, fn func(T) error) Writer[T] {
	return &funcWriter[T]{rate: rate, name: name, fn: fn}
}

type funcWriter[T any] struct {
	rate int
	name string
	fn   func(T) error
}

func (w *funcWriter[T]) WriteSample(s T) error { return w.fn(s) }
func (w *funcWriter[T]) SampleRate() int       { return w.rate }
func (w *funcWriter[T]) String() string        { return w.name }

// DecodeWriter decodes each payload (of up to 120 ms; an empty payload is
// a lost packet the decoder conceals) with dec and writes the PCM to w,
// resampled to w's rate when dec's differs. A payload the decoder refuses
// is skipped: one bad packet costs its own audio, not the stream.
func DecodeWriter(dec Decoder, w PCMWriter) (PayloadWriter, error) {
	next, err := ResampleWriter(w, dec.Rate())
	if err != nil {
		return nil, err
	}
	return &decodeWriter{dec: dec, next: next, pcm: make([]int16, dec.Rate()*maxPacketMs/1000)}, nil
}

// maxPacketMs is the longest packet a receive path takes (RFC 7587's
// longest Opus packet; G.711 packets are 10 to 60 ms in practice).
const maxPacketMs = 120

type decodeWriter struct {
	dec  Decoder
	next PCMWriter
	pcm  []int16
}

func (w *decodeWriter) WriteSample(payload []byte) error {
	n, err := w.dec.Decode(w.pcm, payload)
	if err != nil {
		return nil // a bad packet: skip it
	}
	return w.next.WriteSample(w.pcm[:n])
}

func (w *decodeWriter) SampleRate() int { return w.dec.Rate() }
func (w *decodeWriter) String() string  { return fmt.Sprintf("decode %v -> %s", w.dec, w.next) }

// ResampleWriter converts PCM at rate from to w's rate and writes it to
// w; at equal rates it is w itself (no stage, no copy).
func ResampleWriter(w PCMWriter, from int) (PCMWriter, error) {
	if from == w.SampleRate() {
		return w, nil
	}
	rs, err := NewResampler(from, w.SampleRate())
	if err != nil {
		return nil, err
	}
	return &resampleWriter{rs: rs, next: w, buf: make([]int16, rs.OutLen(from*maxPacketMs/1000))}, nil
}

type resampleWriter struct {
	rs   *Resampler
	next PCMWriter
	buf  []int16
}

func (w *resampleWriter) WriteSample(pcm []int16) error {
	if need := w.rs.OutLen(len(pcm)); need > len(w.buf) {
		w.buf = make([]int16, need)
	}
	return w.next.WriteSample(w.buf[:w.rs.Process(w.buf, pcm)])
}

func (w *resampleWriter) SampleRate() int { return w.rs.From() }
func (w *resampleWriter) String() string  { return fmt.Sprintf("%v -> %s", w.rs, w.next) }

// FrameWriter cuts PCM written in pieces of any length into 20 ms frames
// at w's rate and writes each whole frame to w; samples short of a frame
// wait for the next write. After an error from w the rest of that write
// is dropped and the error returned.
func FrameWriter(w PCMWriter) PCMWriter {
	size := SamplesPerFrame(w.SampleRate())
	fw := &frameWriter{next: w, f: NewFramer(size, 2*w.SampleRate()*maxPacketMs/1000+size)}
	fw.emit = fw.emitFrame // bound once: Write does not allocate
	return fw
}

type frameWriter struct {
	f    *Framer
	next PCMWriter
	emit func([]int16)
	err  error
}

func (w *frameWriter) WriteSample(pcm []int16) error {
	w.err = nil
	w.f.Write(pcm, w.emit)
	return w.err
}

func (w *frameWriter) emitFrame(frame []int16) {
	if w.err == nil {
		w.err = w.next.WriteSample(frame)
	}
}

func (w *frameWriter) SampleRate() int { return w.next.SampleRate() }
func (w *frameWriter) String() string {
	return fmt.Sprintf("20 ms frames at %d Hz -> %s", w.next.SampleRate(), w.next)
}
