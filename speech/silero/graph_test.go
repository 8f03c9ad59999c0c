package silero

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/silero/internal/ort"
	"github.com/govline/ivr/speech/speechtest"
)

// runner runs windows of one rate through a session, batch by batch.
type runner struct {
	sess       *ort.Session
	in, out    *ort.Names
	bufs       []*ort.Buffer
	ts         []*ort.Tensor
	x, st, p   []float32
	stN        []float32
	batched    *front // nil: the model file's graph
	windowSize int
}

// newRunner runs sess: the batched graph of b fed by fr, or with fr nil
// the model file's graph.
func newRunner(t testing.TB, sess *ort.Session, b *branch, fr *front, batch int) *runner {
	r := &runner{sess: sess, windowSize: b.window()}
	var shapes [][]int64
	var elems []int
	if fr != nil {
		r.batched = fr
		r.in, r.out = ort.NewNames(bgFrames, bgState), ort.NewNames(bgProb, bgStateN)
		shapes = [][]int64{{int64(framesPerWindow * batch), int64(fr.rowLen)}, {2, int64(batch), 128}, {int64(batch), 1}, {2, int64(batch), 128}}
		elems = []int{ort.Float32, ort.Float32, ort.Float32, ort.Float32}
	} else {
		r.in, r.out = ort.NewNames("input", "state", "sr"), ort.NewNames("output", "stateN")
		shapes = [][]int64{{int64(batch), int64(b.window())}, {2, int64(batch), 128}, nil, {int64(batch), 1}, {2, int64(batch), 128}}
		elems = []int{ort.Float32, ort.Float32, ort.Int64, ort.Float32, ort.Float32}
	}
	for i, sh := range shapes {
		n := int64(8)
		for _, d := range sh {
			n *= d
		}
		buf := ort.NewBuffer(int(n))
		tn, err := ort.NewTensor(buf, elems[i], sh...)
		if err != nil {
			t.Fatal(err)
		}
		r.bufs = append(r.bufs, buf)
		r.ts = append(r.ts, tn)
	}
	t.Cleanup(func() {
		for _, tn := range r.ts {
			tn.Close()
		}
		for _, b := range r.bufs {
			b.Free()
		}
	})
	k := len(r.bufs)
	r.x, r.st, r.p, r.stN = r.bufs[0].Float32s(), r.bufs[1].Float32s(), r.bufs[k-2].Float32s(), r.bufs[k-1].Float32s()
	if fr == nil {
		r.bufs[2].Int64s()[0] = int64(b.rate)
	}
	return r
}

// run infers windows (each b.window() samples) with states ([2][128]
// each, updated) and returns the probabilities.
func (r *runner) run(t testing.TB, windows [][]float32, states [][]float32) []float32 {
	n := len(windows)
	for i, w := range windows {
		if r.batched != nil {
			l := framesPerWindow * r.batched.rowLen
			r.batched.rows(r.x[i*l:(i+1)*l], w)
		} else {
			copy(r.x[i*r.windowSize:], w)
		}
		copy(r.st[i*128:], states[i][:128])
		copy(r.st[n*128+i*128:], states[i][128:])
	}
	k := len(r.ts)
	if err := r.sess.Run(r.in, r.ts[:k-2], r.out, r.ts[k-2:]); err != nil {
		t.Fatal(err)
	}
	p := make([]float32, n)
	for i := range windows {
		p[i] = r.p[i]
		copy(states[i][:128], r.stN[i*128:])
		copy(states[i][128:], r.stN[n*128+i*128:])
	}
	return p
}

