package speech

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/govline/ivr/audio"
)

// FrameBuffer turns samples that come in pieces of any length (an
// engine's renders, a network body, a render shared by several calls)
// into the 20 ms frames of an Audio, resampled on the way in when the
// source's rate is not the frames'. It is the frame logic of every Audio
// in the engine; a BufferedAudio reads from one. The zero value takes
// samples at the frames' rate. Not safe for concurrent use: the Audio's
// reader owns it.
type FrameBuffer struct {
	out []int16 // samples at the frames' rate, not yet read
	rs  *audio.Resampler
	tmp []int16
	// tail is the silence End pushes through rs to flush its filter
	// (resample mode); exact mode instead drops the filter's delay and
	// ends on exactly the input's length at the frames' rate.
	tail              int
	exact             bool
	skip, made, input int
}

// Resample makes the buffer take samples at rs.From() (Write converts
// them); End pushes tail samples of silence through rs, so the filter's
// last samples come out (the stream ends tail/From() seconds longer).
func (b *FrameBuffer) Resample(rs *audio.Resampler, tail int) {
	b.rs, b.tail, b.exact = rs, tail, false
}

// ResampleExact makes the buffer take samples at rs.From(), with the
// filter's delay removed: the frames hold exactly what audio.Resample
// gives for the whole input, however it was cut.
func (b *FrameBuffer) ResampleExact(rs *audio.Resampler) {
	b.rs, b.exact, b.skip = rs, true, rs.Delay()
}

// Write appends samples (copied, resampled when the buffer resamples).
func (b *FrameBuffer) Write(pcm []int16) {
	if b.rs == nil {
		b.out = append(b.out, pcm...)
		return
	}
	b.input += len(pcm)
	need := b.rs.OutLen(len(pcm))
	if cap(b.tmp) < need {
		b.tmp = make([]int16, need)
	}
	out := b.tmp[:b.rs.Process(b.tmp[:need], pcm)]
	if b.exact {
		d := min(b.skip, len(out))
		b.skip -= d
		b.made += len(out) - d
		out = out[d:]
	}
	if len(b.out) == 0 {
		b.out = b.out[:0] // reuse the array from its start
	}
	b.out = append(b.out, out...)
}

// End flushes the resampler, when there is one: the input is over.
func (b *FrameBuffer) End() {
	if b.rs == nil {
		return
	}
	if !b.exact {
		b.Write(make([]int16, b.tail))
		return
	}
	in := b.input
	from, to := b.rs.From(), b.rs.To()
	b.Write(make([]int16, b.rs.Delay()*from/to+from/to+1))
	want := int(int64(in) * int64(to) / int64(from))
	if extra := b.made - want; extra > 0 && extra <= len(b.out) {
		b.out = b.out[:len(b.out)-extra]
	}
}

// Len is the number of samples not read yet.
func (b *FrameBuffer) Len() int { return len(b.out) }

// Next fills frame when a whole frame is buffered.
func (b *FrameBuffer) Next(frame []int16) bool {
	if len(b.out) < len(frame) {
		return false
	}
	copy(frame, b.out)
	b.out = b.out[len(frame):]
	return true
}

// Last fills frame with what is left, padded with silence; false when
// nothing is.
func (b *FrameBuffer) Last(frame []int16) bool {
	if len(b.out) == 0 {
		return false
	}
	n := copy(frame, b.out)
	clear(frame[n:])
	b.out = b.out[n:]
	return true
}

// Source feeds a BufferedAudio.
type Source interface {
	// Fill writes the next samples to b, waiting for the engine when it
	// has none ready. It may return nil having written nothing (it was
	// woken: the reader checks Close and its context, then asks again),
	// io.EOF once the last samples are in b (after b.End()), or the
	// engine's error. The reader's goroutine calls it.
	Fill(b *FrameBuffer) error
	// Stop is called once by Close, from any goroutine: stop producing
	// and wake a Fill that waits.
	Stop()
}

// BufferedAudio is an Audio read from a FrameBuffer that a Source fills:
// the part of ReadFrame every engine shares (frame size checked, whole
// frames while there are any, the last one padded with silence, io.EOF,
// ErrClosed after Close, the context's error once it is done).
type BufferedAudio struct {
	ctx    context.Context // nil: none
	rate   int
	buf    FrameBuffer
	src    Source // nil: all the samples are in buf
	done   bool   // src said io.EOF
	ended  bool   // io.EOF returned
	closed atomic.Bool
	onEnd  func()
}

