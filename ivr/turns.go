package ivr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/flows"
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
	// MaxUtterance cuts a turn that never pauses.
	MaxUtterance time.Duration
	// NoiseMargin is how many dB above the adaptive noise estimate a frame
	// must be to count as speech (a second line of defence behind the
	// VAD against noise barging in).
	NoiseMargin float64
	// FinishTimeout bounds the wait for the recognizer's final result;
	// past it the call moves down the ladder (Fallback, then keys).
	FinishTimeout time.Duration
}

// SpeechConfig defaults.
const (
	DefaultBargeIn          = 120 * time.Millisecond
	DefaultEndSilence       = 700 * time.Millisecond
	DefaultDigitsEndSilence = 1500 * time.Millisecond
	DefaultMaxUtterance     = 10 * time.Second
	DefaultNoiseMargin      = 10.0
	DefaultFinishTimeout    = 3 * time.Second
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
	if c.MaxUtterance <= 0 {
		c.MaxUtterance = DefaultMaxUtterance
	}
	if c.NoiseMargin <= 0 {
		c.NoiseMargin = DefaultNoiseMargin
	}
	if c.FinishTimeout <= 0 {
		c.FinishTimeout = DefaultFinishTimeout
	}
	return c
}

const (
	frameDur   = 20 * time.Millisecond
	earQueue   = 50 // frames (1 s) between the listener and the ear
	prerollLen = 25 // frames (500 ms) kept before speech is confirmed
	// absFloor is the lowest level (dB of RMS in 16-bit units, about
	// -50 dBFS) that can count as speech, whatever the noise estimate.
	absFloor = 40.0
	// dipFrames is how long the level may dip inside a word without
	// restarting the sustained-speech count.
	dipFrames = 3
	// heldFrames is how long (5 s) an utterance that barged in and ended
	// waits for the next Listen before it is dropped as stale.
	heldFrames = 250
	// vadIdleFrames of quiet (2 s) give the call's VAD back to the pool.
	vadIdleFrames = 100
)

// ear is a call's turn-taking stage. The listener hands it every caller
// frame (feed never blocks: frames it cannot take are dropped and counted);
// its goroutine (run) owns the VAD and the recognizer streams. The flow's
// goroutine drives it through arm (a barge-in prompt plays) and listen /
// cancel (a Listen waits for speech). Between the two sides only mu, the
// channels and off are shared.
type ear struct {
	cfg     SpeechConfig
	rate    int
	vad     speech.VAD // held while the line is loud (nil: none)
	release func()     // gives vad back
	quiet   int        // frames since the VAD last had work
	log     *slog.Logger
	tracker *Tracker
	metrics *Metrics

	frames  chan []int16
	bargeIn chan struct{} // signalled when caller speech stops a prompt
	off     atomic.Bool   // fallen back to keys for the rest of the call

	mu    sync.Mutex
	armed bool
	req   *turnReq

	// owned by run
	n         int  // frames seen
	vadSpeech bool // the VAD is inside a segment
	floor     float64
	runStart  int // first frame of the current loud run, -1 when none
	lastLoud  int
	preroll   [][]int16
	inUtt     bool
	utt       [][]int16 // the utterance so far while no stream takes it
	held      bool      // utt stays for the next Listen (it barged in)
	complete  bool      // utt ended before a Listen took it
	heldEnd   int       // frame where the held utterance ended
	silent    int       // frames of silence in the utterance
	uttLen    int
	cur       *turnReq // the Listen the stream serves
	stream    speech.Stream
	rec       speech.Recognizer // the engine of the call's turns
	fb        speech.Recognizer // the next rung, nil once used (or none)
	onFB      bool              // the stream runs on fb for this turn only
	sent      [][]int16         // frames written to stream, kept to replay into fb
}

// turnReq is one Listen waiting for speech.
type turnReq struct {
	lang       string
	grammar    *speech.Grammar
	endSilence time.Duration
	events     chan turnEvent
}

// turnEvent is what the ear tells a Listen.
type turnEvent struct {
	started bool // speech began: the no-input timeout no longer applies
	res     speech.Result
	err     error // the recognizer failed: fallback, or unsupported for this turn
}

func newEar(cfg SpeechConfig, rate int, s *Session) *ear {
	var m *Metrics
	if s.Tracker != nil && s.Tracker.eng != nil {
		m = s.Tracker.eng.Metrics
	}
	return &ear{cfg: cfg.withDefaults(), rate: rate, log: s.Log, tracker: s.Tracker, metrics: m,
		frames: make(chan []int16, earQueue), bargeIn: make(chan struct{}, 1), floor: 30, runStart: -1,
		rec: cfg.Recognizer, fb: cfg.Fallback}
}

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
		}
	}
}

