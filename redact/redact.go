// Package redact is the one masking of personal data in the engine: what
// logs, call events, knowledge-base misses and the agent console show of a
// citizen's numbers and addresses, whoever writes them.
//
// What is masked (Find lists it, Text masks it):
//
//   - national ID numbers: a Romanian CNP or a Moldovan IDNP (13 digits
//     whose check digit holds), reported as KindNationalID;
//   - phone numbers (Romanian and Moldovan forms, or any run written with a
//     leading + or 00), KindPhone;
//   - card-like numbers (13 to 19 digits that pass the Luhn check), KindCard;
//   - any other run of 6 or more digits, KindNumber: account and ticket
//     numbers, dates of birth written as digits, a 13-digit number whose
//     check digit is wrong;
//   - e-mail addresses (and SIP URIs that look like them), KindEmail;
//   - the same numbers said in words, digit by digit, in Romanian or
//     English ("zero șapte doi unu doi trei"; "oh seven two one ..."),
//     KindSpoken.
//
// A run of digits may be split by single spaces, dashes, dots, slashes or
// parentheses ("0722 123 456", "+40 (722) 123-456", "12.03.1990"). An IPv4
// address (four groups of 1 to 3 digits with dots) is not personal data
// here and is left alone; so are runs of 5 digits or fewer (short numbers
// such as 112 or 1919, ports, years).
//
// The one rule for what stays visible: a masked value keeps its last three
// digits; every other digit and every letter of it becomes '*', one for
// one, and the punctuation and spacing stay. So "0722 123 456" reads
// "**** *** 456", "1900101456789" reads "**********789",
// "ion.popescu@example.ro" reads "***.*******@*******.**" and
// "zero șapte doi unu doi trei" reads "**** ***** *** unu doi trei".
//
// Values whose type is known carry the rule with them: Phone and NationalID
// are slog.LogValuers (and fmt.Stringers), so no log line and no %v can
// show them whole; Err masks an error's text; NewHandler masks every string
// an slog handler receives.
package redact

import (
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Keep is how many trailing digits of a masked value stay visible.
const Keep = 3

// MinDigits is the shortest run of digits that is masked wherever it is.
const MinDigits = 6

// Kind says what a piece of personal data is.
type Kind string

// Kinds of personal data.
const (
	KindNationalID Kind = "national_id" // CNP or IDNP with a valid check digit
	KindPhone      Kind = "phone"
	KindCard       Kind = "card"
	KindNumber     Kind = "number" // any other run of MinDigits or more digits
	KindEmail      Kind = "email"
	KindSpoken     Kind = "spoken" // digits said in words
)

// Match is one piece of personal data in a text: s[Start:End], and the
// digits it holds (for numbers, also when said in words).
type Match struct {
	Kind       Kind
	Start, End int
	Digits     string
}

// Text returns s with every piece of personal data masked by the package's
// rule. Text without personal data is returned unchanged (and without
// allocating).
func Text(s string) string {
	ms := Find(s)
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, m := range ms {
		b.WriteString(s[last:m.Start])
		b.WriteString(Mask(s[m.Start:m.End]))
		last = m.End
	}
	b.WriteString(s[last:])
	return b.String()
}

// Mask applies the rule to a whole value known to be personal data: its
// last Keep digits stay (digits said in words count as digits), every
// other digit and letter becomes '*', punctuation and spacing stay.
func Mask(v string) string {
	words := spokenWords(v)
	keep := Keep
	out := []rune(v)
	// From the end: digits and digit words use up the visible budget.
	for i := len(words) - 1; i >= 0; i-- {
		w := words[i]
		if w.digit && keep > 0 {
			keep -= w.digits
			continue
		}
		for j := w.start; j < w.end; j++ {
			if unicode.IsLetter(out[j]) || unicode.IsDigit(out[j]) {
				out[j] = '*'
			}
		}
	}
	return string(out)
}

// token is a word or a group of digits of a value being masked, in runes.
type token struct {
	start, end int
	digit      bool // a group of digits or a digit word
	digits     int  // how many digits it stands for
}

// spokenWords splits v into letter-and-digit tokens, in rune offsets.
func spokenWords(v string) []token {
	var out []token
	rs := []rune(v)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsDigit(r):
			// Each digit is its own token so that a group's last digits
			// can stay while its first ones are masked.
			out = append(out, token{start: i, end: i + 1, digit: true, digits: 1})
			i++
		case unicode.IsLetter(r):
			j := i
			for j < len(rs) && unicode.IsLetter(rs[j]) {
				j++
			}
			_, isDigit := digitWords[strings.ToLower(string(rs[i:j]))]
			t := token{start: i, end: j}
			if isDigit {
				t.digit, t.digits = true, 1
			}
			out = append(out, t)
			i = j
		default:
			i++
		}
	}
	return out
}

