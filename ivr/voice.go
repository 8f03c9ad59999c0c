package ivr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/speech"
)

// DefaultInterDigit is how long a digit string waits for the next key.
const DefaultInterDigit = 3 * time.Second

// voice is the flows.Channel of a phone call: prompts go out as audio
// frames, keys come in from the session's key queue, and, when the call has
// speech (Session.Speech), spoken answers and barge-in come from the
// session's ear (turns.go).
//
// It is used by the flow's goroutine only.
type voice struct {
	s     *Session
	synth Synthesizer
	kp    flows.Keypad // the caller's keys: answers, and keys pressed ahead for the next Listen
}

var _ flows.Channel = (*voice)(nil)

// segment is one part of a prompt and where it lies in the audio played.
type segment struct {
	text       string
	start, end int  // sample offsets in the prompt's audio
	open       bool // still playing: its end is not known yet
}

// Say plays the prompt's parts, stopping at the next frame when a key
// arrives during a prompt that allows barge-in. Every part is opened before
// the first plays (a part that cannot be rendered fails the prompt before
// any audio); a text the synthesizer streams plays while it renders.
func (v *voice) Say(ctx context.Context, p flows.Prompt) (flows.Played, error) {
	// Type-ahead: a key pressed during an earlier prompt already answers
	// what comes next, so a prompt the caller may interrupt is skipped.
	if p.BargeIn && v.kp.Ahead() {
		v.s.Tracker.Event("flow.bargein", "key pressed ahead: prompt skipped")
		return flows.Played{Interrupted: true}, nil
	}
	rate := v.s.Info.Rate
	srcs := make([]speech.Audio, 0, len(p.Parts))
	defer func() {
		for _, a := range srcs {
			a.Close()
		}
	}()
	for _, part := range p.Parts {
		a, err := v.open(ctx, p.Lang, part, rate)
		if err != nil {
			if e := v.ended(ctx); e != nil {
				return flows.Played{}, e
			}
			return flows.Played{}, fmt.Errorf("prompt part %q: %w", part.Text, err)
		}
		srcs = append(srcs, a)
	}
	frame := make([]int16, audio.SamplesPerFrame(rate))
	var spoke <-chan struct{} // caller speech during a barge-in prompt
	if p.BargeIn && v.s.ear != nil && !v.s.ear.off.Load() {
		spoke = v.s.ear.arm(true)
		defer v.s.ear.arm(false)
	}
	var segs []segment
	off := 0
	for i, a := range srcs {
		seg := segment{text: p.Parts[i].Text, start: off, open: true}
		if r, ok := a.(interface{ Remaining() int }); ok {
			// Rendered whole: where it ends is known (speech.PCMAudio,
			// padded to whole frames).
			n := audio.SamplesPerFrame(rate)
			seg.end, seg.open = off+(r.Remaining()+n-1)/n*n, false
		}
		segs = append(segs, seg)
		for {
			if p.BargeIn {
				select {
				case d := <-v.s.keys:
					if _, _, kept := v.kp.Press(d.Key, d.At); kept { // not a terminator swallowed
						v.flush()
						v.s.Tracker.Event("flow.bargein", "key during prompt")
						return flows.Played{Interrupted: true, Heard: heard(segs, off, rate)}, nil
					}
				case <-spoke:
					v.flush()
					v.s.Tracker.Event("flow.bargein", "speech during prompt")
					return flows.Played{Interrupted: true, Heard: heard(segs, off, rate)}, nil
				default:
				}
			}
			if err := a.ReadFrame(frame); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				if e := v.ended(ctx); e != nil {
					return flows.Played{Heard: heard(segs, off, rate)}, e
				}
				return flows.Played{Heard: heard(segs, off, rate)}, fmt.Errorf("prompt part %q: %w", p.Parts[i].Text, err)
			}
			if err := v.s.Call.WriteFrame(ctx, frame); err != nil {
				if e := v.ended(ctx); e != nil {
					return flows.Played{Heard: heard(segs, off, rate)}, e
				}
				return flows.Played{Heard: heard(segs, off, rate)}, fmt.Errorf("prompt stopped: %w", err)
			}
			v.s.Recording.Engine(frame)
			off += len(frame)
		}
		segs[len(segs)-1].end, segs[len(segs)-1].open = off, false // as played
	}
	return flows.Played{Heard: heard(segs, off, rate)}, nil
}

// flush drops the prompt audio the adapter still holds, when it can.
func (v *voice) flush() {
	if f, ok := v.s.Call.(Flusher); ok {
		f.FlushAudio()
	}
}

// Streamer is a Synthesizer that can also play a text while it renders
// (RenderCache).
type Streamer interface {
	Stream(ctx context.Context, lang, text string, rate int) (speech.Audio, error)
}

// open returns one part's audio at rate.
func (v *voice) open(ctx context.Context, lang string, part flows.Part, rate int) (speech.Audio, error) {
	text := part.Value
	switch part.Kind {
	case flows.PartAudio:
		var pcm []int16
		var err error
		if rc, ok := v.synth.(*RenderCache); ok {
			pcm, err = rc.Load(ctx, part.Value, rate)
		} else {
			pcm, err = audio.LoadWAVFile(part.Value, rate)
		}
		if err != nil {
			return nil, err
		}
		return speech.PCMAudio(pcm, rate), nil
	case flows.PartDigits:
		text = SpokenDigits(part.Value)
	}
	if st, ok := v.synth.(Streamer); ok {
		return st.Stream(ctx, lang, text, rate)
	}
	pcm, err := v.synth.Synthesize(ctx, lang, text, rate)
	if err != nil {
		return nil, err
	}
	return speech.PCMAudio(pcm, rate), nil
}

