package kb

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"github.com/kljensen/snowball/english"
)

// Languages the base holds.
var Languages = []string{"ro", "en"}

func validLang(lang string) bool { return lang == "ro" || lang == "en" }

// fold maps the letters with diacritics that callers, editors and
// recognizers write in either spelling to their plain form: both the comma
// (ș ț) and the cedilla (ş ţ) forms of the Romanian letters, and the common
// Latin accents.
var fold = map[rune]rune{
	'ă': 'a', 'â': 'a', 'à': 'a', 'á': 'a', 'ä': 'a', 'ã': 'a', 'å': 'a',
	'î': 'i', 'í': 'i', 'ì': 'i', 'ï': 'i',
	'ș': 's', 'ş': 's', 'ś': 's', 'š': 's',
	'ț': 't', 'ţ': 't',
	'é': 'e', 'è': 'e', 'ê': 'e', 'ë': 'e',
	'ó': 'o', 'ò': 'o', 'ô': 'o', 'ö': 'o', 'õ': 'o',
	'ú': 'u', 'ù': 'u', 'û': 'u', 'ü': 'u',
	'ç': 'c', 'ñ': 'n', 'ý': 'y', 'ž': 'z', 'č': 'c',
}

// words lowercases s, removes diacritics and splits it into words of
// letters and digits; everything else (punctuation, hyphens, apostrophes)
// separates words.
func words(s string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	for _, r := range strings.ToLower(s) {
		if f, ok := fold[r]; ok {
			r = f
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
			continue
		}
		if unicode.Is(unicode.Mn, r) {
			continue // a combining accent (decomposed input: s + U+0326)
		}
		flush()
	}
	flush()
	return out
}

// Stop words and filler: words that say nothing about what the caller
// needs. They are dropped from queries and articles alike (after folding).
var stopWords = map[string]map[string]bool{
	"ro": set(`a ai al ale am ar are as asa au acum aici adica aia ala asta acest aceasta acea acel
		aa aaa ee eee eh ei el ea ele ei hm hmm mm mmm pai deci bun buna ziua salut alo
		vreau vrea vrem vreti voiam as dori doresc dorim doream pot poate putem puteti poti
		sa si sau ca cu de la in din pe pentru prin spre pana despre dupa fara
		un o una unui unei unor niste
		ce cum care cine unde cand cat cata cati cate
		este e sunt era fi fost fie esti
		imi mi mie ma te se ne va vi le li lor iti ti
		meu mea mele mei tau ta nostru noastra vostru dumneavoastra dvs
		nu da ok rog multumesc
		il l dati da dea fac face faca facut facem
		trebuie trebui nevoie spuneti spune zice stiu aflu afla
		ceva foarte mult mai tot toate si iar inca deja atunci
		eu tu noi voi dumneata el ea ei`),
	"en": set(`a an the to of for on in at by with from and or but if so as than then
		i me my mine we our you your he she it its they them their this that these those there here
		is are was were be been being am do does did doing done can could would should will shall may might must
		want wanna wanted like please um uh er erm hmm ah oh hi hello hey yes no ok okay thanks thank
		how what which who whom where when why
		need needs have has had having just about know tell let help
		some any very really also still already now again there
		im ive dont cant doesnt isnt wont didnt m s t ll re ve d not`),
}

func set(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// roSuffixes are Romanian inflectional endings (articles, plurals, cases),
// longest first. Stripping them is not a linguistic stemmer: it only has to
// give the same stem to the forms callers say and editors write
// (buletin, buletinul, buletinului; parola, parolei; cererea, cererii).
var roSuffixes = []string{
	"urilor", "urile", "ului", "ilor", "elor", "iile", "uri", "ele", "lor", "lui",
	"ul", "ua", "ea", "ei", "ii", "le", "ie",
	"a", "e", "i", "u",
}

// stem reduces a folded word to the form stored in the index.
func stem(lang, w string) string {
	if lang == "en" {
		if len(w) <= 3 {
			return w
		}
		return english.Stem(w, false)
	}
	if len(w) <= 3 {
		return w
	}
	for _, suf := range roSuffixes {
		if strings.HasSuffix(w, suf) && len(w)-len(suf) >= 3 {
			return w[:len(w)-len(suf)]
		}
	}
	return w
}

// terms turns text into index terms: folded words, without stop words and
// one-letter words, stemmed. Digits stay (a form number may matter).
func terms(lang, s string) []string {
	ws := contentWords(lang, s)
	for i, w := range ws {
		ws[i] = stem(lang, w)
	}
	return ws
}

// contentWords returns the folded words of s without stop words and
// one-letter words, not stemmed.
func contentWords(lang, s string) []string {
	stop := stopWords[lang]
	var out []string
	for _, w := range words(s) {
		if len(w) < 2 || stop[w] {
			continue
		}
		out = append(out, w)
	}
	return out
}

// Synonyms are groups of phrases that mean the same thing, per language.
// Each group has a concept term (conceptPrefix + its first phrase's terms)
// that the index adds to an article wherever any phrase of the group
// occurs, and that replaces the phrase in a query.
type Synonyms struct {
	groups map[string][]synGroup // by language
	// first indexes the phrases by language and first term; built by
	// finish, read-only after.
	first map[string]map[string][]phraseRef
}

type phraseRef struct {
	terms   []string
	concept string
}

// finish builds the lookup index; call it once the groups are complete.
func (s *Synonyms) finish() *Synonyms {
	s.first = map[string]map[string][]phraseRef{}
	for lang, gs := range s.groups {
		m := map[string][]phraseRef{}
		for _, g := range gs {
			for _, p := range g.phrases {
				m[p[0]] = append(m[p[0]], phraseRef{p, g.concept})
			}
		}
		s.first[lang] = m
	}
	return s
}

type synGroup struct {
	concept string
	phrases [][]string // each phrase as terms
}

// conceptPrefix starts every concept term; words never start with a digit
// after a letter this way, so a concept cannot collide with a real word.
const conceptPrefix = "k0"

//go:embed synonyms.txt
var defaultSynonyms []byte

// DefaultSynonyms returns the synonym list compiled into the binary (a copy
// of flows/kb/synonyms.txt at build time), used by Import unless
// WithSynonyms gives another.
func DefaultSynonyms() *Synonyms {
	s, err := ParseSynonyms("synonyms.txt", defaultSynonyms)
	if err != nil {
		panic("kb: embedded synonyms.txt: " + err.Error()) // checked by TestDefaultSynonyms
	}
	return s
}

// LoadSynonyms reads a synonym file (format in synonyms.txt).
func LoadSynonyms(path string) (*Synonyms, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kb: %w", err)
	}
	return ParseSynonyms(path, b)
}

