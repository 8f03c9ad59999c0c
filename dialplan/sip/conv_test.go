package sip_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/flowtest"
	"github.com/govline/ivr/flows/sim"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/openai"
	"github.com/govline/ivr/tickets"
)

// TestConversationsOnARealCall replays every shipped conversation test
// (flows/tests/*.conv) over a real SIP call on loopback and requires the
// transcript the simulator wrote: the same prompts, the same caller turns,
// the same end, the same tickets. One call per test file carries all its
// tests one after the other (each with its own clock, desk and
// transcript); the files' calls run at the same time.
//
// The caller's keys are RFC 4733 events sent when the flow listens (or
// over the prompt, for a barge-in); the caller's words are rendered by
// espeak-ng and go through the line's turn-taking (VAD, endpointing,
// barge-in) to its recognizer, a network speech-to-text service speaking
// the OpenAI audio API (see standIn). A test whose caller hangs up is
// ended by the channel (the call goes on with the file's next test).
func TestConversationsOnARealCall(t *testing.T) {
	pool, _, _ := speechEngines(t) // the caller's voice: talker
	files, err := flowtest.Files(filepath.Join("..", "..", "flows", "tests"))
	if err != nil {
		t.Fatal(err)
	}
	if only := os.Getenv("IVR_CONV_FILES"); only != "" { // while working on some: IVR_CONV_FILES=permis_cnp.conv,...
		files = slices.DeleteFunc(files, func(f string) bool { return !slices.Contains(strings.Split(only, ","), filepath.Base(f)) })
	}
	// The web chat's tests (channel: chat) have no call to replay.
	files = slices.DeleteFunc(files, func(f string) bool {
		cases, err := flowtest.ParseFile(f)
		return err == nil && !slices.ContainsFunc(cases, func(c *flowtest.Case) bool { return !c.Chat })
	})
	flowsDir := filepath.Join("..", "..", "flows")
	simKB, closeKB, err := flowtest.OpenKB(context.Background(), flowsDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeKB)
	// The line speaks fast here (the transcript does not depend on it):
	// a file's call lasts minutes less.
	synth := &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts"), Name: "espeak-fast", Engine: fastVoice{talker}}
	type fileRun struct {
		cases   []*flowtest.Case
		results []flowtest.Result
		replay  *replayer
		store   *tickets.Store
		eng     *ivr.Engine
		err     error
	}
	runs := make([]fileRun, len(files))
	var wg sync.WaitGroup
	start := time.Now()
	for i, file := range files {
		cases, err := flowtest.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		cases = slices.DeleteFunc(cases, func(c *flowtest.Case) bool { return c.Chat })
		runner := flowtest.Runner{FlowsDir: flowsDir, KB: simKB}
		results := make([]flowtest.Result, len(cases))
		for j, c := range cases {
			if results[j] = runner.Run(context.Background(), c); !results[j].Pass {
				t.Fatalf("%s:%d: %s fails in the simulator: %s", c.File, c.Line, c.Name, strings.Join(results[j].Failures, "\n"))
			}
		}
		stand := newStandIn(t) // what this call's caller says next
		replay := &replayer{t: t, cases: cases, results: results, flowsDir: flowsDir, stand: stand, ready: make(chan struct{}), done: make(chan struct{})}
		l := startLineStore(t, func(_ *sip.Config, e *ivr.Engine, store *tickets.Store) {
			if e.Flow != nil {
				return
			}
			ix, err := openKB(t, store)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ix.ImportDir(context.Background(), filepath.Join(flowsDir, "kb")); err != nil {
				t.Fatal(err)
			}
			replay.kb, replay.store = flows.KBIndex{Index: ix}, store
			e.Flow, e.Synth, e.Lang = replay, synth, "ro"
			e.Speech = speechConfig(pool, stand.recognizer(t))
		})
		runs[i] = fileRun{cases: cases, results: results, replay: replay, store: l.store, eng: l.eng}
		wg.Go(func() { // one call per file, the files' calls at the same time
			c, err := newPhone(t).dial(l, "1919", diago.InviteOptions{})
			if err != nil {
				runs[i].err = err
				close(replay.done)
				return
			}
			replay.phone, replay.callID = c, c.d.InviteRequest.CallID().Value()
			close(replay.ready)
			select {
			case <-replay.done:
			case <-time.After(9 * time.Minute):
				runs[i].err = errors.New("the call did not end within 9 minutes")
			}
		})
	}
	wg.Wait()
	t.Logf("%d files, %d calls at once, done in %v", len(files), len(files), time.Since(start).Round(time.Second))
	for i, file := range files {
		r := runs[i]
		t.Run(filepath.Base(file), func(t *testing.T) {
			if r.err != nil {
				t.Fatal(r.err)
			}
			m := r.eng.Metrics
			t.Logf("speech turns %d, frames dropped %d, barge-ins %d", m.SpeechTurns.Load(), m.SpeechFramesDropped.Load(), m.SpeechBargeIns.Load())
			for _, e := range r.replay.stand.errs {
				t.Error(e)
			}
			t.Logf("the speech service transcribed %d utterances", r.replay.stand.turns)
			for j, c := range r.cases {
				if j >= len(r.replay.got) {
					t.Errorf("%s:%d: %s did not run on the call", c.File, c.Line, c.Name)
					continue
				}
				turns, err := r.store.Transcript(context.Background(), r.replay.caseCallID(c))
				if err != nil {
					t.Fatal(err)
				}
				got := r.replay.got[j]
				_ = r.eng.Calls.Flush(context.Background())
				evs, err := r.store.Events(context.Background(), r.replay.callID)
				if err != nil {
					t.Fatal(err)
				}
				var log, articles, simArticles []string
				for _, e := range evs {
					if e.At.Before(got.start) || e.At.After(got.end) || e.Kind == "dtmf" || strings.HasPrefix(e.Kind, "rtp") {
						continue
					}
					log = append(log, fmt.Sprintf("    %s %s %s", e.At.Sub(got.start).Round(10*time.Millisecond), e.Kind, e.Detail))
					if e.Kind == "flow.article" { // what ivrctl calls trace shows
						articles = append(articles, e.Detail)
					}
				}
				for _, l := range r.results[j].Conversation {
					if id, ok := strings.CutPrefix(l, "article: "); ok {
						simArticles = append(simArticles, id)
					}
				}
				diff, words := sameConversation(r.results[j], got, turns)
				if !slices.Equal(articles, simArticles) {
					diff += fmt.Sprintf("\nthe articles said: %v in the simulator, %v in the call's events", simArticles, articles)
				}
				if diff != "" {
					t.Errorf("%s:%d: %s: the real call differs from the simulator:\n%s\nthe call's events meanwhile:\n%s", c.File, c.Line, c.Name, diff, strings.Join(log, "\n"))
				}
				for _, w := range words {
					t.Logf("%s:%d: %s: %s", c.File, c.Line, c.Name, w)
				}
			}
		})
	}
}

