package ivr

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/speech"
)

// hear is Handoff.Hear: the ear's next utterance, recognized with g, while
// an adapter carries the call (the flow waits in Transfer, so no Listen
// competes for it). The caller's words are written to the transcript as
// any answer is, and the call's events say what was heard (the tag and
// the confidence, never the words).
func (s *Session) hear(ctx context.Context, lang string, g *speech.Grammar) (speech.Result, error) {
	e := s.ear
	if e.off.Load() {
		return speech.Result{}, errFallback
	}
	req := e.listen(lang, g, e.cfg.EndSilence)
	defer e.cancel(req)
	for {
		select {
		case ev := <-req.events:
			switch {
			case ev.err != nil:
				return speech.Result{}, ev.err
			case ev.started || ev.untranscribed:
				continue
			}
			s.Tracker.Event("speech.result", fmt.Sprintf("tag %q confidence %.2f words %d while waiting", ev.res.Tag, ev.res.Confidence, len(strings.Fields(ev.res.Text))))
			if strings.TrimSpace(ev.res.Text) != "" && s.Services.Transcript != nil {
				t := durableTranscript{t: s.Services.Transcript, m: s.metrics(), log: s.Log}
				_ = t.Append(ctx, s.Info.ID, flows.Turn{Speaker: "caller", Text: ev.res.Text, At: time.Now(), Began: ev.at, Mode: flows.InputSpeech, Confidence: ev.res.Confidence})
			}
			return ev.res, nil
		case <-ctx.Done():
			return speech.Result{}, context.Cause(ctx)
		}
	}
}
