package ivr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/tickets"
)

// The turn-taking stage, driven frame by frame with a scripted voice
// activity detector (a frame is speech when it is loud) and a scripted
// recognizer (its result says how many frames it heard), so every rule is
// tested without an engine, a clock or a call.

const testRate = 8000

var (
	loudFrame  = altFrame(3000)   // about 70 dB, bright as words: loud, and speech to the scripted VAD
	humFrame   = constFrame(3000) // as loud, but dark: a hum
	quietFrame = constFrame(0)
	noiseFrame = constFrame(2500) // loud, but the scripted VAD hears no speech in it
	// loud, and the scripted VAD's model finds it probably speech, but
	// its segment never starts
	likelyFrame = altFrame(2800)
)

// altFrame is a square wave at half the rate, between v and -v (f[0] is v).
func altFrame(v int16) []int16 {
	f := make([]int16, testRate/50)
	for i := range f {
		f[i] = v
		if i%2 == 1 {
			f[i] = -v
		}
	}
	return f
}

func constFrame(v int16) []int16 {
	f := make([]int16, testRate/50)
	for i := range f {
		f[i] = v
	}
	return f
}

// scriptVAD says speech for frames whose first sample is 3000; its
// probability is 0.9 for those and for frames whose first is 2800.
type scriptVAD struct{}

func (scriptVAD) Process(f []int16) (speech.Activity, error) {
	a := speech.Activity{Speech: f[0] == 3000}
	if f[0] == 3000 || f[0] == 2800 {
		a.Probability = 0.9
	}
	return a, nil
}
func (scriptVAD) Reset() {}

// scriptRec is a recognizer whose result is "<text> <frames heard>"; it
// fails at the step named in fail ("start", "write", "finish").
type scriptRec struct {
	text string
	fail string
	// partial, when set, is the partial result's text after n frames
	partial func(n int) string
	mu      sync.Mutex
	opts    []speech.StreamOptions // every stream's options
}

func (r *scriptRec) NewStream(ctx context.Context, o speech.StreamOptions) (speech.Stream, error) {
	r.mu.Lock()
	r.opts = append(r.opts, o)
	r.mu.Unlock()
	if r.fail == "start" {
		return nil, fmt.Errorf("%w: refused", speech.ErrEngine)
	}
	if o.Grammar == nil {
		return nil, fmt.Errorf("%w: a grammar is needed", speech.ErrUnsupported)
	}
	return &scriptStream{r: r, g: o.Grammar, lang: o.Lang}, nil
}

func (r *scriptRec) streams() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.opts)
}

type scriptStream struct {
	r    *scriptRec
	n    int
	g    *speech.Grammar
	lang string
	last string // the partial text last reported
}

func (s *scriptStream) Write([]int16) error {
	if s.r.fail == "write" {
		return fmt.Errorf("%w: connection reset", speech.ErrEngine)
	}
	s.n++
	return nil
}
func (s *scriptStream) Partial() (speech.Result, bool) {
	if s.r.partial == nil {
		return speech.Result{}, false
	}
	p := s.r.partial(s.n)
	changed := p != s.last
	s.last = p
	return speech.Result{Text: p, Tag: s.g.Match(s.lang, p)}, changed
}
func (s *scriptStream) Finish(ctx context.Context) (speech.Result, error) {
	if s.r.fail == "finish" {
		return speech.Result{}, fmt.Errorf("%w: no answer", speech.ErrEngine)
	}
	if err := ctx.Err(); err != nil {
		return speech.Result{}, err
	}
	return speech.Result{Final: true, Text: fmt.Sprintf("%s %d", s.r.text, s.n), Tag: s.g.Match(s.lang, s.r.text), Confidence: 0.9}, nil
}

// earRig is an ear on a call of a real engine (for its call log), fed by
// the test goroutine, with the unanswered reports collected.
type earRig struct {
	t       *testing.T
	e       *ear
	ctx     context.Context
	cancel  context.CancelCauseFunc
	stop    context.CancelFunc
	store   *tickets.Store
	callID  string
	mu      sync.Mutex
	alone   []string // "why: text"
	metrics *Metrics
}