// fastVoice is espeak-ng speaking at 420 words a minute.
type fastVoice struct{ s speech.Synthesizer }

func (f fastVoice) Synthesize(ctx context.Context, req speech.SynthRequest) (speech.Audio, error) {
	req.Speed = 420
	return f.s.Synthesize(ctx, req)
}

// replayer is the line's FlowRunner: on its one call it runs the file's
// tests one after the other, each on a channel that plays the caller's
// side of the test (what the simulator consumed at each Say and Listen).
type replayer struct {
	t        *testing.T
	cases    []*flowtest.Case
	results  []flowtest.Result
	flowsDir string
	stand    *standIn
	kb       flows.Knowledge
	store    *tickets.Store
	phone    *call
	callID   string
	got      []caseRun
	ready    chan struct{} // phone and callID are set
	done     chan struct{}
}

// caseRun is what one test did on the real call.
type caseRun struct {
	outcome    flows.Outcome
	tickets    []tickets.Ticket
	err        error
	start, end time.Time
}

func (r *replayer) caseCallID(c *flowtest.Case) string { return r.callID + "/" + c.Facts().CallID }

func (r *replayer) Run(ctx context.Context, _ flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
	defer close(r.done)
	select { // the phone has its answer: the call is answered before the flow runs
	case <-r.ready:
	case <-ctx.Done():
		return flows.Outcome{Kind: flows.OutcomeCaller}
	}
	for i, c := range r.cases {
		start := time.Now()
		run, err := r.runCase(ctx, c, r.results[i], ch)
		r.t.Logf("%s:%d: %s: %v on the call", filepath.Base(c.File), c.Line, c.Name, time.Since(start).Round(100*time.Millisecond))
		run.err, run.start, run.end = err, start, time.Now()
		r.got = append(r.got, run)
		if ctx.Err() != nil {
			break
		}
	}
	return flows.Outcome{Kind: flows.OutcomeHangup, Reason: "tests done"}
}