// The batched graph computes what the model file's graph computes: on
// speech of both rates, 8 streams at a time, every probability and state
// within 1e-4 of the original's (measured: probabilities within 6e-7,
// states within 4e-5).
func TestBatchedGraphMatchesModel(t *testing.T) {
	path := modelPath(t)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	branches, err := readBranches(raw)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := ort.NewSession(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	syn := synth(t)
	const batch = 8
	for _, rate := range []int{16000, 8000} {
		b := branches[rate]
		sess, err := ort.NewSessionBytes(batchedGraph(b, plainFront(b)), 1)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		ro, rb := newRunner(t, orig, b, nil, batch), newRunner(t, sess, b, plainFront(b), batch)
		pcm := speechtest.Render(t, syn, speech.SynthRequest{Text: "Vreau să vorbesc cu un operator, vă rog. Cartea de identitate.", Lang: "ro", Rate: rate})
		pcm = speechtest.Channel(pcm, speechtest.Conditions()[2], 1) // noisy
		x := make([]float32, len(pcm))
		for i, v := range pcm {
			x[i] = float32(v) / 32768
		}
		so, sb := make([][]float32, batch), make([][]float32, batch)
		for i := range batch {
			so[i], sb[i] = make([]float32, 256), make([]float32, 256)
		}
		var maxP, maxS float64
		speechy := 0
		for pos := 0; ; pos += b.shift {
			windows := make([][]float32, batch)
			ok := true
			for i := range batch {
				start := pos + i*977 // each stream elsewhere in the audio
				if start+b.window() > len(x) {
					ok = false
					break
				}
				windows[i] = x[start : start+b.window()]
			}
			if !ok {
				break
			}
			po, pb := ro.run(t, windows, so), rb.run(t, windows, sb)
			for i := range batch {
				maxP = max(maxP, math.Abs(float64(po[i]-pb[i])))
				if po[i] > 0.5 {
					speechy++
				}
				for j := range so[i] {
					maxS = max(maxS, math.Abs(float64(so[i][j]-sb[i][j])))
				}
				copy(sb[i], so[i]) // no drift: each step from the same state
			}
		}
		t.Logf("%d Hz: largest difference: probability %.2g, state %.2g (%d windows above 0.5)", rate, maxP, maxS, speechy)
		if speechy == 0 {
			t.Errorf("%d Hz: no window of speech: the test compares nothing", rate)
		}
		if maxP > 1e-4 || maxS > 1e-4 {
			t.Errorf("%d Hz: the batched graph differs from the model: probability by %g, state by %g", rate, maxP, maxS)
		}
	}
}

// BenchmarkGraph is one inference of `batch` windows, the model file's
// graph against the batched one, per rate: cpu-us/window is the process's
// CPU time per window.
func BenchmarkGraph(b *testing.B) {
	path := modelPath(b)
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	branches, err := readBranches(raw)
	if err != nil {
		b.Fatal(err)
	}
	for _, rate := range []int{16000, 8000} {
		br := branches[rate]
		for _, kind := range []string{"file", "batched"} {
			for _, batch := range []int{1, 16, 64} {
				b.Run(fmt.Sprintf("%s/%d/batch=%d", kind, rate, batch), func(b *testing.B) {
					var sess *ort.Session
					var err error
					if kind == "file" {
						sess, err = ort.NewSession(path, 1)
					} else {
						sess, err = ort.NewSessionBytes(batchedGraph(br, plainFront(br)), 1)
					}
					if err != nil {
						b.Fatal(err)
					}
					defer sess.Close()
					var fr *front
					if kind == "batched" {
						fr = plainFront(br)
					}
					r := newRunner(b, sess, br, fr, batch)
					windows, states := make([][]float32, batch), make([][]float32, batch)
					for i := range batch {
						windows[i] = make([]float32, br.window())
						for j := range windows[i] {
							windows[i][j] = float32(math.Sin(float64(i*j))) * 0.1
						}
						states[i] = make([]float32, 256)
					}
					r.run(b, windows, states)
					c0 := cpuTime()
					for b.Loop() {
						r.run(b, windows, states)
					}
					b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N*batch), "cpu-us/window")
				})
			}
		}
	}
}