func newEarRig(t *testing.T, rec, fb speech.Recognizer, tweak func(*SpeechConfig)) *earRig {
	t.Helper()
	store, err := tickets.Open(filepath.Join(t.TempDir(), "ivr.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	calls := store.NewCallLog(0, log)
	t.Cleanup(func() { calls.Close() })
	eng := &Engine{Calls: calls, Metrics: NewMetrics(), Log: log}
	tr, err := eng.Begin(CallInfo{ID: "ear-1", Telephony: "sip", Rate: testRate})
	if err != nil {
		t.Fatal(err)
	}
	cfg := SpeechConfig{Recognizer: rec, Fallback: fb,
		NewVAD: func(int) (speech.VAD, func(), error) { return scriptVAD{}, func() {}, nil }}
	if tweak != nil {
		tweak(&cfg)
	}
	r := &earRig{t: t, store: store, callID: "ear-1", metrics: eng.Metrics}
	s := &Session{Tracker: tr, Log: log, Lang: "ro", Info: CallInfo{ID: "ear-1", Rate: testRate}}
	r.e = newEar(cfg, testRate, s)
	r.e.unanswered = func(res speech.Result, at time.Time, why string) {
		r.mu.Lock()
		r.alone = append(r.alone, why+": "+res.Text)
		r.mu.Unlock()
	}
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	r.stop = r.e.start(r.ctx)
	return r
}

// feed gives the ear n copies of f.
func (r *earRig) feed(f []int16, n int) {
	for range n {
		r.e.frame(r.ctx, append([]int16(nil), f...))
	}
}

// end ends the call (cause: the call ended, or the flow ended) and waits
// for the ear's last work.
func (r *earRig) end(cause error) {
	r.cancel(cause)
	r.e.stop(r.ctx, r.stop)
}

func (r *earRig) reports() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.alone...)
}

// next returns the Listen's next event, failing when there is none.
func next(t *testing.T, req *turnReq) turnEvent {
	t.Helper()
	select {
	case ev := <-req.events:
		return ev
	default:
		t.Fatal("no event for the Listen")
	}
	return turnEvent{}
}

func choiceGrammar() *speech.Grammar { return (&speech.Grammar{}).Add("pașaport") }

func TestEndpointer(t *testing.T) {
	// bargeIn 6 frames (120 ms), utterances of at most 200 frames.
	newEP := func() *endpointer { return newEndpointer(6, 200, 10) }
	run := func(p *endpointer, f []int16, n, end int) (evs []epEvent, lens []int) {
		for range n {
			loud, _ := p.loud(f)
			ev, fs := p.push(f, loud, loud && f[0] == 3000, end)
			if ev != epNone {
				evs = append(evs, ev)
				lens = append(lens, len(fs))
			}
		}
		return
	}
	t.Run("start after sustained speech, from the pre-roll", func(t *testing.T) {
		p := newEP()
		run(p, quietFrame, 40, 35)
		evs, lens := run(p, loudFrame, 6, 35)
		if len(evs) != 1 || evs[0] != epStart || lens[0] != prerollLen {
			t.Fatalf("events %v %v, want one start with the %d frames of pre-roll", evs, lens, prerollLen)
		}
	})
	t.Run("a short burst starts nothing", func(t *testing.T) {
		p := newEP()
		run(p, quietFrame, 10, 35)
		if evs, _ := run(p, loudFrame, 5, 35); len(evs) != 0 {
			t.Fatalf("events %v for 100 ms of speech", evs)
		}
		if evs, _ := run(p, quietFrame, 10, 35); len(evs) != 0 {
			t.Fatalf("events %v after the burst", evs)
		}
	})
	t.Run("noise the VAD rejects starts nothing", func(t *testing.T) {
		p := newEP()
		if evs, _ := run(p, noiseFrame, 200, 35); len(evs) != 0 {
			t.Fatalf("events %v on noise", evs)
		}
	})
	t.Run("a voice in the room starts nothing, the caller over it does", func(t *testing.T) {
		p := newEP()
		tv := []int16{600, 900, 1200, 800, 300} // a television: speech to the VAD, about 58 dB
		var evs []epEvent
		for i := range 300 { // 6 s
			f := constFrame(tv[i/7%len(tv)])
			loud, _ := p.loud(f)
			if ev, _ := p.push(f, loud, true, 35); ev != epNone {
				evs = append(evs, ev)
			}
		}
		if len(evs) > 0 {
			t.Fatalf("the television started an utterance: %v", evs)
		}
		caller := constFrame(5000) // 15 dB over the television
		for range 6 {
			loud, _ := p.loud(caller)
			if ev, _ := p.push(caller, loud, true, 35); ev == epStart {
				return
			}
		}
		t.Fatal("the caller over the television started nothing")
	})
	t.Run("end after the turn's silence", func(t *testing.T) {
		for _, end := range []int{35, 75} { // 700 ms; 1.5 s while reading digits
			p := newEP()
			run(p, quietFrame, 30, end)
			run(p, loudFrame, 10, end)
			evs, _ := run(p, quietFrame, end-1, end)
			if len(evs) != end-1 || evs[len(evs)-1] != epFrame {
				t.Fatalf("end %d: ended early: %v", end, evs)
			}
			if evs, _ := run(p, quietFrame, 1, end); len(evs) != 1 || evs[0] != epEnd {
				t.Fatalf("end %d: events %v, want the end", end, evs)
			}
		}
	})
	t.Run("a dip inside a word does not restart the count", func(t *testing.T) {
		p := newEP()
		run(p, quietFrame, 30, 35)
		run(p, loudFrame, 3, 35)
		run(p, quietFrame, 2, 35)
		if evs, _ := run(p, loudFrame, 1, 35); len(evs) != 1 || evs[0] != epStart {
			t.Fatalf("events %v, want a start at the 6th frame from the first", evs)
		}
	})
	t.Run("maximum utterance", func(t *testing.T) {
		p := newEndpointer(6, 50, 10)
		run(p, quietFrame, 30, 35)
		evs, _ := run(p, loudFrame, 60, 35)
		// a start with the pre-roll (25 frames), then frames up to 50 in all
		if i := slices.Index(evs, epEnd); i != 50-prerollLen {
			t.Fatalf("end at event %d, want %d (50 frames in all): %v", i, 50-prerollLen, evs)
		}
	})
}