// runCase runs one test on the call, with a desk of its own (numbered as
// the simulator's) and the test's clock.
func (r *replayer) runCase(ctx context.Context, c *flowtest.Case, want flowtest.Result, ch flows.Channel) (caseRun, error) {
	st, err := tickets.Open(tickets.DBPath(r.t.TempDir()))
	if err != nil {
		return caseRun{}, err
	}
	defer st.Close()
	st.SetNumbers(tickets.SequentialNumbers())
	st.SetClock(func() time.Time { return c.Time })
	for _, e := range c.Existing {
		if err := seedTicket(ctx, st, e); err != nil {
			return caseRun{}, err
		}
	}
	rt, err := flows.Load(r.flowsDir, flows.Config{Default: c.Flow, OnlyRouted: true})
	if err != nil {
		return caseRun{}, err
	}
	facts := c.Facts()
	facts.CallID = r.caseCallID(c)
	svc := flows.Services{KB: r.kb, Desk: flows.TicketDesk{Store: st}, Transcript: flows.TicketTranscript{Store: r.store},
		Calendar: tickets.DefaultCalendar(), Now: func() time.Time { return c.Time }, Queues: flowtest.DefaultQueues,
		Log: slog.New(slog.DiscardHandler)}
	r.stand.setMode(c.Speech)
	o := rt.Run(ctx, facts, &caller{ch: ch, ops: want.Ops, end: want.Outcome.Kind == flows.OutcomeCaller, phone: r.phone, stand: r.stand, mode: c.Speech}, svc)
	ts, err := st.ListTickets(ctx, tickets.TicketQuery{})
	return caseRun{outcome: o, tickets: ts}, err
}

// seedTicket puts an "existing ticket:" in a test's store.
func seedTicket(ctx context.Context, st *tickets.Store, e flows.TicketStatus) error {
	if _, err := st.OpenTicket(ctx, tickets.NewTicket{Actor: "test", Number: e.Number, Service: tickets.Service(e.Service)}); err != nil {
		return err
	}
	switch tickets.Status(e.Status) {
	case tickets.StatusNew:
		return nil
	case tickets.StatusResolved:
		return st.Resolve(ctx, e.Number, "test", "resolved before the test")
	case tickets.StatusClosed:
		if err := st.Resolve(ctx, e.Number, "test", "resolved before the test"); err != nil {
			return err
		}
		return st.CloseTicket(ctx, e.Number, "test")
	case tickets.StatusEscalated:
		return st.Escalate(ctx, e.Number, "test", tickets.Level2)
	}
	return st.SetStatus(ctx, e.Number, "test", tickets.Status(e.Status))
}

// caller is the channel of one test on the real call: each Say and Listen
// passes to the line's channel, and the caller's side the simulator
// consumed there is played by the phone meanwhile.
type caller struct {
	ch    flows.Channel
	ops   []sim.Op
	n     int
	end   bool // the caller hangs up at the last Listen
	phone *call
	stand *standIn
	mode  sim.SpeechMode
	wg    sync.WaitGroup
}

var (
	_ flows.Recorder = (*caller)(nil)
	_ flows.Hearing  = (*caller)(nil)
)

func (c *caller) next() (sim.Op, bool) {
	if c.n >= len(c.ops) {
		return sim.Op{}, false
	}
	op := c.ops[c.n]
	c.n++
	return op, true
}

func (c *caller) Say(ctx context.Context, p flows.Prompt) (flows.Played, error) {
	c.wg.Wait()
	op, ok := c.next()
	if !ok {
		return flows.Played{}, fmt.Errorf("%w: the flow says more than in the simulator", flows.ErrHangup)
	}
	if op.Taken { // over the prompt, once the caller hears it
		mark := c.phone.heardLen()
		line := strings.TrimPrefix(op.Line, "!")
		c.wg.Go(func() {
			waitFor(10*time.Second, func() bool { return c.phone.heardSpeech(mark) >= 3 }) // 60 ms: prompts are short at the test's speed
			c.play(line, p.Lang)
		})
	}
	return c.ch.Say(ctx, p)
}

