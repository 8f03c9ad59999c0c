package ivr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/speech"
)

// SpeechConfig turns on speech in the phone Channel: barge-in by voice,
// spoken answers to Listen and endpointing. The turn-taking here does not
// depend on the engines: any speech.Recognizer and any speech.VAD work.
//
// A nil *SpeechConfig, or one without Recognizer or NewVAD, leaves the line
// DTMF-only.
type SpeechConfig struct {
	Recognizer speech.Recognizer
	// Fallback, when set, is the second rung of the ladder: the
	// recognizer a call moves to for good when Recognizer fails (an error
	// from the engine, or no final result within FinishTimeout), typically
	// a network engine first and the embedded one here. The utterance
	// being recognized is replayed into it, so the caller does not say it
	// again. A turn the first engine cannot take (speech.ErrUnsupported:
	// a language its model lacks) goes to Fallback for that turn only.
	// Only when Fallback fails too does the call go on with keys.
	Fallback speech.Recognizer
	// NewVAD returns a detector for one call's caller audio at rate and
	// the function that gives it back (called once). A call takes one
	// when its caller's line gets loud and gives it back after
	// vadIdleFrames of quiet (a neural detector holds megabytes: a call
	// holds one only while its caller makes sound). It is called from
	// the calls' goroutines, concurrently for many calls.
	NewVAD func(rate int) (speech.VAD, func(), error)

	// BargeIn is how long caller speech must last (VAD speech and energy
	// above the noise floor) before it stops a prompt or starts a turn.
	BargeIn time.Duration
	// EndSilence ends the caller's turn after speech; DigitsEndSilence is
	// used instead while the caller reads a number.
	EndSilence       time.Duration
	DigitsEndSilence time.Duration
	// IncompleteSilence is used instead of EndSilence while what the
	// recognizer has heard so far is not a whole answer of the question's
	// grammar ("vreau să vorbesc ..." and a pause to think): a caller
	// pausing in the middle of a sentence is not cut off.
	IncompleteSilence time.Duration
	// MaxUtterance cuts a turn that never pauses.
	MaxUtterance time.Duration
	// NoiseMargin is how many dB above the adaptive noise estimate a frame
	// must be to count as speech (a second line of defence behind the
	// VAD against noise barging in).
	NoiseMargin float64
	// FinishTimeout bounds the wait for the recognizer's final result;
	// past it the call moves down the ladder (Fallback, then keys).
	FinishTimeout time.Duration
	// VADThreshold is the VAD's speech probability from which a sustained
	// loud sound pauses a prompt before the VAD confirms a segment (0:
	// DefaultVADThreshold).
	VADThreshold float64
	// MaxCalls is how many calls may answer by voice at once; a call
	// beyond it answers with keys for its whole length (0: no limit).
	MaxCalls int
	// BusyAfterDrop: with MaxCalls set, a call that starts within this
	// long of a frame dropped by any call's turn-taking (the recognizer
	// fell behind: the machine holds fewer speakers than MaxCalls says)
	// answers with keys too (0: DefaultBusyAfterDrop).
	BusyAfterDrop time.Duration
}

// SpeechConfig defaults.
const (
	DefaultBargeIn           = 120 * time.Millisecond
	DefaultEndSilence        = 700 * time.Millisecond
	DefaultDigitsEndSilence  = 1500 * time.Millisecond
	DefaultIncompleteSilence = 1500 * time.Millisecond
	DefaultMaxUtterance      = 10 * time.Second
	DefaultNoiseMargin       = 10.0
	DefaultFinishTimeout     = 3 * time.Second
	DefaultVADThreshold      = 0.5
	DefaultBusyAfterDrop     = 30 * time.Second
)

// Enabled reports whether c can recognize speech.
func (c *SpeechConfig) Enabled() bool {
	return c != nil && c.Recognizer != nil && c.NewVAD != nil
}

func (c SpeechConfig) withDefaults() SpeechConfig {
	if c.BargeIn <= 0 {
		c.BargeIn = DefaultBargeIn
	}
	if c.EndSilence <= 0 {
		c.EndSilence = DefaultEndSilence
	}
	if c.DigitsEndSilence <= 0 {
		c.DigitsEndSilence = DefaultDigitsEndSilence
	}
	if c.IncompleteSilence <= 0 {
		c.IncompleteSilence = DefaultIncompleteSilence
	}
	if c.MaxUtterance <= 0 {
		c.MaxUtterance = DefaultMaxUtterance
	}
	if c.NoiseMargin <= 0 {
		c.NoiseMargin = DefaultNoiseMargin
	}
	if c.FinishTimeout <= 0 {
		c.FinishTimeout = DefaultFinishTimeout
	}
	if c.VADThreshold <= 0 {
		c.VADThreshold = DefaultVADThreshold
	}
	if c.BusyAfterDrop <= 0 {
		c.BusyAfterDrop = DefaultBusyAfterDrop
	}
	return c
}

