// Package silero is the embedded voice activity detector: the silero VAD
// v5 neural model, in two forms with the same decisions frame for frame.
//
//   - Model (NewModel) is the model loaded once per process and shared by
//     every call: each call's Stream (Model.NewStream) holds only the
//     model's recurrent state, the context samples and the segment rules,
//     and the windows of all calls are batched into one inference. It
//     runs the model's weights in a graph of its own whose products span
//     the whole batch (graph.go), through onnxruntime's C API
//     (internal/ort) in the libonnxruntime.so that
//     github.com/k2-fsa/sherpa-onnx-go-linux ships. ivrd's default.
//   - Detector (New, Pool) is sherpa-onnx's VoiceActivityDetector, which
//     keeps the model and the state in one object: a model session (12 MB)
//     per call. Kept to measure against (speech.vad = "per-call" in ivrd).
//
// sherpa-onnx-go-linux links its libraries with an rpath into the module
// cache, so go build, go test and go run find them without
// LD_LIBRARY_PATH; an installed ivrd finds them in PREFIX/lib/ivr.
//
// The model file, silero_vad_v5.onnx, comes from the npm package
// @ricky0123/vad-web@0.0.31 (under dist/); "make models" (a prerequisite
// of make deps, run by make test and make run) fetches it into
// var/models. FindModel says where it looks.
//
// The model runs at 16 kHz on 32 ms windows; 8 kHz frames are upsampled
// (ModelOptions offers two cheaper 8 kHz paths with slightly different
// decisions: the model's own 8 kHz branch, and the upsampling folded into
// the model's graph).
// Both forms report whether they are inside a speech segment (after
// MinSpeech of speech, until MinSilence of silence). The shared model's
// streams give the model's raw probability of their last window in
// Activity.Probability; the per-call detector has none, so its
// Activity.Probability is 0 or 1.
package silero

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	sherpa "github.com/k2-fsa/sherpa-onnx-go-linux"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

// ModelFile is the model's file name.
const ModelFile = "silero_vad_v5.onnx"

// EnvModelsDir names the environment variable with the folder of model
// files (overrides the search of FindModel).
const EnvModelsDir = "IVR_MODELS_DIR"

// ErrNoModel wraps the error of FindModel when the model file is nowhere.
var ErrNoModel = errors.New("silero: model file not found")

// FindModel returns the path of the model: $IVR_MODELS_DIR/silero_vad_v5.onnx
// if that variable is set; else var/models/silero_vad_v5.onnx in the
// current directory or the nearest parent that has it (so tests run from a
// package folder find the repository's copy); else
// $XDG_CACHE_HOME/govline-ivr/models (~/.cache when unset).
func FindModel() (string, error) {
	if d := os.Getenv(EnvModelsDir); d != "" {
		p := filepath.Join(d, ModelFile)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: $%s is %s: %v", ErrNoModel, EnvModelsDir, d, err)
		}
		return p, nil
	}
	var tried []string
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, "var", "models", ModelFile)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
		tried = append(tried, "var/models in "+wd+" and its parents")
	}
	if c, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(c, "govline-ivr", "models", ModelFile)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("%w: looked in %v; run \"make models\" or set $%s", ErrNoModel, tried, EnvModelsDir)
}

// Defaults of Options.
const (
	DefaultThreshold  = 0.5
	DefaultMinSpeech  = 100 * time.Millisecond
	DefaultMinSilence = 300 * time.Millisecond
)

// Options tune a Detector; zero values take the defaults above.
type Options struct {
	Model      string  // path of silero_vad_v5.onnx; "" = FindModel
	Threshold  float32 // speech probability above which a window is speech
	MinSpeech  time.Duration
	MinSilence time.Duration
}

// withDefaults finds the model when o names none, checks that it is
// there, and fills the thresholds o leaves at zero.
func (o *Options) withDefaults() error {
	if o.Model == "" {
		p, err := FindModel()
		if err != nil {
			return err
		}
		o.Model = p
	}
	if _, err := os.Stat(o.Model); err != nil {
		return fmt.Errorf("%w: %v", ErrNoModel, err)
	}
	if o.Threshold == 0 {
		o.Threshold = DefaultThreshold
	}
	if o.MinSpeech == 0 {
		o.MinSpeech = DefaultMinSpeech
	}
	if o.MinSilence == 0 {
		o.MinSilence = DefaultMinSilence
	}
	return nil
}

// Detector is a speech.VAD over one audio stream. Not safe for concurrent
// use (see speech.VAD). Close releases the model session; a Detector that
// is never closed is released by the garbage collector.
type Detector struct {
	rate   int
	vad    *sherpa.VoiceActivityDetector
	rs     *audio.Resampler // 8 kHz -> 16 kHz, nil at 16 kHz
	up     []int16
	buf    []float32
	speech bool
	once   sync.Once
}

var _ speech.VAD = (*Detector)(nil)

const modelRate = 16000

