// Package ivr holds what every call has in common, whatever telephone network
// carried it: the Call interface that telephony adapters (dialplan/sip,
// dialplan/ari, dialplan/esl) implement, the Engine that admits, serves and
// ends calls and keeps their records, and the Session that talks to the caller.
//
// The path of one call: an adapter accepts it and asks Engine.Begin for
// admission (which opens the call record), answers, and hands an answered
// Call to Engine.Serve. Serve runs the Session until the caller hangs up or the
// flow ends, then the engine ends the call: like net/http owns the response,
// the engine owns the call's end.
package ivr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/speech"
)

// CallInfo describes a call. It is fixed once the call is answered, except
// Codec, which a re-INVITE may change (adapters report that as an event).
type CallInfo struct {
	ID        string // unique call id (the SIP Call-ID, the Asterisk channel id, ...)
	Telephony string // "sip", "ari", "esl"
	Caller    string // caller number: personal data, log it only through Phone
	Called    string // dialed number
	Codec     string // negotiated codec name: "PCMU", "PCMA", "opus"
	Rate      int    // sample rate of the PCM frames exchanged with the engine
	Start     time.Time
}

// Digit is one DTMF key press.
type Digit struct {
	Key    rune   // '0'-'9', '*', '#', 'A'-'D'
	Source string // "rfc4733", "sip-info", "ari", "esl"
	At     time.Time
}

// Media is the audio of an answered call as 16-bit linear PCM mono frames of
// 20 ms at CallInfo.Rate.
//
// ReadFrame and WriteFrame are each called from one goroutine at a time (the
// session's); the two may run concurrently. Buffers stay the caller's: the
// adapter copies what it keeps.
type Media interface {
	// ReadFrame blocks until the next 20 ms of caller audio and copies it
	// into dst, returning the number of samples. Lost packets arrive as
	// concealed frames, so time keeps flowing. It returns the context's
	// error when ctx ends and the call's end cause once the call is over.
	ReadFrame(ctx context.Context, dst []int16) (int, error)
	// WriteFrame queues one 20 ms frame for the caller. It blocks while the
	// adapter's short send queue is full, so a writer is paced by the
	// network clock and a stopped prompt goes silent within a few frames.
	WriteFrame(ctx context.Context, frame []int16) error
	// Digits delivers DTMF from every source the adapter knows (RFC 4733
	// events, SIP INFO, PBX events). The channel is never closed; watch
	// the call's context for its end.
	Digits() <-chan Digit
}

// Control acts on the call's signalling.
type Control interface {
	// Hangup ends the call with a reason: it cancels the call's context
	// with that cause and ends the signalling, unless the other side
	// already did. It is safe to call more than once and from any
	// goroutine; only the first call acts.
	Hangup(ctx context.Context, reason EndReason) error
}

// Call is one answered call as a telephony adapter presents it. The engine
// never learns which network carried it.
type Call interface {
	Media
	Control
	// Context is cancelled when the call ends; context.Cause returns an
	// *EndCause that says why.
	Context() context.Context
}

// EndReason classifies why a call ended. The same value is the call
// record's end reason, the metrics label and the log attribute.
type EndReason string

// End reasons.
const (
	EndCallerHangup  EndReason = "caller_hangup"   // the caller sent BYE
	EndEngineHangup  EndReason = "engine_hangup"   // the flow finished and the engine hung up
	EndCancelled     EndReason = "cancelled"       // CANCEL before answer
	EndRTPTimeout    EndReason = "rtp_timeout"     // no RTP from the caller for too long
	EndNoCommonCodec EndReason = "no_common_codec" // the offer had no codec we speak (488)
	EndRejected      EndReason = "rejected"        // refused at admission: draining or over capacity (503)
	EndShutdown      EndReason = "shutdown"        // the grace period of a shutdown ran out
	EndError         EndReason = "error"           // an internal or protocol error
	EndEngineRestart EndReason = "engine_restart"  // found open at start after a crash
	EndTransferred   EndReason = "transferred"     // handed to a human agent queue
)

