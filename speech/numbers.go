package speech

import (
	"strings"
	"time"
	"unicode"
)

var digitWords = map[string][10]string{
	"ro": {"zero", "unu", "doi", "trei", "patru", "cinci", "șase", "șapte", "opt", "nouă"},
	"en": {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"},
}

// DigitWords returns the ten spoken digit words of lang, zero first.
func DigitWords(lang string) []string { return digitNames(lang) }

// digitNames returns the spoken digit words of lang (English for an unknown
// language).
func digitNames(lang string) []string {
	d, ok := digitWords[lang]
	if !ok {
		d = digitWords["en"]
	}
	return d[:]
}

// SpellDigits returns s written out digit by digit in lang ("ro" or "en"),
// the way people read phone numbers, ticket numbers and ID numbers:
// SpellDigits("ro", "0721 234") is "zero șapte doi unu, doi trei patru".
// Each run of separators (spaces, dashes, dots, slashes) becomes a short
// pause (a comma); letters are kept as single upper-case letters, which
// synthesizers read by name ("T-42" gives "T, four two").
func SpellDigits(lang, s string) string {
	names := digitNames(lang)
	var groups [][]string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			groups = append(groups, cur)
			cur = nil
		}
	}
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			cur = append(cur, names[r-'0'])
		case unicode.IsLetter(r):
			cur = append(cur, string(unicode.ToUpper(r)))
		case r == '+':
			if lang == "ro" {
				cur = append(cur, "plus")
			} else {
				cur = append(cur, "plus")
			}
		default:
			flush()
		}
	}
	flush()
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = strings.Join(g, " ")
	}
	return strings.Join(parts, ", ")
}

// ParseDigits turns spoken digit words of lang back into a digit string
// ("zero șapte doi" gives "072"); numerals count too, as open-vocabulary
// engines (whisper) write them ("0721", "0 7 2 1"). ok is false if any
// word is neither.
func ParseDigits(lang, text string) (digits string, ok bool) {
	names := digitNames(lang)
	var b strings.Builder
	for _, w := range strings.Fields(NormalizeText(text)) {
		if strings.Trim(w, "0123456789") == "" {
			b.WriteString(w)
			continue
		}
		found := false
		for i, n := range names {
			if w == n || (lang == "en" && w == "oh" && i == 0) {
				b.WriteByte(byte('0' + i))
				found = true
				break
			}
		}
		if !found {
			return "", false
		}
	}
	return b.String(), b.Len() > 0
}

// NumberWords returns n (0 <= n < 10^12; negative numbers get "minus") in
// words in lang: NumberWords("ro", 2026) is "două mii douăzeci și șase",
// NumberWords("en", 2026) is "two thousand twenty-six". Romanian uses the
// counting forms ("unu", "doi") except before "mii", "milioane" and
// "miliarde", which are feminine/neuter ("două mii", "un milion").
func NumberWords(lang string, n int64) string {
	if n < 0 {
		return "minus " + NumberWords(lang, -n)
	}
	if lang == "ro" {
		return roNumber(n)
	}
	return enNumber(n)
}

var (
	roUnits = [...]string{"zero", "unu", "doi", "trei", "patru", "cinci", "șase", "șapte", "opt", "nouă",
		"zece", "unsprezece", "doisprezece", "treisprezece", "paisprezece", "cincisprezece",
		"șaisprezece", "șaptesprezece", "optsprezece", "nouăsprezece"}
	roTens = [...]string{"", "", "douăzeci", "treizeci", "patruzeci", "cincizeci", "șaizeci", "șaptezeci", "optzeci", "nouăzeci"}
)

