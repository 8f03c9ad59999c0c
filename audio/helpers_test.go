package audio

import (
	"math"
	"testing"
)

// tone returns n samples of a sine of freq Hz at rate with amplitude amp,
// starting at sample offset start (so consecutive frames are continuous).
func tone(rate int, freq float64, amp float64, start, n int) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(start+i)/float64(rate))))
	}
	return out
}

// goertzel returns the power of pcm at freq Hz (same scale for all freqs).
func goertzel(pcm []int16, rate int, freq float64) float64 {
	w := 2 * math.Pi * freq / float64(rate)
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range pcm {
		s := float64(x) + c*s1 - s2
		s2, s1 = s1, s
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	return p / float64(len(pcm)) / float64(len(pcm))
}

// snrDB returns the signal-to-noise ratio of got against ref (same length).
func snrDB(t *testing.T, ref, got []int16) float64 {
	t.Helper()
	if len(ref) != len(got) {
		t.Fatalf("snr: lengths %d and %d", len(ref), len(got))
	}
	var sig, noise float64
	for i := range ref {
		d := float64(got[i]) - float64(ref[i])
		sig += float64(ref[i]) * float64(ref[i])
		noise += d * d
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

// zeroCrossingFreq estimates the frequency of a clean tone.
func zeroCrossingFreq(pcm []int16, rate int) float64 {
	n := 0
	for i := 1; i < len(pcm); i++ {
		if (pcm[i-1] < 0) != (pcm[i] < 0) {
			n++
		}
	}
	return float64(n) / 2 / (float64(len(pcm)) / float64(rate))
}
