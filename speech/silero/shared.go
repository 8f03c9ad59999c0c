package silero

import (
	"fmt"
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
//
// The segment rules are those of sherpa-onnx's VoiceActivityDetector with
// its silero v5 model (sherpa-onnx v1.12: silero-vad-model.cc and
// voice-activity-detector.cc), restated here so the decisions match the
// per-call Detector frame for frame: windows of 512 new samples with the
// 64 samples before them as context, the first window once 576 samples
// came; a segment starts after MinSpeech of windows above Threshold, and
// ends after MinSilence of windows below it (a window above Threshold-0.15
// keeps it going); a segment longer than 15 s ends on 100 ms below 0.9.

const (
	windowShift   = 512                         // new samples per window at 16 kHz
	windowContext = 64                          // samples of the previous window the model sees again
	windowSize    = windowShift + windowContext // samples per inference
	stateSize     = 2 * 128                     // the model's state per stream: [2][128]
	// a segment longer than this (sherpa's max_speech_duration of 15 s)
	// ends on a short silence (longSilence) below longThreshold.
	longSegment   = 15 * modelRate
	longThreshold = 0.9
	longSilence   = 0.1
)

// Defaults of ModelOptions. Past 16 windows a batch costs as much per
// window (about 50 µs here: onnxruntime runs the model's convolutions one
// window at a time, and only its recurrent and dense layers gain from the
// batch), so batches are capped at 64 and two batchers share the cores.
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
	// rest. Capped at GOMAXPROCS.
	Batchers int
}

// Model is the silero VAD loaded once and shared by every call: NewStream
// gives each call its own speech.VAD. Safe for concurrent use. Close stops
// the batchers and releases the model.
type Model struct {
	opts     ModelOptions
	sess     *ort.Session
	inNames  *ort.Names
	outNames *ort.Names

	batchers []*batcher

	minSpeech, minSilence, longSil int // samples at 16 kHz

	in       chan *Stream
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	open     atomic.Int64 // streams not closed

	// Counters: inferences run and windows they held.
	Batches, Windows atomic.Uint64
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
	sess, err := ort.NewSession(o.Model, 1)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", speech.ErrEngine, err)
	}
	if err := checkIO(sess); err != nil {
		sess.Close()
		return nil, fmt.Errorf("%w: %s: %v", speech.ErrEngine, o.Model, err)
	}
	m := &Model{
		opts: o, sess: sess,
		inNames:  ort.NewNames("input", "state", "sr"),
		outNames: ort.NewNames("output", "stateN"),
		// sherpa-onnx computes these in float32
		minSpeech:  int(float32(modelRate) * float32(o.MinSpeech.Seconds())),
		minSilence: int(float32(modelRate) * float32(o.MinSilence.Seconds())),
		longSil:    int(float32(modelRate) * float32(longSilence)),
		in:         make(chan *Stream, o.MaxBatch*o.Batchers),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	var wg sync.WaitGroup
	for range o.Batchers {
		b := &batcher{m: m,
			x:       ort.NewBuffer(4 * o.MaxBatch * windowSize),
			state:   ort.NewBuffer(4 * o.MaxBatch * stateSize),
			sr:      ort.NewBuffer(8),
			prob:    ort.NewBuffer(4 * o.MaxBatch),
			stateN:  ort.NewBuffer(4 * o.MaxBatch * stateSize),
			tensors: map[int][5]*ort.Tensor{},
		}
		b.sr.Int64s()[0] = modelRate
		m.batchers = append(m.batchers, b)
		wg.Go(b.loop)
	}
	go func() { wg.Wait(); close(m.done) }()
	return m, nil
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
		for _, b := range m.batchers {
			b.free()
		}
		m.sess.Close()
	})
	return nil
}

