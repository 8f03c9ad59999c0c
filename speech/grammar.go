package speech

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// Grammar is what a flow expects the caller to say: a small set of
// phrases, each with its spoken variants (synonyms), and optionally a
// sequence of digits. Engines with grammar support (sphinx) compile it into
// their own form; others use it to set Result.Tag.
//
// A Grammar is a value the flow builds once and shares: engines never
// modify it.
type Grammar struct {
	Phrases []Phrase
	// Digits, when > 0, also accepts a sequence of 1..Digits spoken digits
	// (in Lang); the Result.Tag is then the digit string ("0721").
	Digits int
	// MinDigits, when > 0, is the fewest digits accepted (a flow asking
	// for a 4-digit PIN sets both to 4: knowing the length is the best
	// defence against inserted and dropped digits).
	MinDigits int
}

// Phrase is one choice of a grammar.
type Phrase struct {
	Tag string   // what the flow receives ("buletin", "yes", "operator")
	Say []string // the ways a caller says it, lower case ("da", "sigur", "corect")
	// Lang is the language the phrase is said in, when it is not the
	// grammar's ("" = the stream's language): "English" inside a
	// Romanian grammar is pronounced the English way, "română" inside an
	// English one the Romanian way.
	Lang string
}

// Add appends a phrase and returns g, for chaining.
func (g *Grammar) Add(tag string, say ...string) *Grammar {
	if len(say) == 0 {
		say = []string{tag}
	}
	g.Phrases = append(g.Phrases, Phrase{Tag: tag, Say: say})
	return g
}

// Escape phrases: what a caller says, in either language and whatever the
// call's language, to reach a person or to switch language. Every question
// of a call accepts them (AddEscapes).
var (
	// operatorSay[lang] are the ways to ask for a person in lang, said
	// to a question in lang; operatorOther[lang] the fewer ones a caller
	// uses when the line speaks the other language (fewer phrases of a
	// foreign language, fewer confusions with the line's own).
	operatorSay = map[string][]string{
		"ro": {"operator", "un operator", "vreau un operator", "vreau să vorbesc cu un operator", "om", "un om", "persoană", "o persoană", "agent"},
		"en": {"operator", "an operator", "agent", "talk to an operator", "i want to talk to an operator", "i want to speak to an operator"},
	}
	operatorOther = map[string][]string{
		"ro": {"operator", "om", "persoană", "vreau să vorbesc cu un operator"},
		"en": {"operator", "agent", "talk to an operator"},
	}
	languageSay = []Phrase{
		{Tag: "english", Say: []string{"english"}, Lang: "en"},
		{Tag: "english", Say: []string{"engleză"}, Lang: "ro"},
		{Tag: "romana", Say: []string{"română"}, Lang: "ro"},
		{Tag: "romana", Say: []string{"romanian"}, Lang: "en"},
	}
	yesNoSay = map[string][2]string{"ro": {"da", "nu"}, "en": {"yes", "no"}}
)

// AddEscapes adds to g, a grammar of a call in lang, the phrases every
// question accepts in both languages, each with its own language: asking
// for a person (tag "operator": "operator", "agent", "om", "persoană",
// "talk to an operator"...), switching language (tag "english" for
// "English"/"engleză", "romana" for "română"/"Romanian") and yes/no ("da",
// "nu", "yes", "no"). When yesNo is true (g is a yes/no question, tags
// "yes" and "no"), the yes/no words take those tags; otherwise each is its
// own tag ("da", "nu", "yes", "no"). Phrases of lang get Lang "" (the
// stream's language).
func (g *Grammar) AddEscapes(lang string, yesNo bool) *Grammar {
	own := func(l string) string {
		if l == lang {
			return ""
		}
		return l
	}
	for _, l := range []string{"ro", "en"} {
		say := operatorSay[l]
		if l != lang {
			say = operatorOther[l]
		}
		g.Phrases = append(g.Phrases, Phrase{Tag: "operator", Say: say, Lang: own(l)})
	}
	for _, p := range languageSay {
		p.Lang = own(p.Lang)
		g.Phrases = append(g.Phrases, p)
	}
	for _, l := range []string{"ro", "en"} {
		yn := yesNoSay[l]
		if yesNo {
			if l != lang { // the grammar's own language has them already
				g.Phrases = append(g.Phrases, Phrase{Tag: "yes", Say: yn[:1], Lang: l}, Phrase{Tag: "no", Say: yn[1:], Lang: l})
			}
			continue
		}
		g.Phrases = append(g.Phrases, Phrase{Tag: yn[0], Say: yn[:1], Lang: own(l)}, Phrase{Tag: yn[1], Say: yn[1:], Lang: own(l)})
	}
	return g
}

