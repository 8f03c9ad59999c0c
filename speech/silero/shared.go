package silero

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/silero/internal/ort"
)

// The shared detector: one Model per process, loaded once, and one small
// Stream per call (the model's recurrent state, the window's context
// samples and the segment rules: about 11 KB of Go heap, measured).
// Batcher goroutines collect the windows that the calls' streams submit
// and run them through the model in one inference; a stream's Process
// waits for its result, at most ModelOptions.MaxWait plus the inference.
// The inference runs the batched graph (graph.go: the model's weights in
// a graph whose products span the whole batch), unless
// ModelOptions.FileGraph asks for the model file's own graph.
//
// The segment rules are those of sherpa-onnx's VoiceActivityDetector with
// its silero v5 model (sherpa-onnx v1.12: silero-vad-model.cc and
// voice-activity-detector.cc), restated here so the decisions match the
// per-call Detector frame for frame: windows of 512 new samples with the
// 64 samples before them as context, the first window once 576 samples
// came (with ModelOptions.Native8k, 8 kHz calls use the model's 8 kHz
// branch: 256 new samples and 32 of context, the same 32 ms; with
// FoldUpsampler, the 288 samples at 8 kHz that upsample to those 576 and
// the resampler's 48 of history; the rules below count in 16 kHz samples
// either way); a segment starts after MinSpeech of windows above
// Threshold, and ends after MinSilence of windows below it (a window above
// Threshold-0.15 keeps it going); a segment longer than 15 s ends on
// 100 ms below 0.9.

const (
	windowShift = 512     // new samples per window at 16 kHz (32 ms, the unit of the rules)
	windowSize  = 576     // samples per inference at 16 kHz
	stateSize   = 2 * 128 // the model's state per stream: [2][128]
	// a segment longer than this (sherpa's max_speech_duration of 15 s)
	// ends on a short silence (longSilence) below longThreshold.
	longSegment   = 15 * modelRate
	longThreshold = 0.9
	longSilence   = 0.1
)

// Defaults of ModelOptions. With the model file's graph, past 16 windows
// a batch costs as much per window (about 50 µs here: onnxruntime runs the
// model's convolutions one window at a time); the batched graph still
// gains up to 64 (14 µs a window at 16 kHz, 8.5 µs in the 8 kHz branch;
// docs/benchmarks.md). Batches are capped at 64 and two batchers share
// the cores.
const (
	DefaultMaxWait  = 10 * time.Millisecond
	DefaultMaxBatch = 64
	DefaultBatchers = 2
)

// ModelOptions tune a shared Model; zero values take the defaults.
type ModelOptions struct {
	Options
	// MaxWait bounds how long the first window of a batch waits for
	// other calls' windows before the batch runs (a batch also runs as
	// soon as every open stream has a window in it). Below 0: no waiting
	// (a batch is what was queued when the batcher got to it).
	MaxWait time.Duration
	// MaxBatch caps the windows run in one inference.
	MaxBatch int
	// Batchers is how many inferences may run at once (each on one
	// thread): past MaxBatch ready windows, the next batcher takes the
	// rest. Capped at GOMAXPROCS. Per engine: the 8 kHz options run a
	// second graph for 8 kHz calls, with batchers of its own.
	Batchers int
	// Native8k runs 8 kHz streams through the model's own 8 kHz branch
	// (256-sample windows) instead of resampling them to 16 kHz: no
	// resampler and a smaller model, at the cost of decisions that differ
	// from the 16 kHz model's on some frames (docs/benchmarks.md gives
	// the agreement). Off by default.
	Native8k bool
	// FoldUpsampler runs 8 kHz streams through the batched graph with
	// the 8 -> 16 kHz upsampling folded into its STFT (graph.go) instead
	// of audio.Resampler before it: no resampler, and a smaller STFT. The
	// resampler rounds its output to 16 bits and the fold does not, so a
	// few decisions differ (docs/benchmarks.md). Off by default; Native8k
	// takes precedence; ignored with FileGraph.
	FoldUpsampler bool
	// FileGraph runs the model file's own graph instead of the batched
	// graph built from its weights (the same decisions, at about four
	// times the CPU per window): kept to measure against.
	FileGraph bool
}