// A Listen waiting: the utterance goes to its stream from its first frame
// (the pre-roll included) and the result answers it.
func TestEarAnswersTheListen(t *testing.T) {
	rec := &scriptRec{text: "pașaport"}
	r := newEarRig(t, rec, nil, nil)
	req := r.e.listen("ro", choiceGrammar(), 0)
	r.feed(quietFrame, 30)
	r.feed(loudFrame, 20)
	if ev := next(t, req); !ev.started {
		t.Fatalf("event %+v, want started", ev)
	}
	r.feed(quietFrame, 35)
	ev := next(t, req)
	// 25 frames of pre-roll (19 quiet + 6 loud), 14 loud, 35 quiet.
	if ev.res.Text != "pașaport 74" {
		t.Fatalf("result %q, want the whole utterance (74 frames)", ev.res.Text)
	}
	if r.e.ahead.Load() || len(r.reports()) != 0 {
		t.Error("the answered utterance is also held or reported")
	}
	r.end(errFlowDone)
}

// Speech during a barge-in prompt with no Listen: the prompt is told to
// stop, the utterance is held (ahead), and the next Listen gets all of it,
// even after it ended.
func TestEarHoldsSpeechForTheNextListen(t *testing.T) {
	rec := &scriptRec{text: "operator"}
	r := newEarRig(t, rec, nil, nil)
	spoke := r.e.arm(true)
	r.feed(quietFrame, 30)
	r.feed(loudFrame, 6)
	select {
	case <-spoke:
	default:
		t.Fatal("the prompt was not paused")
	}
	r.feed(loudFrame, 34)
	if o := r.e.outcome(context.Background(), 0); o != bargeCut {
		t.Fatalf("outcome %v, want the prompt cut", o)
	}
	if !r.e.ahead.Load() {
		t.Fatal("the utterance is not held for the next question")
	}
	r.e.arm(false)
	r.feed(quietFrame, 35) // it ends before any Listen
	r.feed(quietFrame, 400)
	if !r.e.ahead.Load() {
		t.Fatal("the held utterance went stale: a question after a long prompt must still get it")
	}
	req := r.e.listen("ro", choiceGrammar(), 0)
	r.feed(quietFrame, 1)
	next(t, req) // started
	if ev := next(t, req); ev.res.Text != "operator 94" || ev.blip {
		t.Fatalf("result %q (blip %v), want the held utterance (94 frames)", ev.res.Text, ev.blip)
	}
	if r.e.ahead.Load() {
		t.Error("still ahead after the Listen took it")
	}
	if n := r.metrics.SpeechBargeIns.Load(); n != 1 {
		t.Errorf("%d barge-ins counted", n)
	}
	r.end(errFlowDone)
}

