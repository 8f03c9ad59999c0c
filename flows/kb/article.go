package kb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Article is one answer of the base in one language. Articles with the same
// ID in ro/ and en/ are translations of each other.
type Article struct {
	ID       string    // e.g. "cei-lost-stolen": lower-case words joined by '-'
	Lang     string    // "ro" or "en": the folder the file is in
	Title    string    // short, as an agent would name it
	Service  string    // one of Services
	Keywords []string  // words and phrases callers use for it (synonyms of the title)
	Spoken   string    // at most MaxSpokenSentences short sentences, written for the ear
	Full     string    // the full answer, for agents and e-mail
	Links    []string  // http(s) URLs
	Reviewed time.Time // date the content was last checked
	File     string    // path:line of the front matter, for errors
}

// Services are the values the service field may take.
var Services = []string{
	"identity_card", "passport", "portal_account", "online_request",
	"request_status", "driving_licence", "support_service",
}

// Limits of the spoken answer: the caller hears it once, on the phone.
const (
	MaxSpokenSentences = 3
	MaxSpokenChars     = 450
)

var reID = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// What a spoken answer must not hold: addresses (URLs, sites, e-mail) and
// digit strings a voice would read as one number (phone numbers, codes:
// five digits or more, grouped or not, or a leading zero).
var (
	spokenURL    = regexp.MustCompile(`(?i)(https?://|www\.)[^\s,;]+|[\pL\d._%+-]+@[\pL\d.-]+\.[a-z]{2,}|\b[\pL\d-]+(\.[\pL\d-]+)*\.(ro|com|eu|org|net|gov|info|md)\b`)
	spokenDigits = regexp.MustCompile(`\d(?:[ .\-/]?\d){4,}|\b0\d{2,}`)
)