// ParseSynonyms parses the synonym format; name is used in errors
// (name:line: problem). All errors are reported, joined.
func ParseSynonyms(name string, b []byte) (*Synonyms, error) {
	s := &Synonyms{groups: map[string][]synGroup{}}
	var errs []error
	seen := map[string]int{}       // lang+concept -> line
	phraseLine := map[string]int{} // lang+phrase terms -> line
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lang, rest, ok := strings.Cut(line, ":")
		lang = strings.TrimSpace(lang)
		if !ok || !validLang(lang) {
			errs = append(errs, fmt.Errorf("%s:%d: want \"ro: phrase = phrase\" or \"en: ...\", got %q", name, n, line))
			continue
		}
		var g synGroup
		var written []string // the phrases as written, for messages
		for _, p := range strings.Split(rest, "=") {
			ts := terms(lang, p)
			if len(ts) == 0 {
				errs = append(errs, fmt.Errorf("%s:%d: phrase %q is empty or only stop words", name, n, strings.TrimSpace(p)))
				continue
			}
			g.phrases = append(g.phrases, ts)
			written = append(written, strings.TrimSpace(p))
		}
		if len(g.phrases) < 2 {
			errs = append(errs, fmt.Errorf("%s:%d: a group needs at least two phrases", name, n))
			continue
		}
		g.concept = conceptPrefix + strings.Join(g.phrases[0], "")
		if prev, dup := seen[lang+" "+g.concept]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: group starts like the group of line %d; merge them", name, n, prev))
			continue
		}
		seen[lang+" "+g.concept] = n
		twice := false
		for i, ts := range g.phrases {
			key := lang + " " + strings.Join(ts, " ")
			if prev, dup := phraseLine[key]; dup && prev != n {
				errs = append(errs, fmt.Errorf("%s:%d: phrase %q is also in the group of line %d (the same words once normalised: %q): a caller who says it finds only one group's articles; keep it in one group (or merge the groups)",
					name, n, written[i], prev, strings.Join(ts, " ")))
				twice = true
			}
			phraseLine[key] = n
		}
		if twice {
			continue
		}
		s.groups[lang] = append(s.groups[lang], g)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s.finish(), nil
}

// match reports, for each position of ts, the concepts of the phrases that
// start there and their lengths.
func (s *Synonyms) match(lang string, ts []string, fn func(at, n int, concept string)) {
	if s == nil {
		return
	}
	m := s.first[lang]
	for i, t := range ts {
		for _, p := range m[t] {
			if len(p.terms) <= len(ts)-i && equal(ts[i:i+len(p.terms)], p.terms) {
				fn(i, len(p.terms), p.concept)
			}
		}
	}
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// expand returns ts with the concept of every synonym phrase found in it
// appended: what the index stores for an article's text.
func (s *Synonyms) expand(lang string, ts []string) []string {
	out := ts
	seen := map[string]bool{}
	s.match(lang, ts, func(_, _ int, c string) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	})
	return out
}

// replace returns ts with each synonym phrase replaced by its concept,
// longest phrase first: what a query searches for.
func (s *Synonyms) replace(lang string, ts []string) []string {
	type hit struct {
		n int
		c string
	}
	best := make([]hit, len(ts))
	s.match(lang, ts, func(at, n int, c string) {
		if n > best[at].n {
			best[at] = hit{n, c}
		}
	})
	var out []string
	for i := 0; i < len(ts); {
		if h := best[i]; h.n > 0 {
			out = append(out, h.c)
			i += h.n
			continue
		}
		out = append(out, ts[i])
		i++
	}
	return out
}