// A Listen that comes while the held utterance goes on takes it from its
// first frame.
func TestEarListenJoinsAnUtteranceUnderWay(t *testing.T) {
	rec := &scriptRec{text: "da"}
	r := newEarRig(t, rec, nil, nil)
	r.feed(quietFrame, 30)
	r.feed(loudFrame, 10)
	req := r.e.listen("ro", choiceGrammar(), 0)
	r.feed(loudFrame, 10)
	r.feed(quietFrame, 35)
	next(t, req)
	if ev := next(t, req); ev.res.Text != "da 74" {
		t.Fatalf("result %q, want the whole utterance", ev.res.Text)
	}
	r.end(errFlowDone)
}

// Whatever no question took is recognized on its own and reported: a held
// utterance when a key answers, one replaced by a newer one, the words
// under way when the call ends, a held one when the flow ends.
func TestEarReportsWhatNoQuestionTook(t *testing.T) {
	t.Run("a key answered", func(t *testing.T) {
		r := newEarRig(t, &scriptRec{text: "pașaport"}, nil, nil)
		r.feed(quietFrame, 30)
		r.feed(loudFrame, 40)
		r.feed(quietFrame, 35)
		r.e.keyAnswered()
		r.feed(quietFrame, 1)
		if r.e.ahead.Load() {
			t.Error("still ahead after a key answered")
		}
		r.end(errFlowDone)
		if got := r.reports(); len(got) != 1 || got[0] != "a key answered: pașaport 94" {
			t.Errorf("reports %q", got)
		}
	})
	t.Run("the caller spoke again", func(t *testing.T) {
		r := newEarRig(t, &scriptRec{text: "x"}, nil, nil)
		r.feed(quietFrame, 30)
		r.feed(loudFrame, 40)
		r.feed(quietFrame, 35)
		r.feed(loudFrame, 10)
		r.end(errFlowDone)
		got := r.reports()
		slices.Sort(got)
		if len(got) != 2 || !strings.HasPrefix(got[0], "no question followed: x ") || got[1] != "the caller spoke again: x 94" {
			t.Errorf("reports %q", got)
		}
	})
	t.Run("the call ended mid-sentence", func(t *testing.T) {
		r := newEarRig(t, &scriptRec{text: "operator"}, nil, nil)
		req := r.e.listen("ro", choiceGrammar(), 0)
		r.feed(quietFrame, 30)
		r.feed(loudFrame, 20)
		next(t, req)
		r.end(End(EndCallerHangup, errors.New("BYE")))
		if got := r.reports(); len(got) != 1 || got[0] != "the call ended: operator 39" {
			t.Errorf("reports %q", got)
		}
		// The last words use the question's grammar.
		if o := rec0(r); o.Grammar == nil || o.Grammar.Match("ro", "pașaport") != "pașaport" {
			t.Errorf("stream options %+v", o)
		}
	})
	t.Run("the flow ended with speech held", func(t *testing.T) {
		r := newEarRig(t, &scriptRec{text: "mulțumesc"}, nil, nil)
		r.feed(quietFrame, 30)
		r.feed(loudFrame, 20)
		r.feed(quietFrame, 35)
		r.end(errFlowDone)
		if got := r.reports(); len(got) != 1 || got[0] != "no question followed: mulțumesc 74" {
			t.Errorf("reports %q", got)
		}
	})
}

func rec0(r *earRig) speech.StreamOptions {
	s := r.e.rec.(*scriptRec)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts[0]
}

// A digit question waits longer for the end of the turn.
func TestEarDigitsWaitLonger(t *testing.T) {
	r := newEarRig(t, &scriptRec{text: "1 2"}, nil, nil)
	req := r.e.listen("ro", &speech.Grammar{Digits: 4}, DefaultDigitsEndSilence)
	r.feed(quietFrame, 30)
	r.feed(loudFrame, 20)
	next(t, req)
	r.feed(quietFrame, 50) // 1 s: a pause between digits, not the end
	select {
	case ev := <-req.events:
		t.Fatalf("the turn ended after 1 s of silence: %+v", ev)
	default:
	}
	r.feed(quietFrame, 25)
	if ev := next(t, req); ev.res.Text != "1 2 114" {
		t.Fatalf("result %q", ev.res.Text)
	}
	r.end(errFlowDone)
}