// digitWords are the words for one digit, Romanian (with and without
// diacritics, both the comma and the cedilla forms) and English.
var digitWords = map[string]byte{
	"zero": '0', "unu": '1', "una": '1', "un": '1', "doi": '2', "două": '2', "doua": '2',
	"trei": '3', "patru": '4', "cinci": '5', "șase": '6', "şase": '6', "sase": '6',
	"șapte": '7', "şapte": '7', "sapte": '7', "opt": '8', "nouă": '9', "noua": '9',
	"oh": '0', "one": '1', "two": '2', "three": '3', "four": '4', "five": '5', "six": '6',
	"seven": '7', "eight": '8', "nine": '9',
}

var (
	reEmail = regexp.MustCompile(`[\p{L}\p{N}._%+\-]+@[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)+`)
	reIPv4  = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)
)

// Find returns the personal data in s, in order, without overlaps.
func Find(s string) []Match {
	if !hasCandidate(s) {
		return nil
	}
	var ms []Match
	// Spans already taken: e-mail addresses first, then IPv4 addresses
	// (taken but not reported), then numbers.
	var taken [][2]int
	if strings.IndexByte(s, '@') >= 0 {
		for _, loc := range reEmail.FindAllStringIndex(s, -1) {
			ms = append(ms, Match{Kind: KindEmail, Start: loc[0], End: loc[1], Digits: digitsOf(s[loc[0]:loc[1]])})
			taken = append(taken, [2]int{loc[0], loc[1]})
		}
	}
	if strings.IndexByte(s, '.') >= 0 {
		for _, loc := range reIPv4.FindAllStringIndex(s, -1) {
			if !overlaps(taken, loc[0], loc[1]) && !digitAround(s, loc[0], loc[1]) {
				taken = append(taken, [2]int{loc[0], loc[1]})
			}
		}
	}
	ms = append(ms, digitRuns(s, taken)...)
	ms = append(ms, spokenRuns(s)...)
	return merge(ms)
}

// merge sorts ms and joins the ones that overlap (a spoken run around
// digits, digit words inside an e-mail address): the longer one names
// the union.
func merge(ms []Match) []Match {
	if len(ms) < 2 {
		return ms
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Start < ms[j].Start })
	out := ms[:1]
	for _, m := range ms[1:] {
		cur := &out[len(out)-1]
		if m.Start >= cur.End {
			out = append(out, m)
			continue
		}
		if m.End-m.Start > cur.End-cur.Start {
			cur.Kind, cur.Digits = m.Kind, m.Digits
		}
		cur.End = max(cur.End, m.End)
	}
	return out
}

// hasCandidate is a fast check: personal data needs a digit, an '@' or a
// letter (a digit word).
func hasCandidate(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c == '@' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= 0x80 {
			return true
		}
	}
	return false
}