// run processes frames until ctx ends, then releases the VAD and any
// stream.
func (e *ear) run(ctx context.Context) {
	defer func() {
		if e.stream != nil {
			done, cancel := context.WithCancel(context.Background())
			cancel()
			_, _ = e.stream.Finish(done)
		}
		e.giveBackVAD()
	}()
	for {
		select {
		case f := <-e.frames:
			e.frame(ctx, f)
		case <-ctx.Done():
			return
		}
	}
}

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
		select { // a signal left from an earlier prompt
		case <-e.bargeIn:
		default:
		}
	}
	return e.bargeIn
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

func levelDB(f []int16) float64 { return 20 * math.Log10(audio.RMS(f)+1) }

// frame is the ear's work for one 20 ms frame.
func (e *ear) frame(ctx context.Context, f []int16) {
	if e.off.Load() {
		return // keys only: the frames are drained
	}
	e.n++
	e.mu.Lock()
	armed, req := e.armed, e.req
	e.mu.Unlock()

	// The Listen a stream served is gone (a key won, or it timed out):
	// drop the stream.
	if e.cur != nil && e.cur != req {
		e.abandon()
	}

	db := levelDB(f)
	loud := db >= max(e.floor+e.cfg.NoiseMargin, absFloor)
	// The VAD (the costly part: a neural model) only hears frames that
	// could be speech, and everything while it is inside a segment; a
	// quiet line costs almost nothing.
	var act speech.Activity
	if loud || e.vadSpeech || e.inUtt {
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
		e.vadSpeech = act.Speech
		if e.metrics != nil {
			e.metrics.SpeechVADFrames.Add(1)
		}
	} else if e.vad != nil {
		if e.quiet++; e.quiet >= vadIdleFrames {
			e.giveBackVAD()
		}
	}
	if !act.Speech {
		// The noise estimate follows the level outside speech: fast
		// down, slow up (a second of steady noise).
		a := 0.02
		if db < e.floor {
			a = 0.2
		}
		e.floor += a * (db - e.floor)
	}
	if loud {
		if e.runStart < 0 {
			e.runStart = e.n
		}
		e.lastLoud = e.n
	} else if e.runStart >= 0 && e.n-e.lastLoud > dipFrames {
		e.runStart = -1
	}

	if !e.inUtt {
		e.preroll = append(e.preroll, f)
		if len(e.preroll) > prerollLen {
			e.preroll = e.preroll[1:]
		}
		sustained := e.runStart >= 0 && time.Duration(e.n-e.runStart+1)*frameDur >= e.cfg.BargeIn
		if !act.Speech || !sustained {
			if e.held && e.complete && e.n-e.heldEnd > heldFrames {
				e.utt, e.held, e.complete = e.utt[:0], false, false // stale: the question moved on
			}
			if req != nil && e.held && e.complete {
				e.deliverHeld(ctx, req)
			}
			return
		}
		// Speech confirmed: a new utterance, from the pre-roll on.
		e.inUtt, e.silent, e.complete = true, 0, false
		e.utt = append(e.utt[:0], e.preroll...)
		e.uttLen = len(e.utt)
		e.preroll = nil
		e.held = false
		if armed {
			e.held = true
			select {
			case e.bargeIn <- struct{}{}:
			default:
			}
			if e.metrics != nil {
				e.metrics.SpeechBargeIns.Add(1)
			}
		}
		if req != nil {
			e.startStream(ctx, req)
		}
		return
	}

	// Inside an utterance.
	e.uttLen++
	if act.Speech && loud {
		e.silent = 0
	} else {
		e.silent++
	}
	if e.stream == nil && req != nil {
		e.startStream(ctx, req)
		if e.stream == nil {
			return
		}
	}
	if e.stream != nil {
		if !e.write(ctx, f) {
			return
		}
	} else if time.Duration(len(e.utt))*frameDur < e.cfg.MaxUtterance {
		e.utt = append(e.utt, f)
	}
	end := e.cfg.EndSilence
	if e.cur != nil && e.cur.endSilence > 0 {
		end = e.cur.endSilence
	}
	if time.Duration(e.silent)*frameDur >= end || time.Duration(e.uttLen)*frameDur >= e.cfg.MaxUtterance {
		e.inUtt = false
		e.runStart = -1
		if e.stream != nil {
			e.finish(ctx)
			return
		}
		e.complete, e.heldEnd = true, e.n
		if !e.held {
			e.utt = e.utt[:0]
		}
	}
}

