package ivr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/tickets"

	"github.com/govline/ivr/redact"
)

// ErrDraining refuses new calls while the engine shuts down.
var ErrDraining = errors.New("engine is draining: no new calls")

// Engine admits calls, serves them with a Session and keeps their records.
// One Engine serves every adapter of the process. It is safe for concurrent
// use.
type Engine struct {
	Calls    *tickets.CallLog // call records and events, written in the background
	Metrics  *Metrics
	Log      *slog.Logger
	Prompts  *Prompts
	Timing   Timing
	RecDir   string // where call recordings go; empty turns recording off
	Teardown time.Duration
	// Checkpoint is how often an answered call's record is brought up to
	// date (packet counts, last known activity) and its recording written
	// out, so that a crash costs a call at most this much of either; 0
	// means DefaultCheckpoint.
	Checkpoint time.Duration

	// Flow, when set, serves calls instead of the built-in menu; Services
	// are what it may use and Synth renders what it says. Lang is the
	// language a call starts in.
	Flow     FlowRunner
	Services flows.Services
	Synth    Synthesizer
	Lang     string
	// Speech, when enabled, lets callers of a flow answer and interrupt
	// prompts by voice; nil keeps the line DTMF-only.
	Speech *SpeechConfig

	draining    atomic.Bool
	speechCalls atomic.Int64 // calls answering by voice (Speech.MaxCalls)
	mu          sync.Mutex
	calls       map[string]*Tracker
	idle        chan struct{} // closed when draining and no call is left
}

// Begin admits a new call: it refuses it while draining, opens its call
// record and counts it as active. The returned Tracker must be ended with
// End exactly once (later calls are ignored).
func (e *Engine) Begin(info CallInfo) (*Tracker, error) {
	if e.draining.Load() {
		e.Metrics.CallEnded(EndRejected)
		return nil, End(EndRejected, ErrDraining)
	}
	if info.Start.IsZero() {
		info.Start = time.Now()
	}
	key := info.ID
	e.mu.Lock()
	if e.calls == nil {
		e.calls = map[string]*Tracker{}
	}
	if _, dup := e.calls[key]; dup {
		e.mu.Unlock()
		e.Metrics.CallEnded(EndRejected)
		return nil, End(EndRejected, fmt.Errorf("call id %q is already in progress", key))
	}
	t := &Tracker{eng: e, key: key}
	e.calls[key] = t
	e.mu.Unlock()
	// A call id used before (by an ended call) gets a record id of its
	// own: the first call's record and recording stay as they were. The
	// look-up waits for the store at most CallIDLookupTimeout: a database
	// that does not answer must not keep the caller from being answered.
	lctx, cancel := context.WithTimeout(context.Background(), CallIDLookupTimeout)
	info.ID = e.Calls.FreeID(lctx, info.ID)
	cancel()
	t.info, t.log = info, e.Log.With("call_id", info.ID)
	e.Metrics.ActiveCalls.Add(1)

	e.Calls.Start(tickets.CallRecord{ID: info.ID, Telephony: info.Telephony, Caller: info.Caller, Called: info.Called, Start: info.Start})
	t.log.Info("call offered", "telephony", info.Telephony, "caller", redact.Phone(info.Caller), "called", info.Called)
	return t, nil
}

// CallIDLookupTimeout bounds how long call setup waits for the store to
// say whether a new call's id was used before (tickets.CallLog.FreeID).
// Past it (the database restarting, a host or network that does not
// answer) the id is taken as new: the caller is answered all the same; in
// the rare case the id was taken, the call's record is refused and counted
// (ivr_calllog_failed_total).
const CallIDLookupTimeout = 500 * time.Millisecond

// DefaultCheckpoint is how often an answered call's record is brought up
// to date by default.
const DefaultCheckpoint = time.Second

// Draining reports whether the engine refuses new calls.
func (e *Engine) Draining() bool { return e.draining.Load() }

