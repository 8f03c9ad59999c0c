package sip_test

import (
	"math"
	"math/rand/v2"
)

// Sounds of real callers' lines that are not answers, made from fixed
// seeds so every run hears the same: a cough, a "hmm", a television in the
// room, a street. Levels are RMS in 16-bit units; espeak-ng's speech at the
// call's rate is about 2,000-3,000.

// cough is two bursts of breathy noise (a fast attack, a 120 ms decay,
// band-limited to 300-3,000 Hz), 300 ms apart, peaking at about speech
// level.
func cough(rate int) []int16 {
	rng := rand.New(rand.NewPCG(7, 11))
	out := make([]int16, rate*8/10)
	bp := newBandPass(rate, 300, 3000)
	for _, at := range []int{0, rate * 3 / 10} {
		for i := 0; i < rate/4 && at+i < len(out); i++ {
			t := float64(i) / float64(rate)
			env := (1 - math.Exp(-t/0.005)) * math.Exp(-t/0.12)
			out[at+i] = clip16(float64(out[at+i]) + 9000*env*bp.step(rng.NormFloat64()))
		}
	}
	return out
}

// hum is a closed-mouth "hmm" of 600 ms: a 120 Hz voice (harmonics
// falling 6 dB an octave) through a nasal low-pass, rising and falling in
// loudness.
func hum(rate int) []int16 {
	n := rate * 6 / 10
	out := make([]int16, n)
	lp := newBandPass(rate, 80, 500)
	for i := range out {
		t := float64(i) / float64(rate)
		var v float64
		for h := 1; h <= 12; h++ {
			v += math.Sin(2*math.Pi*120*float64(h)*t) / float64(h)
		}
		env := math.Sin(math.Pi * float64(i) / float64(n))
		out[i] = clip16(6000 * env * lp.step(v))
	}
	return out
}

// television is a room with a TV on: another voice (speech, here the given
// recording looped) and a music bed, at rms.
func television(voice []int16, rate, n int, rms float64) []int16 {
	out := make([]int16, n)
	bed := make([]float64, n)
	for i := range bed {
		t := float64(i) / float64(rate)
		bed[i] = 0.3*math.Sin(2*math.Pi*220*t)*math.Sin(2*math.Pi*0.5*t) + 0.2*math.Sin(2*math.Pi*330*t)
	}
	mix := make([]float64, n)
	for i := range mix {
		v := 0.0
		if len(voice) > 0 {
			v = float64(voice[i%len(voice)]) / 3000
		}
		mix[i] = v + bed[i]
	}
	scale(mix, rms)
	for i := range out {
		out[i] = clip16(mix[i])
	}
	return out
}

// street is traffic: brown noise with a car passing every 3 s, at rms.
func street(rate, n int, rms float64) []int16 {
	rng := rand.New(rand.NewPCG(3, 5))
	mix := make([]float64, n)
	var b float64
	for i := range mix {
		b = 0.98*b + rng.NormFloat64()
		t := math.Mod(float64(i)/float64(rate), 3)
		car := 1 + 2*math.Exp(-(t-1.5)*(t-1.5)/0.3)
		mix[i] = b * car
	}
	scale(mix, rms)
	out := make([]int16, n)
	for i := range out {
		out[i] = clip16(mix[i])
	}
	return out
}

// mixAt adds noise under speech (both at the call's rate), the speech
// starting at sample at; the result is as long as the longer.
func mixAt(noise, speech []int16, at int) []int16 {
	out := make([]int16, max(len(noise), at+len(speech)))
	copy(out, noise)
	for i, v := range speech {
		out[at+i] = clip16(float64(out[at+i]) + float64(v))
	}
	return out
}

// rmsOf is the RMS of the loud part of pcm (its 20 ms frames above -40
// dBFS): the level of speech without its pauses.
func rmsOf(pcm []int16, rate int) float64 {
	n := rate / 50
	var sum float64
	var count int
	for off := 0; off+n <= len(pcm); off += n {
		var e float64
		for _, v := range pcm[off : off+n] {
			e += float64(v) * float64(v)
		}
		if math.Sqrt(e/float64(n)) > 328 {
			sum += e
			count += n
		}
	}
	if count == 0 {
		return 0
	}
	return math.Sqrt(sum / float64(count))
}

func scale(x []float64, rms float64) {
	var e float64
	for _, v := range x {
		e += v * v
	}
	if e == 0 {
		return
	}
	k := rms / math.Sqrt(e/float64(len(x)))
	for i := range x {
		x[i] *= k
	}
}

func clip16(v float64) int16 { return int16(max(-32768, min(32767, math.Round(v)))) }

// bandPass is a second-order (RBJ) band-pass filter.
type bandPass struct{ b0, b2, a1, a2, x1, x2, y1, y2 float64 }

func newBandPass(rate int, lo, hi float64) *bandPass {
	f0 := math.Sqrt(lo * hi)
	q := f0 / (hi - lo)
	w := 2 * math.Pi * f0 / float64(rate)
	alpha := math.Sin(w) / (2 * q)
	a0 := 1 + alpha
	return &bandPass{b0: alpha / a0, b2: -alpha / a0, a1: -2 * math.Cos(w) / a0, a2: (1 - alpha) / a0}
}

func (f *bandPass) step(x float64) float64 {
	y := f.b0*x + f.b2*f.x2 - f.a1*f.y1 - f.a2*f.y2
	f.x2, f.x1, f.y2, f.y1 = f.x1, x, f.y1, y
	return y
}
