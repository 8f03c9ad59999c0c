package speech

import (
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
)

func sine(n, rate int) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
	}
	return out
}

// A render pushed in pieces of any size by another goroutine and
// resampled exactly plays the same samples as the whole render resampled
// at once, padded to a whole frame.
func TestLiveExactResampling(t *testing.T) {
	pcm := sine(16000*3/4+37, 16000) // 0.75 s and a bit: the last frame is partial
	live := NewLive(context.Background(), nil)
	a := NewBufferedAudio(nil, 8000, live)
	rs, _ := audio.NewResampler(16000, 8000)
	a.Buffer().ResampleExact(rs)
	go func() {
		for rest, n := pcm, 1; len(rest) > 0; n = n*3 + 1 {
			k := min(n, len(rest))
			live.Push(rest[:k])
			rest = rest[k:]
		}
		live.Finish(nil)
	}()
	got, err := ReadAll(a, 8000)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := audio.Resample(pcm, 16000, 8000)
	if len(got)%160 != 0 || len(got)-len(want) >= 160 || len(got) < len(want) {
		t.Fatalf("%d samples, want %d padded to a whole frame", len(got), len(want))
	}
	if !slices.Equal(got[:len(want)], want) {
		t.Error("the samples differ from the whole render resampled at once")
	}
	if slices.ContainsFunc(got[len(want):], func(s int16) bool { return s != 0 }) {
		t.Error("the last frame is not padded with silence")
	}
	if err := a.ReadFrame(make([]int16, 160)); !errors.Is(err, ErrClosed) {
		t.Errorf("after the end and Close: %v, want ErrClosed", err)
	}
}

// The renderer's failure reaches the reader after the frames it
// rendered; Close from another goroutine wakes a reader that waits.
func TestLiveFailureAndClose(t *testing.T) {
	live := NewLive(context.Background(), nil)
	a := NewBufferedAudio(nil, 8000, live)
	live.Push(make([]int16, 160))
	boom := errors.New("engine failed")
	live.Finish(boom)
	live.Finish(nil) // only the first counts
	frame := make([]int16, 160)
	if err := a.ReadFrame(frame); !errors.Is(err, boom) {
		t.Fatalf("ReadFrame = %v, want the renderer's error", err)
	}

	stopped := make(chan struct{})
	live = NewLive(context.Background(), func() { close(stopped) })
	a = NewBufferedAudio(nil, 8000, live)
	errc := make(chan error, 1)
	go func() { errc <- a.ReadFrame(frame) }()
	time.Sleep(20 * time.Millisecond) // the reader waits for the renderer
	a.Close()
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("ReadFrame after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the waiting reader")
	}
	<-stopped
}

// A whole PCM: frames in order, the last padded, Remaining counts down,
// the context bounds it, a wrong frame size is refused.
func TestPCMAudio(t *testing.T) {
	pcm := sine(400, 8000)
	a := PCMAudio(pcm, 8000)
	r := a.(interface{ Remaining() int })
	frame := make([]int16, 160)
	if err := a.ReadFrame(make([]int16, 100)); !errors.Is(err, ErrFrameSize) {
		t.Errorf("short frame: %v, want ErrFrameSize", err)
	}
	for i := range 3 {
		if r.Remaining() != 400-160*i {
			t.Fatalf("Remaining = %d before frame %d", r.Remaining(), i)
		}
		if err := a.ReadFrame(frame); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(frame[:80], pcm[320:]) || slices.ContainsFunc(frame[80:], func(s int16) bool { return s != 0 }) {
		t.Error("the last frame is not the rest padded with silence")
	}
	if err := a.ReadFrame(frame); !errors.Is(err, io.EOF) {
		t.Errorf("at the end: %v", err)
	}
	if pcm[0] != sine(1, 8000)[0] || len(pcm) != 400 {
		t.Error("the PCM was modified")
	}

	ctx, cancel := context.WithCancel(context.Background())
	b := NewPCMAudio(ctx, pcm, 8000)
	cancel()
	if err := b.ReadFrame(frame); !errors.Is(err, context.Canceled) {
		t.Errorf("after the context: %v", err)
	}
	b = NewPCMAudio(nil, pcm, 8000)
	b.Close()
	if err := b.ReadFrame(frame); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// Resample mode pushes the filter's tail out at the end.
func TestFrameBufferResampleTail(t *testing.T) {
	var b FrameBuffer
	rs, _ := audio.NewResampler(16000, 8000)
	b.Resample(rs, 256)
	b.Write(sine(320, 16000))
	before := b.Len()
	b.End()
	if b.Len() != before+128 {
		t.Errorf("the tail added %d samples, want 128", b.Len()-before)
	}
}