// Drain refuses new calls from now on and waits until every active call has
// ended or ctx ends. When ctx ends first, it hangs up the calls left with
// EndShutdown and waits for them up to the teardown limit.
func (e *Engine) Drain(ctx context.Context) error {
	e.mu.Lock()
	if !e.draining.Swap(true) {
		e.idle = make(chan struct{})
		if len(e.calls) == 0 {
			close(e.idle)
		}
	}
	idle := e.idle
	e.mu.Unlock()
	e.Log.Info("draining", "active_calls", e.Metrics.ActiveCalls.Load())

	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	e.mu.Lock()
	left := make([]*Tracker, 0, len(e.calls))
	for _, t := range e.calls {
		left = append(left, t)
	}
	e.mu.Unlock()
	e.Log.Warn("grace period over: hanging up the calls left", "calls", len(left))
	for _, t := range left {
		t.hangup(EndShutdown)
	}
	select {
	case <-idle:
		return nil
	case <-time.After(e.teardownLimit() + time.Second):
		return fmt.Errorf("%d calls did not end after shutdown", e.Metrics.ActiveCalls.Load())
	}
}

func (e *Engine) checkpoint() time.Duration {
	if e.Checkpoint > 0 {
		return e.Checkpoint
	}
	return DefaultCheckpoint
}

func (e *Engine) teardownLimit() time.Duration {
	if e.Teardown > 0 {
		return e.Teardown
	}
	return 5 * time.Second
}

func (e *Engine) forget(id string) {
	e.mu.Lock()
	delete(e.calls, id)
	if e.draining.Load() && len(e.calls) == 0 && e.idle != nil {
		select {
		case <-e.idle:
		default:
			close(e.idle)
		}
	}
	e.mu.Unlock()
}

// Serve runs the session on an answered call and ends the call when the
// session returns: it hangs up (if the caller did not), closes the
// recording and writes the end of the call record. It returns the reason
// the call ended.
func (e *Engine) Serve(call Call, t *Tracker) EndReason {
	return e.ServeFlow(call, t, e.Flow)
}

// ServeFlow is Serve with flow in place of the engine's Flow: an outbound
// call (a trunk test, a survey) runs the flow it was placed for.
func (e *Engine) ServeFlow(call Call, t *Tracker, flow FlowRunner) EndReason {
	t.mu.Lock()
	t.call = call
	t.mu.Unlock()
	info := t.Info()

	var rec *Recording
	if e.RecDir != "" {
		var err error
		rec, err = openRecording(e.RecDir, info, e.Metrics, t.log)
		if err != nil {
			e.Metrics.RecordingErrors.Add(1)
			t.log.Error("recording not started; the call goes on without it", "err", err)
		} else {
			t.mu.Lock()
			t.recording = rec.Path
			t.mu.Unlock()
		}
	}
	e.Calls.Answer(info.ID, time.Now(), info.Codec, t.RecordingPath())
	t.log.Info("call answered", "codec", info.Codec, "rate", info.Rate)

	sc, releaseSpeech := e.speechFor(t)
	defer releaseSpeech()
	s := &Session{Call: call, Info: info, Prompts: e.Prompts, Timing: e.Timing, Recording: rec, Log: t.log, Tracker: t,
		Flow: flow, Services: e.Services, Synth: e.Synth, Lang: e.Lang, Speech: sc}
	stopCheckpoints := t.checkpoints(e.checkpoint(), rec)
	reason := e.run(s, call, t)
	stopCheckpoints()

	// Teardown runs once, on a context of its own: the call's context may
	// already be cancelled.
	// The goroutine works on its own copy of the reason: when it is slow,
	// Serve goes on without it.
	done := make(chan EndReason, 1)
	go func(reason EndReason) {
		defer Recover(e.Metrics, t.log, "call teardown", nil)
		tctx, cancel := context.WithTimeout(context.Background(), e.teardownLimit())
		defer cancel()
		if cause := context.Cause(call.Context()); cause != nil {
			reason = ReasonOf(cause)
		}
		if err := call.Hangup(tctx, reason); err != nil {
			t.log.Warn("hangup failed", "err", err)
		}
		if rec != nil {
			if err := rec.Close(); err != nil {
				t.log.Warn("recording closed with an error", "err", err)
			}
		}
		done <- reason
	}(reason)
	select {
	case reason = <-done:
	case <-time.After(e.teardownLimit()):
		e.Metrics.SlowTeardowns.Add(1)
		t.log.Error("teardown is slow; the call record is closed anyway", "limit", e.teardownLimit())
	}
	t.End(reason)
	return reason
}