// SpokenDigits writes a digit string so that a synthesizer reads it one
// digit at a time, as people read ticket and phone numbers: "0721" becomes
// "0, 7, 2, 1". Anything but letters and digits is dropped.
func SpokenDigits(s string) string {
	var parts []string
	for _, r := range s {
		if unicode.IsDigit(r) || unicode.IsLetter(r) {
			parts = append(parts, string(r))
		}
	}
	return strings.Join(parts, ", ")
}

// heard returns the text of the prompt up to sample off: the parts played
// whole, then the share of the words of the part that was cut, in
// proportion to its audio played (for a part still rendering, whose length
// is not known, at about 150 words a minute).
func heard(segs []segment, off, rate int) string {
	var out []string
	for _, sg := range segs {
		if !sg.open && off >= sg.end {
			out = append(out, sg.text)
			continue
		}
		words := strings.Fields(sg.text)
		var k int
		switch {
		case off <= sg.start:
		case sg.open:
			k = min(len(words)-1, (off-sg.start)*5/(2*rate)) // 0.4 s a word
		case sg.end > sg.start:
			k = len(words) * (off - sg.start) / (sg.end - sg.start)
		}
		if k > 0 {
			out = append(out, strings.Join(words[:k], " ")+" …")
		}
		break
	}
	return strings.Join(out, " ")
}

// Listen waits for the caller's keys: one key answers a question (or up to
// MaxDigits keys when a choice has longer keys, ended by the inter-digit
// pause), a digit string collects until MaxDigits, the terminator or the
// inter-digit pause. On a call with speech it also listens for a spoken
// answer (with a grammar built from l); a key at any time wins over speech.
func (v *voice) Listen(ctx context.Context, l flows.Listen) (flows.Input, error) {
	noInput := l.NoInput
	if noInput <= 0 {
		noInput = v.s.Timing.FirstDigit
	}
	inter := l.InterDigit
	if inter <= 0 {
		inter = DefaultInterDigit
	}
	l.InterDigit = inter
	if in, ok := v.kp.Start(l); ok { // keys pressed ahead answer it
		return in, nil
	}
	defer v.kp.Stop()
	wait := noInput
	if v.kp.Collecting() {
		wait = inter
	}
	var spoken <-chan turnEvent // the ear's events for this turn; nil: keys only
	var req *turnReq
	e := v.s.ear
	if !v.kp.Collecting() && e != nil && !e.off.Load() {
		end := e.cfg.EndSilence
		if l.Expect == flows.ExpectDigits {
			end = e.cfg.DigitsEndSilence
		}
		req = e.listen(l.Lang, grammarFor(l), end)
		defer e.cancel(req)
		spoken = req.events
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case d := <-v.s.keys:
			in, done, kept := v.kp.Press(d.Key, d.At)
			if !kept {
				continue // the terminator after a full-length number
			}
			if spoken != nil { // a key wins over speech
				e.cancel(req)
				spoken = nil
			}
			if done {
				return in, nil
			}
			t.Reset(inter)
		case ev := <-spoken:
			switch {
			case ev.started:
				// The caller speaks: the turn lasts until the
				// endpointer ends it (the timer is a safety net).
				t.Reset(e.cfg.MaxUtterance + e.cfg.FinishTimeout + time.Second)
			case ev.err != nil:
				spoken = nil
				if errors.Is(ev.err, errFallback) {
					// Say so at once: the flow asks again, offering keys.
					return flows.Input{Mode: flows.InputNone}, nil
				}
				t.Reset(wait) // unsupported for this turn: keys only
			default:
				text := ev.res.Text
				// Spoken digits may be a national ID: the event log
				// gets the grammar tag of choices only.
				detail := fmt.Sprintf("confidence %.2f words %d", ev.res.Confidence, len(strings.Fields(text)))
				if l.Expect != flows.ExpectDigits && ev.res.Tag != "" && !allDigits(ev.res.Tag) {
					detail = fmt.Sprintf("tag %q ", ev.res.Tag) + detail
				}
				v.s.Tracker.Event("speech.result", detail)
				return flows.Input{Mode: flows.InputSpeech, Text: text, Confidence: ev.res.Confidence}, nil
			}
		case <-t.C:
			if in, ok := v.kp.Pause(); ok {
				return in, nil
			}
			return flows.Input{Mode: flows.InputNone}, nil
		case <-ctx.Done():
			return flows.Input{}, v.ended(ctx)
		}
	}
}

// ended returns flows.ErrHangup (wrapping the call's end cause) once the
// call is over, the context's cause when only ctx ended, or nil.
func (v *voice) ended(ctx context.Context) error {
	if cause := context.Cause(v.s.Call.Context()); cause != nil {
		return fmt.Errorf("%w: %w", flows.ErrHangup, cause)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// errHangup reports whether err means the caller is gone.
func errHangup(err error) bool { return errors.Is(err, flows.ErrHangup) }

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
