package sip_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/openai"
	"github.com/govline/ivr/speech/silero"
	"github.com/govline/ivr/speech/sphinx"
	"github.com/govline/ivr/tickets"
)

// The embedded engines, loaded once for the test binary.
var (
	enginesOnce sync.Once
	vadModel    *silero.Model
	recognizer  *sphinx.Recognizer
	talker      *espeak.Synth
	enginesErr  error
)

// speechEngines returns the shared VAD model (the default of ivrd), the recognizer and the synthesizer
// that plays the caller, or skips the test when they are not installed
// (make deps installs them).
func speechEngines(t testing.TB) (*silero.Model, *sphinx.Recognizer, *espeak.Synth) {
	t.Helper()
	enginesOnce.Do(func() {
		if vadModel, enginesErr = silero.NewModel(silero.ModelOptions{Options: silero.Options{MinSpeech: 64 * time.Millisecond, MinSilence: 100 * time.Millisecond}}); enginesErr != nil {
			return
		}
		if recognizer, enginesErr = sphinx.New(sphinx.Options{MaxIdle: 128}); enginesErr != nil {
			return
		}
		// The caller renders each utterance alone, so what the caller says
		// does not depend on what the line rendered before (Isolated).
		talker, enginesErr = espeak.New(espeak.Options{Isolated: true})
	})
	if enginesErr != nil {
		testenv.Missing(t, "the embedded speech engines", "Debian packages espeak-ng libespeak-ng-dev libpocketsphinx-dev pocketsphinx-en-us and the VAD model (make deps models)", enginesErr)
	}
	return vadModel, recognizer, talker
}

// speechConfig is the line's speech with rec as the recognizer.
func speechConfig(vad *silero.Model, rec speech.Recognizer) *ivr.SpeechConfig {
	return &ivr.SpeechConfig{
		Recognizer: rec,
		NewVAD: func(rate int) (speech.VAD, func(), error) {
			s, err := vad.NewStream(rate)
			if err != nil {
				return nil, nil, err
			}
			return s, func() { s.Close() }, nil
		},
	}
}