// Model is the silero VAD loaded once and shared by every call: NewStream
// gives each call its own speech.VAD. Safe for concurrent use. Close stops
// the batchers and releases the model.
type Model struct {
	opts ModelOptions

	// the engine of 16 kHz windows, and of 8 kHz ones (the same engine
	// unless Native8k or FoldUpsampler)
	e16, e8 *engine
	engines []*engine

	minSpeech, minSilence, longSil int // samples at 16 kHz

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	// Counters: inferences run, windows they held, and their wall time in
	// ns (the windows' rows made, the graph run, the results given back).
	Batches, Windows, InferNs atomic.Uint64
}

// engine is one graph of the model (a rate's branch) with its session,
// the queue of windows its streams submit and its batchers.
type engine struct {
	m        *Model
	br       *branch // the branch's sizes (and weights, for the batched graph)
	fr       *front  // how the streams' samples become windows and input rows
	batched  bool    // the batched graph, else the model file's
	sess     *ort.Session
	inNames  *ort.Names
	outNames *ort.Names
	in       chan *Stream
	open     atomic.Int64 // streams not closed
	batchers []*batcher
}

// NewModel loads the model and starts its batcher.
func NewModel(o ModelOptions) (*Model, error) {
	if err := o.Options.withDefaults(); err != nil {
		return nil, err
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Batchers <= 0 {
		o.Batchers = DefaultBatchers
	}
	o.Batchers = min(o.Batchers, runtime.GOMAXPROCS(0))
	raw, err := os.ReadFile(o.Model)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoModel, err)
	}
	m := &Model{
		opts: o,
		// sherpa-onnx computes these in float32
		minSpeech:  int(float32(modelRate) * float32(o.MinSpeech.Seconds())),
		minSilence: int(float32(modelRate) * float32(o.MinSilence.Seconds())),
		longSil:    int(float32(modelRate) * float32(longSilence)),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	fail := func(err error) (*Model, error) {
		for _, e := range m.engines {
			e.sess.Close()
		}
		return nil, fmt.Errorf("%w: %s: %v", speech.ErrEngine, o.Model, err)
	}
	var branches map[int]*branch
	if !o.FileGraph {
		if branches, err = readBranches(raw); err != nil {
			return fail(fmt.Errorf("not a silero v5 model: %v", err))
		}
	}
	// the engines: 16 kHz streams, and 8 kHz ones (the model's 8 kHz
	// branch with Native8k; the 16 kHz branch with the upsampling folded
	// in with FoldUpsampler; else the 16 kHz engine after the resampler)
	type kind struct {
		rate      int // the branch's
		upsampled bool
	}
	kinds := []kind{{modelRate, false}}
	switch {
	case o.Native8k:
		kinds = append(kinds, kind{8000, false})
	case o.FoldUpsampler && !o.FileGraph:
		kinds = append(kinds, kind{modelRate, true})
	}
	for _, k := range kinds {
		e := &engine{m: m, batched: !o.FileGraph, in: make(chan *Stream, o.MaxBatch*o.Batchers)}
		if e.batched {
			e.br = branches[k.rate]
			e.fr = plainFront(e.br)
			if k.upsampled {
				rs, rerr := audio.NewResampler(8000, modelRate)
				if rerr != nil {
					return fail(rerr)
				}
				l, mm, taps := rs.Polyphase()
				if e.fr, err = upsampledFront(e.br, l, mm, taps); err != nil {
					return fail(err)
				}
			}
			e.sess, err = ort.NewSessionBytes(batchedGraph(e.br, e.fr), 1)
			e.inNames, e.outNames = ort.NewNames(bgFrames, bgState), ort.NewNames(bgProb, bgStateN)
		} else {
			e.br = fileBranch(k.rate)
			e.fr = &front{rate: k.rate, shift: e.br.shift, window: e.br.window()}
			if e.sess, err = ort.NewSessionBytes(raw, 1); err == nil {
				if err = checkIO(e.sess); err != nil {
					e.sess.Close()
				}
			}
			e.inNames, e.outNames = ort.NewNames("input", "state", "sr"), ort.NewNames("output", "stateN")
		}
		if err != nil {
			return fail(err)
		}
		m.engines = append(m.engines, e)
	}
	m.e16, m.e8 = m.engines[0], m.engines[len(m.engines)-1]
	var wg sync.WaitGroup
	for _, e := range m.engines {
		for range o.Batchers {
			b := e.newBatcher()
			e.batchers = append(e.batchers, b)
			wg.Go(b.loop)
		}
	}
	go func() { wg.Wait(); close(m.done) }()
	return m, nil
}

