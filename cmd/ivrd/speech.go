package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/openai"
	"github.com/govline/ivr/speech/sherpa"
	"github.com/govline/ivr/speech/silero"
	"github.com/govline/ivr/speech/sphinx"
	"github.com/govline/ivr/speech/vosk"
)

// The silero detector's own segment rules are kept short: the turn-taking
// applies min_speech (from the first loud frame) and end_silence on top.
// speechCallsPerCore is how many calls per core answer by voice at once
// when speech.max_calls is 0 and the embedded recognizer serves first:
// measured with ivrbench -speech (docs/benchmarks.md, "A line of callers
// who speak"), where a third of the callers speak at any moment: 15 a core
// held 300 calls one day and lost 18,862 frames of speech on a day the
// same machine ran 15 % slower, 10 a core lost 71.
const speechCallsPerCore = 10

const (
	vadMinSpeech = 64 * time.Millisecond // two of its 32 ms windows
	vadHangover  = 100 * time.Millisecond
)

// startSpeech loads the speech engines: the recognizer ladder and the VAD
// for turn-taking (nil when speech is off or the embedded engines are
// missing: the line is keys only, logged once) and the synthesizer of the
// prompts under dataDir. The returned function releases the engines; call
// it after the last call ended. The collectors are the engines' metrics
// for /metrics (the shared VAD's inferences and windows).
func startSpeech(c SpeechConfig, dataDir string, log *slog.Logger) (*ivr.SpeechConfig, *ivr.RenderCache, func(), []prometheus.Collector) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	synth, closeSynth := startSynth(c, dataDir, log)
	closers = append(closers, closeSynth)
	if !c.Enabled {
		log.Info("speech off by configuration ([speech] enabled = false): callers answer with keys")
		return nil, synth, closeAll, nil
	}
	var model string
	if c.ModelsDir != "" {
		model = filepath.Join(c.ModelsDir, silero.ModelFile)
	}
	newVAD, closeVAD, vadMetrics, err := startVAD(c, model)
	if err != nil && errors.Is(err, silero.ErrNoModel) {
		log.Warn("speech off: no voice activity model; callers answer with keys. Set speech.models_dir (or IVR_MODELS_DIR) to the folder that holds "+
			silero.ModelFile+" (make models puts it in var/models, make install in PREFIX/share/ivr/models)", "speech.models_dir", c.ModelsDir, "err", err)
		return nil, synth, closeAll, nil
	}
	if err != nil {
		log.Warn("speech off: the voice activity model does not load; callers answer with keys", "err", err)
		return nil, synth, closeAll, nil
	}
	closers = append(closers, closeVAD)

	// The embedded recognizer: the only one, or the ladder's second rung.
	// One idle decoder per call that may speak at once: a new one loads
	// the acoustic model. Its dictionary and a decoder per language for
	// telephone audio load now, not at the first caller's first words.
	var embedded speech.Recognizer
	if rec, err := sphinx.New(sphinx.Options{MaxIdle: 128}); err != nil {
		log.Warn("no embedded recognizer (apt-get install libpocketsphinx-dev pocketsphinx-en-us)", "err", err)
	} else if err := rec.Prepare(8000, "ro", "en"); err != nil {
		log.Warn("no embedded recognizer: its model does not load (apt-get install --reinstall pocketsphinx-en-us)", "err", err)
		rec.Close()
	} else {
		embedded = ivr.SerialStreams(rec)
		closers = append(closers, func() { rec.Close() })
	}
	first, name, closeFirst, err := networkRecognizer(c, log)
	if err != nil {
		log.Error("speech recognizer not started: the embedded one serves alone", "recognizer", c.Recognizer, "err", err)
	}
	if closeFirst != nil {
		closers = append(closers, closeFirst)
	}
	sc := &ivr.SpeechConfig{
		NewVAD:            newVAD,
		BargeIn:           c.MinSpeech.Duration,
		EndSilence:        c.EndSilence.Duration,
		DigitsEndSilence:  c.DigitsEndSilence.Duration,
		IncompleteSilence: c.IncompleteSilence.Duration,
		MaxUtterance:      c.MaxUtterance.Duration,
		NoiseMargin:       c.NoiseMarginDB,
		FinishTimeout:     c.FinishTimeout.Duration,
		VADThreshold:      c.VADThreshold,
	}
	switch {
	case first != nil:
		sc.Recognizer, sc.Fallback = first, embedded
	case embedded != nil:
		sc.Recognizer, name = embedded, "pocketsphinx"
	default:
		log.Warn("speech off: no recognizer; callers answer with keys")
		closeVAD()
		closers = closers[:len(closers)-1]
		return nil, synth, closeAll, nil
	}
	switch {
	case c.MaxCalls > 0:
		sc.MaxCalls = c.MaxCalls
	case c.MaxCalls == 0 && first == nil:
		sc.MaxCalls = speechCallsPerCore * runtime.NumCPU()
	}
	fallback := "keys"
	if sc.Fallback != nil {
		fallback = "pocketsphinx, then keys"
	}
	log.Info("speech on: barge-in and spoken answers", "recognizer", name, "fallback", fallback, "vad", "silero "+c.VAD,
		"min_speech", c.MinSpeech.Duration, "end_silence", c.EndSilence.Duration, "max_calls", sc.MaxCalls)
	return sc, synth, closeAll, vadMetrics
}