// The 16 kHz branch fed with 8 kHz samples (upsampledFront, the upsampler
// folded into the STFT) computes what it computes on the same samples
// upsampled by the resampler's filter: probabilities within 1e-5
// (measured: 4e-7). audio.Resampler also rounds its output to 16 bits,
// which the fold does not: that moves probabilities by up to 0.014 here
// (logged; the decisions are TestSharedAgreesWithPerCall's).
func TestUpsampledFrontMatchesResampler(t *testing.T) {
	path := modelPath(t)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	branches, err := readBranches(raw)
	if err != nil {
		t.Fatal(err)
	}
	b := branches[16000]
	rs, err := audio.NewResampler(8000, 16000)
	if err != nil {
		t.Fatal(err)
	}
	l, m, taps := rs.Polyphase()
	fr, err := upsampledFront(b, l, m, taps)
	if err != nil {
		t.Fatal(err)
	}
	if fr.window != 336 || fr.shift != 256 || fr.rowLen != 176 || fr.prefix != 48 {
		t.Fatalf("front: window %d, shift %d, row %d, prefix %d", fr.window, fr.shift, fr.rowLen, fr.prefix)
	}
	plain := plainFront(b)
	s16, err := ort.NewSessionBytes(batchedGraph(b, plain), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s16.Close()
	s8, err := ort.NewSessionBytes(batchedGraph(b, fr), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s8.Close()
	r16, r16r, r8 := newRunner(t, s16, b, plain, 1), newRunner(t, s16, b, plain, 1), newRunner(t, s8, b, fr, 1)
	pcm := speechtest.Render(t, synth(t), speech.SynthRequest{Text: "Vreau să vorbesc cu un operator, vă rog.", Lang: "ro", Rate: 8000})
	pcm = speechtest.Channel(append(pcm, speechtest.Silence(8000, 500*time.Millisecond)...), speechtest.Conditions()[2], 1)
	// the 16 kHz stream as Stream made it (the resampler frame by frame,
	// rounded), and the filter's sums unrounded
	var rounded []float32
	up := make([]int16, 320)
	for _, f := range speechtest.Frames(pcm, 8000) {
		n := rs.Process(up, f)
		for _, v := range up[:n] {
			rounded = append(rounded, float32(v)/32768)
		}
	}
	exact := make([]float32, len(rounded))
	for q := range exact {
		var acc float64
		for j, c := range taps[q%2] {
			if q/2-j >= 0 {
				acc += float64(c) * float64(pcm[q/2-j])
			}
		}
		exact[q] = float32(acc / 32768)
	}
	x8 := make([]float32, fr.prefix, fr.prefix+len(pcm))
	for _, v := range pcm {
		x8 = append(x8, float32(v)/32768)
	}
	st16, st16r, st8 := [][]float32{make([]float32, 256)}, [][]float32{make([]float32, 256)}, [][]float32{make([]float32, 256)}
	var maxP, maxR float64
	speechy := 0
	for w := 0; ; w++ {
		a, c := w*plain.shift, w*fr.shift
		if a+plain.window > len(exact) || c+fr.window > len(x8) {
			break
		}
		p16 := r16.run(t, [][]float32{exact[a : a+plain.window]}, st16)
		p16r := r16r.run(t, [][]float32{rounded[a : a+plain.window]}, st16r)
		p8 := r8.run(t, [][]float32{x8[c : c+fr.window]}, st8)
		maxP = max(maxP, math.Abs(float64(p16[0]-p8[0])))
		maxR = max(maxR, math.Abs(float64(p16r[0]-p8[0])))
		if p16[0] > 0.5 {
			speechy++
		}
		copy(st8[0], st16[0])
		copy(st16r[0], st16[0])
	}
	t.Logf("largest difference of probability: %.2g from the filter unrounded, %.2g from the resampler's 16-bit output (%d windows above 0.5)", maxP, maxR, speechy)
	if speechy == 0 {
		t.Error("no window of speech: the test compares nothing")
	}
	if maxP > 1e-5 {
		t.Errorf("the folded upsampler changes a probability by %g", maxP)
	}
}