// A caller who stops in the middle of a phrase ("vreau să vorbesc" and a
// pause to think) gets IncompleteSilence; one whose words made a whole
// phrase gets EndSilence even when the recognizer's partial result,
// decoding the silence after them, moves to the start of a longer phrase
// (pocketsphinx went from "da" to "talk", of "talk to an operator").
func TestEarIncompleteSilence(t *testing.T) {
	g := (&speech.Grammar{}).Add("yes", "da").Add("operator", "talk to an operator", "vreau să vorbesc cu un operator")
	for _, c := range []struct {
		name         string
		partial      func(n int) string
		endsBy, wait int // frames of silence: ended by endsBy, not before wait
	}{
		// 25 frames of pre-roll and 14 more of speech are written before
		// the silence (as in TestEarAnswersTheListen).
		{"whole phrase, then drift in the silence", func(n int) string {
			if n <= 41 {
				return "da"
			}
			return "talk"
		}, 36, 34},
		{"in the middle of a phrase", func(n int) string { return "vreau să vorbesc" }, 76, 74},
		{"partial lagging the last word", func(n int) string {
			if n <= 41 {
				return "vreau să vorbesc"
			}
			return "vreau să vorbesc cu un operator"
		}, 36, 34},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newEarRig(t, &scriptRec{text: "x", partial: c.partial}, nil, nil)
			req := r.e.listen("ro", g, 0)
			r.feed(quietFrame, 30)
			r.feed(loudFrame, 20)
			next(t, req)
			r.feed(quietFrame, c.wait)
			select {
			case ev := <-req.events:
				t.Fatalf("the turn ended within %d frames of silence: %+v", c.wait, ev)
			default:
			}
			r.feed(quietFrame, c.endsBy-c.wait)
			if ev := next(t, req); ev.res.Text == "" {
				t.Fatalf("event %+v, want the result", ev)
			}
			r.end(errFlowDone)
		})
	}
}

// The recognizer ladder: the first engine failing at any step hands the
// utterance (replayed) to the fallback, which answers; when the fallback
// fails too, the Listen is told at once and the call goes on with keys.
func TestEarFallbackLadder(t *testing.T) {
	for _, step := range []string{"start", "write", "finish"} {
		t.Run(step, func(t *testing.T) {
			fb := &scriptRec{text: "pașaport"}
			r := newEarRig(t, &scriptRec{fail: step}, fb, nil)
			req := r.e.listen("ro", choiceGrammar(), 0)
			r.feed(quietFrame, 30)
			r.feed(loudFrame, 20)
			r.feed(quietFrame, 35)
			next(t, req)
			ev := next(t, req)
			if ev.err != nil || !strings.HasPrefix(ev.res.Text, "pașaport ") {
				t.Fatalf("event %+v, want the fallback's result", ev)
			}
			if n := r.metrics.SpeechEngineFallbacks(step); n != 1 {
				t.Errorf("%d moves to the fallback at %s", n, step)
			}
			r.end(errFlowDone)
		})
	}
	t.Run("both fail", func(t *testing.T) {
		r := newEarRig(t, &scriptRec{fail: "write"}, &scriptRec{fail: "write"}, nil)
		req := r.e.listen("ro", choiceGrammar(), 0)
		r.feed(quietFrame, 30)
		r.feed(loudFrame, 20)
		var got turnEvent
		for got.err == nil {
			got = next(t, req)
		}
		if !errors.Is(got.err, errFallback) || !r.e.off.Load() {
			t.Fatalf("event %+v, want the fall back to keys", got)
		}
		if n := r.metrics.SpeechFallbacks("write"); n != 1 {
			t.Errorf("%d fallbacks to keys", n)
		}
		r.end(errFlowDone)
	})
}