// startVAD loads the silero VAD as c.VAD says: one shared model whose
// streams cost a few KB per call, or (per-call) a pool of sherpa-onnx
// detectors, a model session each. The model loads now, so a broken
// install shows at start and not at the first call.
func startVAD(c SpeechConfig, model string) (func(rate int) (speech.VAD, func(), error), func(), []prometheus.Collector, error) {
	opts := silero.Options{Model: model, Threshold: float32(c.VADThreshold), MinSpeech: vadMinSpeech, MinSilence: vadHangover}
	if c.VAD == "per-call" {
		pool, err := silero.NewPool(opts, 0)
		if err != nil {
			return nil, nil, nil, err
		}
		d, err := pool.Get(8000)
		if err != nil {
			pool.Close()
			return nil, nil, nil, err
		}
		pool.Put(d)
		return func(rate int) (speech.VAD, func(), error) {
			d, err := pool.Get(rate)
			if err != nil {
				return nil, nil, err
			}
			return d, func() { pool.Put(d) }, nil
		}, func() { pool.Close() }, nil, nil
	}
	m, err := silero.NewModel(silero.ModelOptions{Options: opts})
	if err != nil {
		return nil, nil, nil, err
	}
	metrics := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ivr_vad_inferences_total", Help: "Inferences of the shared voice activity model (each a batch of calls' windows)."},
			func() float64 { return float64(m.Batches.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ivr_vad_windows_total", Help: "32 ms windows of caller audio the shared voice activity model ran on (divided by ivr_vad_inferences_total: the mean batch)."},
			func() float64 { return float64(m.Windows.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ivr_vad_inference_seconds_total", Help: "Wall time of the shared voice activity model's inferences (divided by ivr_vad_windows_total: the time a window costs)."},
			func() float64 { return float64(m.InferNs.Load()) / 1e9 }),
	}
	return func(rate int) (speech.VAD, func(), error) {
		s, err := m.NewStream(rate)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}, func() { m.Close() }, metrics, nil
}

// networkRecognizer returns the configured first recognizer when it is not
// the embedded one (nil, "", nil, nil when it is).
func networkRecognizer(c SpeechConfig, log *slog.Logger) (speech.Recognizer, string, func(), error) {
	switch c.Recognizer {
	case "vosk":
		r, err := vosk.New(vosk.Config{URL: c.Vosk.URL, FinishTimeout: c.FinishTimeout.Duration})
		return r, "vosk " + c.Vosk.URL, nil, err
	case "openai":
		r, err := openai.NewRecognizer(c.openAI(c.OpenAI.STTModel))
		return r, "openai " + c.OpenAI.URL, nil, err
	case "sherpa":
		r, err := sherpa.NewRecognizer(c.sherpa(log))
		if err != nil {
			return nil, "", nil, err
		}
		return r, "sherpa-onnx", func() { r.Close() }, nil
	}
	return nil, "", nil, nil
}

// startSynth returns the prompts' synthesizer: espeak-ng in process, or a
// network or sherpa engine with espeak-ng as its fallback.
func startSynth(c SpeechConfig, dataDir string, log *slog.Logger) (*ivr.RenderCache, func()) {
	rc := &ivr.RenderCache{Dir: filepath.Join(dataDir, "prompts", "tts"), Log: log}
	var closeFn func()
	var err error
	switch c.Synthesizer {
	case "openai":
		var s *openai.Synthesizer
		if s, err = openai.NewSynthesizer(c.openAI(c.OpenAI.TTSModel)); err == nil {
			rc.Engine, rc.Name = s, fmt.Sprintf("openai %s %s %s/%s", c.OpenAI.URL, c.OpenAI.TTSModel, c.OpenAI.VoiceRO, c.OpenAI.VoiceEN)
		}
	case "sherpa":
		var s *sherpa.Synthesizer
		if s, err = sherpa.NewSynthesizer(c.sherpa(log)); err == nil {
			rc.Engine, rc.Name = s, "sherpa "+c.Sherpa.TTSDirRO+" "+c.Sherpa.TTSDirEN
			closeFn = func() { s.Close() }
		}
	}
	if err != nil {
		log.Error("speech synthesizer not started: espeak-ng speaks the prompts", "synthesizer", c.Synthesizer, "err", err)
	}
	if rc.Engine != nil {
		if fb, err := espeak.New(espeak.Options{CacheBytes: -1}); err == nil {
			rc.Fallback = fb
		} else {
			log.Warn("no fallback synthesizer (apt-get install espeak-ng libespeak-ng-dev)", "err", err)
		}
	}
	if closeFn == nil {
		closeFn = func() {}
	}
	return rc, closeFn
}

func (c SpeechConfig) openAI(model string) openai.Config {
	return openai.Config{
		BaseURL: c.OpenAI.URL, APIKey: c.OpenAI.APIKey, Model: model, Timeout: c.OpenAI.Timeout.Duration,
		Voices: map[string]string{"ro": c.OpenAI.VoiceRO, "en": c.OpenAI.VoiceEN},
	}
}

func (c SpeechConfig) sherpa(log *slog.Logger) sherpa.Config {
	s := c.Sherpa
	cfg := sherpa.Config{ASR: map[string]string{}, TTS: map[string]string{}, ASRKind: s.ASRKind,
		Instances: s.Instances, Threads: s.Threads, Float: s.Float, Logger: log}
	for lang, dir := range map[string]string{"ro": s.ASRDirRO, "en": s.ASRDirEN} {
		if dir != "" {
			cfg.ASR[lang] = dir
		}
	}
	for lang, dir := range map[string]string{"ro": s.TTSDirRO, "en": s.TTSDirEN} {
		if dir != "" {
			cfg.TTS[lang] = dir
		}
	}
	return cfg
}
