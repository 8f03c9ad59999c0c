package audio

import (
	"fmt"
	"math"
)

// Resampler converts mono int16 PCM from one sample rate to another with a
// polyphase windowed-sinc (Kaiser) low-pass filter, so upsampling does not
// image and downsampling does not alias. Relative to the lower rate's
// Nyquist frequency fn the response is flat to 0.75 fn (−0.7 dB at 3.4 kHz
// for 8 kHz), −6 dB at 0.9 fn, and down more than 80 dB beyond 1.1 fn.
//
// It keeps the filter history between calls, so consecutive frames join
// without clicks (frame by frame gives the same samples as one long call);
// it delays the signal by 24 samples of the lower rate (3 ms at 8 kHz, see
// Delay). Rates between 1000 and 192000 Hz are accepted (8000, 16000 and
// 48000 are the engine's; 44100 and the like work for prompt files); equal
// rates pass through. Process does not allocate once it has seen its
// largest input. Not safe for concurrent use: one per stream direction.
type Resampler struct {
	from, to int
	l, m     int       // upsample by l, downsample by m
	k        int       // taps per phase
	coef     []float32 // coef[p*k+j] = h[p+j*l] (phase-major)
	rcoef    []float32 // rcoef[p*k+i] = coef[p*k+k-1-i]: each phase reversed, to walk with the samples
	buf      []float32 // last k-1 input samples, then the current src
	pos      int       // position of the next output, in input samples × l, relative to the current src
}

// zeroCrossings is the number of sinc zero crossings (of the lower rate) on
// each side of the filter centre; with the Kaiser window below it gives a
// transition band of about ±0.1 × the lower rate.
const (
	zeroCrossings = 24
	kaiserBeta    = 7.5
	cutoffRatio   = 0.9 // −6 dB point as a fraction of the lower Nyquist
	maxFilterLen  = 1 << 20
)

