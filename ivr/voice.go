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
	"github.com/govline/ivr/redact"
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
	asked string       // the last prompt's text: the question a Listen answers, for the call's log
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
	v.asked = promptHead(p)
	// Type-ahead: a key pressed, or an utterance said, during an earlier
	// prompt already answers what comes next, so a prompt the caller may
	// interrupt is skipped.
	if p.BargeIn && v.kp.Ahead() {
		v.s.Tracker.Event("flow.bargein", fmt.Sprintf("key pressed ahead: prompt %q skipped", v.asked))
		return flows.Played{Interrupted: true, Cut: flows.CutKey}, nil
	}
	if p.BargeIn && v.speechAhead() {
		v.s.Tracker.Event("flow.bargein", fmt.Sprintf("speech ahead: prompt %q skipped", v.asked))
		if m := v.s.metrics(); m != nil {
			m.SpeechTypeAhead.Add(1)
		}
		return flows.Played{Interrupted: true, Cut: flows.CutSpeech}, nil
	}
	rate := v.s.Info.Rate
	srcs := make([]speech.Audio, 0, len(p.Parts))
	defer func() {
		for _, a := range srcs {
			a.Close()
		}
	}()
	for _, part := range p.Parts {
		lang := p.Lang
		if part.Lang != "" {
			lang = part.Lang
		}
		a, err := v.open(ctx, lang, part, rate)
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
	armed := time.Now()
	var segs []segment
	var recent recentFrames // what a pause may have dropped, to replay
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
				ahead := v.speechAhead()
				select {
				case d := <-v.s.keys:
					if _, _, kept := v.kp.Press(d.Key, d.At); kept { // not a terminator swallowed
						v.flush()
						v.s.Tracker.Event("flow.bargein", fmt.Sprintf("key during prompt %q at %.1f s", v.asked, float64(off)/float64(rate)))
						return flows.Played{Interrupted: true, Heard: heard(segs, off, rate), Cut: flows.CutKey}, nil
					}
				case <-spokeOrAhead(spoke, ahead):
					// The prompt goes silent at once; the caller's sound
					// says whether it stops for good (speech) or goes on
					// (a "hmm", a cough the VAD took for speech).
					v.flush()
					cut, onset := time.Now(), v.s.ear.onset.Load()
					if !v.speechAhead() && v.s.ear.outcome(ctx, pauseLimit) == bargeResume && ctx.Err() == nil {
						v.s.Tracker.Event("flow.bargein", fmt.Sprintf("a short sound paused prompt %q at %.1f s: it goes on", v.asked, float64(off)/float64(rate)))
						if err := v.replay(ctx, recent); err != nil {
							if e := v.ended(ctx); e != nil {
								return flows.Played{Heard: heard(segs, off, rate)}, e
							}
						}
						continue
					}
					if !ahead {
						v.bargedIn(armed, cut, onset)
					}
					v.s.Tracker.Event("flow.bargein", fmt.Sprintf("speech during prompt %q at %.1f s", v.asked, float64(off)/float64(rate)))
					return flows.Played{Interrupted: true, Heard: heard(segs, off, rate), Cut: flows.CutSpeech}, nil
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
			if spoke != nil {
				recent.add(frame)
			}
		}
		segs[len(segs)-1].end, segs[len(segs)-1].open = off, false // as played
	}
	return flows.Played{Heard: heard(segs, off, rate)}, nil
}

// bargedIn counts the latency of a barge-in: from the first loud frame of
// the caller's speech reaching the engine (on, Unix ns; or the prompt's
// start, armed, for speech begun before it) to the prompt going silent
// (cut, the moment it was flushed).
func (v *voice) bargedIn(armed, cut time.Time, on int64) {
	m := v.s.metrics()
	if m == nil || on == 0 {
		return
	}
	from := time.Unix(0, on)
	if from.Before(armed) {
		from = armed
	}
	m.BargeInLatency.Observe(max(0, cut.Sub(from)))
}

// pauseLimit bounds how long a prompt stays paused by a sound before it is
// cut anyway.
const pauseLimit = 2 * time.Second

// recentFrames are the last frames of a prompt written to the adapter:
// what FlushAudio may drop when a sound pauses the prompt (the adapters
// queue 60 ms), replayed when the prompt resumes.
type recentFrames struct {
	buf [3][]int16
	n   int
}

func (r *recentFrames) add(f []int16) {
	i := r.n % len(r.buf)
	r.buf[i] = append(r.buf[i][:0], f...)
	r.n++
}

