package audio

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

var ratePairs = [][2]int{
	{8000, 16000}, {16000, 8000}, {8000, 48000}, {48000, 8000}, {16000, 48000}, {48000, 16000},
	{8000, 8000}, {16000, 16000}, {48000, 48000},
}

// resampleFrames pushes frames of a tone through r one 20 ms frame at a
// time, as a call does.
func resampleFrames(t *testing.T, r *Resampler, freq float64, frames int) []int16 {
	t.Helper()
	in := SamplesPerFrame(r.From())
	dst := make([]int16, SamplesPerFrame(r.To()))
	var out []int16
	for f := range frames {
		n := r.Process(dst, tone(r.From(), freq, 10000, f*in, in))
		if n != len(dst) {
			t.Fatalf("%v frame %d: wrote %d samples, want %d", r, f, n, len(dst))
		}
		out = append(out, dst[:n]...)
	}
	return out
}

func TestResamplerTonePreserved(t *testing.T) {
	for _, p := range ratePairs {
		r, err := NewResampler(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		out := resampleFrames(t, r, 1000, 50)[SamplesPerFrame(p[1]):] // skip the filter's start
		if f := zeroCrossingFreq(out, p[1]); math.Abs(f-1000) > 15 {
			t.Errorf("%v: 1 kHz tone came out at %.1f Hz", r, f)
		}
		if rms := RMS(out); math.Abs(rms-10000/math.Sqrt2) > 150 {
			t.Errorf("%v: 1 kHz tone rms %.0f, want %.0f", r, rms, 10000/math.Sqrt2)
		}
		// Energy at the tone, none at an unrelated frequency.
		if sig, other := goertzel(out, p[1], 1000), goertzel(out, p[1], 2300); 10*math.Log10(sig/other) < 50 {
			t.Errorf("%v: 1 kHz vs 2.3 kHz only %.1f dB apart", r, 10*math.Log10(sig/other))
		}
	}
}

// A stream resampled frame by frame equals the same stream resampled in
// one go: the state carries across frames, so there are no clicks.
func TestResamplerStatefulAcrossFrames(t *testing.T) {
	for _, p := range ratePairs {
		r1, _ := NewResampler(p[0], p[1])
		r2, _ := NewResampler(p[0], p[1])
		framed := resampleFrames(t, r1, 440, 20)
		whole := make([]int16, r2.OutLen(20*SamplesPerFrame(p[0])))
		n := r2.Process(whole, tone(p[0], 440, 10000, 0, 20*SamplesPerFrame(p[0])))
		if n != len(framed) {
			t.Fatalf("%v: %d samples whole, %d framed", r1, n, len(framed))
		}
		for i := range framed {
			if framed[i] != whole[i] {
				t.Fatalf("%v: sample %d differs: framed %d, whole %d", r1, i, framed[i], whole[i])
			}
		}
		// No click: sample-to-sample steps of a 440 Hz tone stay small.
		maxStep := 2 * math.Pi * 440 / float64(p[1]) * 10000 * 1.1
		for i := 2 * SamplesPerFrame(p[1]); i < len(framed); i++ {
			if d := math.Abs(float64(framed[i]) - float64(framed[i-1])); d > maxStep+2 {
				t.Fatalf("%v: step of %.0f at sample %d (frame edge %v), max %.0f", r1, d, i, i%SamplesPerFrame(p[1]) == 0, maxStep)
			}
		}
	}
}

func TestResamplerNoAliasing(t *testing.T) {
	r, _ := NewResampler(48000, 8000)
	in := tone(48000, 6000, 20000, 0, 48000) // 6 kHz would fold to 2 kHz
	out := make([]int16, r.OutLen(len(in)))
	n := r.Process(out, in)
	out = out[100:n]
	ref := tone(8000, 2000, 20000, 0, len(out)) // what a full-level 2 kHz would measure
	alias := 10 * math.Log10(goertzel(out, 8000, 2000)/goertzel(ref, 8000, 2000))
	t.Logf("48k->8k: 6 kHz tone aliased at 2 kHz: %.1f dB, output %.1f dBFS", alias, DBFS(out))
	if alias > -40 {
		t.Errorf("48k->8k: 6 kHz tone aliases to 2 kHz at %.1f dB, want below -40 dB", alias)
	}
	// Upsampling does not image: 8k->48k of 3 kHz leaves nothing at 5 kHz.
	u, _ := NewResampler(8000, 48000)
	up := make([]int16, 6*8000)
	n = u.Process(up, tone(8000, 3000, 20000, 0, 8000))
	up = up[600:n]
	img := 10 * math.Log10(goertzel(up, 48000, 5000)/goertzel(up, 48000, 3000))
	if img > -40 {
		t.Errorf("8k->48k: 3 kHz tone imaged at 5 kHz: %.1f dB, want below -40", img)
	}
}

func TestResampleWholeSignalAligned(t *testing.T) {
	in := tone(16000, 500, 10000, 0, 16000)
	out, err := Resample(in, 16000, 8000)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 8000 {
		t.Fatalf("Resample 16k->8k of 1 s: %d samples", len(out))
	}
	ref := tone(8000, 500, 10000, 0, 8000)
	if snr := snrDB(t, ref[200:7800], out[200:7800]); snr < 40 {
		t.Errorf("Resample output not aligned with input: SNR vs ideal %.1f dB", snr)
	}
	// Odd rates for prompt files.
	out, err = Resample(tone(44100, 1000, 10000, 0, 44100), 44100, 8000)
	if err != nil || len(out) != 8000 {
		t.Fatalf("44.1k->8k: %d samples, %v", len(out), err)
	}
	if f := zeroCrossingFreq(out[100:7900], 8000); math.Abs(f-1000) > 15 {
		t.Errorf("44.1k->8k: tone at %.1f Hz", f)
	}
}

func TestResamplerErrorsAndShortDst(t *testing.T) {
	if _, err := NewResampler(8000, 0); !errors.Is(err, ErrUnsupportedRate) {
		t.Errorf("NewResampler(8000, 0): %v", err)
	}
	r, _ := NewResampler(8000, 16000)
	if n := r.Process(make([]int16, 100), make([]int16, 160)); n != 100 {
		t.Errorf("short dst: wrote %d, want 100 (the rest dropped, no panic)", n)
	}
	if n := r.Process(make([]int16, 320), make([]int16, 160)); n != 320 {
		t.Errorf("after a short dst the stream must stay in step: wrote %d", n)
	}
}

func TestResamplerZeroAllocs(t *testing.T) {
	for _, p := range ratePairs {
		r, _ := NewResampler(p[0], p[1])
		src := tone(p[0], 440, 1000, 0, SamplesPerFrame(p[0]))
		dst := make([]int16, SamplesPerFrame(p[1]))
		if a := testing.AllocsPerRun(100, func() { r.Process(dst, src) }); a != 0 {
			t.Errorf("%v: %.1f allocs per frame", r, a)
		}
	}
}

// referenceProcess is Resampler.Process one output at a time (the loop
// before the four-at-a-time one), to check that one gives the same samples.
func referenceProcess(r *Resampler, dst, src []int16) int {
	h := r.k - 1
	buf := append(append([]float32(nil), r.buf[:h]...), make([]float32, len(src))...)
	for i, s := range src {
		buf[h+i] = float32(s)
	}
	end := len(src) * r.l
	out := 0
	for ; r.pos < end; r.pos += r.m {
		if out >= len(dst) {
			continue
		}
		n, p := r.pos/r.l, r.pos%r.l
		cs := r.coef[p*r.k : p*r.k+r.k]
		xs := buf[n : n+r.k]
		var acc float32
		for j, c := range cs {
			acc += c * xs[r.k-1-j]
		}
		dst[out] = clamp16(acc)
		out++
	}
	r.pos -= end
	r.buf = append(r.buf[:0], buf[len(src):]...)
	return out
}

// The four-at-a-time loop gives the same samples, to the bit, as one
// output at a time, at every rate pair the engine uses, with frames of
// 20 ms and of odd lengths.
func TestResamplerSameAsOneAtATime(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, pair := range [][2]int{{8000, 16000}, {16000, 8000}, {48000, 16000}, {16000, 48000}, {48000, 8000}, {8000, 48000}, {44100, 16000}} {
		a, err := NewResampler(pair[0], pair[1])
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewResampler(pair[0], pair[1])
		for f := range 200 {
			n := pair[0] / 50
			if f%7 == 3 {
				n = 1 + rng.IntN(n)
			}
			src := make([]int16, n)
			for i := range src {
				src[i] = int16(rng.NormFloat64() * 8000)
			}
			d1, d2 := make([]int16, a.OutLen(n)), make([]int16, b.OutLen(n))
			n1, n2 := a.Process(d1, src), referenceProcess(b, d2, src)
			if n1 != n2 || !slices.Equal(d1[:n1], d2[:n2]) {
				t.Fatalf("%d -> %d Hz, frame %d: %d samples differ from one at a time (%d)", pair[0], pair[1], f, n1, n2)
			}
		}
	}
}

// Polyphase describes what Process computes: the sums it gives, rounded,
// are Process's samples, frame after frame.
func TestResamplerPolyphase(t *testing.T) {
	for _, rates := range [][2]int{{8000, 16000}, {16000, 8000}, {48000, 8000}, {8000, 48000}} {
		r, err := NewResampler(rates[0], rates[1])
		if err != nil {
			t.Fatal(err)
		}
		l, m, taps := r.Polyphase()
		var x []int16
		var y []int16
		seed := uint32(1)
		for range 20 {
			src := make([]int16, SamplesPerFrame(rates[0]))
			for i := range src {
				seed = seed*1664525 + 1013904223
				src[i] = int16(seed>>17) - 8000
			}
			dst := make([]int16, r.OutLen(len(src)))
			n := r.Process(dst, src)
			x = append(x, src...)
			y = append(y, dst[:n]...)
		}
		for q, got := range y {
			n, p := q*m/l, q*m%l
			var acc float64
			for j, c := range taps[p] {
				if n-j >= 0 {
					acc += float64(c) * float64(x[n-j])
				}
			}
			if d := acc - float64(got); d > 0.51 || d < -0.51 {
				t.Fatalf("%d -> %d Hz: sample %d is %d, the polyphase sum %.2f", rates[0], rates[1], q, got, acc)
			}
		}
	}
}