const (
	frameDur = 20 * time.Millisecond
	earQueue = 50 // frames (1 s) between the listener and the ear
	// vadIdleFrames of quiet (2 s) give the call's VAD back to the pool.
	vadIdleFrames = 100
	// cutFrames of speech (500 ms from its onset) make an utterance an
	// answer: it cuts the prompt it paused, and makes the flow skip the
	// next barge-in prompts. A shorter sound (a "hmm", a breath, a short
	// "da") only pauses the prompt, which resumes after resumeFrames
	// (200 ms) without speech; it is still held for the next question,
	// which takes it only when it recognizes it with confidence.
	cutFrames    = 25
	resumeFrames = 10
	// earlyFrames bound an early pause (pauseEarly) that no utterance
	// follows: the VAD's segment needs two 32 ms windows over its
	// threshold, so an utterance starts within about four frames of the
	// first one.
	earlyFrames = 6
)

// bargeOutcome is what became of a prompt the caller's sound paused.
type bargeOutcome int

const (
	bargeCut    bargeOutcome = iota + 1 // the caller speaks: the prompt stops for good
	bargeResume                         // a short sound: the prompt goes on
)

// ear is a call's turn-taking stage. The listener hands it every caller
// frame (feed never blocks: frames it cannot take are dropped and counted);
// its goroutine (run) owns the VAD, the endpointer and the recognizer
// streams. The flow's goroutine drives it through arm (a barge-in prompt
// plays), listen / cancel (a Listen waits for speech) and ahead (has the
// caller already answered?). Between the two sides only mu, the channels
// and the atomics are shared.
//
// Every utterance the endpointer finds goes somewhere, so nothing the
// caller says is lost:
//   - to the Listen waiting for it (its recognizer stream starts at the
//     utterance's first frame, pre-roll included);
//   - when no Listen waits (a prompt plays, or the flow is between
//     questions), it is held for the next Listen: speech type-ahead, as
//     keys are. A held utterance stops the barge-in prompt it started in
//     and makes the flow skip the next barge-in prompts (ahead), and the
//     next Listen recognizes it with its own grammar;
//   - when no Listen takes it (a key answered instead, a newer utterance
//     replaced it, the call ended, the flow ended), it is recognized on
//     its own and written to the transcript as an unanswered caller turn
//     (Session.unanswered).
type ear struct {
	cfg     SpeechConfig
	rate    int
	lang    string // the call's first language: unanswered speech without any Listen yet
	ep      *endpointer
	vad     speech.VAD // held while the line is loud (nil: none)
	release func()     // gives vad back
	quiet   int        // frames since the VAD last had work
	log     *slog.Logger
	tracker *Tracker
	metrics *Metrics
	// unanswered receives what a caller said that no Listen took; it is
	// called from the ear's goroutines (never concurrently with itself
	// for one utterance), possibly after the call ended.
	unanswered func(res speech.Result, at time.Time, why string)

	frames  chan []int16
	bargeIn chan struct{}     // signalled when caller sound pauses a barge-in prompt
	decided chan bargeOutcome // then whether it cuts the prompt or lets it resume
	off     atomic.Bool       // fallen back to keys for the rest of the call
	ahead   atomic.Bool       // an utterance (not a short sound) is held for the next Listen
	// onset is when the sound that paused the prompt began (Unix ns): its
	// first loud frame's arrival, for the barge-in latency (voice.play)
	onset atomic.Int64

	mu       sync.Mutex
	armed    bool
	req      *turnReq
	dropHeld bool // a key answered: the held utterance answers nothing

	// owned by run
	sctx    context.Context // the streams' context: outlives the call, so its last words are recognized
	bg      sync.WaitGroup  // unanswered utterances being recognized
	dest    uttDest         // where the current utterance's frames go
	why     string          // why an utterance going toAlone answers nothing
	paused  bool            // the utterance paused a prompt, not decided yet
	early   int             // frames since the prompt paused early with no utterance yet (pauseEarly); 0: none
	blip    bool            // the held utterance was a short sound (the prompt resumed)
	utt     [][]int16       // the held (or unanswered) utterance's frames
	uttAt   time.Time       // when the held utterance began
	done    bool            // the held utterance has ended
	cur     *turnReq        // the Listen the stream serves (nil: nobody waits any more)
	curBlip bool            // the stream recognizes a held blip
	partial speech.Result   // the stream's last partial result
	// partialLoud: the partial result at the caller's last loud frame
	// was not a whole phrase (see endSilence)
	partialLoud bool
	stream      speech.Stream
	curAt       time.Time         // when the stream's utterance began
	last        *turnReq          // the last Listen seen: its grammar serves unanswered speech
	rec         speech.Recognizer // the engine of the call's turns
	fb          speech.Recognizer // the next rung, nil once used (or none)
	onFB        bool              // the stream runs on fb for this turn only
	sent        [][]int16         // frames written to stream, kept to replay into fb
	// voices: the utterance under way began over other voices in the
	// caller's room (endpointer.overVoices)
	voices bool
	// untranscribed is the free question the utterance under way answers
	// although the engine cannot transcribe it (told when it ends)
	untranscribed *turnReq
}