// batcher runs the windows the streams submit, one inference at a time,
// with its own buffers (outside the Go heap) and the tensors over them,
// per batch size.
type batcher struct {
	m                          *Model
	x, state, sr, prob, stateN *ort.Buffer
	tensors                    map[int][5]*ort.Tensor
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
	m := b.m
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
		case s := <-m.in:
			batch = append(batch[:0], s)
		case <-m.stop:
			return
		}
		if m.opts.MaxWait > 0 {
			timer.Reset(m.opts.MaxWait)
		collect:
			for len(batch) < m.opts.MaxBatch && int64(len(batch)) < m.open.Load() {
				select {
				case s := <-m.in:
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
			case s := <-m.in:
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

// run infers the windows of batch: input [B, 576] and state [2, B, 128]
// gathered from the streams, output [B, 1] and stateN [2, B, 128] given
// back to them.
func (bt *batcher) run(batch []*Stream) error {
	m, b := bt.m, len(batch)
	ts, ok := bt.tensors[b]
	if !ok {
		var err error
		mk := func(buf *ort.Buffer, elem int, shape ...int64) *ort.Tensor {
			if err != nil {
				return nil
			}
			var t *ort.Tensor
			t, err = ort.NewTensor(buf, elem, shape...)
			return t
		}
		ts = [5]*ort.Tensor{
			mk(bt.x, ort.Float32, int64(b), windowSize),
			mk(bt.state, ort.Float32, 2, int64(b), 128),
			mk(bt.sr, ort.Int64),
			mk(bt.prob, ort.Float32, int64(b), 1),
			mk(bt.stateN, ort.Float32, 2, int64(b), 128),
		}
		if err != nil {
			for _, t := range ts {
				t.Close()
			}
			return err
		}
		bt.tensors[b] = ts
	}
	x, st := bt.x.Float32s(), bt.state.Float32s()
	half := b * 128 // the second LSTM tensor's offset in [2, B, 128]
	for i, s := range batch {
		copy(x[i*windowSize:(i+1)*windowSize], s.last[:windowSize])
		copy(st[i*128:(i+1)*128], s.state[:128])
		copy(st[half+i*128:half+(i+1)*128], s.state[128:])
	}
	if err := m.sess.Run(m.inNames, ts[:3], m.outNames, ts[3:]); err != nil {
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
	return nil
}

// Stream is one call's detector on a shared Model: a speech.VAD. Like
// every speech.VAD it serves one goroutine; Process waits for the
// model's batchers (at most MaxWait and one inference).
type Stream struct {
	m    *Model
	rate int
	rs   *audio.Resampler // 8 kHz -> 16 kHz, nil at 16 kHz
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
	s := &Stream{m: m, rate: rate, last: make([]float32, 0, windowSize+audio.SamplesPerFrame(modelRate)), ready: make(chan error, 1), start: -1}
	if rate != modelRate {
		rs, err := audio.NewResampler(rate, modelRate)
		if err != nil {
			return nil, err
		}
		s.rs = rs
		s.up = make([]int16, audio.SamplesPerFrame(modelRate))
	}
	m.open.Add(1)
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
	if len(s.last) >= windowSize {
		if err := s.windows(); err != nil {
			return speech.Activity{}, err
		}
	}
	return activity(&s.speech, s.start != -1), nil
}

// windows runs the complete windows in s.last through the model and the
// segment rules (VoiceActivityDetector::AcceptWaveform).
func (s *Stream) windows() error {
	thr, minSil := s.m.opts.Threshold, s.m.minSilence
	if s.tail-s.head > longSegment {
		thr, minSil = longThreshold, s.m.longSil
	}
	isSpeech := false
	for len(s.last) >= windowSize {
		select {
		case <-s.m.stop: // closed: never wait for a batcher that is gone
			return speech.ErrClosed
		default:
		}
		select {
		case s.m.in <- s:
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
		n := copy(s.last, s.last[windowShift:])
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
	s.last = s.last[:0]
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
		s.m.open.Add(-1)
	}
	return nil
}
