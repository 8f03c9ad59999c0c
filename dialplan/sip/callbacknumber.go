package sip

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/redact"
)

// The callback number (docs/queue.md, "Call me back"): before the place is
// kept, the caller hears the number the line will call read back and
// presses 1 to confirm or 2 to type another (digits, then #); a withheld
// (see withheld) or non-numeric caller ID goes straight to typing. A typed
// number is read back too: 1 (or no key) keeps it, 2 types it again, once.
// The typed digits are personal data: the call record keeps them masked
// (Tracker.Sensitive) and the events show the number masked.

// Callback number timing.
const (
	callbackConfirmTimeout = 8 * time.Second  // no key after the read-back: the number stands
	callbackFirstDigit     = 10 * time.Second // to start typing
	callbackInterDigit     = 5 * time.Second  // between typed digits
	callbackTypings        = 2                // a typed number read back and refused (2) may be typed once more
)

// callbackNumber returns the number to call back, confirmed or typed by
// the caller (keys are the wait's keys), or "" when there is none (typing
// timed out, the number is not one the trunk can call, or the call ended).
//
// On a line with speech (ear not nil) "da" and "nu" answer the read-back
// as 1 and 2 do; the digits are typed.
func (c *call) callbackNumber(ctx context.Context, lang string, keys <-chan rune, ear *waitEar) string {
	cat := flows.DefaultCatalog()
	if !cat.HasLang(lang) {
		lang = "ro"
	}
	number := c.tr.Info().Caller
	if c.withheld() {
		// The caller chose not to show their number: it is not read
		// back nor called, whatever the From holds.
		c.tr.Event("queue.callback.number", "caller ID withheld: the caller types the number")
	} else if ivr.DialableNumber(number) {
		text := cat.Text(lang, "callback.number") + " " + spacedDigits(number) + ". " + cat.Text(lang, "callback.confirm")
		k, ok := c.readBack(ctx, lang, text, keys, ear)
		switch {
		case !ok:
			return ""
		case k == '2':
		case k == '1':
			c.tr.Event("queue.callback.number", "confirmed "+redact.Mask(number))
			return number
		default: // another key, or none: the number stands
			c.tr.Event("queue.callback.number", "kept without an answer "+redact.Mask(number))
			return number
		}
	}
	c.tr.Sensitive(true)
	defer c.tr.Sensitive(false)
	for try := 1; ; try++ {
		k, ok := c.sayForKey(ctx, lang, cat.Text(lang, "callback.type"), keys, callbackFirstDigit)
		var typed strings.Builder
		for ok && k != '#' && k != 0 {
			if k >= '0' && k <= '9' {
				typed.WriteRune(k)
			}
			k, ok = c.nextKey(ctx, keys, callbackInterDigit)
		}
		n := typed.String()
		if !ok || k != '#' || !ivr.DialableNumber(n) {
			c.tr.Event("queue.callback.number", fmt.Sprintf("no number typed (%d digits)", len(n)))
			return ""
		}
		// The typed number is read back: a slip of a finger would send
		// the callback to a stranger.
		text := cat.Text(lang, "callback.number") + " " + spacedDigits(n) + ". " + cat.Text(lang, "callback.confirm")
		k, ok = c.readBack(ctx, lang, text, keys, ear)
		switch {
		case !ok:
			return ""
		case k == '2' && try < callbackTypings:
			c.tr.Event("queue.callback.number", "typed "+redact.Mask(n)+", then 2: typed again")
			continue
		case k == '2':
			c.tr.Event("queue.callback.number", fmt.Sprintf("typed %s, then 2 again: no number after %d tries", redact.Mask(n), try))
			return ""
		}
		c.tr.Event("queue.callback.number", "typed "+redact.Mask(n))
		return n
	}
}

// readBack says a number read back and returns the caller's answer: 1 or
// 2 pressed, or "da" / "nu" said as 1 / 2 (0 when none within
// callbackConfirmTimeout).
func (c *call) readBack(ctx context.Context, lang, text string, keys <-chan rune, ear *waitEar) (rune, bool) {
	ear.asking(true)
	defer ear.asking(false)
	k, ok := c.sayForKey(ctx, lang, text, keys, callbackConfirmTimeout)
	switch k {
	case saidYes, saidCallback:
		k = '1'
	case saidNo:
		k = '2'
	}
	return k, ok
}

// withheld reports whether the caller withheld their number: an
// anonymous From (RFC 3323: "Anonymous" <sip:anonymous@anonymous.invalid>)
// or a Privacy header asking for id, user or header privacy (RFC 3323,
// RFC 3325). Such a number, even when a trunk passes it in the From, is
// neither read back nor called back.
func (c *call) withheld() bool {
	if c.d == nil {
		return false
	}
	req := c.d.InviteRequest
	if f := req.From(); f != nil {
		if strings.EqualFold(f.Address.User, "anonymous") || strings.EqualFold(f.Address.Host, "anonymous.invalid") {
			return true
		}
	}
	for _, h := range req.GetHeaders("Privacy") {
		for _, tok := range strings.FieldsFunc(h.Value(), func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
			switch strings.ToLower(tok) {
			case "id", "user", "header":
				return true
			}
		}
	}
	return false
}

// spacedDigits writes a number digit by digit for the synthesizer.
func spacedDigits(n string) string { return strings.Join(strings.Split(n, ""), " ") }

// sayForKey plays text and returns the first key pressed during it or
// within timeout after it (0 when none); ok is false when the call ended.
func (c *call) sayForKey(ctx context.Context, lang, text string, keys <-chan rune, timeout time.Duration) (rune, bool) {
	if syn := c.srv.eng.Synth; syn != nil {
		pcm, err := syn.Synthesize(ctx, lang, text, c.rate)
		if err != nil {
			c.tr.Log().Warn("callback prompt not rendered", "err", err)
		}
		frame := make([]int16, audio.SamplesPerFrame(c.rate))
		for len(pcm) > 0 {
			select {
			case k := <-keys:
				return k, true
			case <-ctx.Done():
				return 0, false
			case <-c.ctx.Done():
				return 0, false
			default:
			}
			n := copy(frame, pcm)
			clear(frame[n:])
			pcm = pcm[n:]
			if err := c.WriteFrame(ctx, frame); err != nil {
				return 0, false
			}
		}
	}
	return c.nextKey(ctx, keys, timeout)
}

// nextKey waits up to timeout for a key (0, true when none came).
func (c *call) nextKey(ctx context.Context, keys <-chan rune, timeout time.Duration) (rune, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case k := <-keys:
		return k, true
	case <-t.C:
		return 0, true
	case <-ctx.Done():
		return 0, false
	case <-c.ctx.Done():
		return 0, false
	}
}
