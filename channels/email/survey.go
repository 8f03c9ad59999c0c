package email

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// The survey by e-mail (issue 17, docs/email.md "The satisfaction
// survey"): the notice of a resolved ticket asks for a rating from 1 to 5
// (Config.Survey), and a reply in the thread that consists of the rating
// alone is recorded as the ticket's rating instead of reopening it.

// DefaultSurveyPeriod is how long an address is not surveyed again
// (90 days, as the survey calls' surveys.period).
const DefaultSurveyPeriod = 90 * 24 * time.Hour

const (
	surveyRO = "Cum a fost rezolvată solicitarea? Răspundeți la acest mesaj cu o cifră de la 1 (foarte nemulțumit) la 5 (foarte mulțumit), singură pe primul rând."
	surveyEN = "How was your request handled? Reply to this message with one digit from 1 (very dissatisfied) to 5 (very satisfied), alone on the first line."
)

var (
	// A rating line: "4", "4.", "5/5", "nota 4", "4 stele", "4 stars",
	// optionally followed by a thank-you ("5 - mulțumesc!").
	reRating = regexp.MustCompile(`^(?:nota|notă|rating|calificativ(?:ul)?)?\s*([1-5])\s*(?:/\s*5|stele|stea|stars?|puncte)?` +
		`(?:\s*[-–—,.;:!]?\s*(?:vă mulțumesc|va multumesc|mulțumesc|multumesc|mulţumesc|mersi|thank you|thanks))?$`)
	// Where the quoted original begins, or a signature.
	reQuoteHead  = regexp.MustCompile(`(?i)^(on|în|in|pe)\s.*(wrote|a scris)\s*:?$`)
	reQuoteStart = regexp.MustCompile(`(?i)^(on|în|in|pe)\s`)
	reQuoteEnd   = regexp.MustCompile(`(?i)(wrote|a scris)\s*:?$`)
	reCut        = regexp.MustCompile(`(?i)^(-{2,}\s*(original|forward|mesaj|message)|_{5,}$|-- ?$|(from|de la|de|sent|trimis|to|către|subject|subiect):\s|sent from |trimis de pe |trimis din |get outlook )`)
)

// newText returns the lines a reply adds above the quoted original and
// the signature: cut at the first line quoted with ">", an attribution
// ("On ... wrote:", "În ... a scris:", also wrapped over two lines), an
// "-----Original Message-----" or Outlook header block ("From:", "De:",
// "Sent:"...), a signature separator "-- " or a "Sent from my phone" line.
// Leading and trailing blank lines are dropped; the others are trimmed.
func newText(text string) []string {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var out []string
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, ">") || reQuoteHead.MatchString(t) || reCut.MatchString(t) || l == "-- " {
			break
		}
		if reQuoteStart.MatchString(t) && i+1 < len(lines) && reQuoteEnd.MatchString(strings.TrimSpace(lines[i+1])) {
			break
		}
		out = append(out, t)
	}
	for len(out) > 0 && out[0] == "" {
		out = out[1:]
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// Limits of the lines a rating may have under it (a signature).
const (
	maxSignatureLines = 4
	maxSignatureRunes = 40
	maxSignatureWords = 6
)

// RatingReply returns the satisfaction rating, 1 to 5, that a reply's text
// consists of, or 0 when it is anything else. Conservative: a reply that
// is a rating and something more must not lose the something more (it
// reopens the ticket, as any reply). The new text (newText: above the
// quoted original and the signature) must be one line, "4", "4.", "5/5",
// "nota 4", "4 stele"/"4 stars", optionally with a thank-you on the same
// line ("5, mulțumesc!"); under it, after a blank line, at most 4 short
// lines (40 characters, 6 words, no "?": a name, a phone number) are taken
// for a signature. "4 zile am așteptat", "10", "1-5", "3 sau 4" are not
// ratings.
func RatingReply(text string) int {
	lines := newText(text)
	if len(lines) == 0 {
		return 0
	}
	first := strings.ToLower(strings.TrimRight(lines[0], ".!"))
	m := reRating.FindStringSubmatch(strings.TrimSpace(first))
	if m == nil {
		return 0
	}
	if rest := lines[1:]; len(rest) > 0 {
		if rest[0] != "" {
			return 0
		}
		n := 0
		for _, l := range rest[1:] {
			if l == "" {
				continue
			}
			n++
			if n > maxSignatureLines || strings.Contains(l, "?") || utf8.RuneCountInString(l) > maxSignatureRunes || len(strings.Fields(l)) > maxSignatureWords {
				return 0
			}
		}
	}
	return int(m[1][0] - '0')
}