// uttDest is where the frames of the utterance in progress go.
type uttDest int

const (
	toNowhere uttDest = iota // no utterance
	toStream                 // a recognizer stream (e.stream)
	toHeld                   // e.utt, held for the next Listen
	toAlone                  // e.utt, recognized on its own at its end
)

// turnReq is one Listen waiting for speech.
type turnReq struct {
	lang       string
	grammar    *speech.Grammar
	endSilence time.Duration
	events     chan turnEvent
}

// turnEvent is what the ear tells a Listen.
type turnEvent struct {
	started bool      // speech began: the no-input timeout no longer applies
	at      time.Time // with res (or untranscribed): when the utterance began
	// untranscribed: the caller speaks at a free question the engine
	// cannot transcribe; with at: that utterance ended (it answers the
	// question as untranscribed speech)
	untranscribed bool
	res           speech.Result
	err           error // the recognizer failed: fallback, or unsupported for this turn
	// blip: res is a short sound held from a prompt it did not cut (a
	// "hmm", a short "da"): an answer only when recognized with
	// confidence.
	blip bool
	// overVoices: res was said over other voices in the caller's room
	// (flows.Input.OverVoices)
	overVoices bool
}

func newEar(cfg SpeechConfig, rate int, s *Session) *ear {
	var m *Metrics
	if s.Tracker != nil && s.Tracker.eng != nil {
		m = s.Tracker.eng.Metrics
	}
	cfg = cfg.withDefaults()
	lang := s.Lang
	if lang == "" {
		lang = "ro"
	}
	return &ear{cfg: cfg, rate: rate, lang: lang, log: s.Log, tracker: s.Tracker, metrics: m,
		ep:     newEndpointer(frames(cfg.BargeIn), frames(cfg.MaxUtterance), cfg.NoiseMargin),
		frames: make(chan []int16, earQueue), bargeIn: make(chan struct{}, 1), decided: make(chan bargeOutcome, 1),
		rec: cfg.Recognizer, fb: cfg.Fallback, unanswered: s.unanswered}
}

// frames converts a duration to 20 ms frames, rounding up.
func frames(d time.Duration) int { return int((d + frameDur - 1) / frameDur) }

// feed hands one caller frame to the ear without blocking.
func (e *ear) feed(f []int16) {
	if len(f) != audio.SamplesPerFrame(e.rate) {
		return
	}
	select {
	case e.frames <- append([]int16(nil), f...):
	default:
		if e.metrics != nil {
			e.metrics.SpeechFramesDropped.Add(1)
			e.metrics.SpeechDroppedAt.Store(time.Now().UnixNano())
		}
	}
}

// run processes frames until ctx ends. Then it takes the frames still
// queued, recognizes what the caller was saying (the stream in progress, or
// a held utterance) on a context of its own, and releases the VAD.
//
// Packets that stop in the middle of an utterance are silence: a phone
// with silence suppression (DTX) sends nothing while its user is quiet,
// and a caller who stops talking must not wait for an end of turn that
// only the next packet would bring. After rtpGapSilence without a frame
// while the caller is speaking, the gap is taken as silence (a frame of
// zeros every frame time) until packets come again or the utterance ends.
func (e *ear) run(ctx context.Context) {
	defer e.stop(ctx, e.start(ctx))
	gap := time.NewTimer(rtpGapSilence)
	defer gap.Stop()
	filling := false
	for {
		select {
		case f := <-e.frames:
			e.frame(ctx, f)
			filling = false
			gap.Reset(rtpGapSilence)
		case <-gap.C:
			if !e.ep.inUtt {
				filling = false
				gap.Reset(rtpGapSilence)
				continue
			}
			n := 1
			if !filling { // the gap so far, then one frame at a time
				n, filling = int(rtpGapSilence/frameDur), true
				if e.tracker != nil {
					e.tracker.Event("speech.gap", fmt.Sprintf("no audio from the caller for %s in an utterance: taken as silence", rtpGapSilence))
				}
			}
			for range n {
				e.frame(ctx, make([]int16, e.rate/50))
			}
			gap.Reset(frameDur)
		case <-ctx.Done():
			return
		}
	}
}

// rtpGapSilence is how long the caller's packets may stop in an utterance
// before the gap is taken as silence: longer than any jitter the jitter
// buffer rides out, far shorter than the end-of-turn silence.
const rtpGapSilence = 200 * time.Millisecond

