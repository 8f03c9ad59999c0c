package ivr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/speech"
)

// Timing holds the menu's timeouts. The zero value means the defaults.
type Timing struct {
	FirstDigit time.Duration // how long the menu waits for a key after its prompt
	Retries    int           // no-input or invalid answers before the line says goodbye
}

// Timing defaults.
const (
	DefaultFirstDigit = 6 * time.Second
	DefaultRetries    = 3
)

func (t Timing) withDefaults() Timing {
	if t.FirstDigit <= 0 {
		t.FirstDigit = DefaultFirstDigit
	}
	if t.Retries <= 0 {
		t.Retries = DefaultRetries
	}
	return t
}

// PlayResult is how a prompt ended.
type PlayResult int

// Prompt outcomes.
const (
	PlayFinished    PlayResult = iota // the whole prompt was sent
	PlayInterrupted                   // the caller pressed a key (barge-in)
	PlayHangup                        // the call ended
	PlayFailed                        // the prompt could not be played
)

// Session owns one answered call until its end. Until Lua flows replace it,
// it runs the built-in menu: greeting, then a DTMF menu (1 identity card,
// 2 portal account, 3 operator, 9 repeat, 0 goodbye).
type Session struct {
	Call      Call
	Info      CallInfo
	Prompts   *Prompts
	Timing    Timing
	Recording *Recording // may be nil
	Log       *slog.Logger
	Tracker   *Tracker

	// Flow, when set, talks to the caller instead of the built-in menu,
	// with Services and Synth, starting in Lang.
	Flow     FlowRunner
	Services flows.Services
	Synth    Synthesizer
	Lang     string
	// Speech, when enabled, lets the caller answer and barge in by voice.
	Speech *SpeechConfig

	keys      chan Digit  // every key, from the adapter or heard in-band
	ear       *ear        // the turn-taking stage; nil on a DTMF-only call
	sawEvents atomic.Bool // the adapter delivered a key: in-band detection stops
}

// Run talks to the caller and returns why the call should end.
func (s *Session) Run() EndReason {
	ctx := s.Call.Context()
	s.Timing = s.Timing.withDefaults()

	// The listener owns caller audio for the whole call: it feeds the
	// recording, the in-band DTMF detector and the turn-taking stage (the
	// ear, which has a goroutine of its own so that the listener never
	// waits for a recognizer). The forwarder brings the adapter's keys.
	// Both record a key when it arrives, so a key the menu never read is
	// still stored.
	s.keys = make(chan Digit, 32)
	var wg sync.WaitGroup
	lctx, stopListen := context.WithCancelCause(ctx)
	if s.Flow != nil && s.Speech.Enabled() {
		s.ear = newEar(*s.Speech, s.Info.Rate, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer Recover(s.metrics(), s.Log, "call turn-taking", s.endOnPanic)
			s.ear.run(lctx)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer Recover(s.metrics(), s.Log, "call listener", s.endOnPanic)
		s.listen(lctx)
	}()
	go func() {
		defer wg.Done()
		defer Recover(s.metrics(), s.Log, "call keys", s.endOnPanic)
		s.forwardKeys(lctx)
	}()
	defer func() {
		// The ear recognizes what the caller was saying, or had said
		// for a question that never came, before the call is torn
		// down.
		stopListen(errFlowDone)
		wg.Wait()
	}()

	var reason EndReason
	if s.Flow != nil {
		reason = s.runFlow(ctx)
	} else {
		reason = s.menu(ctx)
	}
	if cause := context.Cause(ctx); cause != nil {
		return ReasonOf(cause)
	}
	return reason
}

// unanswered writes what the caller said that no question took (the ear's
// report): a caller turn in the transcript, and an event in the call's log
// saying why (never the words: they may be personal data).
func (s *Session) unanswered(res speech.Result, at time.Time, why string) {
	s.Tracker.Event("speech.unanswered", fmt.Sprintf("%s: confidence %.2f words %d", why, res.Confidence, len(strings.Fields(res.Text))))
	if strings.TrimSpace(res.Text) == "" || s.Services.Transcript == nil {
		return
	}
	t := durableTranscript{t: s.Services.Transcript, m: s.metrics(), log: s.Log}
	_ = t.Append(context.Background(), s.Info.ID, flows.Turn{Speaker: "caller", Text: res.Text, At: time.Now(), Began: at, Mode: flows.InputSpeech, Confidence: res.Confidence})
}

func (s *Session) metrics() *Metrics {
	if s.Tracker != nil && s.Tracker.eng != nil {
		return s.Tracker.eng.Metrics
	}
	return nil
}

// LostWrite reports whether a log line says that a write belonging to a
// call (a transcript turn, a ticket) was lost. The tests of every adapter
// fail on such a line.
func LostWrite(line string) bool {
	for _, m := range []string{"turn not saved", "ticket not opened", "could not open the ticket"} {
		if strings.Contains(line, m) {
			return true
		}
	}
	return false
}

// durableTranscript writes a call's turns on a context of their own that
// outlives the call (flows.WriteTimeout at most): the turn in progress at
// a hangup is written like any other. A failed write is counted
// (ivr_transcript_lost_total) and logged as an error.
type durableTranscript struct {
	t   flows.Transcript
	m   *Metrics
	log *slog.Logger
}

func (d durableTranscript) Append(ctx context.Context, callID string, tu flows.Turn) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flows.WriteTimeout)
	defer cancel()
	err := d.t.Append(wctx, callID, tu)
	if err != nil {
		if d.m != nil {
			d.m.TranscriptLost.Add(1)
		}
		if d.log != nil {
			d.log.Error("transcript: turn not saved", "speaker", tu.Speaker, "err", err)
		}
	}
	return err
}