// startStream opens a recognizer stream for req and feeds it the
// utterance kept so far.
func (e *ear) startStream(ctx context.Context, req *turnReq) {
	e.sent, e.onFB = e.sent[:0], false
	o := e.streamOptions(req)
	st, err := e.rec.NewStream(ctx, o)
	if err != nil && errors.Is(err, speech.ErrUnsupported) && e.fb != nil {
		// Not this engine's turn (a language its model lacks, free
		// speech on a grammar-only engine): the next rung takes it.
		if st, err = e.fb.NewStream(ctx, o); err == nil {
			e.onFB = true
		}
	}
	if err != nil {
		if errors.Is(err, speech.ErrUnsupported) {
			// This turn cannot be recognized (no grammar for free
			// speech on a grammar-only engine): keys only, this turn.
			e.cancel(req)
			e.send(req, turnEvent{err: err})
			e.utt, e.held = e.utt[:0], false
			return
		}
		e.cur = req
		if !e.recover(ctx, "start", err) {
			return
		}
		st, e.stream = e.stream, nil
	}
	e.stream, e.cur = st, req
	e.send(req, turnEvent{started: true})
	for _, f := range e.utt {
		if !e.write(ctx, f) {
			return
		}
	}
	e.utt, e.held = e.utt[:0], false
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
	if err := e.stream.Write(f); err != nil {
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
	if e.fb == nil || e.onFB || ctx.Err() != nil {
		e.fallback(step, err, req)
		return false
	}
	if e.stream != nil {
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_, _ = e.stream.Finish(done)
		e.stream = nil
	}
	e.rec, e.fb = e.fb, nil
	if e.metrics != nil {
		e.metrics.SpeechEngineFallback(step)
	}
	e.log.Warn("speech recognizer failed: the embedded recognizer takes over for the rest of the call", "step", step, "err", err)
	e.tracker.Event("speech.engine-fallback", fmt.Sprintf("%s: %v: the fallback recognizer takes over (%d frames replayed)", step, err, len(e.sent)))
	st, err := e.rec.NewStream(ctx, e.streamOptions(req))
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
	e.startStream(ctx, req)
	e.complete = false
	if e.stream != nil {
		e.finish(ctx)
	}
}

// finish ends the stream and sends its result, moving down the ladder
// when the engine fails to give one.
func (e *ear) finish(ctx context.Context) {
	for {
		st, req := e.stream, e.cur
		fctx, cancel := context.WithTimeout(ctx, e.cfg.FinishTimeout)
		res, err := st.Finish(fctx)
		cancel()
		if err == nil {
			e.stream, e.cur, e.sent = nil, nil, e.sent[:0]
			if e.metrics != nil {
				e.metrics.SpeechTurns.Add(1)
			}
			e.cancel(req)
			e.send(req, turnEvent{res: res})
			return
		}
		e.stream = nil // Finish released it
		if ctx.Err() != nil {
			e.cur = nil
			return // the call ended
		}
		if !e.recover(ctx, "finish", err) {
			return
		}
		// The next rung has the whole utterance: finish that stream.
	}
}

// abandon drops the stream without waiting for a result.
func (e *ear) abandon() {
	if e.stream != nil {
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_, _ = e.stream.Finish(done)
	}
	e.stream, e.cur = nil, nil
	e.utt, e.held, e.sent = e.utt[:0], false, e.sent[:0]
}

// fallback turns speech off for the rest of the call: the engine failed.
func (e *ear) fallback(step string, err error, req *turnReq) {
	if e.stream != nil {
		st := e.stream
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_, _ = st.Finish(done)
	}
	e.stream, e.cur = nil, nil
	e.utt, e.held, e.inUtt, e.sent = e.utt[:0], false, false, nil
	if e.off.Swap(true) {
		return
	}
	if e.metrics != nil {
		e.metrics.SpeechFallback(step)
	}
	e.log.Warn("speech recognition failed: the call goes on with keys only", "step", step, "err", err)
	e.tracker.Event("speech.fallback", fmt.Sprintf("%s: %v: keys only for the rest of the call", step, err))
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

// grammarFor builds the grammar of a Listen; nil for free speech without
// phrases (open vocabulary, for the engines that have it). Every grammar
// also takes the escape phrases of both languages, each pronounced in its
// own (speech.Grammar.AddEscapes): "operator", "om", "agent", "English",
// "română", yes/no. A caller who asks for a person or for the other
// language in that language is understood at any question.
func grammarFor(l flows.Listen) *speech.Grammar {
	lang := l.Lang
	if lang != "en" {
		lang = "ro"
	}
	var g *speech.Grammar
	switch l.Expect {
	case flows.ExpectYesNo:
		g = speech.YesNo(lang)
	case flows.ExpectDigits:
		g = &speech.Grammar{Digits: l.MaxDigits, MinDigits: l.MinDigits}
		if g.Digits <= 0 {
			g.Digits = 20
		}
	default:
		if len(l.Phrases) == 0 {
			return nil
		}
		g = &speech.Grammar{}
		seen := map[string]bool{}
		for _, p := range l.Phrases {
			if n := speech.NormalizeText(p); n != "" && !seen[n] {
				seen[n] = true
				g.Add(n, n)
			}
		}
	}
	return g.AddEscapes(lang, l.Expect == flows.ExpectYesNo)
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