// digitAround reports whether a digit (or a dot then a digit) touches
// s[start:end]: then it is part of a longer number, not an IPv4 address.
func digitAround(s string, start, end int) bool {
	isD := func(i int) bool { return i >= 0 && i < len(s) && s[i] >= '0' && s[i] <= '9' }
	return isD(start-1) || isD(end) || (start >= 2 && s[start-1] == '.' && isD(start-2)) || (end+1 < len(s) && s[end] == '.' && isD(end+1))
}

func overlaps(spans [][2]int, start, end int) bool {
	for _, t := range spans {
		if start < t[1] && t[0] < end {
			return true
		}
	}
	return false
}

func inside(spans [][2]int, i int) bool {
	for _, t := range spans {
		if i >= t[0] && i < t[1] {
			return true
		}
	}
	return false
}

func isSep(c byte) bool { return c == ' ' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')' }

// digitRuns finds runs of MinDigits or more digits outside taken. Groups
// of digits join across one or two separator characters; a '+' or '('
// right before the first digit belongs to the run.
func digitRuns(s string, taken [][2]int) []Match {
	var out []Match
	isDigit := func(i int) bool { return i < len(s) && s[i] >= '0' && s[i] <= '9' && !inside(taken, i) }
	for i := 0; i < len(s); {
		if !isDigit(i) {
			i++
			continue
		}
		start, end := i, i
		var digits []byte
		for j := i; ; {
			if isDigit(j) {
				digits = append(digits, s[j])
				j++
				end = j
				continue
			}
			k := j // up to two separators, then a digit: the run goes on
			for k < len(s) && k-j < 2 && isSep(s[k]) && !inside(taken, k) {
				k++
			}
			if k == j || !isDigit(k) {
				break
			}
			j = k
		}
		if len(digits) >= MinDigits {
			plus := false
			for start > 0 && start > i-2 && (s[start-1] == '+' || s[start-1] == '(') && !inside(taken, start-1) {
				start--
				plus = plus || s[start] == '+'
			}
			out = append(out, Match{Kind: classify(string(digits), plus), Start: start, End: end, Digits: string(digits)})
		}
		i = end
	}
	return out
}

// spokenRuns finds digits said in words: MinDigits or more digit words
// (and digits) in a row, separated only by spaces, commas, dots or dashes.
// A run that overlaps a run of digits is merged with it by Find.
func spokenRuns(s string) []Match {
	type word struct {
		start, end int // bytes
		digits     string
	}
	var out []Match
	var run []word
	flush := func() {
		n := 0
		for _, w := range run {
			n += len(w.digits)
		}
		if n >= MinDigits {
			var d strings.Builder
			words := 0
			for _, w := range run {
				d.WriteString(w.digits)
				if !isDigitString(s[w.start:w.end]) {
					words++
				}
			}
			if words > 0 {
				out = append(out, Match{Kind: KindSpoken, Start: run[0].start, End: run[len(run)-1].end, Digits: d.String()})
			}
		}
		run = run[:0]
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			j := i
			for j < len(s) {
				r2, n := utf8.DecodeRuneInString(s[j:])
				if !unicode.IsLetter(r2) && !unicode.IsDigit(r2) {
					break
				}
				j += n
			}
			tok := s[i:j]
			if d, ok := digitWords[strings.ToLower(tok)]; ok {
				run = append(run, word{i, j, string(d)})
			} else if isDigitString(tok) {
				run = append(run, word{i, j, tok})
			} else {
				flush()
			}
			i = j
		case r == ' ' || r == ',' || r == '.' || r == '-' || r == '\t':
			i += size
		default:
			flush()
			i += size
		}
	}
	flush()
	return out
}

func isDigitString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func digitsOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// classify names a run of digits; plus says it was written with a
// leading '+'.
func classify(d string, plus bool) Kind {
	switch {
	case ValidCNP(d) || ValidIDNP(d):
		return KindNationalID
	case plus || looksLikePhone(d):
		return KindPhone
	case len(d) >= 13 && len(d) <= 19 && luhn(d):
		return KindCard
	}
	return KindNumber
}