// start readies the ear for the call of ctx; stop (with what start
// returned) ends its work once ctx ended.
func (e *ear) start(ctx context.Context) context.CancelFunc {
	var cancel context.CancelFunc
	e.sctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
	return cancel
}

func (e *ear) stop(ctx context.Context, cancel context.CancelFunc) {
	e.flush(ctx)
	e.bg.Wait()
	cancel()
	e.giveBackVAD()
}

// flush runs once the call (or the flow) ended: the frames still queued
// belong to the utterance under way, if any; then that utterance, or the
// one held for a question that never came, is recognized and written as
// unanswered.
func (e *ear) flush(ctx context.Context) {
	if e.off.Load() {
		return
	}
	for more := true; more; {
		select {
		case f := <-e.frames:
			if e.dest != toNowhere {
				e.take(ctx, f)
			}
		default:
			more = false
		}
	}
	why := endedWhy(ctx, "")
	if e.stream != nil {
		e.cur = nil // the Listen is gone with the call
		e.finish(ctx, why)
	}
	if (e.dest == toHeld || e.dest == toAlone || e.done) && len(e.utt) > 0 {
		if e.dest == toAlone {
			why = e.why
		}
		e.alone(e.utt, e.uttAt, why, false)
	}
	e.utt, e.dest, e.done = nil, toNowhere, false
	e.ahead.Store(false)
}

// endedWhy says why an utterance answered nothing once ctx may have ended:
// the call ended, or the flow did; why when ctx goes on.
func endedWhy(ctx context.Context, why string) string {
	switch {
	case ctx.Err() == nil:
		return why
	case errors.Is(context.Cause(ctx), errFlowDone):
		return "no question followed"
	}
	return "the call ended"
}

// errFlowDone is the cause the session gives the ear's context when the
// flow ended with the caller still on the line.
var errFlowDone = errors.New("the flow ended")

// giveBackVAD returns the VAD the ear holds, if any.
func (e *ear) giveBackVAD() {
	if e.vad != nil && e.release != nil {
		e.release()
	}
	e.vad, e.release, e.quiet = nil, nil, 0
}

// arm says whether a prompt that allows barge-in is playing, and returns
// the channel that signals caller speech during it.
func (e *ear) arm(on bool) <-chan struct{} {
	e.mu.Lock()
	e.armed = on
	e.mu.Unlock()
	if on {
		select { // signals left from an earlier prompt
		case <-e.bargeIn:
		default:
		}
		select {
		case <-e.decided:
		default:
		}
	}
	return e.bargeIn
}

// outcome waits for the ear to say whether the sound that paused the
// prompt cuts it or lets it resume (at most limit: then it cuts).
func (e *ear) outcome(ctx context.Context, limit time.Duration) bargeOutcome {
	select {
	case o := <-e.decided:
		return o
	default:
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case o := <-e.decided:
		return o
	case <-t.C:
	case <-ctx.Done():
	}
	return bargeCut
}

func (e *ear) decide(o bargeOutcome) {
	e.paused = false
	select {
	case e.decided <- o:
	default:
	}
}

// listen registers a Listen waiting for speech.
func (e *ear) listen(lang string, g *speech.Grammar, endSilence time.Duration) *turnReq {
	r := &turnReq{lang: lang, grammar: g, endSilence: endSilence, events: make(chan turnEvent, 4)}
	e.mu.Lock()
	e.req = r
	e.mu.Unlock()
	return r
}

// cancel withdraws r (a key answered, or the Listen ended).
func (e *ear) cancel(r *turnReq) {
	e.mu.Lock()
	if e.req == r {
		e.req = nil
	}
	e.mu.Unlock()
}

// keyAnswered tells the ear that keys answered the question: an utterance
// held for it answers nothing (it is still transcribed).
func (e *ear) keyAnswered() {
	e.mu.Lock()
	e.dropHeld = true
	e.mu.Unlock()
}