// LoadDir reads every article of dir/ro/*.md and dir/en/*.md and checks
// them: each file alone (ParseArticle), then the base as a whole (ids
// unique per language, every article present in both languages). Problems
// are reported together, each naming file:line, joined in one error; the
// articles are returned only when there is none.
func LoadDir(dir string) ([]Article, error) {
	var arts []Article
	var errs []error
	for _, lang := range Languages {
		files, err := filepath.Glob(filepath.Join(dir, lang, "*.md"))
		if err != nil {
			return nil, fmt.Errorf("kb: %w", err)
		}
		if len(files) == 0 {
			errs = append(errs, fmt.Errorf("%s: no articles (*.md)", filepath.Join(dir, lang)))
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			a, err := ParseArticle(f, lang, b)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			arts = append(arts, a)
		}
	}
	errs = append(errs, checkBase(arts)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return arts, nil
}

// checkBase checks what concerns several articles.
func checkBase(arts []Article) []error {
	var errs []error
	byLang := map[string]map[string]Article{}
	for _, lang := range Languages {
		byLang[lang] = map[string]Article{}
	}
	for _, a := range arts {
		if prev, dup := byLang[a.Lang][a.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate id %q (also in %s)", a.File, a.ID, prev.File))
			continue
		}
		byLang[a.Lang][a.ID] = a
	}
	for _, lang := range Languages {
		for id, a := range byLang[lang] {
			for _, other := range Languages {
				if other == lang {
					continue
				}
				o, ok := byLang[other][id]
				if !ok {
					errs = append(errs, fmt.Errorf("%s: article %q has no %s version (want %s/%s.md)", a.File, id, other, other, id))
					continue
				}
				if lang < other && o.Service != a.Service {
					errs = append(errs, fmt.Errorf("%s: service %q differs from %s (%q)", a.File, a.Service, o.File, o.Service))
				}
			}
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// ParseArticle parses one article file. The format (docs/knowledge-base.md):
//
//	---
//	id: cei-lost-stolen
//	lang: ro
//	title: Carte de identitate pierdută sau furată
//	service: identity_card
//	keywords: pierdut, furat, buletin pierdut
//	links: https://example.gov.ro/a, https://example.gov.ro/b   (optional)
//	reviewed: 2026-11-20
//	---
//
//	## Spoken
//
//	At most three short sentences.
//
//	## Full
//
//	The full answer.
//
// name is the path used in errors; wantLang is the folder's language ("" to
// accept any). All problems are reported, joined, each as name:line.
func ParseArticle(name, wantLang string, b []byte) (Article, error) {
	a := Article{File: name + ":1"}
	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), " \t\r"))
	}
	if err := sc.Err(); err != nil {
		return a, fmt.Errorf("%s: %w", name, err)
	}
	if len(lines) == 0 || lines[0] != "---" {
		bad(1, "want front matter starting with a line \"---\"")
		return a, errors.Join(errs...)
	}
	end := slices.Index(lines[1:], "---")
	if end < 0 {
		bad(1, "front matter is not closed by a line \"---\"")
		return a, errors.Join(errs...)
	}
	end++ // index in lines
	fields := map[string]int{}
	var reviewed string
	for i := 1; i < end; i++ {
		n := i + 1
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			bad(n, "want \"key: value\", got %q", line)
			continue
		}
		if prev, dup := fields[k]; dup {
			bad(n, "%s given twice (first on line %d)", k, prev)
			continue
		}
		fields[k] = n
		switch k {
		case "id":
			a.ID = v
			if !reID.MatchString(v) {
				bad(n, "id %q: want lower-case letters and digits joined by '-' (cei-lost-stolen)", v)
			} else if base := strings.TrimSuffix(filepath.Base(name), ".md"); base != v {
				bad(n, "id %q differs from the file name %s.md", v, base)
			}
		case "lang":
			a.Lang = v
			if !validLang(v) {
				bad(n, "lang %q: want ro or en", v)
			} else if wantLang != "" && v != wantLang {
				bad(n, "lang %q, but the file is in the %s/ folder", v, wantLang)
			}
		case "title":
			a.Title = v
		case "service":
			a.Service = v
			if !slices.Contains(Services, v) {
				bad(n, "unknown service %q: want one of %s", v, strings.Join(Services, ", "))
			}
		case "keywords":
			for _, kw := range strings.Split(v, ",") {
				if kw = strings.TrimSpace(kw); kw != "" {
					a.Keywords = append(a.Keywords, kw)
				}
			}
		case "links":
			for _, l := range strings.Split(v, ",") {
				l = strings.TrimSpace(l)
				u, err := url.Parse(l)
				if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					bad(n, "link %q: want an http(s) URL", l)
					continue
				}
				a.Links = append(a.Links, l)
			}
		case "reviewed":
			reviewed = v
			t, err := time.Parse(time.DateOnly, v)
			if err != nil {
				bad(n, "reviewed %q: want a date YYYY-MM-DD", v)
			}
			a.Reviewed = t
		default:
			bad(n, "unknown key %q (want id, lang, title, service, keywords, links, reviewed)", k)
		}
	}
	for _, k := range []string{"id", "lang", "title", "service", "keywords", "reviewed"} {
		if _, ok := fields[k]; !ok {
			bad(end+1, "front matter has no %s", k)
		}
	}
	if a.Lang == "" && wantLang != "" {
		a.Lang = wantLang
	}
	if _, ok := fields["title"]; ok && a.Title == "" {
		bad(fields["title"], "empty title")
	}
	if _, ok := fields["keywords"]; ok && len(a.Keywords) == 0 {
		bad(fields["keywords"], "empty keywords")
	}
	_ = reviewed

	// Body: "## Spoken" then "## Full", nothing else.
	sections := map[string]int{}
	var cur string
	var text = map[string][]string{}
	for i := end + 1; i < len(lines); i++ {
		n := i + 1
		line := lines[i]
		if h, ok := strings.CutPrefix(line, "## "); ok {
			h = strings.TrimSpace(h)
			if h != "Spoken" && h != "Full" {
				bad(n, "unknown section %q: want \"## Spoken\" and \"## Full\"", h)
				cur = ""
				continue
			}
			if prev, dup := sections[h]; dup {
				bad(n, "section %s given twice (first on line %d)", h, prev)
			}
			sections[h] = n
			cur = h
			continue
		}
		if strings.HasPrefix(line, "#") {
			bad(n, "heading %q: only \"## Spoken\" and \"## Full\" are allowed", line)
			continue
		}
		if cur == "" {
			if strings.TrimSpace(line) != "" {
				bad(n, "text outside a section: put it under \"## Spoken\" or \"## Full\"")
			}
			continue
		}
		text[cur] = append(text[cur], line)
	}
	a.Spoken = paragraphs(text["Spoken"])
	a.Full = paragraphs(text["Full"])
	switch {
	case sections["Spoken"] == 0:
		bad(len(lines), "missing spoken answer (a \"## Spoken\" section)")
	case a.Spoken == "":
		bad(sections["Spoken"], "empty spoken answer")
	default:
		if s := sentences(a.Spoken); s > MaxSpokenSentences {
			bad(sections["Spoken"], "spoken answer has %d sentences, at most %d: callers hear it once", s, MaxSpokenSentences)
		}
		if n := len([]rune(a.Spoken)); n > MaxSpokenChars {
			bad(sections["Spoken"], "spoken answer is %d characters, at most %d", n, MaxSpokenChars)
		}
		for _, u := range spokenURL.FindAllString(a.Spoken, -1) {
			bad(sections["Spoken"], "spoken answer has the address %q: a caller cannot click it or note it down; say where to find it in words (the links field keeps it for agents and e-mail)", u)
		}
		for _, d := range spokenDigits.FindAllString(a.Spoken, -1) {
			bad(sections["Spoken"], "spoken answer has the digit string %q: the voice reads it as one large number; write it as it should be heard, or let the flow say it digit by digit (say_digits)", strings.TrimSpace(d))
		}
	}
	switch {
	case sections["Full"] == 0:
		bad(len(lines), "missing full answer (a \"## Full\" section)")
	case a.Full == "":
		bad(sections["Full"], "empty full answer")
	}
	if len(errs) > 0 {
		return a, errors.Join(errs...)
	}
	return a, nil
}

// paragraphs joins lines into paragraphs separated by one blank line.
func paragraphs(lines []string) string {
	var ps []string
	var p []string
	for _, l := range append(lines, "") {
		if strings.TrimSpace(l) == "" {
			if len(p) > 0 {
				ps = append(ps, strings.Join(p, " "))
				p = nil
			}
			continue
		}
		p = append(p, strings.TrimSpace(l))
	}
	return strings.Join(ps, "\n\n")
}

// sentences counts the sentences of s: runs ending in . ! or ?.
func sentences(s string) int {
	n := 0
	inside := false
	for _, r := range s {
		switch r {
		case '.', '!', '?':
			if inside {
				n++
			}
			inside = false
		default:
			if !strings.ContainsRune(" \n\t\"'»)", r) {
				inside = true
			}
		}
	}
	if inside {
		n++
	}
	return n
}