// run runs the session; a panic in it (the flow's runtime, a prompt, the
// turn-taking) is recovered here, where the call is served: it ends this
// call with EndError, and the engine tears it down as any other.
func (e *Engine) run(s *Session, call Call, t *Tracker) (reason EndReason) {
	defer Recover(e.Metrics, t.log, "call session", func(v any) {
		reason = EndError
		// The call's context ends with the panic as its cause: what the
		// session started below it stops.
		ctx, cancel := context.WithTimeout(context.Background(), e.teardownLimit())
		defer cancel()
		if err := call.Hangup(ctx, EndError); err != nil {
			t.log.Warn("hangup after a panic failed", "err", err)
		}
	})
	return s.Run()
}

// Tracker follows one call from admission to its end: the call record, the
// per-call event log, packet statistics and DTMF. Safe for concurrent use.
type Tracker struct {
	eng  *Engine
	key  string // the id the adapter knows the call by (the SIP Call-ID); info.ID is its record's
	info CallInfo
	log  *slog.Logger

	PacketsIn, PacketsOut, PacketsLost, PacketsLate atomic.Uint64

	mu        sync.Mutex
	call      Call
	recording string
	ended     atomic.Bool
	endReason EndReason

	sensitive atomic.Bool // the caller answers a sensitive question
	heldKeys  []rune      // keys of that answer, written masked when it ends (mu)
}

// Log returns the call's logger (every line carries call_id).
func (t *Tracker) Log() *slog.Logger { return t.log }

// Info returns the call's description.
func (t *Tracker) Info() CallInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.info
}

// SetMedia records the negotiated codec and frame rate (at answer, and
// again when a re-INVITE changes the codec).
func (t *Tracker) SetMedia(codec string, rate int) {
	t.mu.Lock()
	t.info.Codec, t.info.Rate = codec, rate
	t.mu.Unlock()
}

// RecordingPath is the call's recording file, or "".
func (t *Tracker) RecordingPath() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recording
}

// Event appends one protocol event to the call's log (what telecom
// administrators read with `ivrctl calls show`). detail must not contain
// personal data.
// It never blocks: the write is queued. The debug log line leaves out the
// detail of DTMF events: keys may be a PIN or a national ID number.
func (t *Tracker) Event(kind, detail string) {
	if kind == "dtmf" && t.sensitive.Load() { // "rfc4733 5": the key is personal data
		src, _, _ := strings.Cut(detail, " ")
		detail = src + " [masked]"
	}
	t.eng.Calls.Event(t.info.ID, tickets.CallEvent{At: time.Now(), Kind: kind, Detail: detail})
	if kind == "dtmf" {
		t.log.Debug("call event", "kind", kind)
		return
	}
	t.log.Debug("call event", "kind", kind, "detail", detail)
}

// stats are the call's packet counts now.
func (t *Tracker) stats() tickets.PacketStats {
	return tickets.PacketStats{In: t.PacketsIn.Load(), Out: t.PacketsOut.Load(), Lost: t.PacketsLost.Load(), Late: t.PacketsLate.Load()}
}

