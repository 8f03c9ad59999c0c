package flows

import (
	"strings"
	"unicode"
)

// Normalize prepares caller speech and option phrases for comparison: lower
// case, Romanian diacritics folded (ă â î ș ş ț ţ, in both the comma-below
// and the cedilla forms), punctuation turned into spaces, runs of spaces
// collapsed. "Cartea de  Identitate!" and "cartea de identitate" compare
// equal, as do "Ștefan" and "Ştefan" and "stefan".
func Normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := true // drop leading spaces
	for _, r := range s {
		r = unicode.ToLower(r)
		switch r {
		case 'ă', 'â', 'á', 'à':
			r = 'a'
		case 'î', 'í':
			r = 'i'
		case 'ș', 'ş':
			r = 's'
		case 'ț', 'ţ':
			r = 't'
		case 'é', 'è', 'ê':
			r = 'e'
		}
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		b.WriteRune(r)
		space = false
	}
	return strings.TrimRight(b.String(), " ")
}

// containsPhrase reports whether the normalized text contains the
// normalized phrase as whole words.
func containsPhrase(text, phrase string) bool {
	if phrase == "" {
		return false
	}
	t := " " + text + " "
	return strings.Contains(t, " "+phrase+" ")
}

// Yes and no words, ro and en, normalized.
var (
	yesWords = []string{"da", "sigur", "desigur", "corect", "exact", "bine", "asa este", "asa e", "am rezolvat", "m a ajutat", "ma ajutat", "yes", "yeah", "yep", "sure", "correct", "right", "of course", "it did", "that s right"}
	noWords  = []string{"nu", "deloc", "gresit", "incorect", "no", "nope", "not", "wrong", "incorrect", "didn t", "did not"}
)

// unsureWords make a reply neither yes nor no.
var unsureWords = []string{"nu stiu", "nu sunt sigur", "nu sunt sigura", "poate", "don t know", "not sure", "maybe"}

// YesNo classifies a reply: "yes", "no", or "" when it is neither or both.
// Keys: 1 is yes, 2 is no.
func YesNo(text string) string {
	n := Normalize(text)
	switch n {
	case "1":
		return "yes"
	case "2":
		return "no"
	}
	for _, w := range unsureWords {
		if containsPhrase(n, w) {
			return ""
		}
	}
	// A negation wins: "nu m-a ajutat", "no, it did not".
	for _, w := range noWords {
		if containsPhrase(n, w) {
			return "no"
		}
	}
	for _, w := range yesWords {
		if containsPhrase(n, w) {
			return "yes"
		}
	}
	return ""
}

// digitWords maps spoken digits (ro and en, normalized) to their digit.
var digitWords = map[string]byte{
	"zero": '0', "oh": '0',
	"unu": '1', "una": '1', "one": '1',
	"doi": '2', "doua": '2', "two": '2',
	"trei": '3', "three": '3',
	"patru": '4', "four": '4',
	"cinci": '5', "five": '5',
	"sase": '6', "six": '6',
	"sapte": '7', "seven": '7',
	"opt": '8', "eight": '8',
	"noua": '9', "nine": '9',
}

// multipliers for "double five" / "triple two" (en) and "de doua ori" is
// not handled: callers read ticket numbers digit by digit.
var repeatWords = map[string]int{"double": 2, "triple": 3}

// SpokenDigits turns a digit string said aloud into digits: "unu doi trei",
// "one two three", "1 2 3", "12 34" and "double five" all become digits
// ("123", "123", "123", "1234", "55"). Words that are not digits are
// skipped (filler such as "numarul este"); ok is false when the text holds
// no digit at all.
func SpokenDigits(text string) (digits string, ok bool) {
	var b strings.Builder
	repeat := 1
	for _, w := range strings.Fields(Normalize(text)) {
		if n, isRep := repeatWords[w]; isRep {
			repeat = n
			continue
		}
		if d, isDigit := digitWords[w]; isDigit {
			for range repeat {
				b.WriteByte(d)
			}
			repeat = 1
			continue
		}
		allDigits := w != ""
		for i := 0; i < len(w); i++ {
			if w[i] < '0' || w[i] > '9' {
				allDigits = false
				break
			}
		}
		if allDigits {
			for range repeat {
				b.WriteString(w)
			}
			repeat = 1
		}
	}
	return b.String(), b.Len() > 0
}

// operatorWords are what a caller says to reach a person (normalized);
// "om" and "persoana" alone too: the recognizer hears them at every
// question (speech.Grammar.AddEscapes).
var operatorWords = []string{"operator", "operatorul", "un operator", "operatoare", "agent", "om", "un om", "persoana", "o persoana", "persoana reala", "human", "a person", "someone", "representative"}

// WantsOperator reports whether speech asks for a human operator.
func WantsOperator(text string) bool {
	n := Normalize(text)
	for _, w := range operatorWords {
		if containsPhrase(n, w) {
			return true
		}
	}
	return false
}

// choice is one option of an ask, as the matcher sees it.
type choice struct {
	id      string
	key     string
	phrases []string // normalized: the label and the synonyms
}

// matchChoice returns the index of the option the text names, or -1. An
// option matches when one of its phrases is found as whole words. When
// several options match, the one with the longest phrase wins if that
// phrase contains the others' ("cerere online" over "cerere"); otherwise
// the answer is ambiguous ("pașaport sau buletin") and no option matches.
func matchChoice(text string, opts []choice) int {
	n := Normalize(text)
	if n == "" {
		return -1
	}
	longest := make([]string, len(opts))
	best := -1
	for i, o := range opts {
		for _, p := range o.phrases {
			if containsPhrase(n, p) && len(p) > len(longest[i]) {
				longest[i] = p
			}
		}
		if longest[i] != "" && (best < 0 || len(longest[i]) > len(longest[best])) {
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	for i, p := range longest {
		if i != best && p != "" && !containsPhrase(longest[best], p) {
			return -1
		}
	}
	return best
}