// frame is the ear's work for one 20 ms frame.
func (e *ear) frame(ctx context.Context, f []int16) {
	if e.off.Load() {
		return // keys only: the frames are drained
	}
	e.mu.Lock()
	armed, req, drop := e.armed, e.req, e.dropHeld
	e.dropHeld = false
	e.mu.Unlock()
	if req != nil {
		e.last = req
	}
	if drop {
		e.drop(ctx, "a key answered")
	}
	// The Listen the stream served is gone (a key won, or it timed
	// out): the stream goes on to the utterance's end, and what it
	// recognizes is written as unanswered.
	if e.cur != nil && e.cur != req {
		e.cur = nil
	}

	loud, needVAD := e.ep.loud(f)
	var act speech.Activity
	if needVAD {
		if e.vad == nil {
			v, release, err := e.cfg.NewVAD(e.rate)
			if err != nil {
				e.fallback("vad", err, nil)
				return
			}
			e.vad, e.release = v, release
		}
		e.quiet = 0
		var err error
		if act, err = e.vad.Process(f); err != nil {
			e.fallback("vad", err, nil)
			return
		}
		if e.metrics != nil {
			e.metrics.SpeechVADFrames.Add(1)
		}
	} else if e.vad != nil {
		if e.quiet++; e.quiet >= vadIdleFrames {
			e.giveBackVAD()
		}
	}
	ev, fs := e.ep.push(f, loud, act.Speech, frames(e.endSilence(loud)))
	if ev != epNone {
		e.early = 0 // an utterance: it decides what the paused prompt does
	}
	switch ev {
	case epNone:
		if req != nil && e.done {
			e.deliverHeld(ctx, req)
		}
		e.pauseEarly(armed && req == nil, act.Probability)
	case epStart:
		if e.done && req != nil {
			e.deliverHeld(ctx, req) // the held one answers; this one is held in turn
			req = nil
		}
		if e.done { // an older utterance no Listen took: this one replaces it
			e.drop(ctx, "the caller spoke again")
		}
		at := time.Now().Add(-time.Duration(len(fs)-1) * frameDur)
		// The sound's first loud frame arrived its age ago, and this
		// frame as long ago as the frames queued behind it (the
		// barge-in latency's start).
		e.onset.Store(time.Now().Add(-time.Duration(e.ep.onsetAge()+len(e.frames)) * frameDur).UnixNano())
		e.voices = e.ep.overVoices()
		if req != nil {
			if e.paused { // paused early, and the prompt is over: nothing to resume
				e.decide(bargeCut)
			}
			e.utt = append(e.utt[:0], fs...)
			e.startStream(ctx, req, at)
			return
		}
		e.utt, e.uttAt, e.dest, e.done, e.blip = append(e.utt[:0], fs...), at, toHeld, false, false
		if armed && !e.paused { // pause the prompt; cut or resume it once the sound says which
			e.paused = true
			select {
			case e.bargeIn <- struct{}{}:
			default:
			}
		}
	case epFrame, epEnd:
		e.settle(armed, ev)
		if e.dest == toHeld && req != nil {
			// A Listen came while the held utterance goes on: its
			// stream takes it from its first frame.
			e.utt = append(e.utt, f)
			e.startStream(ctx, req, e.uttAt)
		} else {
			e.take(ctx, f)
		}
		if ev == epEnd {
			e.ended(ctx)
		}
	}
}

// pauseEarly pauses a playing prompt (armed) as soon as the caller's
// sound has been loud for min_speech and the VAD's window says speech
// (prob at or over its threshold), one or two windows before the VAD's
// segment confirms it and an utterance starts: the caller hears the
// prompt stop about 50 ms sooner. The pause is the one a short sound
// makes: when no utterance starts within earlyFrames (a hum, a cough the
// VAD does not confirm), the prompt resumes where it paused.
func (e *ear) pauseEarly(armed bool, prob float64) {
	switch {
	case e.early > 0:
		if e.early++; e.early > earlyFrames || !e.ep.sustained() {
			e.early = 0
			e.decide(bargeResume)
		}
	case armed && !e.paused && e.dest == toNowhere && prob >= e.cfg.VADThreshold && e.ep.sustained():
		e.onset.Store(time.Now().Add(-time.Duration(e.ep.onsetAge()+len(e.frames)) * frameDur).UnixNano())
		e.paused, e.early = true, 1
		select {
		case e.bargeIn <- struct{}{}:
		default:
		}
	}
}

// settle decides, frame by frame, what a held utterance is: once it has
// lasted cutFrames of speech it is an answer (it cuts the prompt it paused,
// and the flow skips the next barge-in prompts); a sound that stops short
// of that lets the prompt it paused resume (a blip, held all the same).
func (e *ear) settle(armed bool, ev epEvent) {
	if e.dest != toHeld {
		return
	}
	switch {
	case e.ep.voiced >= cutFrames:
		if !e.ahead.Load() {
			e.ahead.Store(true)
			e.blip = false
			if armed {
				if e.metrics != nil {
					e.metrics.SpeechBargeIns.Add(1)
				}
				if !e.paused { // it paused the prompt before, which resumed
					e.paused = true
					select {
					case e.bargeIn <- struct{}{}:
					default:
					}
				}
			}
		}
		if e.paused {
			e.decide(bargeCut)
		}
	case e.paused && (e.ep.silent >= resumeFrames || ev == epEnd):
		e.blip = true
		e.decide(bargeResume)
	case ev == epEnd && !e.ahead.Load():
		e.blip = true
	}
	if ev == epEnd && e.blip && e.ep.brightness() < humBrightness {
		// A hum ("hmm"), not a word: nothing to recognize or hold.
		e.tracker.Event("speech.ignored", fmt.Sprintf("a hum over the line (brightness %.2f)", e.ep.brightness()))
		e.dest, e.utt, e.blip = toNowhere, nil, false
	}
}