// SIPStatus is the SIP final response that refuses a call for this reason
// before it is answered, or 0 when the reason does not refuse a call.
func (r EndReason) SIPStatus() int {
	switch r {
	case EndNoCommonCodec:
		return 488
	case EndRejected, EndShutdown:
		return 503
	case EndCancelled:
		return 487
	case EndError:
		return 500
	}
	return 0
}

// EndCause is the cause of a call's end. Use errors.As to read it from
// context.Cause(call.Context()) or from an adapter's error.
type EndCause struct {
	Reason EndReason
	Err    error // the underlying fact, may be nil
}

func (e *EndCause) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("call ended: %s: %v", e.Reason, e.Err)
	}
	return "call ended: " + string(e.Reason)
}

func (e *EndCause) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &EndCause{Reason: r}) match on the reason alone.
func (e *EndCause) Is(target error) bool {
	t, ok := target.(*EndCause)
	return ok && t.Reason == e.Reason && t.Err == nil
}

// End returns an *EndCause for reason, wrapping err.
func End(reason EndReason, err error) *EndCause { return &EndCause{Reason: reason, Err: err} }

// ReasonOf extracts the end reason from an error chain, or EndError when
// there is none.
func ReasonOf(err error) EndReason {
	var ee *EndCause
	if errors.As(err, &ee) {
		return ee.Reason
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return EndEngineHangup
	}
	return EndError
}

// Handoff is what a call carries to a human agent: the ticket that holds
// everything the caller already said, so the agent never asks again.
type Handoff struct {
	Queue   string // agent queue name, e.g. "level1"
	Ticket  string // ticket number, as read to the caller
	Lang    string // "ro" or "en"
	Summary string // one line for the agent's screen; no personal data
	// Catalog has the sentences an adapter says while it carries the call
	// (the embedded queue's announcements), in Lang; nil: the shipped
	// catalog (flows.DefaultCatalog).
	Catalog *flows.Catalog
	// Heard, when set, records what the caller hears while the adapter
	// carries the call (queue announcements, the agent's voice on the
	// embedded line): the engine side of the call's recording. Called
	// with 20 ms frames at the call's rate, not kept after it returns.
	Heard func(frame []int16)
	// Hear, on a call with speech (nil otherwise), waits for the
	// caller's next utterance while the adapter carries the call and
	// returns it recognized with g in lang: how the embedded queue hears
	// "call me back". The words go to the transcript as the caller's
	// turn. It returns the recognizer's error, or ctx's cause when ctx
	// ends first; one Hear at a time.
	Hear func(ctx context.Context, lang string, g *speech.Grammar) (speech.Result, error)
}

// Why a Transferer returns with the caller still on the line and nothing
// failed: the session then tells the caller what happens to the request
// (Session.noQueue, Session.callbackKept) and ends the call.
var (
	// ErrMaxWait: no agent answered within the queue's maximum wait.
	ErrMaxWait = errors.New("no agent answered within the queue's maximum wait")
	// ErrLeftRequest: the caller chose to leave the request for a call
	// back instead of waiting.
	ErrLeftRequest = errors.New("the caller left the request for a call back")
	// ErrCallbackKept: the caller keeps their place and the line will
	// call them back (it wraps ErrLeftRequest too).
	ErrCallbackKept = errors.New("the caller keeps their place and will be called back")
)

// Transferer is implemented by calls that a telephony adapter can hand to a
// human agent queue (a dialplan Queue() on Asterisk, mod_callcenter on
// FreeSWITCH, the engine's own queue on the embedded line). Transfer returns
// once the network took the call over; the call's context then ends with
// the reason EndTransferred. It may be called from any goroutine.
type Transferer interface {
	Transfer(ctx context.Context, h Handoff) error
}

// Flusher is implemented by calls that can drop the engine audio they have
// queued but not sent yet; the session calls it when the caller interrupts
// a prompt, so the prompt stops at once rather than after the queue.
type Flusher interface {
	FlushAudio()
}
