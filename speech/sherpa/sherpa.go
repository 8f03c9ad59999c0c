// Package sherpa holds the embedded neural speech engines that run model
// files an operator supplies, through sherpa-onnx
// (github.com/k2-fsa/sherpa-onnx-go-linux, the same module speech/silero
// uses; it ships onnxruntime and links it with an rpath, so nothing else
// is installed):
//
//   - Recognizer: sherpa-onnx's offline recognizer with a whisper model
//     (multilingual tiny/base/small/turbo: Romanian and English) or a
//     transducer (NeMo parakeet-tdt-0.6b-v3 knows Romanian; icefall
//     zipformers). It recognizes whole utterances, like speech/openai:
//     frames are buffered (upsampled to 16 kHz with audio.Resampler) and
//     decoded at Finish; no partial results. A Grammar is a hint only:
//     Result.Tag is the grammar's Match of the text.
//   - Synthesizer: sherpa-onnx's offline TTS with a VITS/piper voice per
//     language (vits-piper-ro_RO-mihai-medium, vits-piper-en_US-amy-low,
//     ...). The text is rendered sentence by sentence; each sentence's
//     audio is resampled to the call's rate and handed out while the next
//     one renders.
//
// No model ships with the repository: each language's folder is a
// sherpa-onnx release tarball unpacked as it is (DetectASR and DetectTTS
// say which files they look for; docs/speech.md says which releases fit).
// Every model file is checked in Go before sherpa-onnx sees it (see
// checkONNX): sherpa-onnx aborts the process on a truncated model and
// exits it on a model without its metadata, so a bad file must be caught
// first and reported as an error naming the file.
//
// Loaded models are costly (tens to hundreds of MB, a second or more to
// load), so each Recognizer and Synthesizer keeps a bounded pool of them
// per model and language (Config.Instances); one instance serves one
// utterance or sentence at a time, and a stream waits (bounded by its
// context) when all are busy. Decoding and rendering run on goroutines the
// Recognizer or Synthesizer owns; Close waits for them and frees the
// models.
//
// sherpa-onnx starts its own espeak-ng (for piper's phonemes) once per
// process, with the espeak-ng-data folder of the first voice loaded: every
// later voice uses that folder, which must stay in place while the process
// runs (the releases all carry the same data).
package sherpa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	so "github.com/k2-fsa/sherpa-onnx-go-linux"
)

// Config names the model folders and sizes the pools.
type Config struct {
	// ASR maps a language ("ro", "en") to its recognition model folder.
	// One multilingual whisper folder may serve both languages (it is
	// loaded once per language, since whisper is told the language).
	ASR map[string]string
	// ASRKind is KindWhisper, KindTransducer or KindAuto (detect from the
	// file names).
	ASRKind string
	// TTS maps a language to its piper/VITS voice folder.
	TTS map[string]string
	// Float prefers the float32 .onnx over the int8 one when a folder has
	// both (int8 is the default: about twice as fast on a CPU).
	Float bool
	// Instances bounds the loaded copies of each model (0 = 2): that many
	// utterances (sentences) are decoded (rendered) at once per model and
	// language; more wait.
	Instances int
	// Threads is the onnxruntime threads of one instance (0 = 1).
	Threads int
	// SilenceDBFS: an utterance whose loudest 20 ms frame is below this
	// level is not decoded at all and gives an empty result (whisper
	// invents text on silence). 0 means -55 dBFS.
	SilenceDBFS float64
	// Logger gets one line per model load (nil = slog.Default()). No
	// recognized or synthesized text is ever logged.
	Logger *slog.Logger
}

func (c *Config) instances() int {
	if c.Instances <= 0 {
		return 2
	}
	return c.Instances
}

