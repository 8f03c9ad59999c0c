package sip

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/speech"
)

// Spoken "call me back" (docs/queue.md, "Call me back"): on a line with
// speech, a caller waiting in the queue may say "sunați-mă înapoi" or "call
// me back" instead of pressing 1. While the call waits, its caller's
// frames are tapped from the RTP reader into a listener that cuts the
// caller's speech with the line's VAD and recognizes each utterance with
// a small grammar: the call-back phrases of both languages, each
// pronounced in its own, beside the escape phrases (operator, language,
// yes/no) so that other speech has something else to match. A result
// tagged "callback" with a confidence of at least waitConfidence counts
// as the key 1.

// CallbackTag is the grammar tag of the spoken call-back request.
const CallbackTag = "callback"

// callbackSay are the ways to ask to be called back, by language.
var callbackSay = map[string][]string{
	// The embedded recognizer (pocketsphinx on the en-us acoustic model
	// with Romanian by g2p) does not hear "sunați" reliably: measured on
	// espeak's voice, "sunați-mă înapoi" came out as "operator", while
	// "reveniți cu un apel" and "apelați-mă" were recognized (0.55, 0.44).
	// The sunați forms stay for the engines that transcribe.
	"ro": {"sunați-mă înapoi", "sunați-mă", "vreau să fiu sunat înapoi", "reveniți cu un apel", "reveniți", "apelați-mă", "apelați-mă înapoi"},
	"en": {"call me back", "please call me back", "call back"},
}

// callbackGrammar is the grammar the queue wait listens with in lang.
func callbackGrammar(lang string) *speech.Grammar {
	g := &speech.Grammar{}
	for _, l := range []string{"ro", "en"} {
		own := l
		if l == lang {
			own = ""
		}
		g.Phrases = append(g.Phrases, speech.Phrase{Tag: CallbackTag, Say: callbackSay[l], Lang: own})
	}
	return g.AddEscapes(lang, false)
}

// waitConfidence is the confidence from which a "callback" result acts.
// Lower than speech.ConfirmBelow: the embedded recognizer scored espeak's
// "call me back" 0.31 and "please call me back" 0.32, while unrelated
// speech ("bună ziua, cât mai am de așteptat") against this grammar
// scored at most 0.014. A false match ends the call (the place is kept
// and the citizen called back), so it is not much lower.
const waitConfidence = 0.3

// Wait listener timing.
const (
	waitPreRoll    = 10              // frames kept before the VAD's start (its confirmation delay)
	waitTail       = 25              // frames of quiet that end an utterance
	waitTapQueue   = 100             // 2 s of frames: the recognizer's Write may lag behind the RTP
	waitMaxFrames  = 5 * 50          // 5 s: an utterance never longer
	waitFinishTime = 3 * time.Second // bound on the recognizer's final result
)

// waitListener recognizes spoken call-back requests while a call waits.
type waitListener struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
	c    *call
}

// listenWhileWaiting starts the listener of c, which sends queue.LeaveKey
// to keys on a confident "call me back"; nil when the line has no speech
// (or the call's rate is not one the recognizer takes). The caller stops
// it (close) before the call is bridged, which taps the frames itself.
func (c *call) listenWhileWaiting(ctx context.Context, lang string, keys chan<- rune) *waitListener {
	sc := c.srv.eng.Speech
	if !sc.Enabled() || speech.CheckRate(c.rate) != nil {
		return nil
	}
	if lang == "" {
		lang = c.srv.eng.Lang
	}
	if lang != "en" {
		lang = "ro"
	}
	vad, release, err := sc.NewVAD(c.rate)
	if err != nil {
		c.tr.Log().Warn("queue: no VAD for the spoken call back", "err", err)
		return nil
	}
	lctx, stop := context.WithCancel(ctx)
	w := &waitListener{stop: stop, c: c}
	t := newTapQueue(audio0(c.rate), waitTapQueue)
	c.tap.Store(t)
	g := callbackGrammar(lang)
	w.wg.Go(func() {
		defer release()
		w.run(lctx, t, vad, sc.Recognizer, lang, g, keys)
	})
	return w
}

// audio0 is the samples of one 20 ms frame at rate.
func audio0(rate int) int { return rate / 50 }

// close stops the listener, untaps the frames and joins it; nil-safe.
func (w *waitListener) close() {
	if w == nil {
		return
	}
	w.c.tap.Store(nil)
	w.stop()
	w.wg.Wait()
}

func (w *waitListener) run(ctx context.Context, t *tap, vad speech.VAD, rec speech.Recognizer, lang string, g *speech.Grammar, keys chan<- rune) {
	c := w.c
	var pre [][]int16 // the frames before speech, oldest first
	var st speech.Stream
	frames, quiet := 0, 0
	finish := func() {
		s := st
		st = nil
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), waitFinishTime)
		defer cancel()
		if ctx.Err() != nil {
			cancel() // abandoned: Finish releases the stream
		}
		r, err := s.Finish(fctx)
		vad.Reset()
		if err != nil || ctx.Err() != nil {
			return
		}
		tag := r.Tag
		if tag == "" {
			tag = g.Match(lang, r.Text)
		}
		c.tr.Event("queue.speech", fmt.Sprintf("heard %q (%s, confidence %.2f)", r.Text, tag, r.Confidence))
		if tag == CallbackTag && r.Confidence >= waitConfidence {
			select {
			case keys <- queue.LeaveKey:
			default:
			}
		}
	}
	defer func() {
		if st != nil {
			finish()
		}
	}()
	for {
		var f []int16
		select {
		case <-ctx.Done():
			return
		case tf := <-t.ch:
			f = append([]int16(nil), tf...) // the tap's buffer goes back at once
			t.free <- tf
		}
		act, err := vad.Process(f)
		if err != nil {
			c.tr.Log().Warn("queue: VAD failed: the spoken call back is off", "err", err)
			return
		}
		if st == nil {
			if !act.Speech {
				if len(pre) == waitPreRoll {
					pre = pre[1:]
				}
				pre = append(pre, f)
				continue
			}
			s, err := rec.NewStream(ctx, speech.StreamOptions{Lang: lang, Rate: c.rate, Grammar: g, Call: c.tr.Info().ID})
			if err != nil {
				c.tr.Log().Warn("queue: recognizer stream not started", "err", err)
				continue
			}
			st, frames, quiet = s, 0, 0
			for _, p := range pre {
				_ = st.Write(p)
				frames++
			}
			pre = pre[:0]
		}
		_ = st.Write(f)
		frames++
		if act.Speech {
			quiet = 0
		} else {
			quiet++
		}
		if quiet >= waitTail || frames >= waitMaxFrames {
			finish()
		}
	}
}