// A free question the engine cannot transcribe (a grammar-only engine) is
// answered all the same when the caller speaks: the Listen hears that the
// caller speaks, then, at the utterance's end, that it was untranscribed
// speech from its start; an escape word heard with confidence comes as
// itself. Neither is reported as unanswered (the flow writes the turn).
func TestEarFreeQuestionAnsweredUntranscribed(t *testing.T) {
	for _, c := range []struct {
		said    string
		wantTag string
	}{{"vreau să fiu sunat mâine", ""}, {"operator", "operator"}} {
		t.Run(c.said, func(t *testing.T) {
			r := newEarRig(t, &scriptRec{text: c.said}, nil, nil)
			req := r.e.listen("ro", nil, 0)
			r.feed(quietFrame, 30)
			spoke := time.Now()
			r.feed(loudFrame, 20)
			if ev := next(t, req); !ev.untranscribed || !ev.at.IsZero() {
				t.Fatalf("event %+v, want the caller speaking at an untranscribable question", ev)
			}
			r.feed(quietFrame, 60)
			var ev turnEvent
			select { // recognized on a goroutine of its own
			case ev = <-req.events:
			case <-time.After(5 * time.Second):
				t.Fatal("no answer at the end of the utterance")
			}
			switch {
			case ev.at.IsZero() || ev.at.After(spoke):
				t.Errorf("the answer began at %s, want by %s", ev.at, spoke)
			case c.wantTag == "" && !ev.untranscribed:
				t.Errorf("event %+v, want untranscribed speech", ev)
			case c.wantTag != "" && (ev.untranscribed || ev.res.Tag != c.wantTag):
				t.Errorf("event %+v, want the escape %q", ev, c.wantTag)
			}
			r.end(errFlowDone)
			if got := r.reports(); len(got) != 0 {
				t.Errorf("reported as unanswered: %q", got)
			}
		})
	}
}

// A prompt cut short keeps the words the caller heard, a word heard in
// part included, marked with "…".
func TestHeardText(t *testing.T) {
	const rate = 8000
	segs := []segment{{text: "Bună ziua!", start: 0, end: 8000}, {text: "Spuneți pe scurt cu ce vă putem ajuta.", start: 8000, end: 32000}}
	for _, c := range []struct {
		off  int
		want string
	}{
		{0, ""},
		{1200, "Bună …"},
		{8000, "Bună ziua!"},
		{9000, "Bună ziua! Spuneți …"},
		{32000, "Bună ziua! Spuneți pe scurt cu ce vă putem ajuta."},
	} {
		if got := heard(segs, c.off, rate); got != c.want {
			t.Errorf("heard at %d = %q, want %q", c.off, got, c.want)
		}
	}
	open := []segment{{text: "one two three four", start: 0, open: true}}
	if got := heard(open, 4000, rate); got != "one two …" { // 0.5 s: the second word begun
		t.Errorf("streamed part: %q", got)
	}
}

// A short sound over a barge-in prompt (a "hmm") only pauses it: the
// prompt resumes, the flow does not skip the next prompts, and the next
// Listen is told the held sound is a blip (an answer only if recognized
// with confidence). A key answering drops it too.
func TestEarShortSoundPausesThePrompt(t *testing.T) {
	r := newEarRig(t, &scriptRec{text: "nu"}, nil, nil)
	spoke := r.e.arm(true)
	r.feed(quietFrame, 30)
	r.feed(loudFrame, 18) // 360 ms
	select {
	case <-spoke:
	default:
		t.Fatal("the prompt was not paused")
	}
	r.feed(quietFrame, resumeFrames)
	if o := r.e.outcome(context.Background(), 0); o != bargeResume {
		t.Fatalf("outcome %v, want the prompt resumed", o)
	}
	if r.e.ahead.Load() {
		t.Fatal("a short sound makes the flow skip prompts")
	}
	r.feed(quietFrame, 30) // the utterance ends
	r.e.arm(false)
	req := r.e.listen("ro", choiceGrammar(), 0)
	r.feed(quietFrame, 1)
	next(t, req)
	if ev := next(t, req); !ev.blip || !strings.HasPrefix(ev.res.Text, "nu ") {
		t.Fatalf("event %+v, want the held sound marked blip", ev)
	}
	if n := r.metrics.SpeechBargeIns.Load(); n != 0 {
		t.Errorf("%d barge-ins counted for a short sound", n)
	}
	r.end(errFlowDone)
}

