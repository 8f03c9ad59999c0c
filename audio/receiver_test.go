package audio

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// pcmuPackets encodes n packets of ms milliseconds of a 440 Hz tone.
func pcmuPackets(t testing.TB, n, ms int) (packets [][]byte, pcm []int16) {
	enc := mustEncoder(t, "PCMU")
	spp := 8000 * ms / 1000
	for i := range n {
		p := tone(8000, 440, 8000, i*spp, spp)
		pay := make([]byte, MaxPayloadSize)
		k, err := enc.Encode(pay, p)
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, pay[:k])
		// What the caller hears: G.711 is lossy, so compare decoded.
		d := make([]int16, spp)
		mustDecoder(t, "PCMU").Decode(d, pay[:k])
		pcm = append(pcm, d...)
	}
	return packets, pcm
}

// collect is a Sink that keeps copies of the frames.
type collect struct{ frames [][]int16 }

func (c *collect) sink(f []int16) { c.frames = append(c.frames, slices.Clone(f)) }

func (c *collect) all() []int16 { return slices.Concat(c.frames...) }

// The receive path of an 8 kHz call puts packets back in order, conceals a
// lost one (counted once, as lost) and hands 20 ms frames to the sink; a
// packet that arrives after its slot was concealed is counted late.
func TestReceiverReordersConcealsAndCounts(t *testing.T) {
	packets, want := pcmuPackets(t, 10, 20)
	var got collect
	var lost, late uint64
	dec, _ := NewDecoder("PCMU")
	rx, err := NewReceiver(ReceiverConfig{Rate: 8000, JitterDepth: 2, Sink: got.sink,
		Counted: func(l, la uint64) { lost += l; late += la }}, dec)
	if err != nil {
		t.Fatal(err)
	}
	push := func(i int) { rx.Push(uint16(1000+i), uint32(i*160), 7, packets[i]) }
	// 0 1 3 2 (reordered) 4 6 7 8 (5 lost, then late) 5 9
	for _, i := range []int{0, 1, 3, 2, 4, 6, 7, 8, 5, 9} {
		push(i)
	}
	rx.Flush()
	if len(got.frames) != 10 {
		t.Fatalf("%d frames, want 10 (one a packet, the lost one concealed)", len(got.frames))
	}
	for i, f := range got.frames {
		if len(f) != 160 {
			t.Fatalf("frame %d has %d samples, want 160", i, len(f))
		}
		if i == 5 {
			continue // concealed
		}
		if !slices.Equal(f, want[i*160:(i+1)*160]) {
			t.Errorf("frame %d is not packet %d decoded", i, i)
		}
	}
	if lost != 1 || late != 1 {
		t.Errorf("counted lost %d late %d, want 1 and 1", lost, late)
	}
	if st := rx.Stats(); st.Reordered != 1 {
		t.Errorf("reordered %d, want 1", st.Reordered)
	}
}

// 40 ms G.711 packets on a 16 kHz call come out as two 20 ms frames each,
// resampled: the same samples as decoding then resampling the stream whole.
func TestReceiverResamplesAndFrames(t *testing.T) {
	packets, pcm := pcmuPackets(t, 6, 40)
	var got collect
	dec, _ := NewDecoder("PCMU")
	rx, err := NewReceiver(ReceiverConfig{Rate: 16000, JitterDepth: 5, Sink: got.sink}, dec)
	if err != nil {
		t.Fatal(err)
	}
	if s, want := rx.String(), "jitter buffer (5) -> decode PCMU/8000 decoder -> resample 8000->16000 -> 20 ms frames at 16000 Hz -> sink"; s != want {
		t.Errorf("String() = %q, want %q", s, want)
	}
	for i, p := range packets {
		rx.Push(uint16(i), uint32(i*320), 1, p)
	}
	if len(got.frames) != 12 {
		t.Fatalf("%d frames, want 12", len(got.frames))
	}
	rs, _ := NewResampler(8000, 16000)
	want := make([]int16, 2*len(pcm))
	want = want[:rs.Process(want, pcm)]
	if !slices.Equal(got.all(), want) {
		t.Error("the frames differ from the stream decoded and resampled whole")
	}
}