// replay writes the recent frames again, oldest first.
func (v *voice) replay(ctx context.Context, r recentFrames) error {
	k := min(r.n, len(r.buf))
	for j := r.n - k; j < r.n; j++ {
		f := r.buf[j%len(r.buf)]
		if err := v.s.Call.WriteFrame(ctx, f); err != nil {
			return err
		}
		v.s.Recording.Engine(f)
	}
	return nil
}

// spokeOrAhead is spoke, or a closed channel when the caller already
// spoke (an utterance began just before the prompt was armed).
func spokeOrAhead(spoke <-chan struct{}, ahead bool) <-chan struct{} {
	if ahead {
		return closedSignal
	}
	return spoke
}

var closedSignal = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// speechAhead reports whether the caller has said something no question
// took yet (it answers the next one).
func (v *voice) speechAhead() bool {
	e := v.s.ear
	return e != nil && !e.off.Load() && e.ahead.Load()
}

// promptHead is the start of a prompt's text for the call's log: its first
// words, digit runs masked (a read-back may hold a national ID number).
func promptHead(p flows.Prompt) string {
	var b strings.Builder
	for _, pt := range p.Parts {
		if pt.Kind == flows.PartDigits {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(pt.Text)
	}
	s := strings.Join(strings.Fields(redact.Text(b.String())), " ")
	if r := []rune(s); len(r) > 40 {
		s = strings.TrimSpace(string(r[:40])) + "…"
	}
	return s
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
		// A word the caller heard part of counts as heard.
		words := strings.Fields(sg.text)
		var k int
		switch {
		case off <= sg.start:
		case sg.open:
			k = min(len(words), ceilDiv((off-sg.start)*5, 2*rate)) // 0.4 s a word
		case sg.end > sg.start:
			k = min(len(words), ceilDiv(len(words)*(off-sg.start), sg.end-sg.start))
		}
		if k > 0 {
			out = append(out, strings.Join(words[:k], " ")+" …")
		}
		break
	}
	return strings.Join(out, " ")
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

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
	// keyed is a keys answer: speech held for this question answers
	// nothing (it is still transcribed).
	keyed := func(in flows.Input) flows.Input {
		if e := v.s.ear; e != nil {
			e.keyAnswered()
		}
		return in
	}
	l.InterDigit = inter
	if in, ok := v.kp.Start(l); ok { // keys pressed ahead answer it
		return keyed(in), nil
	}
	defer v.kp.Stop()
	wait := noInput
	if v.kp.Collecting() {
		wait = inter
	}
	var spoken <-chan turnEvent // the ear's events for this turn; nil: keys only
	var req *turnReq
	e := v.s.ear
	listen := func() {
		end := e.cfg.EndSilence
		if l.Expect == flows.ExpectDigits {
			end = e.cfg.DigitsEndSilence
		}
		req = e.listen(l.Lang, grammarFor(l), end)
		spoken = req.events
	}
	if !v.kp.Collecting() && e != nil && !e.off.Load() {
		listen()
		defer func() { e.cancel(req) }()
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	deadline := time.Now().Add(wait)
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
				return keyed(in), nil
			}
			t.Reset(inter)
		case ev := <-spoken:
			switch {
			case ev.untranscribed && !ev.at.IsZero():
				v.s.Tracker.Event("speech.untranscribed", "the caller answered a free question the recognizer cannot transcribe: the words are in the recording")
				return flows.Input{Mode: flows.InputSpeech, Untranscribed: true, Began: ev.at}, nil
			case ev.started || ev.untranscribed:
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
			case ev.blip && (ev.res.Tag == "" || ev.res.Confidence < flows.DefaultConfirmBelow):
				// A short sound the caller made over the prompt (it did
				// not cut it) that is not clearly an answer: not a turn.
				v.s.Tracker.Event("speech.ignored", fmt.Sprintf("a short sound over the prompt: confidence %.2f", ev.res.Confidence))
				listen()
				t.Reset(max(time.Until(deadline), time.Second))
			default:
				text := ev.res.Text
				// Spoken digits may be a national ID: the event log
				// gets the grammar tag of choices only.
				detail := fmt.Sprintf("confidence %.2f words %d answers %q", ev.res.Confidence, len(strings.Fields(text)), v.asked)
				if l.Expect != flows.ExpectDigits && ev.res.Tag != "" && !allDigits(ev.res.Tag) {
					detail = fmt.Sprintf("tag %q ", ev.res.Tag) + detail
				}
				if ev.overVoices {
					detail += " over other voices"
				}
				v.s.Tracker.Event("speech.result", detail)
				return flows.Input{Mode: flows.InputSpeech, Text: text, Confidence: ev.res.Confidence, Began: ev.at, OverVoices: ev.overVoices}, nil
			}
		case <-t.C:
			if in, ok := v.kp.Pause(); ok {
				return keyed(in), nil
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
