package ivr

import (
	"context"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/redact"
)

// FlowRunner runs a call flow (a *flows.Runtime) on a call's Channel and
// says how it ended. It is safe for concurrent use: one Run per call.
type FlowRunner interface {
	Run(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome
}

// noQueue is said when a flow hands the call to an agent queue that this
// line cannot reach (the embedded line has no agent queue yet): the request
// is registered and the caller is told its number.
var noQueue = map[string][2]string{
	"ro": {"Toți operatorii sunt ocupați în acest moment. Solicitarea dumneavoastră a fost înregistrată cu numărul", "Un operator vă va contacta cât mai curând. La revedere."},
	"en": {"All our operators are busy at the moment. Your request has been registered with the number", "An operator will call you back as soon as possible. Goodbye."},
}

// Texts are the engine's own fixed sentences (said after a flow ends), for
// the prompt cache to render ahead.
func Texts() []flows.Text {
	var out []flows.Text
	for lang, m := range noQueue {
		out = append(out, flows.Text{Lang: lang, Text: m[0], File: "(engine)"}, flows.Text{Lang: lang, Text: m[1], File: "(engine)"})
	}
	for lang, m := range surveyText {
		out = append(out, flows.Text{Lang: lang, Text: m[0], File: "(engine)"}, flows.Text{Lang: lang, Text: m[1], File: "(engine)"})
	}
	return out
}

// runFlow runs the flow and carries out its outcome.
func (s *Session) runFlow(ctx context.Context) EndReason {
	v := &voice{s: s, synth: s.Synth}
	lang := s.Lang
	if lang == "" {
		lang = "ro"
	}
	svc := s.Services
	svc.Log = s.Log
	if svc.Transcript != nil {
		svc.Transcript = durableTranscript{t: svc.Transcript, m: s.metrics()}
	}
	out := s.Flow.Run(ctx, flows.Facts{CallID: s.Info.ID, Caller: s.Info.Caller, Called: s.Info.Called, Lang: lang, Start: s.Info.Start, Recording: s.Tracker.RecordingPath()}, v, svc)
	if out.Err != nil {
		s.Tracker.Event("flow.error", redact.Text(out.Err.Error()))
	}
	switch out.Kind {
	case flows.OutcomeCaller:
		return EndCallerHangup
	case flows.OutcomeTransfer:
		s.Tracker.Event("flow.transfer", "queue "+out.Queue+" ticket "+out.Ticket)
		if tr, ok := s.Call.(Transferer); ok {
			h := Handoff{Queue: out.Queue, Ticket: out.Ticket, Lang: out.Lang, Summary: out.Summary, Heard: s.Recording.Engine}
			if err := tr.Transfer(ctx, h); err == nil {
				// The embedded queue returns when the agent's call ends;
				// a caller still on the line (the agent hung up) is asked
				// to rate the service. A PBX handoff ends the call here.
				if s.Call.Context().Err() == nil && out.Ticket != "" {
					s.survey(ctx, v, out)
				}
				return EndTransferred
			} else {
				s.Log.Error("transfer failed: the caller is told the request is registered", "queue", out.Queue, "err", err)
			}
		}
		s.noQueue(ctx, v, out)
		return EndEngineHangup
	default:
		s.Tracker.Event("flow.hangup", out.Reason)
		return EndEngineHangup
	}
}

var (
	_ flows.Recorder = (*voice)(nil)
	_ flows.Hearing  = (*voice)(nil)
)

// Note records a step of the flow in the call's event log (ivrctl calls
// trace): "flow.article" names the knowledge base article whose answer was
// said, "flow.retry" the sentence with which a question was asked again.
func (v *voice) Note(kind, detail string) { v.s.Tracker.Event(kind, detail) }

// Sensitive marks a question whose answer is personal data: the call
// record keeps its keys masked (Tracker.Sensitive).
func (v *voice) Sensitive(on bool) { v.s.Tracker.Sensitive(on) }

// Speech reports whether the call hears the caller's words now (speech on,
// and not fallen back to keys): call.speech.
func (v *voice) Speech() bool { return v.s.ear != nil && !v.s.ear.off.Load() }

// noQueue tells the caller that the request is registered, with its number.
func (s *Session) noQueue(ctx context.Context, v *voice, out flows.Outcome) {
	msg, ok := noQueue[out.Lang]
	if !ok {
		msg = noQueue["ro"]
		out.Lang = "ro"
	}
	p := flows.Prompt{Lang: out.Lang}
	if out.Ticket != "" {
		p.Parts = append(p.Parts,
			flows.Part{Kind: flows.PartText, Value: msg[0], Text: msg[0]},
			flows.Part{Kind: flows.PartDigits, Value: out.Ticket, Text: out.Ticket})
	}
	p.Parts = append(p.Parts, flows.Part{Kind: flows.PartText, Value: msg[1], Text: msg[1]})
	if _, err := v.Say(ctx, p); err != nil && !errHangup(err) {
		s.Log.Warn("could not tell the caller the request is registered", "err", err)
	}
}

// Rater stores a caller's satisfaction rating with a ticket; the ticket
// desk of the engine's Services implements it.
type Rater interface {
	Rate(ctx context.Context, number string, rating int) error
}

// surveyText is said after an agent call: the question, the thanks.
var surveyText = map[string][2]string{
	"ro": {"Vă mulțumim. Vă rugăm să evaluați discuția cu operatorul: apăsați o tastă de la 1, foarte nemulțumit, la 5, foarte mulțumit.", "Vă mulțumim pentru evaluare. La revedere!"},
	"en": {"Thank you. Please rate your conversation with the operator: press a key from 1, very dissatisfied, to 5, very satisfied.", "Thank you for your rating. Goodbye!"},
}

// SurveyWait is how long the rating question waits for a key.
const SurveyWait = 8 * time.Second

// survey asks the caller to rate the agent's help by a key from 1 to 5 and
// stores the rating with the ticket.
func (s *Session) survey(ctx context.Context, v *voice, out flows.Outcome) {
	r, ok := s.Services.Desk.(Rater)
	if !ok {
		return
	}
	text, ok := surveyText[out.Lang]
	if !ok {
		text, out.Lang = surveyText["ro"], "ro"
	}
	say := func(t string) error {
		_, err := v.Say(ctx, flows.Prompt{Lang: out.Lang, BargeIn: true, Parts: []flows.Part{{Kind: flows.PartText, Value: t, Text: t}}})
		return err
	}
	if say(text[0]) != nil {
		return
	}
	in, err := v.Listen(ctx, flows.Listen{Lang: out.Lang, Expect: flows.ExpectChoice, NoInput: SurveyWait})
	if err != nil || in.Mode != flows.InputDTMF || len(in.Text) != 1 || in.Text[0] < '1' || in.Text[0] > '5' {
		s.Tracker.Event("survey", "no rating")
		return
	}
	rating := int(in.Text[0] - '0')
	if err := r.Rate(ctx, out.Ticket, rating); err != nil {
		s.Log.Warn("rating not stored", "ticket", out.Ticket, "err", err)
		return
	}
	s.Tracker.Event("survey", "rating "+in.Text)
	_ = say(text[1])
}
