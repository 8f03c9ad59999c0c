package main

import (
	"log/slog"
	"time"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/silero"
	"github.com/govline/ivr/speech/sphinx"
)

// The silero detector's own segment rules are kept short: the turn-taking
// applies min_speech (from the first loud frame) and end_silence on top.
const (
	vadMinSpeech = 64 * time.Millisecond // two of its 32 ms windows
	vadHangover  = 100 * time.Millisecond
)

// startSpeech loads the embedded speech engines for turn-taking. Engines are
// optional: when speech is off or an engine is missing it logs that once
// and returns nil (the line is keys only). The returned function releases
// the engines; call it after the last call ended.
func startSpeech(c SpeechConfig, log *slog.Logger) (*ivr.SpeechConfig, func()) {
	if !c.Enabled {
		log.Info("speech off by configuration ([speech] enabled = false): callers answer with keys")
		return nil, func() {}
	}
	pool, err := silero.NewPool(silero.Options{Threshold: float32(c.VADThreshold), MinSpeech: vadMinSpeech, MinSilence: vadHangover}, 0)
	if err != nil {
		log.Warn("speech off: no voice activity model (run make models); callers answer with keys", "err", err)
		return nil, func() {}
	}
	// Load the model once now, so a broken install shows at start and
	// not at the first call.
	if d, err := pool.Get(8000); err != nil {
		log.Warn("speech off: the voice activity model does not load; callers answer with keys", "err", err)
		pool.Close()
		return nil, func() {}
	} else {
		pool.Put(d)
	}
	// One idle decoder per call that may speak at once: a new one loads
	// the acoustic model.
	rec, err := sphinx.New(sphinx.Options{MaxIdle: 128})
	if err != nil {
		log.Warn("speech off: no recognizer (apt-get install libpocketsphinx-dev pocketsphinx-en-us); callers answer with keys", "err", err)
		pool.Close()
		return nil, func() {}
	}
	log.Info("speech on: barge-in and spoken answers", "recognizer", "pocketsphinx", "vad", "silero",
		"min_speech", c.MinSpeech.Duration, "end_silence", c.EndSilence.Duration)
	sc := &ivr.SpeechConfig{
		Recognizer: ivr.SerialStreams(rec),
		NewVAD: func(rate int) (speech.VAD, func(), error) {
			d, err := pool.Get(rate)
			if err != nil {
				return nil, nil, err
			}
			return d, func() { pool.Put(d) }, nil
		},
		BargeIn:          c.MinSpeech.Duration,
		EndSilence:       c.EndSilence.Duration,
		DigitsEndSilence: c.DigitsEndSilence.Duration,
		MaxUtterance:     c.MaxUtterance.Duration,
		NoiseMargin:      c.NoiseMarginDB,
	}
	return sc, func() {
		rec.Close()
		pool.Close()
	}
}