var _ Audio = (*BufferedAudio)(nil)

// NewBufferedAudio returns the Audio of src at rate; ctx (may be nil)
// bounds it: once done, ReadFrame returns its error. Set the buffer's
// resampling (Buffer) before the first ReadFrame.
func NewBufferedAudio(ctx context.Context, rate int, src Source) *BufferedAudio {
	return &BufferedAudio{ctx: ctx, rate: rate, src: src, done: src == nil}
}

// Buffer is the audio's FrameBuffer, for its Source and its set-up.
func (a *BufferedAudio) Buffer() *FrameBuffer { return &a.buf }

// OnEnd sets a function called once, by ReadFrame, when it returns io.EOF
// the first time (the audio was read to its end).
func (a *BufferedAudio) OnEnd(f func()) { a.onEnd = f }

// ReadFrame implements Audio.
func (a *BufferedAudio) ReadFrame(frame []int16) error {
	if err := CheckFrame(frame, a.rate); err != nil {
		return err
	}
	for {
		if a.closed.Load() {
			return ErrClosed
		}
		if a.ctx != nil {
			if err := a.ctx.Err(); err != nil {
				return err
			}
		}
		if a.ended {
			return io.EOF
		}
		if a.buf.Next(frame) {
			return nil
		}
		if a.done {
			if a.buf.Last(frame) {
				return nil
			}
			a.ended = true
			if a.onEnd != nil {
				a.onEnd()
				a.onEnd = nil
			}
			return io.EOF
		}
		switch err := a.src.Fill(&a.buf); {
		case errors.Is(err, io.EOF):
			a.done = true
		case err != nil:
			return err
		}
	}
}

// Close implements Audio: it stops the source (once) and makes ReadFrame
// return ErrClosed. Safe from another goroutine than the reader's.
func (a *BufferedAudio) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	if a.src != nil {
		a.src.Stop()
	}
	return nil
}

// PCMAudio returns pcm (whole, at rate; not modified) as an Audio. Its
// Remaining method says how many samples are left to read.
func PCMAudio(pcm []int16, rate int) Audio { return NewPCMAudio(nil, pcm, rate) }

// NewPCMAudio returns pcm (whole, at rate; not modified, not copied) as an
// Audio that ctx (may be nil) bounds.
func NewPCMAudio(ctx context.Context, pcm []int16, rate int) *PCMAudioReader {
	a := &PCMAudioReader{BufferedAudio: NewBufferedAudio(ctx, rate, nil)}
	a.buf.out = pcm[:len(pcm):len(pcm)] // read only: an append would copy
	return a
}

// PCMAudioReader is the Audio of PCMAudio.
type PCMAudioReader struct{ *BufferedAudio }

// Remaining is the number of samples left to read.
func (a *PCMAudioReader) Remaining() int { return a.buf.Len() }

// Live is the Source of an engine that renders on a goroutine of its own
// while the reader reads: the renderer calls Push and then Finish once.
type Live struct {
	ctx  context.Context
	stop func() // called by Stop (nil: none)
	wake chan struct{}

	mu      sync.Mutex
	pending []int16
	done    bool
	err     error
}

// NewLive returns a Live source whose Fill waits at most until ctx is
// done; stop (may be nil) is called by Close to stop the renderer.
func NewLive(ctx context.Context, stop func()) *Live {
	return &Live{ctx: ctx, stop: stop, wake: make(chan struct{}, 1)}
}

func (l *Live) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Push hands samples (copied) to the reader. Renderer's side.
func (l *Live) Push(pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	l.mu.Lock()
	l.pending = append(l.pending, pcm...)
	l.mu.Unlock()
	l.signal()
}

// Finish ends the rendering: err nil when the text is done, the engine's
// error when it failed. Only the first call counts. Renderer's side.
func (l *Live) Finish(err error) {
	l.mu.Lock()
	if !l.done {
		l.done, l.err = true, err
	}
	l.mu.Unlock()
	l.signal()
}

// Fill implements Source.
func (l *Live) Fill(b *FrameBuffer) error {
	l.mu.Lock()
	pending, done, err := l.pending, l.done, l.err
	l.pending = nil
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		b.Write(pending)
		return nil
	}
	if done {
		b.End()
		return io.EOF
	}
	select {
	case <-l.wake:
	case <-l.ctx.Done():
	}
	return nil
}

// Stop implements Source.
func (l *Live) Stop() {
	if l.stop != nil {
		l.stop()
	}
	l.signal()
}