func (c *caller) Listen(ctx context.Context, l flows.Listen) (flows.Input, error) {
	c.wg.Wait()
	op, ok := c.next()
	if !ok || (c.n == len(c.ops) && c.end && !op.Taken) {
		return flows.Input{}, flows.ErrHangup // the test's caller hangs up here
	}
	if op.Taken {
		line := strings.TrimPrefix(op.Line, "!")
		c.wg.Go(func() {
			time.Sleep(300 * time.Millisecond) // the line listens
			c.play(line, l.Lang)
		})
	}
	in, err := c.ch.Listen(ctx, l)
	c.wg.Wait()
	return in, err
}

// play sends one caller line: keys (',' a pause longer than the
// inter-digit pause), words (rendered), or nothing (silence).
func (c *caller) play(line, lang string) {
	in := sim.ParseTurn(line)
	switch in.Mode {
	case flows.InputDTMF:
		for _, k := range in.Text {
			switch k {
			case ',':
				time.Sleep(flows.DefaultInterDigit + 500*time.Millisecond)
			case ' ':
			default:
				c.phone.press(string(k))
			}
		}
	case flows.InputSpeech:
		c.stand.expect(in.Text, in.Confidence)
		c.phone.speak(utterance(c.phone.t, talker, lang, in.Text, c.phone.rate))
	}
}

func (c *caller) Note(kind, detail string) {
	if r, ok := c.ch.(flows.Recorder); ok {
		r.Note(kind, detail)
	}
}

func (c *caller) Sensitive(on bool) {
	if r, ok := c.ch.(flows.Recorder); ok {
		r.Sensitive(on)
	}
}

func (c *caller) Speech() bool {
	h, ok := c.ch.(flows.Hearing)
	return c.mode != sim.SpeechOff && (!ok || h.Speech())
}

// standIn is the line's recognizer in this test: a speech-to-text service
// speaking the OpenAI audio API (POST /v1/audio/transcriptions,
// verbose_json), which the line reaches through its network recognizer
// (speech/openai) as a deployment with a network engine does. Such a
// service cannot run on this machine; the test knows what its caller is
// saying, so the service answers that sentence, with the confidence the
// test gives it (the simulator's: 0 unless "text @0.8"), once it has
// received the caller's utterance as the line's turn-taking cut it (VAD,
// endpointing, barge-in and the G.711 path are the line's own). The
// embedded recognizer's accuracy is measured elsewhere (docs/speech.md,
// TestAccuracyFloor, TestShippedFlowBySpeech, TestRealisticCallers); this
// test is about the flows behaving on the line as in the simulator.
type standIn struct {
	srv  *httptest.Server
	mu   sync.Mutex
	mode sim.SpeechMode
	text string
	conf float64
	errs []string // what the service was sent that no caller said

	turns int // utterances transcribed
}

func newStandIn(t *testing.T) *standIn {
	s := &standIn{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.transcribe))
	t.Cleanup(s.srv.Close)
	return s
}

// recognizer is the line's recognizer: the network engine on the service.
func (s *standIn) recognizer(t *testing.T) speech.Recognizer {
	r, err := openai.NewRecognizer(openai.Config{BaseURL: s.srv.URL + "/v1", Model: "whisper-1"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *standIn) setMode(m sim.SpeechMode) {
	s.mu.Lock()
	s.mode, s.text = m, ""
	s.mu.Unlock()
}

func (s *standIn) expect(text string, conf float64) {
	s.mu.Lock()
	s.text, s.conf = text, conf
	s.mu.Unlock()
}

// transcribe answers one transcription request as the service does.
func (s *standIn) transcribe(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error"}}`, msg)
	}
	if r.URL.Path != "/v1/audio/transcriptions" || r.Method != http.MethodPost {
		fail(http.StatusNotFound, "no such endpoint")
		return
	}
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	f, _, err := r.FormFile("file")
	if err != nil {
		fail(http.StatusBadRequest, "file is missing")
		return
	}
	defer f.Close()
	wav, err := io.ReadAll(f)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	pcm, rate, err := audio.ReadWAV(bytes.NewReader(wav))
	if err != nil {
		fail(http.StatusBadRequest, "file: "+err.Error())
		return
	}
	s.mu.Lock()
	text, conf, mode := s.text, s.conf, s.mode
	s.turns++
	if text == "" || mode == sim.SpeechOff {
		s.errs = append(s.errs, fmt.Sprintf("the line sent %.1f s of audio for a turn in which the caller said nothing", float64(len(pcm))/float64(rate)))
		text = ""
	}
	s.mu.Unlock()
	if len(pcm) < rate/10 { // under 100 ms: no speech in it
		text = ""
	}
	// The segment's mean token log-probability carries the confidence
	// (speech/openai: exp(avg_logprob) × (1 - no_speech_prob)).
	logprob := math.Log(max(conf, 1e-9))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"task": "transcribe", "language": r.FormValue("language"), "duration": float64(len(pcm)) / float64(rate), "text": text,
		"segments": []map[string]any{{"id": 0, "start": 0, "end": float64(len(pcm)) / float64(rate), "text": text, "avg_logprob": logprob, "no_speech_prob": 0}},
	})
}