// fileBranch is the sizes of a rate's branch, for the model file's graph
// (which holds the weights itself).
func fileBranch(rate int) *branch {
	if rate == 8000 {
		return &branch{rate: 8000, frameLen: 128, hop: 64, bins: 65, shift: 256, context: 32}
	}
	return &branch{rate: 16000, frameLen: 256, hop: 128, bins: 129, shift: 512, context: 64}
}

func (e *engine) newBatcher() *batcher {
	n := e.m.opts.MaxBatch
	in := e.fr.window // samples a window: the file's graph's input
	if e.batched {
		in = framesPerWindow * e.fr.rowLen // a window's rows
	}
	b := &batcher{e: e,
		x:       ort.NewBuffer(4 * n * in),
		state:   ort.NewBuffer(4 * n * stateSize),
		sr:      ort.NewBuffer(8),
		prob:    ort.NewBuffer(4 * n),
		stateN:  ort.NewBuffer(4 * n * stateSize),
		tensors: map[int][]*ort.Tensor{},
	}
	b.sr.Int64s()[0] = int64(e.br.rate)
	return b
}

// checkIO checks the model is silero v5: inputs input [batch, samples],
// state [2, batch, 128], sr; outputs output [batch, 1], stateN.
func checkIO(s *ort.Session) error {
	in, err := s.Inputs()
	if err != nil {
		return err
	}
	out, err := s.Outputs()
	if err != nil {
		return err
	}
	ok := len(in) == 3 && len(out) == 2 &&
		in[0].Name == "input" && in[0].Elem == ort.Float32 && len(in[0].Shape) == 2 &&
		in[1].Name == "state" && in[1].Elem == ort.Float32 && len(in[1].Shape) == 3 && in[1].Shape[0] == 2 && in[1].Shape[2] == 128 &&
		in[2].Name == "sr" && in[2].Elem == ort.Int64 &&
		out[0].Name == "output" && out[1].Name == "stateN"
	if !ok {
		return fmt.Errorf("not a silero v5 model: inputs %v, outputs %v", in, out)
	}
	return nil
}

// Close stops the batchers (a Process waiting for them returns
// speech.ErrClosed) and releases the model. Streams fail afterwards.
func (m *Model) Close() error {
	m.stopOnce.Do(func() {
		close(m.stop)
		<-m.done
		for _, e := range m.engines {
			for _, b := range e.batchers {
				b.free()
			}
			e.sess.Close()
		}
	})
	return nil
}

// batcher runs the windows an engine's streams submit, one inference at
// a time, with its own buffers (outside the Go heap) and the tensors over
// them, per batch size: inputs then outputs.
type batcher struct {
	e                          *engine
	x, state, sr, prob, stateN *ort.Buffer
	tensors                    map[int][]*ort.Tensor
}

func (b *batcher) free() {
	for _, ts := range b.tensors {
		for _, t := range ts {
			t.Close()
		}
	}
	for _, buf := range []*ort.Buffer{b.x, b.state, b.sr, b.prob, b.stateN} {
		buf.Free()
	}
}