// A re-INVITE that changes the codec keeps the samples short of a frame
// and the stream's order.
func TestReceiverSetDecoder(t *testing.T) {
	var got collect
	pcmu, _ := NewDecoder("PCMU")
	rx, err := NewReceiver(ReceiverConfig{Rate: 8000, JitterDepth: 5, Sink: got.sink}, pcmu)
	if err != nil {
		t.Fatal(err)
	}
	rx.Push(1, 0, 1, make([]byte, 80)) // 10 ms: no frame yet
	if len(got.frames) != 0 {
		t.Fatalf("a frame out of 10 ms")
	}
	pcma, _ := NewDecoder("PCMA")
	if err := rx.SetDecoder(pcma); err != nil {
		t.Fatal(err)
	}
	rx.Push(2, 80, 1, make([]byte, 80))
	if len(got.frames) != 1 || !slices.ContainsFunc(got.frames[0], func(s int16) bool { return s != 0 }) {
		t.Fatalf("want one frame of both codecs' samples, got %d", len(got.frames))
	}
	if s := rx.String(); s != "jitter buffer (5) -> decode PCMA/8000 decoder -> 20 ms frames at 8000 Hz -> sink" {
		t.Errorf("String() = %q", s)
	}
}

// A stage's error stops the write and comes back to the writer.
func TestFrameWriterError(t *testing.T) {
	stop := errors.New("agent gone")
	n := 0
	w := FrameWriter(WriterFunc(8000, "x", func([]int16) error { n++; return stop }))
	if err := w.WriteSample(make([]int16, 480)); !errors.Is(err, stop) {
		t.Fatalf("err = %v, want %v", err, stop)
	}
	if n != 1 {
		t.Errorf("%d frames written after the error, want 1", n)
	}
}

// Duplex: what the receive path offers the session reads; a call that
// ended answers with its cause.
func TestDuplex(t *testing.T) {
	end, cancel := context.WithCancelCause(context.Background())
	d := NewDuplex(end, 8000, 2, 2)
	f := tone(8000, 440, 1000, 0, 160)
	d.In.Offer(f)
	dst := make([]int16, 160)
	if n, err := d.ReadFrame(context.Background(), dst); err != nil || n != 160 || !slices.Equal(dst, f) {
		t.Fatalf("ReadFrame = %d, %v", n, err)
	}
	if err := d.WriteFrame(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if got := d.Out.Take(); !slices.Equal(got, f) {
		t.Fatal("the sender did not get the frame written")
	}
	why := errors.New("caller hung up")
	cancel(why)
	if _, err := d.ReadFrame(context.Background(), dst); !errors.Is(err, why) {
		t.Errorf("ReadFrame after the end = %v, want the cause", err)
	}
}

// One op: one in-order 20 ms packet pushed and its frame delivered, as
// the SIP and ARI readers do (the sink only counts: the inbound queue has
// a benchmark of its own).
func BenchmarkReceiver(b *testing.B) {
	for _, tc := range []struct {
		codec string
		rate  int
	}{{"PCMU", 8000}, {"opus", 16000}} {
		b.Run(tc.codec, func(b *testing.B) {
			e, _ := NewEncoderAt(tc.codec, tc.rate)
			pay := make([]byte, MaxPayloadSize)
			n, _ := e.Encode(pay, tone(e.Rate(), 440, 8000, 0, SamplesPerFrame(e.Rate())))
			payload := pay[:n]
			dec, _ := NewDecoderAt(tc.codec, tc.rate)
			var frames, lost, late uint64
			rx, err := NewReceiver(ReceiverConfig{Rate: tc.rate, JitterDepth: 5, Sink: func([]int16) { frames++ },
				Counted: func(l, la uint64) { lost += l; late += la }}, dec)
			if err != nil {
				b.Fatal(err)
			}
			var seq uint16
			var ts uint32
			b.ReportAllocs()
			for b.Loop() {
				rx.Push(seq, ts, 1, payload)
				seq++
				ts += uint32(e.Rate() / 50)
			}
			if frames == 0 {
				b.Fatal("no frame came out")
			}
		})
	}
}
