package sherpa

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	so "github.com/k2-fsa/sherpa-onnx-go-linux"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

// DefaultWPM is the speaking rate a voice has at speed 1: a request's
// Speed (words per minute) is played at Speed/DefaultWPM times the
// voice's own pace, within 0.5..2.
const DefaultWPM = 160

// maxSentence bounds a piece of text rendered at once (runes); a longer
// sentence is cut at commas, then at spaces.
const maxSentence = 300

// Synthesizer is the sherpa-onnx offline speech.Synthesizer over piper /
// VITS voices. Safe for concurrent use; Close it to free the models.
type Synthesizer struct {
	cfg    Config
	voices map[string]*ttsVoice

	stop      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex // guards wg.Add against Close
	closed    bool
	wg        sync.WaitGroup // render goroutines
	pools     []*pool[*so.OfflineTts]
}

type ttsVoice struct {
	model *TTSModel
	pool  *pool[*so.OfflineTts]
}

var _ speech.Synthesizer = (*Synthesizer)(nil)

// NewSynthesizer checks every folder of cfg.TTS, loads one instance of
// each voice and returns the Synthesizer.
func NewSynthesizer(cfg Config) (*Synthesizer, error) {
	if len(cfg.TTS) == 0 {
		return nil, fmt.Errorf("%w: no voice folder configured", ErrModelDir)
	}
	s := &Synthesizer{cfg: cfg, voices: map[string]*ttsVoice{}, stop: make(chan struct{})}
	byDir := map[string]*ttsVoice{}
	langs := make([]string, 0, len(cfg.TTS))
	for l := range cfg.TTS {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, lang := range langs {
		dir := cfg.TTS[lang]
		if v := byDir[dir]; v != nil {
			s.voices[lang] = v
			continue
		}
		m, err := DetectTTS(dir, cfg.Float)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("voice for %q: %w", lang, err)
		}
		p, err := newPool(m.Dir, cfg.instances(), cfg.logger(),
			func() (*so.OfflineTts, error) { return newOfflineTts(m, cfg.threads()) },
			so.DeleteOfflineTts)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("voice for %q: %w", lang, err)
		}
		s.pools = append(s.pools, p)
		v := &ttsVoice{model: m, pool: p}
		byDir[dir] = v
		s.voices[lang] = v
	}
	return s, nil
}

// Close stops the renderings under way (at their next sentence), waits
// for them and frees the models.
func (s *Synthesizer) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.stop)
		s.mu.Unlock()
		s.wg.Wait()
		for _, p := range s.pools {
			p.close()
		}
	})
	return nil
}

// Voice returns the model serving lang, nil if none.
func (s *Synthesizer) Voice(lang string) *TTSModel {
	if v := s.voices[lang]; v != nil {
		return v.model
	}
	return nil
}

// Synthesize implements speech.Synthesizer. req.Voice is "" (speaker 0)
// or a speaker number of a multi-speaker model; req.Speed is words per
// minute (see DefaultWPM).
func (s *Synthesizer) Synthesize(ctx context.Context, req speech.SynthRequest) (speech.Audio, error) {
	if err := speech.CheckRate(req.Rate); err != nil {
		return nil, err
	}
	v := s.voices[req.Lang]
	if v == nil {
		return nil, fmt.Errorf("%w: language %q has no sherpa voice", speech.ErrUnsupported, req.Lang)
	}
	sid := 0
	if req.Voice != "" {
		n, err := strconv.Atoi(req.Voice)
		if err != nil || n < 0 || n >= v.model.Speakers {
			return nil, fmt.Errorf("%w: voice %q (the %s voice has speakers 0..%d)", speech.ErrUnsupported, req.Voice, req.Lang, v.model.Speakers-1)
		}
		sid = n
	}
	speed := float32(1)
	if req.Speed > 0 {
		speed = min(2, max(0.5, float32(req.Speed)/DefaultWPM))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rs, err := audio.NewResampler(v.model.Rate, req.Rate)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	live := speech.NewLive(ctx, cancel) // Close stops the rendering at the next sentence
	a := speech.NewBufferedAudio(ctx, req.Rate, live)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return nil, speech.ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer cancel()
		live.Finish(s.render(rctx, v, rs, live, splitSentences(req.Text), sid, speed))
	}()
	return a, nil
}

// render renders the sentences one by one into a, checking between them
// whether the reader still wants the audio.
func (s *Synthesizer) render(ctx context.Context, v *ttsVoice, rs *audio.Resampler, a *speech.Live, sentences []string, sid int, speed float32) error {
	var pcm, out []int16
	spoken := false
	for _, sent := range sentences {
		if ctx.Err() != nil {
			return nil // the reader left; ReadFrame reports why
		}
		inst, err := v.pool.get(ctx, s.stop)
		if err != nil {
			if err == errClosedEngine {
				return speech.ErrClosed
			}
			return nil
		}
		gen := inst.Generate(sent, sid, speed)
		v.pool.put(inst)
		if gen == nil || len(gen.Samples) == 0 {
			continue
		}
		spoken = true
		pcm = floatToPCM(pcm[:0], gen.Samples)
		out = resample(rs, out, pcm)
		a.Push(out)
	}
	if !spoken {
		for _, sent := range sentences {
			if strings.ContainsFunc(sent, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
				return fmt.Errorf("%w: the %s voice rendered no audio for the text", speech.ErrEngine, v.model.Dir)
			}
		}
		return nil
	}
	// Push the resampler's filter tail out.
	a.Push(resample(rs, out, make([]int16, rs.From()/50)))
	return nil
}

// floatToPCM converts samples in [-1, 1] to 16-bit, clipping.
func floatToPCM(dst []int16, src []float32) []int16 {
	for _, f := range src {
		v := f * 32767
		switch {
		case v > 32767:
			v = 32767
		case v < -32768:
			v = -32768
		}
		dst = append(dst, int16(v))
	}
	return dst
}

// resample converts src with rs into dst (reused) and returns it.
func resample(rs *audio.Resampler, dst, src []int16) []int16 {
	need := rs.OutLen(len(src))
	if cap(dst) < need {
		dst = make([]int16, need)
	}
	n := rs.Process(dst[:need], src)
	return dst[:n]
}

// splitSentences cuts text into the pieces rendered one at a time: after
// . ! ? ; … followed by a space, at line breaks, and pieces longer than
// maxSentence runes at their last comma (or space) before the limit.
func splitSentences(text string) []string {
	var out []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		for utf8.RuneCountInString(s) > maxSentence {
			cut := byteOfRune(s, maxSentence)
			i := strings.LastIndex(s[:cut], ", ")
			if i <= 0 {
				i = strings.LastIndexByte(s[:cut], ' ')
			}
			if i <= 0 {
				i = cut
			} else {
				i++
			}
			out = append(out, strings.TrimSpace(s[:i]))
			s = strings.TrimSpace(s[i:])
		}
		if s != "" {
			out = append(out, s)
		}
	}
	start := 0
	rs := []rune(text)
	pos := 0 // byte offset of rs[i]
	for i, r := range rs {
		next := pos + utf8.RuneLen(r)
		switch {
		case r == '\n':
			add(text[start:pos])
			start = next
		case strings.ContainsRune(".!?;…", r) && (i+1 == len(rs) || unicode.IsSpace(rs[i+1])):
			add(text[start:next])
			start = next
		}
		pos = next
	}
	add(text[start:])
	return out
}

// byteOfRune returns the byte offset of the n-th rune of s.
func byteOfRune(s string, n int) int {
	i := 0
	for b := range s {
		if i == n {
			return b
		}
		i++
	}
	return len(s)
}