// checkpoints writes the call's progress every period, and writes out
// its recording, until the returned stop is called (which joins the
// goroutine): a crash loses at most a period of either.
func (t *Tracker) checkpoints(period time.Duration, rec *Recording) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer Recover(t.eng.Metrics, t.log, "call checkpoints", nil)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-tick.C:
				t.eng.Calls.Progress(t.info.ID, now, t.stats())
				rec.Sync()
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// Digit records one DTMF digit (queued at once and committed within
// milliseconds, so a crash keeps it).
func (t *Tracker) Digit(d Digit) {
	t.eng.Metrics.DTMF(d.Source)
	t.log.Info("dtmf", "source", d.Source)
	t.mu.Lock()
	if t.sensitive.Load() {
		t.heldKeys = append(t.heldKeys, d.Key)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.eng.Calls.DTMF(t.info.ID, d.Key)
}

// Sensitive marks the span of a question whose answer is personal data (a
// national ID number typed on the keypad): its keys reach the call
// record's DTMF string only when it ends, in their masked form
// (flows.MaskAnswer: "**********456"), and its DTMF events say "[masked]".
func (t *Tracker) Sensitive(on bool) {
	if on {
		t.sensitive.Store(true)
		return
	}
	t.mu.Lock()
	held := t.heldKeys
	t.heldKeys = nil
	t.sensitive.Store(false)
	t.mu.Unlock()
	for _, r := range flows.MaskAnswer(string(held)) {
		t.eng.Calls.DTMF(t.info.ID, r)
	}
}

// Ended reports whether End was called.
func (t *Tracker) Ended() bool { return t.ended.Load() }

// End closes the call record with a reason. Only the first call acts.
func (t *Tracker) End(reason EndReason) {
	if !t.ended.CompareAndSwap(false, true) {
		return
	}
	t.mu.Lock()
	t.endReason = reason
	t.mu.Unlock()
	st := t.stats()
	t.eng.Calls.End(t.info.ID, time.Now(), string(reason), st)
	t.eng.Metrics.CallEnded(reason)
	t.eng.Metrics.ActiveCalls.Add(-1)
	t.eng.forget(t.key)
	t.log.Info("call ended", "reason", reason, "packets_in", st.In, "packets_out", st.Out, "lost", st.Lost, "late", st.Late)
}

func (t *Tracker) hangup(reason EndReason) {
	t.mu.Lock()
	c := t.call
	t.mu.Unlock()
	if c == nil {
		t.End(reason) // not answered yet: nothing to hang up
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.eng.teardownLimit())
	defer cancel()
	if err := c.Hangup(ctx, reason); err != nil {
		t.log.Warn("hangup at shutdown failed", "err", err)
	}
}

// SafeFileName turns a call id into a file name: letters, digits, '.', '-'
// and '_' are kept, everything else becomes '_'.
func SafeFileName(id string) string {
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || s == "." || s == ".." {
		s = "call"
	}
	return s
}

func recordingPath(dir string, info CallInfo) string {
	day := info.Start.UTC().Format("2006-01-02")
	return filepath.Join(dir, day, SafeFileName(info.ID)+".wav")
}

func ensureDir(path string) error { return os.MkdirAll(filepath.Dir(path), 0o750) }

// speechFor admits a call to speech: it answers by voice unless
// Speech.MaxCalls calls already do, or a call's turn-taking dropped caller
// audio within Speech.BusyAfterDrop, in which case it answers with keys (a
// line whose recognizer is saturated loses every caller's words, not only
// the newest caller's). release gives the place back when the call ends.
func (e *Engine) speechFor(t *Tracker) (sc *SpeechConfig, release func()) {
	if !e.Speech.Enabled() || e.Flow == nil || e.Speech.MaxCalls <= 0 {
		return e.Speech, func() {}
	}
	hold := e.Speech.withDefaults().BusyAfterDrop
	if at := e.Metrics.SpeechDroppedAt.Load(); at != 0 {
		if ago := time.Since(time.Unix(0, at)); ago < hold {
			e.Metrics.SpeechBusy.Add(1)
			t.Event("speech.busy", fmt.Sprintf("the turn-taking dropped caller audio %s ago (the recognizer fell behind): this call answers with keys", ago.Round(time.Second)))
			return nil, func() {}
		}
	}
	if n := e.speechCalls.Add(1); n > int64(e.Speech.MaxCalls) {
		e.speechCalls.Add(-1)
		e.Metrics.SpeechBusy.Add(1)
		t.Event("speech.busy", fmt.Sprintf("%d calls already answer by voice (speech.max_calls): this one answers with keys", e.Speech.MaxCalls))
		return nil, func() {}
	}
	return e.Speech, func() { e.speechCalls.Add(-1) }
}