// New returns a Detector for frames at rate (8000 or 16000 Hz).
func New(rate int, o Options) (*Detector, error) {
	if err := speech.CheckRate(rate); err != nil {
		return nil, err
	}
	if err := o.withDefaults(); err != nil {
		return nil, err
	}
	cfg := sherpa.VadModelConfig{
		SileroVad: sherpa.SileroVadModelConfig{
			Model:              o.Model,
			Threshold:          o.Threshold,
			MinSilenceDuration: float32(o.MinSilence.Seconds()),
			MinSpeechDuration:  float32(o.MinSpeech.Seconds()),
			WindowSize:         512,
			MaxSpeechDuration:  15,
		},
		SampleRate: modelRate,
		NumThreads: 1,
		Provider:   "cpu",
	}
	v := sherpa.NewVoiceActivityDetector(&cfg, 20)
	if v == nil {
		return nil, fmt.Errorf("%w: sherpa-onnx could not load the VAD model %s", speech.ErrEngine, o.Model)
	}
	d := &Detector{rate: rate, vad: v, buf: make([]float32, audio.SamplesPerFrame(modelRate))}
	if rate != modelRate {
		rs, err := audio.NewResampler(rate, modelRate)
		if err != nil {
			sherpa.DeleteVoiceActivityDetector(v)
			return nil, err
		}
		d.rs = rs
		d.up = make([]int16, audio.SamplesPerFrame(modelRate))
	}
	return d, nil
}

// Process implements speech.VAD.
func (d *Detector) Process(frame []int16) (speech.Activity, error) {
	if d.vad == nil {
		return speech.Activity{}, speech.ErrClosed
	}
	if err := speech.CheckFrame(frame, d.rate); err != nil {
		return speech.Activity{}, err
	}
	in := frame
	if d.rs != nil {
		n := d.rs.Process(d.up, frame)
		in = d.up[:n]
	}
	for i, s := range in {
		d.buf[i] = float32(s) / 32768
	}
	d.vad.AcceptWaveform(d.buf[:len(in)])
	// Completed segments are queued inside sherpa-onnx with their
	// samples; this detector only needs the state, so drop them.
	for !d.vad.IsEmpty() {
		d.vad.Pop()
	}
	return activity(&d.speech, d.vad.IsSpeech()), nil
}

// activity is the frame's result for a stream whose segment is speech
// (now) or not, with the start or end event when that changed since
// *was, which it updates: both detectors report alike.
func activity(was *bool, now bool) speech.Activity {
	a := speech.Activity{Speech: now}
	if now {
		a.Probability = 1
	}
	switch {
	case now && !*was:
		a.Event = speech.SpeechStart
	case !now && *was:
		a.Event = speech.SpeechEnd
	}
	*was = now
	return a
}

// Reset implements speech.VAD.
func (d *Detector) Reset() {
	if d.vad == nil {
		return
	}
	d.vad.Reset()
	if d.rs != nil {
		d.rs.Reset()
	}
	d.speech = false
}

// Close releases the model session. Process after Close returns
// speech.ErrClosed.
func (d *Detector) Close() error {
	d.once.Do(func() {
		sherpa.DeleteVoiceActivityDetector(d.vad)
		d.vad = nil
	})
	return nil
}

// Pool keeps idle Detectors for reuse: creating one loads the model (about
// 80 ms of CPU, measured), too slow to do at every call's answer. Safe for
// concurrent use.
type Pool struct {
	opts    Options
	maxIdle int
	mu      sync.Mutex
	idle    map[int][]*Detector
}

// NewPool returns a pool of Detectors made with opts, keeping at most
// maxIdle idle ones per rate (0 = 64).
func NewPool(opts Options, maxIdle int) (*Pool, error) {
	if opts.Model == "" {
		p, err := FindModel()
		if err != nil {
			return nil, err
		}
		opts.Model = p
	}
	if maxIdle == 0 {
		maxIdle = 64
	}
	return &Pool{opts: opts, maxIdle: maxIdle, idle: map[int][]*Detector{}}, nil
}

// Get returns a reset Detector for rate, idle or new.
func (p *Pool) Get(rate int) (*Detector, error) {
	p.mu.Lock()
	if l := p.idle[rate]; len(l) > 0 {
		d := l[len(l)-1]
		p.idle[rate] = l[:len(l)-1]
		p.mu.Unlock()
		return d, nil
	}
	p.mu.Unlock()
	return New(rate, p.opts)
}

// Put returns d to the pool (reset) or closes it when the pool is full.
// d must not be used afterwards.
func (p *Pool) Put(d *Detector) {
	if d == nil || d.vad == nil {
		return
	}
	d.Reset()
	p.mu.Lock()
	if len(p.idle[d.rate]) < p.maxIdle {
		p.idle[d.rate] = append(p.idle[d.rate], d)
		d = nil
	}
	p.mu.Unlock()
	if d != nil {
		d.Close()
	}
}

// Close closes the idle Detectors.
func (p *Pool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[int][]*Detector{}
	p.mu.Unlock()
	for _, l := range idle {
		for _, d := range l {
			d.Close()
		}
	}
	return nil
}