// endSilence is the silence that ends the turn under way: the Listen's
// (longer for digits), or IncompleteSilence while the words heard so far
// are not a whole phrase of the Listen's grammar, both at the caller's
// last loud frame and now. Both, because the partial result moves after
// the words end: decoding the silence that follows "da", pocketsphinx's
// partial became "talk" (the start of "talk to an operator") and the turn
// waited 1.5 s although the final result was "da"; and it lags them: at
// the last loud frame of "pașaport" the partial may still be "cartea",
// and it becomes "pasaport" 100 ms later. loud says whether the frame
// about to be pushed is loud.
func (e *ear) endSilence(loud bool) time.Duration {
	end := e.cfg.EndSilence
	if e.cur == nil {
		return end
	}
	if e.cur.endSilence > 0 {
		end = e.cur.endSilence
	}
	if e.stream != nil && e.cur.grammar != nil && len(e.cur.grammar.Phrases) > 0 {
		if r, changed := e.stream.Partial(); changed {
			e.partial = r
		}
		incomplete := e.partial.Text != "" && e.partial.Tag == "" && e.cur.grammar.Match(e.cur.lang, e.partial.Text) == ""
		if loud {
			e.partialLoud = incomplete
		}
		if incomplete && e.partialLoud {
			end = max(end, e.cfg.IncompleteSilence)
		}
	}
	return end
}

// take puts one frame of the utterance in progress where it goes.
func (e *ear) take(ctx context.Context, f []int16) {
	switch e.dest {
	case toStream:
		if e.stream != nil {
			e.write(ctx, f)
		}
	case toHeld, toAlone:
		if len(e.utt) < e.ep.maxUtt {
			e.utt = append(e.utt, f)
		}
	}
}

// ended closes the utterance in progress at its last frame.
func (e *ear) ended(ctx context.Context) {
	switch e.dest {
	case toStream:
		if e.stream != nil {
			e.finish(ctx, "its question ended first")
		}
	case toHeld:
		e.done = true // waits for the next Listen
		e.dest = toNowhere
		return
	case toAlone:
		e.alone(e.utt, e.uttAt, e.why, true)
	}
	e.dest, e.utt = toNowhere, nil
}

// drop gives up the held utterance: it answers no question, and is
// recognized on its own and written as unanswered.
func (e *ear) drop(ctx context.Context, why string) {
	switch {
	case e.done:
		e.alone(e.utt, e.uttAt, why, true)
		e.utt, e.done = nil, false
	case e.dest == toHeld:
		e.dest, e.why = toAlone, why // recognized at its end
	default:
		return
	}
	e.ahead.Store(false)
}

// startStream opens a recognizer stream for req and feeds it e.utt, the
// utterance so far (started at at).
func (e *ear) startStream(ctx context.Context, req *turnReq, at time.Time) {
	e.sent, e.onFB, e.partial, e.partialLoud = e.sent[:0], false, speech.Result{}, false
	e.ahead.Store(false)
	e.curBlip, e.blip = e.blip && e.dest != toHeld, false // a blip still under way may grow into an answer
	if e.dest == toHeld && e.paused {
		e.decide(bargeResume) // the Listen takes it: the prompt is over anyway
	}
	utt := e.utt
	e.utt, e.done = nil, false
	o := e.streamOptions(req)
	st, err := e.rec.NewStream(e.sctx, o)
	if err != nil && errors.Is(err, speech.ErrUnsupported) && e.fb != nil {
		// Not this engine's turn (a language its model lacks, free
		// speech on a grammar-only engine): the next rung takes it.
		if st, err = e.fb.NewStream(e.sctx, o); err == nil {
			e.onFB = true
		}
	}
	if err != nil {
		if errors.Is(err, speech.ErrUnsupported) && req.grammar == nil {
			// A free question on a grammar-only engine: the caller's
			// words cannot be transcribed, but they answer it all the
			// same (the recording keeps them); the Listen waits for
			// the utterance's end.
			e.cancel(req)
			e.send(req, turnEvent{untranscribed: true})
			e.untranscribed = req
			e.utt, e.uttAt, e.why = utt, at, "a free question the recognizer cannot transcribe"
			if e.ep.inUtt {
				e.dest = toAlone
			} else {
				e.alone(utt, at, e.why, true)
				e.utt, e.dest = nil, toNowhere
			}
			return
		}
		if errors.Is(err, speech.ErrUnsupported) {
			// This turn cannot be recognized: keys only, this turn;
			// what the caller says is still transcribed on its own.
			e.cancel(req)
			e.send(req, turnEvent{err: err})
			e.utt, e.uttAt, e.why = utt, at, "the question takes keys only"
			if e.ep.inUtt {
				e.dest = toAlone
			} else {
				e.alone(utt, at, e.why, true)
				e.utt, e.dest = nil, toNowhere
			}
			return
		}
		e.cur, e.curAt, e.dest = req, at, toStream
		if !e.recover(ctx, "start", err) {
			return
		}
		st, e.stream = e.stream, nil
	}
	e.stream, e.cur, e.curAt, e.dest = st, req, at, toStream
	e.send(req, turnEvent{started: true})
	for _, f := range utt {
		if !e.write(ctx, f) {
			return
		}
	}
}