// A sustained loud sound the VAD's model finds probably speech pauses
// the prompt at once, before the VAD's segment starts (the barge-in
// latency's gain); when no utterance follows, the prompt resumes and
// nothing is held.
func TestEarPausesEarlyThenResumes(t *testing.T) {
	r := newEarRig(t, &scriptRec{text: "nu"}, nil, nil)
	spoke := r.e.arm(true)
	r.feed(quietFrame, 30)
	r.feed(likelyFrame, frames(DefaultBargeIn)-1)
	select {
	case <-spoke:
		t.Fatal("the prompt paused before min_speech of loud sound")
	default:
	}
	r.feed(likelyFrame, 1)
	select {
	case <-spoke:
	default:
		t.Fatal("the prompt was not paused at min_speech of a probable voice")
	}
	r.feed(likelyFrame, earlyFrames)
	if o := r.e.outcome(context.Background(), 0); o != bargeResume {
		t.Fatalf("outcome %v, want the prompt resumed: no utterance started", o)
	}
	if r.e.ahead.Load() || r.e.dest != toNowhere {
		t.Fatal("a sound the VAD never confirmed is held as an utterance")
	}
	if h := r.metrics.BargeInLatency; h.Count() != 0 || r.metrics.SpeechBargeIns.Load() != 0 {
		t.Errorf("a resumed prompt counted as a barge-in")
	}
	// The caller then speaks: the prompt pauses again and is cut.
	r.feed(quietFrame, 10)
	spoke = r.e.arm(true)
	r.feed(loudFrame, cutFrames+2)
	select {
	case <-spoke:
	default:
		t.Fatal("speech after a resumed sound did not pause the prompt")
	}
	if o := r.e.outcome(context.Background(), 0); o != bargeCut {
		t.Fatalf("outcome %v, want the prompt cut by speech", o)
	}
	r.end(errFlowDone)
}

// A short dark sound (a closed-mouth "hmm") is neither held nor
// recognized: the next question does not hear it.
func TestEarDropsAHum(t *testing.T) {
	rec := &scriptRec{text: "english"}
	r := newEarRig(t, rec, nil, nil)
	spoke := r.e.arm(true)
	r.feed(quietFrame, 30)
	r.feed(humFrame, 18)
	select {
	case <-spoke:
	default:
		t.Fatal("the prompt was not paused")
	}
	r.feed(quietFrame, 40)
	if o := r.e.outcome(context.Background(), 0); o != bargeResume {
		t.Fatalf("outcome %v, want the prompt resumed", o)
	}
	r.e.arm(false)
	req := r.e.listen("ro", choiceGrammar(), 0)
	r.feed(quietFrame, 5)
	select {
	case ev := <-req.events:
		t.Fatalf("the hum reached the question: %+v", ev)
	default:
	}
	r.end(errFlowDone)
	if got := r.reports(); len(got) != 0 || rec.streams() != 0 {
		t.Errorf("a hum was recognized: reports %q, %d streams", got, rec.streams())
	}
}

// overVoices tells voices in the room (loud frames the VAD hears as
// speech, over a quiet floor) from steady noise the VAD rejects and from a
// quiet line.
func TestEndpointerOverVoices(t *testing.T) {
	// A room voice: syllables (speech to the VAD) with short pauses.
	voice := constFrame(3000)
	for _, tc := range []struct {
		name string
		feed func(p *endpointer)
		want bool
	}{
		{"a quiet line", func(p *endpointer) {
			for range 100 {
				p.push(quietFrame, false, false, 35)
			}
		}, false},
		{"steady noise", func(p *endpointer) {
			for range 100 {
				p.push(noiseFrame, true, false, 35)
			}
		}, false},
		{"a voice in the room", func(p *endpointer) {
			for i := range 100 {
				if i%10 < 3 { // pauses between the words: quiet, no speech
					p.push(quietFrame, false, false, 35)
				} else { // short words: speech, never long enough to start an utterance
					p.push(voice, false, true, 35)
				}
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newEndpointer(60, 200, 10)
			tc.feed(p)
			if got := p.overVoices(); got != tc.want {
				t.Errorf("overVoices %v (floor %.1f, p90 %.1f), want %v", got, p.floor, p.bg.p90, tc.want)
			}
		})
	}
}