// utterance renders what the caller says, at the call's rate.
func utterance(t testing.TB, syn *espeak.Synth, lang, text string, rate int) []int16 {
	t.Helper()
	a, err := syn.Synthesize(context.Background(), speech.SynthRequest{Text: text, Lang: lang, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := speech.ReadAll(a, rate)
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

// speak queues pcm to be sent in 20 ms frames (then silence again). It
// returns early when the call ends.
func (c *call) speak(pcm []int16) {
	n := c.rate / 50
	for off := 0; off < len(pcm); off += n {
		f := make([]int16, n)
		copy(f, pcm[off:min(off+n, len(pcm))])
		select {
		case c.send <- f:
		case <-c.d.Context().Done():
			return
		}
	}
}

// speechLine starts a line running flow with speech through rec.
func speechLine(t *testing.T, flow flowFunc, rec speech.Recognizer) *line {
	pool, sphinxRec, _ := speechEngines(t)
	if rec == speech.Recognizer(sphinxRec) {
		rec = ivr.SerialStreams(rec)
	}
	return startLine(t, func(_ *sip.Config, e *ivr.Engine) {
		e.Flow = flow
		e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
		e.Lang = "ro"
		e.Speech = speechConfig(pool, rec)
	})
}

var menuPhrases = []string{"buletin", "carte de identitate", "pașaport", "cont"}

// nextStep waits for the flow's next step.
func nextStep(t *testing.T, steps <-chan step) step {
	t.Helper()
	select {
	case s := <-steps:
		if s.err != nil {
			t.Fatalf("flow step failed: %v", s.err)
		}
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("the flow did not go on")
	}
	return step{}
}

// callEvents returns the call's event log as "kind detail" lines.
func callEvents(t *testing.T, l *line) string {
	t.Helper()
	_ = l.eng.Calls.Flush(context.Background())
	var lines []string
	for _, id := range l.callIDs(t) {
		ev, err := l.store.Events(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ev {
			lines = append(lines, e.Kind+" "+e.Detail)
		}
	}
	return strings.Join(lines, "\n")
}

func (l *line) callIDs(t *testing.T) []string {
	t.Helper()
	rs, err := l.store.ListCalls(context.Background(), tickets.CallQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

// A caller answers a menu by voice: "pașaport", rendered by espeak-ng,
// through G.711 over RTP, recognized with the menu's grammar.
// menuQuestionLine is a line whose flow asks the menu question once and
// hangs up; steps reports the prompt played, then the answer.
func menuQuestionLine(t *testing.T, rec speech.Recognizer) (*line, chan step) {
	steps := make(chan step, 4)
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		pl, err := ch.Say(ctx, text("ro", "Spuneți pentru ce serviciu sunați."))
		steps <- step{played: pl, err: err}
		in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: menuPhrases, MaxDigits: 1, NoInput: 5 * time.Second})
		steps <- step{input: in, err: err}
		return flows.Outcome{Kind: flows.OutcomeHangup}
	})
	return speechLine(t, flow, rec), steps
}

func TestSpeechAnswersAChoice(t *testing.T) {
	_, rec, syn := speechEngines(t)
	l, steps := menuQuestionLine(t, rec)
	c := l.answered(t)
	nextStep(t, steps)
	said := utterance(t, syn, "ro", "pașaport", c.rate)
	spoke := time.Now()
	c.speak(said)
	in := nextStep(t, steps).input
	heard := time.Now()
	if in.Mode != flows.InputSpeech || in.Text != "pașaport" {
		t.Fatalf("input %+v, want speech \"pașaport\"", in)
	}
	// The answer knows when the caller began to speak (the console plays
	// the recording from there): within the word, its pre-roll allowed
	// for, and at least the word's length before it was heard.
	length := time.Duration(len(said)) * time.Second / time.Duration(c.rate)
	if in.Began.Before(spoke.Add(-500*time.Millisecond)) || in.Began.After(spoke.Add(length)) || heard.Sub(in.Began) < length/2 {
		t.Errorf("the answer began %s after the caller started a %s word, and was heard %s after it began",
			in.Began.Sub(spoke).Round(time.Millisecond), length.Round(time.Millisecond), heard.Sub(in.Began).Round(time.Millisecond))
	}
	if n := l.eng.Metrics.SpeechTurns.Load(); n != 1 {
		t.Errorf("%d speech turns counted, want 1", n)
	}
	if ev := callEvents(t, l); !strings.Contains(ev, `speech.result tag "pașaport"`) {
		t.Errorf("call events lack the speech result:\n%s", ev)
	}
}

// A phone with silence suppression (DTX) stops sending packets when its
// user stops talking: the end of the answer is heard all the same, within
// a second or so of the last word, not at the utterance's 10 s limit.
func TestSpeechEndsWhenThePhoneStopsSending(t *testing.T) {
	_, rec, syn := speechEngines(t)
	l, steps := menuQuestionLine(t, rec)
	c := l.answered(t)
	nextStep(t, steps)
	word := utterance(t, syn, "ro", "pașaport", c.rate)
	// The word's own trailing silence is cut: the phone sends the
	// sound and then nothing.
	last := len(word)
	for last > 0 && word[last-1] > -200 && word[last-1] < 200 {
		last--
	}
	c.speak(word[:last])
	if !waitFor(5*time.Second, func() bool { return len(c.send) == 0 }) {
		t.Fatal("the phone did not send the word")
	}
	c.mute <- true
	quiet := time.Now()
	in := nextStep(t, steps).input
	if in.Mode != flows.InputSpeech || in.Text != "pașaport" {
		t.Fatalf("input %+v, want speech \"pașaport\"", in)
	}
	took := time.Since(quiet)
	t.Logf("answer heard %s after the phone went quiet", took.Round(time.Millisecond))
	if took > 2500*time.Millisecond {
		t.Errorf("the answer came %s after the phone went quiet, want the end of turn within 2.5 s", took.Round(time.Millisecond))
	}
	if ev := callEvents(t, l); !strings.Contains(ev, "speech.gap") {
		t.Errorf("the call log does not say the gap was taken as silence:\n%s", ev)
	}
}

// A free question on the embedded (grammar-only) recognizer: the caller
// who answers by voice is heard as having answered, at the end of the
// words, with untranscribed speech that began when they did; the
// transcript says so, and the line never says it heard nothing.
func TestFreeQuestionAnsweredByVoiceOnAGrammarEngine(t *testing.T) {
	_, rec, syn := speechEngines(t)
	steps := make(chan step, 4)
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		pl, err := ch.Say(ctx, text("ro", "Spuneți pe scurt solicitarea dumneavoastră."))
		steps <- step{played: pl, err: err}
		in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectFree, NoInput: 5 * time.Second})
		steps <- step{input: in, err: err}
		return flows.Outcome{Kind: flows.OutcomeHangup}
	})
	l := speechLine(t, flow, rec)
	c := l.answered(t)
	nextStep(t, steps)
	said := utterance(t, syn, "ro", "aș vrea să știu când este gata cererea mea de pașaport", c.rate)
	spoke := time.Now()
	c.speak(said)
	in := nextStep(t, steps).input
	length := time.Duration(len(said)) * time.Second / time.Duration(c.rate)
	if in.Mode != flows.InputSpeech || !in.Untranscribed || in.Text != "" {
		t.Fatalf("input %+v, want untranscribed speech", in)
	}
	if in.Began.Before(spoke.Add(-500*time.Millisecond)) || in.Began.After(spoke.Add(length/2)) {
		t.Errorf("the answer began %s after the caller started speaking", in.Began.Sub(spoke).Round(time.Millisecond))
	}
	if took := time.Since(spoke); took > length+3*time.Second {
		t.Errorf("the answer came %s after the caller began a %s sentence", took.Round(time.Millisecond), length.Round(time.Millisecond))
	}
	if ev := callEvents(t, l); !strings.Contains(ev, "speech.untranscribed") || strings.Contains(ev, "speech.unanswered") {
		t.Errorf("the call log should say the answer was untranscribed, and nothing unanswered:\n%s", ev)
	}
}