// sameConversation compares what a test did in the simulator with what it
// did on the call: the transcript turn by turn (an interrupted prompt by
// the words heard before the cut), the end and the tickets. A caller's
// spoken turn may be heard in other words of the same answer ("yeah" for
// "yes", "un operator" for "vreau să vorbesc cu un operator"): that is no
// difference as long as the line answers the same; words lists them.
func sameConversation(want flowtest.Result, got caseRun, turns []tickets.Turn) (diff string, words []string) {
	var diffs []string
	if got.err != nil {
		diffs = append(diffs, "the test could not run: "+got.err.Error())
	}
	words, same := sameTurns(want.Turns, turns)
	if !same {
		diffs = append(diffs, "transcript in the simulator:\n"+describeTurns(want.Turns)+"on the call:\n"+describeCallTurns(turns))
	}
	wo, o := want.Outcome, got.outcome
	if wo.Kind != o.Kind || wo.Queue != o.Queue || wo.Reason != o.Reason || wo.Ticket != o.Ticket {
		diffs = append(diffs, fmt.Sprintf("end in the simulator: %s %s%s ticket %q; on the call: %s %s%s ticket %q (%v)",
			wo.Kind, wo.Queue, wo.Reason, wo.Ticket, o.Kind, o.Queue, o.Reason, o.Ticket, o.Err))
	}
	return strings.Join(diffs, "\n"), words
}

// sameTurns compares the turns: speakers, modes and the line's words (case,
// diacritics and punctuation aside); a prompt the caller cut is the same
// when the call's words heard are the start of the simulator's (a prompt
// cut before its first word is not in the call's transcript). words lists
// the caller's spoken turns heard in other words.
func sameTurns(want []flows.Turn, got []tickets.Turn) (words []string, same bool) {
	j := 0
	for _, w := range want {
		if j == len(got) {
			return words, false
		}
		g := got[j]
		if w.Interrupted && (g.Speaker != w.Speaker || !g.Interrupted) {
			continue // cut before a word was heard: not written
		}
		if g.Speaker != w.Speaker || g.Interrupted != w.Interrupted || (w.Speaker == "caller" && string(w.Mode) != g.Mode) {
			return words, false
		}
		gw, ww := strings.Fields(flows.Normalize(g.Text)), strings.Fields(flows.Normalize(w.Text))
		switch {
		case w.Interrupted:
			if len(gw) > len(ww) || !slices.Equal(gw, ww[:len(gw)]) {
				return words, false
			}
		case slices.Equal(gw, ww):
		case w.Speaker == "caller" && w.Mode == flows.InputSpeech:
			words = append(words, fmt.Sprintf("%q was heard as %q, understood alike", w.Text, g.Text))
		default:
			return words, false
		}
		j++
	}
	return words, j == len(got)
}

func describeTurns(ts []flows.Turn) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "    %s%s: %s%s\n", t.Speaker, modeNote(string(t.Mode)), t.Text, cutNote(t.Interrupted))
	}
	return b.String()
}

func describeCallTurns(ts []tickets.Turn) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "    %s%s: %s%s\n", t.Speaker, modeNote(t.Mode), t.Text, cutNote(t.Interrupted))
	}
	return b.String()
}

func modeNote(m string) string {
	if m == "" || m == tickets.ModeNone {
		return ""
	}
	return "(" + m + ")"
}

func cutNote(cut bool) string {
	if cut {
		return " [cut]"
	}
	return ""
}