func (c *Config) threads() int {
	if c.Threads <= 0 {
		return 1
	}
	return c.Threads
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// pool keeps at most max instances of one loaded model, created on demand
// by mk (the first one eagerly, so a model that fails to load is an error
// at start) and freed by del. Safe for concurrent use.
type pool[T any] struct {
	name string
	mk   func() (T, error)
	del  func(T)
	sem  chan struct{} // one token per instance that exists or may be made
	mu   sync.Mutex
	idle []T
	all  int
	log  *slog.Logger
}

func newPool[T any](name string, max int, log *slog.Logger, mk func() (T, error), del func(T)) (*pool[T], error) {
	p := &pool[T]{name: name, mk: mk, del: del, sem: make(chan struct{}, max), log: log}
	p.sem <- struct{}{}
	x, err := p.make()
	if err != nil {
		<-p.sem
		return nil, err
	}
	p.put(x)
	return p, nil
}

func (p *pool[T]) make() (T, error) {
	start := time.Now()
	x, err := p.mk()
	if err != nil {
		return x, err
	}
	p.mu.Lock()
	p.all++
	n := p.all
	p.mu.Unlock()
	p.log.Info("sherpa-onnx model loaded", "model", p.name, "instance", n, "took", time.Since(start).Round(time.Millisecond))
	return x, nil
}

// get returns an idle instance or makes one, waiting while max are in
// use, until ctx or stop is done.
func (p *pool[T]) get(ctx context.Context, stop <-chan struct{}) (T, error) {
	var zero T
	select { // a closed engine or a done context wins over a free instance
	case <-stop:
		return zero, errClosedEngine
	default:
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-stop:
		return zero, errClosedEngine
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		x := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return x, nil
	}
	p.mu.Unlock()
	x, err := p.make()
	if err != nil {
		<-p.sem
		return zero, err
	}
	return x, nil
}

// put returns an instance taken with get (or made by newPool).
func (p *pool[T]) put(x T) {
	p.mu.Lock()
	p.idle = append(p.idle, x)
	p.mu.Unlock()
	<-p.sem
}

// close frees the idle instances; call it once no instance is in use.
func (p *pool[T]) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, x := range idle {
		p.del(x)
	}
}

// errClosedEngine is returned by streams of a closed Recognizer or
// Synthesizer (it wraps speech.ErrClosed where it reaches callers).
var errClosedEngine = errors.New("sherpa: engine closed")

// providerCPU is the only provider the Go module's libraries have.
const providerCPU = "cpu"

// modelRate is the rate every recognition model wants.
const modelRate = 16000

// newOfflineRecognizer loads m for lang (whisper is told its language).
func newOfflineRecognizer(m *ASRModel, lang string, threads int) (*so.OfflineRecognizer, error) {
	c := so.OfflineRecognizerConfig{
		FeatConfig:     so.FeatureConfig{SampleRate: modelRate, FeatureDim: 80},
		DecodingMethod: "greedy_search",
		ModelConfig: so.OfflineModelConfig{
			Tokens:     m.Tokens,
			NumThreads: threads,
			Provider:   providerCPU,
		},
	}
	switch m.Kind {
	case KindWhisper:
		c.ModelConfig.Whisper = so.OfflineWhisperModelConfig{Encoder: m.Encoder, Decoder: m.Decoder, Language: lang, Task: "transcribe", TailPaddings: -1}
		if !m.Multilingual {
			c.ModelConfig.Whisper.Language = ""
		}
	case KindTransducer:
		c.ModelConfig.Transducer = so.OfflineTransducerModelConfig{Encoder: m.Encoder, Decoder: m.Decoder, Joiner: m.Joiner}
		if m.NeMo {
			c.ModelConfig.ModelType = "nemo_transducer"
		}
	}
	r := so.NewOfflineRecognizer(&c)
	if r == nil {
		return nil, fmt.Errorf("%w: sherpa-onnx refused the %s model in %s (its message is on stderr)", ErrBadModel, m.Kind, m.Dir)
	}
	return r, nil
}

// newOfflineTts loads a voice.
func newOfflineTts(m *TTSModel, threads int) (*so.OfflineTts, error) {
	c := so.OfflineTtsConfig{
		Model: so.OfflineTtsModelConfig{
			Vits: so.OfflineTtsVitsModelConfig{
				Model: m.Model, Tokens: m.Tokens, Lexicon: m.Lexicon, DataDir: m.DataDir,
				NoiseScale: 0.667, NoiseScaleW: 0.8, LengthScale: 1,
			},
			NumThreads: threads,
			Provider:   providerCPU,
		},
		MaxNumSentences: 1,
		SilenceScale:    0.2,
	}
	t := so.NewOfflineTts(&c)
	if t == nil {
		return nil, fmt.Errorf("%w: sherpa-onnx refused the voice in %s (its message is on stderr)", ErrBadModel, m.Dir)
	}
	return t, nil
}