// The caller speaks over a long prompt that allows barge-in: the prompt
// stops within a few frames and the whole utterance (its start included)
// is recognized by the next Listen.
func TestSpeechBargesIn(t *testing.T) {
	_, rec, syn := speechEngines(t)
	steps := make(chan step, 4)
	long := "Bună ziua. Ați sunat la linia de asistență pentru serviciile publice. Pentru cartea de identitate spuneți buletin. Pentru pașaport spuneți pașaport. Pentru contul de pe portal spuneți cont."
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		pl, err := ch.Say(ctx, flows.Prompt{Lang: "ro", BargeIn: true, Parts: []flows.Part{{Kind: flows.PartText, Value: long, Text: long}}})
		steps <- step{played: pl, err: err}
		in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: menuPhrases, MaxDigits: 1, NoInput: 5 * time.Second})
		steps <- step{input: in, err: err}
		return flows.Outcome{Kind: flows.OutcomeHangup}
	})
	l := speechLine(t, flow, rec)
	c := l.answered(t)
	// A second of the prompt itself, so that the caller speaks over it.
	if !waitFor(20*time.Second, func() bool { return c.heardSpeech(0) >= 50 }) {
		t.Fatal("no prompt heard")
	}
	words := utterance(t, syn, "ro", "pașaport", c.rate)
	from := c.heardLen()
	c.speak(words)
	s := nextStep(t, steps)
	if !s.played.Interrupted || strings.Contains(s.played.Heard, "cont.") {
		t.Fatalf("played %+v: want the prompt interrupted", s.played)
	}
	// What the phone heard from the moment it started speaking: the
	// prompt goes on for at most the barge-in time, the VAD's decision and
	// the jitter buffers, then silence.
	time.Sleep(time.Second)
	env := envelope(c.heardSince(from), c.rate)
	_, last := speechSpan(env)
	if last < 0 || last > 25 {
		t.Errorf("the prompt was heard until frame %d after the caller began to speak, want it silent within 500 ms", last)
	}
	in := nextStep(t, steps).input
	if in.Mode != flows.InputSpeech || in.Text != "pașaport" {
		t.Fatalf("input %+v, want speech \"pașaport\"", in)
	}
	if n := l.eng.Metrics.SpeechBargeIns.Load(); n != 1 {
		t.Errorf("%d barge-ins counted, want 1", n)
	}
	// The line's own measure of that latency (ivr_speech_bargein_seconds):
	// the line cannot know it is speech before min_speech (six loud
	// frames, the last arriving 100 ms after the first), and the phone
	// heard silence within 500 ms.
	if h := l.eng.Metrics.BargeInLatency; h.Count() != 1 || h.Quantile(0.5) < 0.12 || h.Quantile(0.5) > 0.5 {
		t.Errorf("barge-in latency: %d observations, median at most %.2f s; want one, over 0.1 s and at most 0.5 s", h.Count(), h.Quantile(0.5))
	}
	if ev := callEvents(t, l); !strings.Contains(ev, "flow.bargein speech during prompt") {
		t.Errorf("call events lack the speech barge-in:\n%s", ev)
	}
}

