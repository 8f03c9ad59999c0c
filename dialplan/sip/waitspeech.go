package sip

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/speech"
)

// Spoken "call me back" (docs/queue.md, "Call me back"): on a line with
// speech, a caller waiting in the queue may say "reveniți cu un apel" (or
// "call me back") instead of pressing 1. While the call waits, the call's
// own turn-taking (ivr.Handoff.Hear: the VAD, the endpointer and the
// recognizer of every question) hears each utterance with a small
// grammar, and what it hears becomes one of the runes below on the wait's
// key channel, beside the caller's keys.
//
// The embedded recognizer forces every utterance onto its grammar, so the
// grammars carry decoys (what a waiting caller says to nobody in
// particular: "alo", "bună ziua", "mulțumesc") and the escape phrases.
// Measured on 18 voices through A-law (6 tuned on, 12 held out): "reveniți
// cu un apel" is heard 18 of 18 times and "call me back" 18 of 18, while
// "alo", "vine trenul de la Cluj" or "thank you" never are; "bună ziua"
// was once, at 0.65. So a spoken request is never acted on alone: the
// line asks "did you ask to be called back?" and only a "da" (or 1) goes
// on, exactly as the key 1 does. Anything else, or nothing within
// spokenConfirmWait, and the caller keeps waiting as before.

// Spoken inputs of the queue wait, sent on its key channel. They are not
// keys a phone can send (runes of Unicode's private use area).
const (
	saidCallback rune = 0xE000 + iota // "call me back"
	saidYes                           // yes, at a confirmation
	saidNo                            // no, at a confirmation
)

// spokenConfirmWait is how long after the confirmation question the
// line waits for its yes.
const spokenConfirmWait = 6 * time.Second

// Least confidence at which a result counts. Low for "callback": the
// confirmation guards it (the embedded recognizer scored its 18 "reveniți
// cu un apel" 0.26-0.79, and 0.20 once over SIP). The default threshold
// for the answer to the confirmation.
const (
	callbackConfidence = 0.1
	yesNoConfidence    = 0.5
)

// callbackSay are the ways to ask to be called back, by language. The
// prompts suggest the first; the others are what callers say anyway (the
// embedded recognizer hears "sunați-mă" less well than "reveniți": 10 of
// 18 voices; engines that transcribe hear them all).
var callbackSay = map[string][]string{
	"ro": {"reveniți cu un apel", "reveniți", "sunați-mă înapoi", "sunați-mă", "apelați-mă", "vreau să fiu sunat înapoi", "unu", "tasta unu"},
	"en": {"call me back", "please call me back", "call back", "one", "press one"},
}

// waitDecoys are what a waiting caller says that asks for nothing.
var waitDecoys = map[string][]string{
	"ro": {"alo", "bună ziua", "mulțumesc", "bine", "aștept"},
	"en": {"hello", "thank you", "okay", "i am waiting"},
}

// phrasesBoth adds say[lang] for both languages to g, each in its own
// language, with tag.
func phrasesBoth(g *speech.Grammar, lang, tag string, say map[string][]string) {
	for _, l := range []string{"ro", "en"} {
		own := l
		if l == lang {
			own = ""
		}
		g.Phrases = append(g.Phrases, speech.Phrase{Tag: tag, Say: say[l], Lang: own})
	}
}

// waitGrammar is what the wait listens for in lang: a call-back request,
// among the escapes and the decoys.
func waitGrammar(lang string) *speech.Grammar {
	g := &speech.Grammar{}
	phrasesBoth(g, lang, "callback", callbackSay)
	g.AddEscapes(lang, false)
	phrasesBoth(g, lang, "", waitDecoys)
	return g
}

// confirmGrammar is a yes/no question of the wait in lang: yes (or the
// request said again), no (or "another number"), among the decoys.
func confirmGrammar(lang string) *speech.Grammar {
	g := speech.YesNo(lang)
	g.Phrases[0].Say = append(g.Phrases[0].Say, map[string][]string{"ro": {"da vă rog", "confirm"}, "en": {"yes please", "confirm"}}[lang]...)
	g.Phrases = append(g.Phrases, speech.Phrase{Tag: "no", Say: map[string][]string{"ro": {"alt număr"}, "en": {"another number"}}[lang]})
	phrasesBoth(g, lang, "callback", callbackSay)
	g.AddEscapes(lang, true)
	phrasesBoth(g, lang, "", waitDecoys)
	return g
}

// waitEar hears the caller while the call waits in the queue (or is asked
// for its call-back number) and turns what it hears into runes on keys.
// Its grammar follows the wait: the request, then a yes/no question.
type waitEar struct {
	c    *call
	lang string
	keys chan<- rune

	mu      sync.Mutex
	confirm bool               // a yes/no question is asked
	restart context.CancelFunc // ends the Hear under way, so the next has the new grammar
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// hearWhileWaiting starts the wait's ear on h.Hear; nil (a no-op ear) on
// a call without speech.
func (c *call) hearWhileWaiting(ctx context.Context, h ivr.Handoff, keys chan<- rune) *waitEar {
	if h.Hear == nil {
		return nil
	}
	lang := h.Lang
	if lang != "en" {
		lang = "ro"
	}
	w := &waitEar{c: c, lang: lang, keys: keys}
	ctx, w.stop = context.WithCancel(ctx)
	w.wg.Go(func() {
		defer ivr.Recover(c.srv.metrics, c.tr.Log(), "queue wait speech", nil)
		w.run(ctx, h.Hear)
	})
	return w
}

func (w *waitEar) run(ctx context.Context, hear func(context.Context, string, *speech.Grammar) (speech.Result, error)) {
	for ctx.Err() == nil {
		w.mu.Lock()
		confirm := w.confirm
		hctx, cancel := context.WithCancel(ctx)
		w.restart = cancel
		w.mu.Unlock()
		g := waitGrammar(w.lang)
		if confirm {
			g = confirmGrammar(w.lang)
		}
		res, err := hear(hctx, w.lang, g)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case hctx.Err() != nil:
			continue // the grammar changed
		default:
			// Speech fell back to keys, or the recognizer failed:
			// the keys still work.
			if !errors.Is(err, context.Canceled) {
				w.c.tr.Log().Warn("queue wait: speech not heard, keys only", "err", err)
			}
			return
		}
		var r rune
		switch {
		case res.Tag == "callback" && res.Confidence >= callbackConfidence && !confirm:
			r = saidCallback
		case (res.Tag == "yes" || res.Tag == "callback") && res.Confidence >= yesNoConfidence && confirm:
			r = saidYes
		case res.Tag == "no" && res.Confidence >= yesNoConfidence && confirm:
			r = saidNo
		default:
			continue
		}
		select {
		case w.keys <- r:
		default: // keys already wait: the caller's keys win
		}
	}
}

// asking switches the ear to a yes/no question (on) or back to the
// request (off).
func (w *waitEar) asking(on bool) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.confirm == on {
		return
	}
	w.confirm = on
	if w.restart != nil {
		w.restart()
	}
}

// close stops the ear and waits for it.
func (w *waitEar) close() {
	if w == nil {
		return
	}
	w.stop()
	w.wg.Wait()
}