func (e *ear) streamOptions(req *turnReq) speech.StreamOptions {
	o := speech.StreamOptions{Lang: req.lang, Rate: e.rate, Grammar: req.grammar}
	if e.tracker != nil {
		o.Call = e.tracker.Info().ID
	}
	return o
}

// write feeds f to the stream, keeping it for a replay while a next rung
// exists. False: the call fell back to keys.
func (e *ear) write(ctx context.Context, f []int16) bool {
	if e.fb != nil && !e.onFB {
		e.sent = append(e.sent, f)
	}
	t0 := time.Now()
	err := e.stream.Write(f)
	if e.metrics != nil {
		e.metrics.RecognizerNs.Add(uint64(time.Since(t0)))
		e.metrics.RecognizerFrames.Add(1)
	}
	if err != nil {
		return e.recover(ctx, "write", err)
	}
	return true
}

// recover moves the call to the next rung of the ladder after its engine
// failed at step: the fallback recognizer for the rest of the call, with
// the utterance so far replayed into a new stream (left in e.stream). With
// no rung left the call goes on with keys and recover returns false.
func (e *ear) recover(ctx context.Context, step string, err error) bool {
	req := e.cur
	if e.fb == nil || e.onFB || e.sctx.Err() != nil {
		e.fallback(step, err, req)
		return false
	}
	if e.stream != nil {
		abandon(e.stream)
		e.stream = nil
	}
	e.rec, e.fb = e.fb, nil
	if e.metrics != nil {
		e.metrics.SpeechEngineFallback(step)
	}
	e.log.Warn("speech recognizer failed: the embedded recognizer takes over for the rest of the call", "step", step, "err", err)
	e.tracker.Event("speech.engine-fallback", redact.Text(fmt.Sprintf("%s: %v: the fallback recognizer takes over (%d frames replayed)", step, err, len(e.sent))))
	o := speech.StreamOptions{Lang: e.lang, Rate: e.rate}
	if req != nil {
		o = e.streamOptions(req)
	} else if e.last != nil {
		o = e.streamOptions(e.last)
	}
	st, err := e.rec.NewStream(e.sctx, o)
	if err != nil {
		e.fallback("start", err, req)
		return false
	}
	e.stream = st
	sent := e.sent
	e.sent = nil
	for _, f := range sent {
		if err := st.Write(f); err != nil {
			e.fallback("write", err, req)
			return false
		}
	}
	return true
}

// deliverHeld recognizes an utterance that ended before its Listen came.
func (e *ear) deliverHeld(ctx context.Context, req *turnReq) {
	e.startStream(ctx, req, e.uttAt)
	if e.stream != nil {
		e.finish(ctx, "its question ended first")
	}
}

// finish ends the stream and sends its result to the Listen it serves, or,
// when that Listen is gone (why says how), writes it as unanswered. It
// moves down the ladder when the engine fails to give a result. The
// stream's context outlives the call: the last words of a caller who hangs
// up are still recognized.
func (e *ear) finish(ctx context.Context, why string) {
	for {
		st, req, at := e.stream, e.cur, e.curAt
		fctx, cancel := context.WithTimeout(e.sctx, e.cfg.FinishTimeout)
		t0 := time.Now()
		res, err := st.Finish(fctx)
		if e.metrics != nil {
			e.metrics.RecognizerNs.Add(uint64(time.Since(t0)))
		}
		cancel()
		if err == nil {
			e.stream, e.cur, e.sent, e.dest = nil, nil, e.sent[:0], toNowhere
			if req != nil && ctx.Err() == nil {
				if e.metrics != nil {
					e.metrics.SpeechTurns.Add(1)
				}
				e.cancel(req)
				e.send(req, turnEvent{res: res, at: at, blip: e.curBlip, overVoices: e.voices})
				return
			}
			e.report(res, at, endedWhy(ctx, why))
			return
		}
		e.stream = nil // Finish released it
		if ctx.Err() != nil {
			e.cur, e.dest = nil, toNowhere
			e.log.Warn("speech: the caller's last words could not be recognized", "err", err)
			return
		}
		if !e.recover(ctx, "finish", err) {
			return
		}
		// The next rung has the whole utterance: finish that stream.
	}
}