// White noise at a moderate level (about -26 dBFS) for the whole of a
// barge-in prompt never stops it, and a Listen over it hears nothing.
func TestNoiseDoesNotBargeIn(t *testing.T) {
	_, rec, _ := speechEngines(t)
	steps := make(chan step, 4)
	prompt := "Vă rugăm să așteptați. Solicitarea dumneavoastră este importantă pentru noi și va fi preluată în curând."
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		pl, err := ch.Say(ctx, flows.Prompt{Lang: "ro", BargeIn: true, Parts: []flows.Part{{Kind: flows.PartText, Value: prompt, Text: prompt}}})
		steps <- step{played: pl, err: err}
		in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectYesNo, MaxDigits: 1, NoInput: 2 * time.Second})
		steps <- step{input: in, err: err}
		return flows.Outcome{Kind: flows.OutcomeHangup}
	})
	l := speechLine(t, flow, rec)
	c := l.answered(t)
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]int16, c.rate*12)
	for i := range noise {
		noise[i] = int16(rng.NormFloat64() * 1600)
	}
	c.speak(noise)
	if s := nextStep(t, steps); s.played.Interrupted {
		t.Fatalf("noise interrupted the prompt after %q", s.played.Heard)
	}
	if in := nextStep(t, steps).input; in.Mode != flows.InputNone {
		t.Errorf("noise gave input %+v, want none", in)
	}
	if n := l.eng.Metrics.SpeechBargeIns.Load(); n != 0 {
		t.Errorf("%d barge-ins on noise", n)
	}
}

// brokenRecognizer is an engine whose streams fail as a network engine
// does when its server goes away.
type brokenRecognizer struct{}

func (brokenRecognizer) NewStream(context.Context, speech.StreamOptions) (speech.Stream, error) {
	return brokenStream{}, nil
}

type brokenStream struct{}

func (brokenStream) Write([]int16) error {
	return errors.Join(speech.ErrEngine, errors.New("connection reset"))
}
func (brokenStream) Partial() (speech.Result, bool) {
	return speech.Result{}, false
}
func (brokenStream) Finish(context.Context) (speech.Result, error) {
	return speech.Result{}, speech.ErrClosed
}

