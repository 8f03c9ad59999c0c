package sherpa

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	so "github.com/k2-fsa/sherpa-onnx-go-linux"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

// Utterance limits: whisper sees at most 30 s at once; a transducer is
// given up to 2 minutes.
const (
	maxWhisper    = 30 * time.Second
	maxTransducer = 2 * time.Minute
)

// DefaultSilenceDBFS is the default of Config.SilenceDBFS.
const DefaultSilenceDBFS = -55

// Recognizer is the sherpa-onnx offline speech.Recognizer. Safe for
// concurrent use; Close it to free the models.
type Recognizer struct {
	cfg     Config
	silence float64
	langs   map[string]*asrLang

	stop      chan struct{} // closed by Close
	closeOnce sync.Once
	mu        sync.Mutex // guards wg.Add against Close
	closed    bool
	wg        sync.WaitGroup // decode goroutines
	pools     []*pool[*so.OfflineRecognizer]
}

// asrLang is the model and pool serving one language.
type asrLang struct {
	model *ASRModel
	pool  *pool[*so.OfflineRecognizer]
	max   time.Duration
}

var _ speech.Recognizer = (*Recognizer)(nil)

// NewRecognizer checks every folder of cfg.ASR, loads one instance of
// each model (so a model sherpa-onnx refuses is an error now, not at the
// first call) and returns the Recognizer.
func NewRecognizer(cfg Config) (*Recognizer, error) {
	if len(cfg.ASR) == 0 {
		return nil, fmt.Errorf("%w: no recognition model folder configured", ErrModelDir)
	}
	r := &Recognizer{cfg: cfg, silence: cfg.SilenceDBFS, langs: map[string]*asrLang{}, stop: make(chan struct{})}
	if r.silence == 0 {
		r.silence = DefaultSilenceDBFS
	}
	models := map[string]*ASRModel{} // by folder
	shared := map[string]*pool[*so.OfflineRecognizer]{}
	langs := make([]string, 0, len(cfg.ASR))
	for l := range cfg.ASR {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, lang := range langs {
		dir := cfg.ASR[lang]
		m := models[dir]
		if m == nil {
			var err error
			if m, err = DetectASR(dir, cfg.ASRKind, cfg.Float); err != nil {
				r.Close()
				return nil, fmt.Errorf("recognizer for %q: %w", lang, err)
			}
			models[dir] = m
		}
		if !m.Supports(lang) {
			r.Close()
			if !m.Multilingual {
				return nil, fmt.Errorf("%w: recognizer for %q: %s is an English-only whisper model", speech.ErrUnsupported, lang, dir)
			}
			return nil, fmt.Errorf("%w: recognizer for %q: the whisper model in %s does not list that language", speech.ErrUnsupported, lang, dir)
		}
		// Whisper is told the language, so each language has its own
		// instances; a transducer's instances serve every language
		// configured with its folder.
		key := dir
		if m.Kind == KindWhisper && m.Multilingual {
			key = dir + "\x00" + lang
		}
		p := shared[key]
		if p == nil {
			var err error
			name := m.Dir
			if m.Kind == KindWhisper {
				name += " (" + lang + ")"
			}
			p, err = newPool(name, cfg.instances(), cfg.logger(),
				func() (*so.OfflineRecognizer, error) { return newOfflineRecognizer(m, lang, cfg.threads()) },
				so.DeleteOfflineRecognizer)
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("recognizer for %q: %w", lang, err)
			}
			shared[key] = p
			r.pools = append(r.pools, p)
		}
		al := &asrLang{model: m, pool: p, max: maxTransducer}
		if m.Kind == KindWhisper {
			al.max = maxWhisper
		}
		r.langs[lang] = al
	}
	return r, nil
}

// Languages returns the configured languages, sorted.
func (r *Recognizer) Languages() []string {
	out := make([]string, 0, len(r.langs))
	for l := range r.langs {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// Close stops new streams, waits for the decodes under way and frees the
// models. Finish on a stream of a closed Recognizer returns
// speech.ErrClosed.
func (r *Recognizer) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		close(r.stop)
		r.mu.Unlock()
		r.wg.Wait()
		for _, p := range r.pools {
			p.close()
		}
	})
	return nil
}

// NewStream implements speech.Recognizer.
func (r *Recognizer) NewStream(ctx context.Context, o speech.StreamOptions) (speech.Stream, error) {
	if err := speech.CheckRate(o.Rate); err != nil {
		return nil, err
	}
	al := r.langs[o.Lang]
	if al == nil {
		return nil, fmt.Errorf("%w: language %q (sherpa recognizer has %v)", speech.ErrUnsupported, o.Lang, r.Languages())
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-r.stop:
		return nil, speech.ErrClosed
	default:
	}
	u := &utterance{r: r, al: al, ctx: ctx, o: o, peak: math.Inf(-1),
		max: int(al.max.Seconds()) * modelRate, pcm: make([]float32, 0, 5*modelRate)}
	if o.Rate != modelRate {
		rs, err := audio.NewResampler(o.Rate, modelRate)
		if err != nil {
			return nil, err
		}
		u.rs = rs
		u.up = make([]int16, rs.OutLen(audio.SamplesPerFrame(o.Rate)))
	}
	return u, nil
}

// utterance buffers one stream's audio (16 kHz float) until Finish.
type utterance struct {
	r      *Recognizer
	al     *asrLang
	ctx    context.Context
	o      speech.StreamOptions
	rs     *audio.Resampler // nil at 16 kHz
	up     []int16
	pcm    []float32
	max    int
	peak   float64 // loudest frame, dBFS
	closed bool
}