// NewResampler returns a resampler from rate from to rate to (Hz).
func NewResampler(from, to int) (*Resampler, error) {
	for _, r := range []int{from, to} {
		if r < 1000 || r > 192000 {
			return nil, fmt.Errorf("%w: resampler %d Hz -> %d Hz: %d Hz is outside 1000..192000", ErrUnsupportedRate, from, to, r)
		}
	}
	r := &Resampler{from: from, to: to}
	if from == to {
		return r, nil
	}
	g := gcd(from, to)
	r.l, r.m = to/g, from/g
	lo := min(from, to)
	// Filter designed at the intermediate rate from*l.
	span := max(r.l, r.m) // intermediate samples per lower-rate sample
	n := 2*zeroCrossings*span + 1
	if n > maxFilterLen {
		return nil, fmt.Errorf("%w: resampler %d Hz -> %d Hz needs a %d-tap filter (ratio %d/%d too awkward)", ErrUnsupportedRate, from, to, n, r.l, r.m)
	}
	fc := cutoffRatio * float64(lo) / 2 / float64(from*r.l) // cycles per intermediate sample
	h := make([]float64, n)
	c := float64(n-1) / 2
	var sum float64
	for i := range h {
		x := float64(i) - c
		s := 2 * fc
		if x != 0 {
			s = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		w := besselI0(kaiserBeta*math.Sqrt(1-(x/c)*(x/c))) / besselI0(kaiserBeta)
		h[i] = s * w
		sum += h[i]
	}
	r.k = (n + r.l - 1) / r.l
	r.coef = make([]float32, r.l*r.k)
	gain := float64(r.l) / sum // unity DC gain per phase after zero stuffing
	for p := 0; p < r.l; p++ {
		for j := 0; j < r.k; j++ {
			if i := p + j*r.l; i < n {
				r.coef[p*r.k+j] = float32(h[i] * gain)
			}
		}
	}
	r.rcoef = make([]float32, len(r.coef))
	for p := 0; p < r.l; p++ {
		for i := 0; i < r.k; i++ {
			r.rcoef[p*r.k+i] = r.coef[p*r.k+r.k-1-i]
		}
	}
	r.buf = make([]float32, r.k-1, r.k-1+opusRate/framesPerSecond)
	return r, nil
}

// From returns the input rate.
func (r *Resampler) From() int { return r.from }

// To returns the output rate.
func (r *Resampler) To() int { return r.to }

// String describes the stage, e.g. "resample 48000->8000".
func (r *Resampler) String() string { return fmt.Sprintf("resample %d->%d", r.from, r.to) }

// OutLen returns the most samples Process can write for n input samples.
func (r *Resampler) OutLen(n int) int {
	if r.from == r.to {
		return n
	}
	return (n*r.l + r.m - 1) / r.m
}

// Reset forgets the history (use it between unrelated streams).
func (r *Resampler) Reset() {
	if r.from == r.to {
		return
	}
	r.buf = r.buf[:r.k-1]
	clear(r.buf)
	r.pos = 0
}

// Process converts src and writes the result into dst, returning the
// number of samples written. dst must have room for len(src)*to/from
// samples (rounded up, see OutLen); for 20 ms frames that is exactly one
// frame at the output rate. If dst is shorter, the samples that do not fit
// are dropped (like copy, Process never panics) and the stream stays in
// step.
func (r *Resampler) Process(dst, src []int16) int {
	if r.from == r.to {
		return copy(dst, src)
	}
	h := r.k - 1
	need := h + len(src)
	if cap(r.buf) < need {
		nb := make([]float32, h, need)
		copy(nb, r.buf[:h])
		r.buf = nb
	}
	buf := r.buf[:need]
	for i, s := range src {
		buf[h+i] = float32(s)
	}
	end := len(src) * r.l
	out := 0
	k := r.k
	// Four outputs at a time: four independent sums, so the processor
	// overlaps them; each is added up in the same order as one output
	// alone (tap j against sample k-1-j, j rising: the reversed taps
	// against the samples, from the last), so the result is the same to
	// the bit. The slices are cut to k so the loop runs without bounds
	// checks.
	for out+4 <= len(dst) && r.pos+3*r.m < end {
		n0, p0 := r.pos/r.l, r.pos%r.l
		n1, p1 := (r.pos+r.m)/r.l, (r.pos+r.m)%r.l
		n2, p2 := (r.pos+2*r.m)/r.l, (r.pos+2*r.m)%r.l
		n3, p3 := (r.pos+3*r.m)/r.l, (r.pos+3*r.m)%r.l
		c0 := r.rcoef[p0*k : p0*k+k]
		c1, c2, c3 := r.rcoef[p1*k:p1*k+k], r.rcoef[p2*k:p2*k+k], r.rcoef[p3*k:p3*k+k]
		x0, x1, x2, x3 := buf[n0:n0+k], buf[n1:n1+k], buf[n2:n2+k], buf[n3:n3+k]
		c1, c2, c3 = c1[:len(c0)], c2[:len(c0)], c3[:len(c0)]
		x0, x1, x2, x3 = x0[:len(c0)], x1[:len(c0)], x2[:len(c0)], x3[:len(c0)]
		var a0, a1, a2, a3 float32
		for i := len(c0) - 1; i >= 0; i-- {
			a0 += c0[i] * x0[i]
			a1 += c1[i] * x1[i]
			a2 += c2[i] * x2[i]
			a3 += c3[i] * x3[i]
		}
		dst[out], dst[out+1], dst[out+2], dst[out+3] = clamp16(a0), clamp16(a1), clamp16(a2), clamp16(a3)
		out += 4
		r.pos += 4 * r.m
	}
	for ; r.pos < end; r.pos += r.m {
		if out >= len(dst) {
			continue
		}
		n, p := r.pos/r.l, r.pos%r.l
		cs := r.coef[p*k : p*k+k]
		// buf[h+n-j] is x[n-j]; walk it backwards against the phase's taps.
		xs := buf[n : n+k]
		var acc float32
		for j, c := range cs {
			acc += c * xs[k-1-j]
		}
		dst[out] = clamp16(acc)
		out++
	}
	r.pos -= end
	copy(buf, buf[len(src):]) // keep the last h samples as history
	r.buf = buf[:h]
	return out
}

func clamp16(v float32) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	case v >= 0:
		return int16(v + 0.5)
	default:
		return int16(v - 0.5)
	}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// besselI0 is the zeroth-order modified Bessel function of the first kind.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < sum*1e-12 {
			break
		}
	}
	return sum
}

// Polyphase returns the filter as Process applies it, for a stage that
// computes the same conversion another way (speech/silero folds it into
// its model): up by l, down by m; output q, counted from the last Reset,
// is the sum over j of taps[p][j]·x[n-j] (before rounding to int16), with
// p = (q·m) mod l, n = (q·m) div l, and x the input since that Reset (zero
// before its first sample). The taps are a copy; nil for equal rates.
func (r *Resampler) Polyphase() (l, m int, taps [][]float32) {
	if r.from == r.to {
		return 1, 1, nil
	}
	taps = make([][]float32, r.l)
	for p := range taps {
		taps[p] = append([]float32(nil), r.coef[p*r.k:(p+1)*r.k]...)
	}
	return r.l, r.m, taps
}

// Delay returns the filter's delay in output samples: an input sample shows
// up this many samples later in the output (0 for pass-through).
func (r *Resampler) Delay() int {
	if r.from == r.to {
		return 0
	}
	// The filter's centre is zeroCrossings*span intermediate samples in;
	// intermediate samples per output sample is m.
	return zeroCrossings * max(r.l, r.m) / r.m
}