// Words returns every distinct word the grammar can produce, in the order
// first seen (the digit words of lang included when g.Digits > 0).
func (g *Grammar) Words(lang string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(w string) {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	for _, p := range g.Phrases {
		for _, s := range p.Say {
			for _, w := range strings.Fields(NormalizeText(s)) {
				add(w)
			}
		}
	}
	if g.Digits > 0 {
		for _, w := range digitNames(lang) {
			add(w)
		}
	}
	return out
}

// Match returns the tag of the phrase whose variant equals text (after
// NormalizeText; failing that, with the Romanian diacritics folded, as
// flows compare: "pașaportul" from a transcription engine matches a flow's
// "pasaportul"), or the digit string when text is only digit words and
// g.Digits allows that many; "" when nothing matches.
func (g *Grammar) Match(lang, text string) string {
	text = NormalizeText(text)
	if text == "" {
		return ""
	}
	for _, fold := range []func(string) string{func(s string) string { return s }, foldDiacritics} {
		t := fold(text)
		for _, p := range g.Phrases {
			for _, s := range p.Say {
				if fold(NormalizeText(s)) == t {
					return p.Tag
				}
			}
		}
	}
	if g.Digits > 0 {
		if d, ok := ParseDigits(lang, text); ok && len(d) <= g.Digits && len(d) >= g.MinDigits {
			return d
		}
	}
	return ""
}

// foldDiacritics writes the Romanian letters with diacritics as the plain
// ones (ă, â → a; î → i; ș → s; ț → t).
var foldDiacritics = strings.NewReplacer("ă", "a", "â", "a", "î", "i", "ș", "s", "ț", "t").Replace

// NormalizeText lower-cases s, maps the cedilla forms of ş and ţ to the
// comma-below forms, and keeps only letters, digits, apostrophes and single
// spaces.
func NormalizeText(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch r { // the cedilla forms, as the comma-below ones
		case 'ş':
			r = 'ș'
		case 'ţ':
			r = 'ț'
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' {
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		} else {
			space = true
		}
	}
	return b.String()
}

// YesNo returns the yes/no grammar of lang with its common synonyms; the
// tags are "yes" and "no" in both languages.
func YesNo(lang string) *Grammar {
	g := &Grammar{}
	if lang == "ro" {
		g.Add("yes", "da", "da da", "sigur", "corect", "desigur", "exact")
		g.Add("no", "nu", "nu nu", "nu e corect", "greșit")
	} else {
		g.Add("yes", "yes", "yeah", "yep", "sure", "correct", "right")
		g.Add("no", "no", "nope", "wrong", "not really")
	}
	return g
}

// ParseGrammar reads the grammar file format of "ivrctl speech transcribe
// --grammar": one phrase per line, "tag: variant | variant | ...", or just
// "variant | variant" (the first variant is the tag); "digits N" accepts up
// to N spoken digits; blank lines and lines starting with # are ignored.
func ParseGrammar(r io.Reader) (*Grammar, error) {
	g := &Grammar{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "digits"); ok && !strings.Contains(line, ":") {
			var d int
			if _, err := fmt.Sscan(strings.TrimSpace(rest), &d); err != nil || d < 1 || d > 32 {
				return nil, fmt.Errorf("grammar line %d: want \"digits N\" with N in 1..32, got %q", n, line)
			}
			g.Digits = d
			continue
		}
		tag, variants, hasTag := strings.Cut(line, ":")
		if !hasTag {
			variants = line
		}
		var say []string
		for _, v := range strings.Split(variants, "|") {
			if v = NormalizeText(v); v != "" {
				say = append(say, v)
			}
		}
		if len(say) == 0 {
			return nil, fmt.Errorf("grammar line %d: no words in %q", n, line)
		}
		tag = strings.TrimSpace(tag)
		if !hasTag {
			tag = say[0]
		}
		if tag == "" {
			return nil, fmt.Errorf("grammar line %d: empty tag before the colon in %q", n, line)
		}
		g.Add(tag, say...)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(g.Phrases) == 0 && g.Digits == 0 {
		return nil, fmt.Errorf("grammar: no phrases")
	}
	return g, nil
}
