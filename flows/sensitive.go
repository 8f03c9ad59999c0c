package flows

import (
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/govline/ivr/redact"
)

// Sensitive answers: ask_digits{..., sensitive = true} and
// ask_free(prompt, {sensitive = true}) give the flow the caller's answer in
// clear, and from then on the runtime writes only its masked form wherever
// it writes text: the transcript (the caller's turn and the read-back
// prompt), conversation(), ticket descriptions and notes, the log, and the
// knowledge base queries (misses are stored). The clear value reaches a
// ticket only in its personal field: the flow keeps it in vars (vars.cnp =
// n) or passes it (ticket.open{personal = {cnp = n}}). While such a
// question is asked, the Channel is told (Recorder.Sensitive), so that a
// phone call's DTMF log keeps only the masked keys too.

// MaskAnswer is the masked form of a sensitive answer: the one rule of
// package redact (every letter and digit but the last three become '*';
// "1960101123456" → "**********456").
func MaskAnswer(s string) string { return redact.Mask(s) }

// minSecret is the shortest sensitive value hidden inside other texts: a
// shorter one ("1", "da") would mask unrelated words.
const minSecret = 4

// keepSecret remembers a sensitive value of this call (as typed or as
// said), so that hide masks it wherever it appears.
func (c *call) keepSecret(vals ...string) {
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if len([]rune(v)) < minSecret {
			continue
		}
		dup := false
		for _, s := range c.secrets {
			dup = dup || s == v
		}
		if !dup {
			c.secrets = append(c.secrets, v)
		}
	}
	// The longest first: a value that holds another is masked whole.
	sort.Slice(c.secrets, func(i, j int) bool { return len(c.secrets[i]) > len(c.secrets[j]) })
}

// hide replaces the call's sensitive values in s by their masked forms.
func (c *call) hide(s string) string {
	for _, v := range c.secrets {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, MaskAnswer(v))
		}
	}
	return s
}

// secret reports whether s is (or holds) a sensitive value of this call.
func (c *call) secret(s string) bool { return c.hide(s) != s }

// maskedInput is what the transcript keeps of a sensitive answer: the
// masked digits of a number said or keyed, else the masked words.
func maskedInput(in Input, l Listen) string {
	if in.Mode == InputSpeech && l.Expect == ExpectDigits {
		if d, ok := SpokenDigits(in.Text); ok {
			return MaskAnswer(d)
		}
	}
	return MaskAnswer(in.Text)
}

// setSensitive marks the start and the end of a sensitive question, for
// the runtime and for the channel's records.
func (c *call) setSensitive(on bool) {
	c.sensitive = on
	if r, ok := c.ch.(Recorder); ok {
		r.Sensitive(on)
	}
}

// personal collects, for a ticket, the per-call variables whose values are
// sensitive answers: vars.cnp = n puts the CNP in the ticket's personal
// field under "cnp", and only its masked form in the description.
func (c *call) personal(extra *lua.LTable) map[string]string {
	out := map[string]string{}
	if vt, ok := c.L.GetGlobal("vars").(*lua.LTable); ok {
		vt.ForEach(func(k, v lua.LValue) {
			if s, ok := v.(lua.LString); ok && c.secret(string(s)) {
				out[personalName(k.String())] = string(s)
			}
		})
	}
	if extra != nil {
		extra.ForEach(func(k, v lua.LValue) { out[personalName(k.String())] = lua.LVAsString(v) })
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// personalName turns a variable name into a personal-data field name
// (lower case, letters, digits and '_').
func personalName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 || b.String()[0] < 'a' || b.String()[0] > 'z' {
		return "v_" + b.String()
	}
	return b.String()
}