// When the recognizer fails, the turn ends at once (no dead air: the flow
// asks again) and the call goes on with keys, which still answer; the
// call's log and the metrics say so.
func TestSpeechFallsBackToKeys(t *testing.T) {
	_, _, syn := speechEngines(t)
	steps := make(chan step, 4)
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		pl, err := ch.Say(ctx, text("ro", "Spuneți pentru ce serviciu sunați."))
		steps <- step{played: pl, err: err}
		in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: menuPhrases, MaxDigits: 1, NoInput: 8 * time.Second})
		steps <- step{input: in, err: err}
		in, err = ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: menuPhrases, MaxDigits: 1, NoInput: 8 * time.Second})
		steps <- step{input: in, err: err}
		ch.Say(ctx, text("ro", "La revedere.")) // the phone is still sending the key's end events
		return flows.Outcome{Kind: flows.OutcomeHangup}
	})
	l := speechLine(t, flow, brokenRecognizer{})
	c := l.answered(t)
	nextStep(t, steps)
	start := time.Now()
	c.speak(utterance(t, syn, "ro", "pașaport", c.rate))
	in := nextStep(t, steps).input
	if in.Mode != flows.InputNone {
		t.Fatalf("input %+v after a recognizer failure, want none (the flow asks again)", in)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the failed turn ended %v after the caller spoke: dead air", d)
	}
	c.dtmf('2')
	if in := nextStep(t, steps).input; in.Mode != flows.InputDTMF || in.Text != "2" {
		t.Errorf("key after the fallback: %+v", in)
	}
	if n := l.eng.Metrics.SpeechFallbacks("write"); n != 1 {
		t.Errorf("%d fallbacks counted, want 1", n)
	}
	if ev := callEvents(t, l); !strings.Contains(ev, "speech.fallback write") {
		t.Errorf("call events lack the fallback:\n%s", ev)
	}
}

// Yes and no by voice, in both languages, through the grammar of the
// call's language.
func TestSpeechYesNo(t *testing.T) {
	_, rec, syn := speechEngines(t)
	for _, c := range []struct{ lang, say, want string }{
		{"en", "yes", "yes"},
		{"ro", "nu", "no"},
	} {
		t.Run(c.lang+"-"+c.say, func(t *testing.T) {
			steps := make(chan step, 4)
			flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
				in, err := ch.Listen(ctx, flows.Listen{Lang: c.lang, Expect: flows.ExpectYesNo, MaxDigits: 1, NoInput: 5 * time.Second})
				steps <- step{input: in, err: err}
				return flows.Outcome{Kind: flows.OutcomeHangup}
			})
			l := speechLine(t, flow, rec)
			call := l.answered(t)
			time.Sleep(300 * time.Millisecond)
			call.speak(utterance(t, syn, c.lang, c.say, call.rate))
			in := nextStep(t, steps).input
			if in.Mode != flows.InputSpeech || flows.YesNo(in.Text) != c.want {
				t.Fatalf("said %q: input %+v, want speech meaning %s", c.say, in, c.want)
			}
		})
	}
}

// The fallback ladder: the first recognizer is a network engine (the
// OpenAI-compatible transcription API) whose server fails or never
// answers; the embedded recognizer takes over with the utterance replayed,
// so the caller's answer is recognized without saying it again, and the
// call's log and the metrics show the step.
func TestSpeechNetworkEngineFallsBackToEmbedded(t *testing.T) {
	pool, rec, syn := speechEngines(t)
	for _, c := range []struct {
		name   string
		server http.HandlerFunc
	}{
		{"server-error", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":{"message":"model is loading","type":"server_error"}}`)
		}},
		{"no-answer", func(w http.ResponseWriter, r *http.Request) {
			// A server that takes the audio and hangs: FinishTimeout
			// ends the wait, and the client's going away this one.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.server)
			t.Cleanup(srv.Close) // after the line's cleanup: its calls hold requests
			network, err := openai.NewRecognizer(openai.Config{BaseURL: srv.URL + "/v1", Model: "whisper-1"})
			if err != nil {
				t.Fatal(err)
			}
			steps := make(chan step, 4)
			flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
				steps <- step{}
				in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: menuPhrases, MaxDigits: 1, NoInput: 8 * time.Second})
				steps <- step{input: in, err: err}
				return flows.Outcome{Kind: flows.OutcomeHangup}
			})
			l := startLine(t, func(_ *sip.Config, e *ivr.Engine) {
				e.Flow = flow
				e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
				e.Lang = "ro"
				e.Speech = speechConfig(pool, network)
				e.Speech.Fallback = ivr.SerialStreams(rec)
				e.Speech.FinishTimeout = time.Second
			})
			call := l.answered(t)
			nextStep(t, steps)
			call.speak(utterance(t, syn, "ro", "pașaport", call.rate))
			in := nextStep(t, steps).input
			if in.Mode != flows.InputSpeech || in.Text != "pașaport" {
				t.Fatalf("input %+v, want speech \"pașaport\" from the embedded recognizer", in)
			}
			if n := l.eng.Metrics.SpeechEngineFallbacks("finish"); n != 1 {
				t.Errorf("%d moves to the fallback recognizer counted, want 1", n)
			}
			if n := l.eng.Metrics.SpeechFallbacks("finish"); n != 0 {
				t.Errorf("%d fallbacks to keys counted, want 0: the embedded engine answered", n)
			}
			if ev := callEvents(t, l); !strings.Contains(ev, "speech.engine-fallback finish") || !strings.Contains(ev, `speech.result tag "pașaport"`) {
				t.Errorf("call events lack the move to the embedded recognizer and its result:\n%s", ev)
			}
		})
	}
}