// looksLikePhone: Romanian (07xxxxxxxx, 02/03 landlines, 0040/40 + 9
// digits) and Moldovan (0 + 8 digits, 00373/373 + 8 digits) numbers.
func looksLikePhone(d string) bool {
	switch {
	case len(d) == 10 && d[0] == '0' && strings.ContainsRune("237", rune(d[1])):
		return true
	case len(d) == 11 && strings.HasPrefix(d, "40") && strings.ContainsRune("237", rune(d[2])):
		return true
	case len(d) == 13 && strings.HasPrefix(d, "0040"):
		return true
	case len(d) == 9 && d[0] == '0' && strings.ContainsRune("2367", rune(d[1])):
		return true
	case len(d) == 11 && strings.HasPrefix(d, "373"):
		return true
	case len(d) == 13 && strings.HasPrefix(d, "00373"):
		return true
	}
	return false
}

// ValidCNP reports whether d is a Romanian personal numeric code: 13
// digits, the first 1-9, the month 01-12, the day 01-31, and the check
// digit of the 279146358279 weights.
func ValidCNP(d string) bool {
	if len(d) != 13 || !isDigitString(d) || d[0] == '0' {
		return false
	}
	month := int(d[3]-'0')*10 + int(d[4]-'0')
	day := int(d[5]-'0')*10 + int(d[6]-'0')
	if month < 1 || month > 12 || day < 1 || day > 31 {
		return false
	}
	const weights = "279146358279"
	sum := 0
	for i := 0; i < 12; i++ {
		sum += int(d[i]-'0') * int(weights[i]-'0')
	}
	c := sum % 11
	if c == 10 {
		c = 1
	}
	return int(d[12]-'0') == c
}

// ValidIDNP reports whether d is a Moldovan personal identification
// number: 13 digits starting with 0 or 2, whose last digit is the sum of
// the first twelve weighted 7, 3, 1 (repeating), modulo 10.
func ValidIDNP(d string) bool {
	if len(d) != 13 || !isDigitString(d) || (d[0] != '0' && d[0] != '2') {
		return false
	}
	w := [3]int{7, 3, 1}
	sum := 0
	for i := 0; i < 12; i++ {
		sum += int(d[i]-'0') * w[i%3]
	}
	return sum%10 == int(d[12]-'0')
}

// luhn reports whether the digits d pass the Luhn check (payment cards).
func luhn(d string) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// Phone is a telephone number (or a SIP user part): personal data. Logged
// through log/slog, or formatted with %s / %v, it shows only what Mask
// leaves: "+40722123456" logs as "+********456". Use string(p) where the
// real number is needed (to store or dial it), never in a log line.
type Phone string

// NationalID is a national identification number (CNP, IDNP): personal
// data, shown masked like Phone.
type NationalID string

var (
	_ slog.LogValuer = Phone("")
	_ slog.LogValuer = NationalID("")
	_ slog.LogValuer = errValue{}
)

// LogValue implements slog.LogValuer: the masked number.
func (p Phone) LogValue() slog.Value { return slog.StringValue(Mask(string(p))) }

// String returns the masked number, so fmt and error messages do not leak it.
func (p Phone) String() string { return Mask(string(p)) }

// LogValue implements slog.LogValuer: the masked number.
func (n NationalID) LogValue() slog.Value { return slog.StringValue(Mask(string(n))) }

// String returns the masked number.
func (n NationalID) String() string { return Mask(string(n)) }

// Err returns err as a log value whose text is masked by Text: for errors
// of the SIP and HTTP libraries, which quote what they were given (a
// Request-URI, a header, a number that did not parse). A nil error logs
// as "<nil>".
func Err(err error) slog.LogValuer { return errValue{err} }

type errValue struct{ err error }

func (e errValue) LogValue() slog.Value {
	if e.err == nil {
		return slog.StringValue("<nil>")
	}
	return slog.StringValue(Text(e.err.Error()))
}