func (s *Session) listen(ctx context.Context) {
	buf := make([]int16, audio.SamplesPerFrame(s.Info.Rate))
	det := audio.NewDTMFDetector(s.Info.Rate)
	for {
		n, err := s.Call.ReadFrame(ctx, buf)
		if err != nil {
			return
		}
		s.Recording.Caller(buf[:n])
		if s.ear != nil {
			s.ear.feed(buf[:n])
		}
		// In-band DTMF, for lines that send tones instead of events.
		// A phone that sends RFC 4733 or SIP INFO may leave the tone in
		// its audio too: after its first event, tones are not counted.
		if !s.sawEvents.Load() {
			if k := det.Feed(buf[:n]); k != 0 {
				s.Tracker.Event("dtmf", "inband "+string(k))
				s.key(Digit{Key: k, Source: "inband", At: time.Now()})
			}
		}
	}
}

func (s *Session) forwardKeys(ctx context.Context) {
	for {
		select {
		case d := <-s.Call.Digits():
			s.sawEvents.Store(true)
			s.key(d)
		case <-ctx.Done():
			return
		}
	}
}

// key records a key and queues it for the menu.
func (s *Session) key(d Digit) {
	s.Tracker.Digit(d)
	select {
	case s.keys <- d:
	default:
		s.Log.Warn("key queue full: key dropped", "source", d.Source)
	}
}

func (s *Session) menu(ctx context.Context) EndReason {
	// A caller who knows the menu may press a key during the greeting:
	// that key answers the menu.
	res, pending := s.play(ctx, "greeting", true)
	if res == PlayHangup {
		return EndCallerHangup
	}
	failures := 0
	for failures < s.Timing.Retries {
		key := pending
		pending = 0
		if key == 0 {
			key, res = s.ask(ctx, "menu")
			switch res {
			case PlayHangup:
				return EndCallerHangup
			case PlayFailed:
				return EndError
			}
		}
		switch key {
		case 0:
			failures++
			s.play(ctx, "no_input", false)
		case '1', '2':
			// An answer may be cut short by the next choice.
			failures = 0
			prompt := map[rune]string{'1': "info_identity", '2': "info_portal"}[key]
			if r, k := s.play(ctx, prompt, true); r == PlayInterrupted {
				pending = k
			}
		case '3':
			s.play(ctx, "operator", false)
			s.play(ctx, "goodbye", false)
			return EndEngineHangup
		case '9':
			failures = 0
		case '0':
			s.play(ctx, "goodbye", false)
			return EndEngineHangup
		default:
			failures++
			s.play(ctx, "invalid", false)
		}
		if ctx.Err() != nil {
			return EndCallerHangup
		}
	}
	s.play(ctx, "goodbye", false)
	return EndEngineHangup
}

// ask plays a prompt that the caller may interrupt with a key, then waits
// for the key. It returns 0 when no key came in time.
func (s *Session) ask(ctx context.Context, prompt string) (rune, PlayResult) {
	res, key := s.play(ctx, prompt, true)
	if res == PlayInterrupted {
		return key, res
	}
	if res != PlayFinished {
		return 0, res
	}
	t := time.NewTimer(s.Timing.FirstDigit)
	defer t.Stop()
	select {
	case d := <-s.keys:
		return d.Key, PlayInterrupted
	case <-t.C:
		return 0, PlayFinished
	case <-ctx.Done():
		return 0, PlayHangup
	}
}

// play sends a prompt frame by frame. With bargeIn, a key press stops it at
// the next frame and is returned; without, keys wait for the next question.
func (s *Session) play(ctx context.Context, name string, bargeIn bool) (PlayResult, rune) {
	pcm, err := s.Prompts.Get(name, s.Info.Rate)
	if err != nil {
		s.Log.Error("prompt not playable", "prompt", name, "err", err)
		return PlayFailed, 0
	}
	n := audio.SamplesPerFrame(s.Info.Rate)
	frame := make([]int16, n)
	for off := 0; off < len(pcm); off += n {
		if bargeIn {
			select {
			case d := <-s.keys:
				s.Log.Debug("prompt interrupted", "prompt", name)
				return PlayInterrupted, d.Key
			default:
			}
		}
		end := off + n
		if end > len(pcm) {
			clear(frame)
			end = len(pcm)
		}
		copy(frame, pcm[off:end])
		if err := s.Call.WriteFrame(ctx, frame); err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return PlayHangup, 0
			}
			s.Log.Warn("prompt stopped", "prompt", name, "err", err)
			return PlayFailed, 0
		}
		s.Recording.Engine(frame)
	}
	return PlayFinished, 0
}

// endOnPanic ends the call after a panic on one of the session's
// goroutines (recovered by Recover): without it the call would go on
// deaf or without keys.
func (s *Session) endOnPanic(v any) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Call.Hangup(ctx, EndError)
}