// A call holds a voice activity detector (megabytes of neural model) only
// while its caller makes sound: none while the line is quiet, one while the
// caller speaks, given back two seconds after.
func TestVADHeldOnlyWhileTheCallerSpeaks(t *testing.T) {
	pool, rec, syn := speechEngines(t)
	var held, taken atomic.Int32
	steps := make(chan step, 4)
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		steps <- step{}
		in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: menuPhrases, MaxDigits: 1, NoInput: 15 * time.Second})
		steps <- step{input: in, err: err}
		<-ctx.Done() // the caller hangs up
		return flows.Outcome{Kind: flows.OutcomeCaller}
	})
	l := startLine(t, func(_ *sip.Config, e *ivr.Engine) {
		e.Flow = flow
		e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
		e.Lang = "ro"
		e.Speech = speechConfig(pool, ivr.SerialStreams(rec))
		newVAD := e.Speech.NewVAD
		e.Speech.NewVAD = func(rate int) (speech.VAD, func(), error) {
			v, release, err := newVAD(rate)
			if err == nil {
				held.Add(1)
				taken.Add(1)
			}
			return v, func() { held.Add(-1); release() }, err
		}
	})
	c := l.answered(t)
	nextStep(t, steps)
	time.Sleep(time.Second)
	if n := held.Load(); n != 0 {
		t.Errorf("%d detectors held while the caller is silent, want 0", n)
	}
	c.speak(utterance(t, syn, "ro", "pașaport", c.rate))
	if in := nextStep(t, steps).input; in.Mode != flows.InputSpeech || in.Text != "pașaport" {
		t.Fatalf("input %+v, want speech \"pașaport\"", in)
	}
	if taken.Load() == 0 {
		t.Error("no detector was taken for the caller's speech")
	}
	if !waitFor(5*time.Second, func() bool { return held.Load() == 0 }) {
		t.Errorf("%d detectors still held 5 s after the caller stopped, want 0", held.Load())
	}
	c.hangup()
}

// speechAdmission is a flow that tells whether its call answers by voice
// and then waits for the hang-up; next returns what the next call's flow
// told.
func speechAdmission(t *testing.T) (flow flowFunc, next func() bool) {
	heard := make(chan bool, 4)
	flow = func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		heard <- ch.(flows.Hearing).Speech()
		<-ctx.Done()
		return flows.Outcome{Kind: flows.OutcomeCaller}
	}
	next = func() bool {
		t.Helper()
		select {
		case on := <-heard:
			return on
		case <-time.After(10 * time.Second):
			t.Fatal("the flow did not start")
		}
		return false
	}
	return flow, next
}

