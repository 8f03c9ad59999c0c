package ivr

import (
	"context"
	"errors"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/redact"
)

// FlowRunner runs a call flow (a *flows.Runtime) on a call's Channel and
// says how it ended. It is safe for concurrent use: one Run per call.
type FlowRunner interface {
	Run(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome
}

// catalog is the sentence catalog of the flows serving the call (the
// shipped one when the flow runner has none).
func (s *Session) catalog() *flows.Catalog {
	if c, ok := s.Flow.(interface{ Catalog() *flows.Catalog }); ok {
		if cat := c.Catalog(); cat != nil {
			return cat
		}
	}
	return flows.DefaultCatalog()
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
	facts := flows.Facts{CallID: s.Info.ID, Caller: s.Info.Caller, Called: s.Info.Called, Lang: lang, Start: s.Info.Start, Recording: s.Tracker.RecordingPath()}
	out := s.Flow.Run(ctx, facts, v, svc)
	if out.Err != nil {
		s.Tracker.Event("flow.error", redact.Text(out.Err.Error()))
	}
	switch out.Kind {
	case flows.OutcomeCaller:
		return EndCallerHangup
	case flows.OutcomeTransfer:
		s.Tracker.Event("flow.transfer", "queue "+out.Queue+" ticket "+out.Ticket)
		if tr, ok := s.Call.(Transferer); ok {
			h := Handoff{Queue: out.Queue, Ticket: out.Ticket, Lang: out.Lang, Summary: out.Summary, Heard: s.Recording.Engine, Catalog: s.catalog()}
			if s.ear != nil {
				h.Hear = s.hear
			}
			if err := tr.Transfer(ctx, h); err == nil {
				// The embedded queue returns when the agent's call ends;
				// a caller still on the line (the agent hung up) is asked
				// to rate the service. A PBX handoff ends the call here.
				if s.Call.Context().Err() == nil && out.Ticket != "" {
					s.survey(ctx, v, out, svc, facts)
				}
				return EndTransferred
			} else if s.Call.Context().Err() != nil {
				// The caller hung up while waiting: nothing failed, and
				// nobody is left to tell.
				return EndCallerHangup
			} else if errors.Is(err, ErrCallbackKept) {
				s.Log.Info("the caller keeps their place in the queue and will be called back", "queue", out.Queue)
				s.callbackKept(ctx, v, out)
				return EndEngineHangup
			} else if errors.Is(err, ErrMaxWait) || errors.Is(err, ErrLeftRequest) {
				s.Log.Info("the caller left the queue: told the request is registered", "queue", out.Queue, "why", err)
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

// noQueue tells the caller that the request is registered, with its
// number (no_queue.busy, the number, no_queue.callback).
func (s *Session) noQueue(ctx context.Context, v *voice, out flows.Outcome) {
	cat := s.catalog()
	if !cat.HasLang(out.Lang) {
		out.Lang = flows.DefaultLang
	}
	p := flows.Prompt{Lang: out.Lang}
	if out.Ticket != "" {
		busy := cat.Text(out.Lang, "no_queue.busy")
		p.Parts = append(p.Parts,
			flows.Part{Kind: flows.PartText, Value: busy, Text: busy},
			flows.Part{Kind: flows.PartDigits, Value: out.Ticket, Text: out.Ticket})
	}
	bye := cat.Text(out.Lang, "no_queue.callback")
	p.Parts = append(p.Parts, flows.Part{Kind: flows.PartText, Value: bye, Text: bye})
	if err := s.sayLast(ctx, v, p); err != nil && !errHangup(err) {
		s.Log.Warn("could not tell the caller the request is registered", "err", err)
	}
}

// callbackKept tells a caller who keeps their place in the queue that the
// line will call them back, with the request's number, and says goodbye
// (callback.kept, the number, callback.bye).
func (s *Session) callbackKept(ctx context.Context, v *voice, out flows.Outcome) {
	cat := s.catalog()
	if !cat.HasLang(out.Lang) {
		out.Lang = flows.DefaultLang
	}
	text := func(id string) flows.Part {
		t := cat.Text(out.Lang, id)
		return flows.Part{Kind: flows.PartText, Value: t, Text: t}
	}
	p := flows.Prompt{Lang: out.Lang, Parts: []flows.Part{text("callback.kept")}}
	if out.Ticket != "" {
		p.Parts = append(p.Parts, text("callback.about"), flows.Part{Kind: flows.PartDigits, Value: out.Ticket, Text: out.Ticket})
	}
	p.Parts = append(p.Parts, text("callback.bye"))
	if err := s.sayLast(ctx, v, p); err != nil && !errHangup(err) {
		s.Log.Warn("could not tell the caller they will be called back", "err", err)
	}
}

// sayLast says the call's last prompt, which no flow says, and writes it
// to the transcript as the flows' prompts are (cut short by a hangup:
// what was heard of it).
func (s *Session) sayLast(ctx context.Context, v *voice, p flows.Prompt) error {
	began := time.Now()
	played, err := v.Say(ctx, p)
	heard := played.Heard
	if heard == "" && err == nil && !played.Interrupted {
		heard = p.Said()
	}
	if heard != "" && s.Services.Transcript != nil {
		cut := played.Cut
		if err != nil && errHangup(err) && cut == "" {
			cut = flows.CutHangup
		}
		t := durableTranscript{t: s.Services.Transcript, m: s.metrics(), log: s.Log}
		_ = t.Append(ctx, s.Info.ID, flows.Turn{Speaker: "ivr", Text: heard, At: time.Now(), Began: began, Interrupted: played.Interrupted || cut != "", Cut: cut})
	}
	return err
}

// SurveyFlow is the flow file the engine runs after a call with an agent
// of the embedded queue, when the caller is still on the line: the
// satisfaction survey shipped as flows/survey.lua (a flows folder without
// it has no survey).
const SurveyFlow = "survey.lua"

// survey runs the survey flow on the call, with the ticket to rate, when
// the flow runner has it and the ticket desk keeps ratings (flows.Rater);
// the call's events record how it ended ("survey": "rating 4", "no
// rating").
func (s *Session) survey(ctx context.Context, v *voice, out flows.Outcome, svc flows.Services, facts flows.Facts) {
	r, ok := s.Flow.(interface{ HasFlow(name string) bool })
	if !ok || !r.HasFlow(SurveyFlow) {
		return
	}
	if _, rates := svc.Desk.(flows.Rater); !rates {
		return // nowhere to keep a rating: the caller is not asked for one
	}
	if !s.catalog().HasLang(out.Lang) {
		out.Lang = flows.DefaultLang
	}
	facts.Flow, facts.Ticket, facts.Lang = SurveyFlow, out.Ticket, out.Lang
	res := s.Flow.Run(ctx, facts, v, svc)
	if res.Err != nil {
		s.Tracker.Event("flow.error", redact.Text(res.Err.Error()))
	}
	if res.Kind != flows.OutcomeCaller {
		s.Tracker.Event("survey", res.Reason)
	}
}