// roBelow1000 says 1..999; fem selects the feminine forms of 1, 2 and 12
// used before a noun ("două", "douăsprezece"; 1 alone is handled by the
// caller).
func roBelow1000(n int64, fem bool) string {
	var parts []string
	if h := n / 100; h > 0 {
		switch h {
		case 1:
			parts = append(parts, "o sută")
		case 2:
			parts = append(parts, "două sute")
		default:
			parts = append(parts, roUnits[h]+" sute")
		}
		n %= 100
	}
	if n == 0 {
		return strings.Join(parts, " ")
	}
	unit := func(u int64) string {
		if fem && u == 2 {
			return "două"
		}
		if fem && u == 12 {
			return "douăsprezece"
		}
		return roUnits[u]
	}
	if n < 20 {
		parts = append(parts, unit(n))
	} else {
		t := roTens[n/10]
		if u := n % 10; u > 0 {
			w := unit(u)
			if fem && u == 1 {
				w = "una"
			}
			t += " și " + w
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}

func roNumber(n int64) string {
	if n == 0 {
		return "zero"
	}
	type scale struct {
		v            int64
		one, several string
	}
	scales := []scale{{1e9, "un miliard", "miliarde"}, {1e6, "un milion", "milioane"}, {1e3, "o mie", "mii"}}
	var parts []string
	for _, s := range scales {
		q := n / s.v
		if q == 0 {
			continue
		}
		n %= s.v
		if q == 1 {
			parts = append(parts, s.one)
			continue
		}
		w := roBelow1000(q, true)
		// "de" after quantities whose last two digits are 0 or 20..99.
		if r := q % 100; r == 0 || r >= 20 {
			w += " de"
		}
		parts = append(parts, w+" "+s.several)
	}
	if n > 0 {
		parts = append(parts, roBelow1000(n, false))
	}
	return strings.Join(parts, " ")
}

var (
	enUnits = [...]string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
		"ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"}
	enTens = [...]string{"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
)

func enBelow100(n int64) string {
	if n < 20 {
		return enUnits[n]
	}
	if n%10 == 0 {
		return enTens[n/10]
	}
	return enTens[n/10] + "-" + enUnits[n%10]
}

func enBelow1000(n int64) string {
	var parts []string
	if h := n / 100; h > 0 {
		parts = append(parts, enUnits[h]+" hundred")
		n %= 100
	}
	if n > 0 {
		parts = append(parts, enBelow100(n))
	}
	return strings.Join(parts, " ")
}

func enNumber(n int64) string {
	if n == 0 {
		return "zero"
	}
	scales := []struct {
		v    int64
		name string
	}{{1e9, "billion"}, {1e6, "million"}, {1e3, "thousand"}}
	var parts []string
	for _, s := range scales {
		if q := n / s.v; q > 0 {
			parts = append(parts, enBelow1000(q)+" "+s.name)
			n %= s.v
		}
	}
	if n > 0 {
		parts = append(parts, enBelow1000(n))
	}
	return strings.Join(parts, " ")
}

var (
	roMonths = [...]string{"ianuarie", "februarie", "martie", "aprilie", "mai", "iunie", "iulie",
		"august", "septembrie", "octombrie", "noiembrie", "decembrie"}
	roWeekdays = [...]string{"duminică", "luni", "marți", "miercuri", "joi", "vineri", "sâmbătă"}
	enOrdUnits = [...]string{"", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
		"tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
		"eighteenth", "nineteenth"}
)

// enOrdinal says 1..99 as an ordinal ("twenty-third").
func enOrdinal(n int) string {
	if n < 20 {
		return enOrdUnits[n]
	}
	if n%10 == 0 {
		return strings.TrimSuffix(enTens[n/10], "y") + "ieth"
	}
	return enTens[n/10] + "-" + enOrdUnits[n%10]
}

// enYear says a year the way English speakers do: "nineteen ninety-nine",
// "two thousand five", "twenty twenty-six".
func enYear(y int) string {
	switch {
	case y >= 2000 && y < 2010:
		return enNumber(int64(y))
	case y >= 1100 && y < 10000 && y%100 != 0:
		return enBelow100(int64(y/100)) + " " + enBelow100(int64(y%100))
	case y >= 1100 && y < 10000:
		return enBelow100(int64(y/100)) + " hundred"
	}
	return enNumber(int64(y))
}

// DateWords returns the date of t in words in lang, with the weekday when
// weekday is true: DateWords("ro", t, true) is "luni, douăzeci și trei
// noiembrie două mii douăzeci și șase"; in English "Monday, November
// twenty-third, twenty twenty-six".
func DateWords(lang string, t time.Time, weekday bool) string {
	var s string
	if lang == "ro" {
		day := roNumber(int64(t.Day()))
		if t.Day() == 1 {
			day = "întâi"
		}
		s = day + " " + roMonths[t.Month()-1] + " " + roNumber(int64(t.Year()))
		if weekday {
			s = roWeekdays[t.Weekday()] + ", " + s
		}
		return s
	}
	s = t.Month().String() + " " + enOrdinal(t.Day()) + ", " + enYear(t.Year())
	if weekday {
		s = t.Weekday().String() + ", " + s
	}
	return s
}

// TimeWords returns the clock time of t in words: "ora paisprezece și
// treizeci" / "fourteen thirty" ("ora nouă fix" / "nine o'clock" on the
// hour).
func TimeWords(lang string, t time.Time) string {
	h, m := int64(t.Hour()), int64(t.Minute())
	if lang == "ro" {
		hs := roNumber(h)
		if h == 1 {
			hs = "unu"
		}
		if m == 0 {
			return "ora " + hs + " fix"
		}
		return "ora " + hs + " și " + roNumber(m)
	}
	if m == 0 {
		return enNumber(h) + " o'clock"
	}
	if m < 10 {
		return enNumber(h) + " oh " + enUnits[m]
	}
	return enNumber(h) + " " + enBelow100(m)
}
