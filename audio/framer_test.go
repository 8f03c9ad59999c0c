package audio

import (
	"slices"
	"testing"
)

// Pieces of 10, 30 and 60 ms at 8 kHz come out as 20 ms frames with every
// sample in order; what is short of a frame waits for the next piece.
func TestFramerCutsPiecesIntoFrames(t *testing.T) {
	const size = 160
	f := NewFramer(size, 2*960+size)
	var got []int16
	frames := 0
	emit := func(frame []int16) {
		if len(frame) != size {
			t.Fatalf("frame of %d samples, want %d", len(frame), size)
		}
		frames++
		got = append(got, frame...)
	}
	var sent []int16
	next := int16(0)
	for _, n := range []int{80, 240, 480, 80, 160, 70} {
		piece := make([]int16, n)
		for i := range piece {
			piece[i] = next
			next++
		}
		sent = append(sent, piece...)
		f.Write(piece, emit)
	}
	// 1110 samples: 6 whole frames, 150 waiting.
	if frames != 6 || !slices.Equal(got, sent[:6*size]) {
		t.Fatalf("%d frames, samples in order: %v", frames, slices.Equal(got, sent[:len(got)]))
	}
	f.Write(make([]int16, 10), emit)
	if frames != 7 || !slices.Equal(got[6*size:6*size+150], sent[6*size:]) {
		t.Fatalf("the waiting samples did not lead the 7th frame")
	}
}

// Drain hands over the ready slots in order, nil for the lost ones.
func TestJitterDrainConcealsLost(t *testing.T) {
	j := NewJitterBuffer(2)
	for _, s := range []uint16{1, 2, 4, 5, 6, 7} {
		j.Push(s, uint32(s)*160, 9, []byte{byte(s)})
	}
	var got []int
	j.Drain(func(p []byte) {
		if p == nil {
			got = append(got, -1)
			return
		}
		got = append(got, int(p[0]))
	})
	if want := []int{1, 2, -1, 4, 5, 6, 7}; !slices.Equal(got, want) {
		t.Fatalf("drained %v, want %v", got, want)
	}
}

// One 60 ms packet's samples into three 20 ms frames: no allocation.
func BenchmarkFramer(b *testing.B) {
	f := NewFramer(320, 2*1920+320)
	piece := make([]int16, 960)
	var n int
	emit := func(frame []int16) { n += len(frame) }
	b.ReportAllocs()
	for b.Loop() {
		f.Write(piece, emit)
	}
}
