package tickets

import (
	"log/slog"
	"unicode"
)

// Phone is a telephone number (or SIP user part): personal data. Logged
// through log/slog, or formatted with %s / %v, it shows only its last three
// digits; every other digit and letter becomes '*', so "+33612345678" logs
// as "+********678". Use string(p) where the real number is needed (to
// store it or dial it), never in a log line.
type Phone string

var (
	_ slog.LogValuer = Phone("")
	_ slog.LogValuer = CallRecord{}
)

// LogValue implements slog.LogValuer: the masked number.
func (p Phone) LogValue() slog.Value { return slog.StringValue(p.Masked()) }

// String returns the masked number, so fmt and error messages do not leak it.
func (p Phone) String() string { return p.Masked() }

// Masked returns the number with all but its last three digits, and every
// letter, replaced by '*'. Punctuation (+, -, spaces, @, :) is kept.
func (p Phone) Masked() string { return MaskKeeping(string(p), 3) }

// MaskKeeping replaces every letter and every digit of s with '*' but the
// last keep digits; punctuation and spaces stay.
func MaskKeeping(s string, keep int) string {
	rs := []rune(s)
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		switch {
		case r >= '0' && r <= '9' && keep > 0:
			keep--
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			rs[i] = '*'
		}
	}
	return string(rs)
}