// answersWithKeys checks that the call whose flow starts next answers with
// keys (when: the test's situation), that it is the line's first such
// call, and that its events say why.
func answersWithKeys(t *testing.T, l *line, next func() bool, when, why string) {
	t.Helper()
	if next() {
		t.Fatalf("a call %s answers by voice, want keys", when)
	}
	if n := l.eng.Metrics.SpeechBusy.Load(); n != 1 {
		t.Errorf("ivr_speech_busy_total %d, want 1", n)
	}
	if ev := callEvents(t, l); !strings.Contains(ev, why) {
		t.Errorf("the call's events do not say why it answers with keys (%q):\n%s", why, ev)
	}
}

// speech.max_calls: past the limit a call answers with keys for its whole
// length (call.speech is false, its events say why), and the place of a
// call that ended goes to the next one.
func TestSpeechMaxCalls(t *testing.T) {
	pool, rec, _ := speechEngines(t)
	flow, next := speechAdmission(t)
	l := startLine(t, func(_ *sip.Config, e *ivr.Engine) {
		e.Flow = flow
		e.Lang = "ro"
		e.Speech = speechConfig(pool, ivr.SerialStreams(rec))
		e.Speech.MaxCalls = 1
	})
	a := l.answered(t)
	if !next() {
		t.Fatal("the first call answers with keys, want voice")
	}
	b := l.answered(t)
	answersWithKeys(t, l, next, "past speech.max_calls = 1", "speech.busy 1 calls already answer by voice (speech.max_calls): this one answers with keys")
	a.hangup()
	if !waitFor(10*time.Second, func() bool { return l.eng.Metrics.ActiveCalls.Load() == 1 }) {
		t.Fatal("the first call did not end")
	}
	c := l.answered(t)
	if !next() {
		t.Error("a call after the first ended answers with keys, want voice: its place was not given back")
	}
	b.hangup()
	c.hangup()
}

// slowVAD is the real detector on a machine too busy for it: every frame
// takes 60 ms, three times its length.
type slowVAD struct{ speech.VAD }

func (v slowVAD) Process(f []int16) (speech.Activity, error) {
	time.Sleep(60 * time.Millisecond)
	return v.VAD.Process(f)
}

// A line whose turn-taking falls behind (fewer speakers fit than
// speech.max_calls says) gives the next calls keys until it has kept up
// for BusyAfterDrop, even with voice places free; then voice again.
func TestSpeechBusyAfterDroppedAudio(t *testing.T) {
	pool, rec, _ := speechEngines(t)
	flow, next := speechAdmission(t)
	const hold = 2 * time.Second
	l := startLine(t, func(_ *sip.Config, e *ivr.Engine) {
		e.Flow = flow
		e.Lang = "ro"
		e.Speech = speechConfig(pool, ivr.SerialStreams(rec))
		real := e.Speech.NewVAD
		e.Speech.NewVAD = func(rate int) (speech.VAD, func(), error) {
			v, done, err := real(rate)
			return slowVAD{v}, done, err
		}
		e.Speech.MaxCalls = 5
		e.Speech.BusyAfterDrop = hold
	})
	a := l.answered(t)
	if !next() {
		t.Fatal("the first call answers with keys, want voice")
	}
	go a.speak(tone(440, a.rate, 4*time.Second, 8000))
	if !waitFor(15*time.Second, func() bool { return l.eng.Metrics.SpeechFramesDropped.Load() > 0 }) {
		t.Fatal("the turn-taking never fell behind the slow detector")
	}
	b := l.answered(t)
	answersWithKeys(t, l, next, "right after dropped audio", "(the recognizer fell behind): this call answers with keys")
	a.hangup()
	b.hangup()
	if !waitFor(30*time.Second, func() bool {
		return l.eng.Metrics.ActiveCalls.Load() == 0 &&
			time.Since(time.Unix(0, l.eng.Metrics.SpeechDroppedAt.Load())) > hold+200*time.Millisecond
	}) {
		t.Fatal("the calls did not end, or the turn-taking kept dropping audio")
	}
	c := l.answered(t)
	if !next() {
		t.Errorf("a call %s after the last dropped frame answers with keys, want voice", hold)
	}
	c.hangup()
}