// Write implements speech.Stream: it resamples the frame to 16 kHz and
// appends it; nothing is decoded before Finish.
func (u *utterance) Write(frame []int16) error {
	if u.closed {
		return speech.ErrClosed
	}
	if err := u.ctx.Err(); err != nil {
		return err
	}
	if err := speech.CheckFrame(frame, u.o.Rate); err != nil {
		return err
	}
	in := frame
	if u.rs != nil {
		n := u.rs.Process(u.up, frame)
		in = u.up[:n]
	}
	if len(u.pcm)+len(in) > u.max {
		return fmt.Errorf("%w: utterance longer than the %v the %s model takes", speech.ErrUnsupported, u.al.max, u.al.model.Kind)
	}
	if db := audio.DBFS(frame); db > u.peak {
		u.peak = db
	}
	for _, s := range in {
		u.pcm = append(u.pcm, float32(s)/32768)
	}
	return nil
}

// Partial never has anything: the models decode whole utterances.
func (u *utterance) Partial() (speech.Result, bool) { return speech.Result{}, false }

// Finish implements speech.Stream: it takes a model instance (waiting
// while all are busy), decodes on a goroutine of the Recognizer and
// returns the result, or ctx's (or the stream context's) error as soon as
// that is done; an abandoned decode finishes in the background and its
// instance goes back to the pool.
func (u *utterance) Finish(ctx context.Context) (speech.Result, error) {
	if u.closed {
		return speech.Result{}, speech.ErrClosed
	}
	u.closed = true
	pcm := u.pcm
	u.pcm = nil
	if err := u.ctx.Err(); err != nil {
		return speech.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return speech.Result{}, err
	}
	if len(pcm) == 0 || u.peak < u.r.silence {
		return speech.Result{Final: true}, nil
	}
	// A done stream context counts as a done ctx.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(u.ctx, cancel)()

	// Joined by Close from here on: Close then waits for this Finish to
	// give its instance back before it frees the models.
	u.r.mu.Lock()
	if u.r.closed {
		u.r.mu.Unlock()
		return speech.Result{}, speech.ErrClosed
	}
	u.r.wg.Add(1)
	u.r.mu.Unlock()
	inst, err := u.al.pool.get(ctx, u.r.stop)
	if err != nil {
		u.r.wg.Done()
		return speech.Result{}, u.ctxErr(err)
	}
	done := make(chan *so.OfflineRecognizerResult, 1)
	go func() {
		defer u.r.wg.Done()
		defer u.al.pool.put(inst)
		st := so.NewOfflineStream(inst)
		defer so.DeleteOfflineStream(st)
		st.AcceptWaveform(modelRate, pcm)
		inst.Decode(st)
		done <- st.GetResult()
	}()
	select {
	case res := <-done:
		return u.result(res), nil
	case <-ctx.Done():
		return speech.Result{}, u.ctxErr(ctx.Err())
	}
}

// ctxErr prefers the stream context's error (the call ended) to the
// derived one.
func (u *utterance) ctxErr(err error) error {
	if e := u.ctx.Err(); e != nil {
		return e
	}
	if err == errClosedEngine {
		return speech.ErrClosed
	}
	return err
}

// result turns sherpa-onnx's result into a speech.Result.
func (u *utterance) result(res *so.OfflineRecognizerResult) speech.Result {
	out := speech.Result{Final: true}
	if res == nil {
		return out
	}
	out.Text = speech.NormalizeText(cleanText(res.Text))
	out.Words = words(res.Tokens, res.Timestamps, res.Durations)
	if g := u.o.Grammar; g != nil {
		out.Tag = g.Match(u.o.Lang, out.Text)
	}
	return out
}

// cleanText drops what whisper writes for sounds that are not words:
// "[BLANK_AUDIO]", "(muzică)", "*tuse*", "♪".
func cleanText(s string) string {
	var b strings.Builder
	var closer rune
	for _, c := range s {
		if closer != 0 {
			if c == closer {
				closer = 0
			}
			continue
		}
		switch c {
		case '[':
			closer = ']'
		case '(':
			closer = ')'
		case '*':
			closer = '*'
		case '♪', '♫':
		default:
			b.WriteRune(c)
		}
		if closer != 0 {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// words groups the model's tokens into words with their times: a token
// that starts with a space or "▁" (sentencepiece's word mark) starts a
// word. Without a time for every token there are no words.
func words(tokens []string, ts, durs []float32) []speech.Word {
	if len(tokens) == 0 || len(ts) != len(tokens) {
		return nil
	}
	sec := func(f float32) time.Duration { return time.Duration(float64(f) * float64(time.Second)) }
	var out []speech.Word
	var cur strings.Builder
	var start, end time.Duration
	flush := func() {
		if t := speech.NormalizeText(cur.String()); t != "" {
			for _, w := range strings.Fields(t) {
				out = append(out, speech.Word{Text: w, Start: start, End: max(end, start)})
			}
		}
		cur.Reset()
	}
	for i, tok := range tokens {
		t := sec(ts[i])
		if strings.HasPrefix(tok, " ") || strings.HasPrefix(tok, "▁") || i == 0 {
			if i > 0 {
				end = max(end, t)
				flush()
			}
			start, end = t, t
		}
		cur.WriteString(strings.TrimLeft(tok, " ▁"))
		if len(durs) == len(tokens) && durs[i] > 0 {
			end = max(end, t+sec(durs[i]))
		} else {
			end = max(end, t)
		}
	}
	flush()
	// Timestamps of a model are monotonic; keep the contract if one is
	// not.
	for i := 1; i < len(out); i++ {
		if out[i].Start < out[i-1].Start {
			out[i].Start = out[i-1].Start
		}
		if out[i].End < out[i].Start {
			out[i].End = out[i].Start
		}
	}
	return out
}