// alone recognizes an utterance no Listen took (with the grammar of the
// last question, or the escape words when there was none; an engine that
// takes free speech first tries without one) and writes it as unanswered.
// With async it runs on a goroutine of its own (joined when the ear
// stops), so the ear does not fall behind the caller.
func (e *ear) alone(utt [][]int16, at time.Time, why string, async bool) {
	if len(utt) == 0 || e.off.Load() {
		return
	}
	answers := e.untranscribed // the free question it answers, if any
	e.untranscribed = nil
	voices := e.voices
	rec := e.rec
	o := speech.StreamOptions{Lang: e.lang, Rate: e.rate}
	if e.last != nil {
		o = e.streamOptions(e.last)
	} else if e.tracker != nil {
		o.Call = e.tracker.Info().ID
	}
	g := o.Grammar
	if g == nil { // no question yet: yes, no and the escape words
		g = grammarFor(flows.Listen{Lang: o.Lang, Expect: flows.ExpectYesNo})
	}
	run := func() {
		fctx, cancel := context.WithTimeout(e.sctx, e.cfg.FinishTimeout+time.Duration(len(utt))*frameDur)
		defer cancel()
		free := o
		free.Grammar = nil
		st, err := rec.NewStream(fctx, free)
		if errors.Is(err, speech.ErrUnsupported) {
			o.Grammar = g
			st, err = rec.NewStream(fctx, o)
		}
		var res speech.Result
		if err == nil {
			for _, f := range utt {
				if err = st.Write(f); err != nil {
					break
				}
			}
			if err == nil {
				res, err = st.Finish(fctx)
			} else {
				abandon(st)
			}
		}
		if err != nil {
			e.log.Warn("speech: an utterance no question took could not be recognized", "err", err)
			res = speech.Result{}
		}
		if answers != nil {
			// It answers its free question: an escape word heard with
			// confidence ("operator", "English") as such, anything else
			// as untranscribed speech, never a forced guess.
			if res.Tag != "" && res.Confidence >= flows.DefaultConfirmBelow {
				e.send(answers, turnEvent{res: res, at: at, overVoices: voices})
			} else {
				e.send(answers, turnEvent{untranscribed: true, at: at})
			}
			return
		}
		e.report(res, at, why)
	}
	if !async {
		run()
		return
	}
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		defer Recover(e.metrics, e.log, "call recognition", nil)
		run()
	}()
}

// report hands an utterance no Listen took to the session.
func (e *ear) report(res speech.Result, at time.Time, why string) {
	if e.metrics != nil {
		e.metrics.SpeechUnanswered.Add(1)
	}
	if e.unanswered != nil {
		e.unanswered(res, at, why)
	}
}

// abandon ends a stream without waiting for its result.
func abandon(st speech.Stream) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = st.Finish(done)
}

// fallback turns speech off for the rest of the call: the engine failed.
func (e *ear) fallback(step string, err error, req *turnReq) {
	if e.stream != nil {
		abandon(e.stream)
	}
	e.stream, e.cur = nil, nil
	e.utt, e.dest, e.done, e.sent = nil, toNowhere, false, nil
	e.ahead.Store(false)
	if e.off.Swap(true) {
		return
	}
	if e.metrics != nil {
		e.metrics.SpeechFallback(step)
	}
	e.log.Warn("speech recognition failed: the call goes on with keys only", "step", step, "err", err)
	e.tracker.Event("speech.fallback", redact.Text(fmt.Sprintf("%s: %v: keys only for the rest of the call", step, err)))
	if req != nil {
		e.cancel(req)
		e.send(req, turnEvent{err: fmt.Errorf("%w: %w", errFallback, err)})
	}
}

var errFallback = errors.New("speech fell back to keys")

func (e *ear) send(req *turnReq, ev turnEvent) {
	select {
	case req.events <- ev:
	default:
	}
}

// grammarFor builds the grammar of a Listen (speech.ForQuestion, which the
// flow simulator uses too); nil for free speech without phrases (open
// vocabulary, for the engines that have it). Every grammar also takes the
// escape phrases of both languages, each pronounced in its own
// (speech.Grammar.AddEscapes): "operator", "om", "agent", "English",
// "română", yes/no. A caller who asks for a person or for the other
// language in that language is understood at any question.
func grammarFor(l flows.Listen) *speech.Grammar {
	return speech.ForQuestion(speech.Question{Lang: l.Lang, Kind: string(l.Expect), Phrases: l.Phrases,
		MinDigits: l.MinDigits, MaxDigits: l.MaxDigits})
}

// SerialStreams wraps a recognizer so that its NewStream calls run one at
// a time (its streams still run concurrently). pocketsphinx needs it: a new
// decoder swaps the library's process-wide log file, and two created at
// once corrupt the heap (measured: "malloc(): unaligned tcache chunk" with
// 100 calls speaking).
func SerialStreams(r speech.Recognizer) speech.Recognizer { return &serialStreams{r: r} }

type serialStreams struct {
	mu sync.Mutex
	r  speech.Recognizer
}

func (s *serialStreams) NewStream(ctx context.Context, o speech.StreamOptions) (speech.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.NewStream(ctx, o)
}