// loop takes the first window submitted, waits up to MaxWait for more (or
// until every open stream has one in), runs them in one inference and
// answers each stream.
func (b *batcher) loop() {
	e := b.e
	m := e.m
	batch := make([]*Stream, 0, m.opts.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	fail := func(err error) {
		for _, s := range batch {
			s.ready <- err
		}
		batch = batch[:0]
	}
	for {
		select {
		case s := <-e.in:
			batch = append(batch[:0], s)
		case <-m.stop:
			return
		}
		if m.opts.MaxWait > 0 {
			timer.Reset(m.opts.MaxWait)
		collect:
			for len(batch) < m.opts.MaxBatch && int64(len(batch)) < e.open.Load() {
				select {
				case s := <-e.in:
					batch = append(batch, s)
				case <-timer.C:
					break collect
				case <-m.stop:
					timer.Stop()
					fail(speech.ErrClosed)
					return
				}
			}
			timer.Stop()
		}
	drain: // whatever else is queued already
		for len(batch) < m.opts.MaxBatch {
			select {
			case s := <-e.in:
				batch = append(batch, s)
			default:
				break drain
			}
		}
		if err := b.run(batch); err != nil {
			fail(fmt.Errorf("%w: %v", speech.ErrEngine, err))
			continue
		}
		for _, s := range batch {
			s.ready <- nil
		}
	}
}

// run infers the windows of batch: the windows (the file's graph: input
// [B, samples] and sr; the batched graph: frames [4B, frameLen]) and
// state [2, B, 128] gathered from the streams, output [B, 1] and stateN
// [2, B, 128] given back to them.
func (bt *batcher) run(batch []*Stream) error {
	e, b := bt.e, len(batch)
	m, fr := e.m, e.fr
	w := fr.window
	ts, ok := bt.tensors[b]
	if !ok {
		var err error
		mk := func(buf *ort.Buffer, elem int, shape ...int64) *ort.Tensor {
			if err != nil {
				return nil
			}
			var t *ort.Tensor
			t, err = ort.NewTensor(buf, elem, shape...)
			if err != nil {
				return nil
			}
			ts = append(ts, t)
			return t
		}
		if e.batched {
			mk(bt.x, ort.Float32, int64(framesPerWindow*b), int64(fr.rowLen))
			mk(bt.state, ort.Float32, 2, int64(b), 128)
		} else {
			mk(bt.x, ort.Float32, int64(b), int64(w))
			mk(bt.state, ort.Float32, 2, int64(b), 128)
			mk(bt.sr, ort.Int64)
		}
		mk(bt.prob, ort.Float32, int64(b), 1)
		mk(bt.stateN, ort.Float32, 2, int64(b), 128)
		if err != nil {
			for _, t := range ts {
				t.Close()
			}
			return err
		}
		bt.tensors[b] = ts
	}
	t0 := time.Now()
	x, st := bt.x.Float32s(), bt.state.Float32s()
	half := b * 128 // the second LSTM tensor's offset in [2, B, 128]
	fl := framesPerWindow * fr.rowLen
	for i, s := range batch {
		if e.batched {
			fr.rows(x[i*fl:(i+1)*fl], s.last[:w])
		} else {
			copy(x[i*w:(i+1)*w], s.last[:w])
		}
		copy(st[i*128:(i+1)*128], s.state[:128])
		copy(st[half+i*128:half+(i+1)*128], s.state[128:])
	}
	if err := e.sess.Run(e.inNames, ts[:len(ts)-2], e.outNames, ts[len(ts)-2:]); err != nil {
		return err
	}
	p, sn := bt.prob.Float32s(), bt.stateN.Float32s()
	for i, s := range batch {
		s.prob = p[i]
		copy(s.state[:128], sn[i*128:(i+1)*128])
		copy(s.state[128:], sn[half+i*128:half+(i+1)*128])
	}
	m.Batches.Add(1)
	m.Windows.Add(uint64(b))
	m.InferNs.Add(uint64(time.Since(t0)))
	return nil
}

// Stream is one call's detector on a shared Model: a speech.VAD. Like
// every speech.VAD it serves one goroutine; Process waits for the
// model's batchers (at most MaxWait and one inference).
type Stream struct {
	m    *Model
	e    *engine
	rate int
	rs   *audio.Resampler // 8 kHz -> 16 kHz, nil when the engine takes the call's rate
	up   []int16
	last []float32 // samples not yet shifted out of a window
	// the model's recurrent state, and the last window's probability:
	// written by the batcher while Process waits for it
	state [stateSize]float32
	prob  float32
	ready chan error

	// sherpa-onnx's SileroVadModel state
	triggered               bool
	cur, tempStart, tempEnd int
	// sherpa-onnx's VoiceActivityDetector state: its sample buffer's
	// head and tail, and the current segment's start (-1: none)
	head, tail, start int

	speech bool // the last Activity's Speech
	closed bool
}

var _ speech.VAD = (*Stream)(nil)

// NewStream returns a detector for one call's frames at rate (8000 or
// 16000 Hz). Close it when the call no longer needs it.
func (m *Model) NewStream(rate int) (*Stream, error) {
	if err := speech.CheckRate(rate); err != nil {
		return nil, err
	}
	select {
	case <-m.stop:
		return nil, speech.ErrClosed
	default:
	}
	e := m.e16
	if rate == 8000 {
		e = m.e8
	}
	s := &Stream{m: m, e: e, rate: rate, last: make([]float32, e.fr.prefix, e.fr.window+audio.SamplesPerFrame(e.fr.rate)), ready: make(chan error, 1), start: -1}
	if rate != e.fr.rate {
		rs, err := audio.NewResampler(rate, modelRate)
		if err != nil {
			return nil, err
		}
		s.rs = rs
		s.up = make([]int16, audio.SamplesPerFrame(modelRate))
	}
	e.open.Add(1)
	return s, nil
}

// Process implements speech.VAD.
func (s *Stream) Process(frame []int16) (speech.Activity, error) {
	if s.closed {
		return speech.Activity{}, speech.ErrClosed
	}
	if err := speech.CheckFrame(frame, s.rate); err != nil {
		return speech.Activity{}, err
	}
	in := frame
	if s.rs != nil {
		n := s.rs.Process(s.up, frame)
		in = s.up[:n]
	}
	for _, v := range in {
		s.last = append(s.last, float32(v)/32768)
	}
	if len(s.last) >= s.e.fr.window {
		if err := s.windows(); err != nil {
			return speech.Activity{}, err
		}
	}
	a := activity(&s.speech, s.start != -1)
	a.Probability = float64(s.prob) // the last window's, raw
	return a, nil
}

// windows runs the complete windows in s.last through the model and the
// segment rules (VoiceActivityDetector::AcceptWaveform).
func (s *Stream) windows() error {
	thr, minSil := s.m.opts.Threshold, s.m.minSilence
	if s.tail-s.head > longSegment {
		thr, minSil = longThreshold, s.m.longSil
	}
	isSpeech := false
	w, shift := s.e.fr.window, s.e.fr.shift
	for len(s.last) >= w {
		select {
		case <-s.m.stop: // closed: never wait for a batcher that is gone
			return speech.ErrClosed
		default:
		}
		select {
		case s.e.in <- s:
		case <-s.m.stop:
			return speech.ErrClosed
		}
		select {
		case err := <-s.ready:
			if err != nil {
				return err
			}
		case <-s.m.done:
			return speech.ErrClosed
		}
		s.tail += windowShift
		if s.step(s.prob, thr, minSil) {
			isSpeech = true
		}
		n := copy(s.last, s.last[shift:])
		s.last = s.last[:n]
	}
	const lead = 2 * windowSize
	if isSpeech {
		if s.start == -1 {
			s.start = max(s.tail-lead-s.m.minSpeech, s.head)
		}
		return nil
	}
	if s.start != -1 && s.tail > s.head {
		s.head = s.tail - minSil
	}
	if s.start == -1 {
		if end := s.tail - lead - s.m.minSpeech; end > s.head {
			s.head = end
		}
	}
	s.start = -1
	return nil
}

// step is SileroVadModel::IsSpeech after the inference.
func (s *Stream) step(prob, thr float32, minSil int) bool {
	s.cur += windowShift
	above := prob > thr
	if above && s.tempEnd != 0 {
		s.tempEnd = 0
	}
	if above && s.tempStart == 0 {
		s.tempStart = s.cur
		return false
	}
	if above && s.tempStart != 0 && !s.triggered {
		if s.cur-s.tempStart < s.m.minSpeech {
			return false
		}
		s.triggered = true
		return true
	}
	if prob < thr && !s.triggered {
		s.tempStart, s.tempEnd = 0, 0
		return false
	}
	if float64(prob) > float64(thr)-0.15 && s.triggered {
		return true
	}
	if above && !s.triggered {
		s.triggered = true
		return true
	}
	if prob < thr && s.triggered {
		if s.tempEnd == 0 {
			s.tempEnd = s.cur
		}
		if s.cur-s.tempEnd < minSil {
			return true
		}
		s.tempStart, s.tempEnd, s.triggered = 0, 0, false
		return false
	}
	return false
}

// Reset implements speech.VAD.
func (s *Stream) Reset() {
	s.state = [stateSize]float32{}
	s.last = s.last[:s.e.fr.prefix]
	clear(s.last)
	s.triggered, s.cur, s.tempStart, s.tempEnd = false, 0, 0, 0
	s.head, s.tail, s.start = 0, 0, -1
	s.speech = false
	if s.rs != nil {
		s.rs.Reset()
	}
}

// Close ends the stream: it no longer counts among the open streams a
// batch waits for. Process afterwards returns speech.ErrClosed.
func (s *Stream) Close() error {
	if !s.closed {
		s.closed = true
		s.e.open.Add(-1)
	}
	return nil
}
