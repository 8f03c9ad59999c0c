package console

import (
	"embed"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"

	"github.com/govline/ivr/tickets"
)

// The console's texts live in catalog/LANG.toml, one file per language
// of tickets.Langs (Romanian, the default, then English), in the format
// of the flows' catalog (flows/catalog): [section] name = "text", said by
// the id "section.name". Every language has the same ids, with as many %s
// in each; the console refuses to start otherwise. Templates say a text
// with {{t "id"}}, the Go code with msgs.T, console.js with msg("js.name")
// (the [js] section is embedded in every page as JSON).
//
//go:embed catalog/*.toml
var catalogFS embed.FS

// defaultLang is the language of a user who has not chosen, and of the
// sign-in page before anyone chose.
const defaultLang = tickets.LangRomanian

// msgs are the texts of one language. Read-only once loaded: safe for
// concurrent use.
type msgs struct {
	lang string
	text map[string]string
}

// T returns the text of id with args filled in for its %s. An id the
// catalog lacks (which the tests rule out) shows as itself in brackets.
func (m *msgs) T(id string, args ...any) string {
	s, ok := m.text[id]
	if !ok {
		return "[" + id + "]"
	}
	if len(args) == 0 {
		return strings.ReplaceAll(s, "%%", "%")
	}
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = fmt.Sprint(a)
	}
	return fmt.Sprintf(s, vals...)
}

// has reports whether the catalog has id.
func (m *msgs) has(id string) bool { _, ok := m.text[id]; return ok }

// js returns the [js] section, by name without "js.", for console.js.
func (m *msgs) js() map[string]string {
	out := map[string]string{}
	for id, s := range m.text {
		if name, ok := strings.CutPrefix(id, "js."); ok {
			out[name] = s
		}
	}
	return out
}

// catalogs loads every language's catalog once.
var catalogs = sync.OnceValues(func() (map[string]*msgs, error) {
	return parseCatalogs(func(lang string) ([]byte, error) { return catalogFS.ReadFile("catalog/" + lang + ".toml") })
})

// parseCatalogs reads the catalog of every language of tickets.Langs and
// checks that they have the same ids with as many %s each.
func parseCatalogs(read func(lang string) ([]byte, error)) (map[string]*msgs, error) {
	out := map[string]*msgs{}
	for _, lang := range tickets.Langs {
		b, err := read(lang)
		if err != nil {
			return nil, fmt.Errorf("console: catalog %s: %w", lang, err)
		}
		var raw map[string]map[string]any
		if _, err := toml.Decode(string(b), &raw); err != nil {
			return nil, fmt.Errorf("console: catalog %s.toml: %w", lang, err)
		}
		m := &msgs{lang: lang, text: map[string]string{}}
		for sec, kv := range raw {
			for k, v := range kv {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("console: catalog %s.toml: %s.%s is not a string", lang, sec, k)
				}
				m.text[sec+"."+k] = s
			}
		}
		out[lang] = m
	}
	ref := out[defaultLang]
	for _, lang := range tickets.Langs[1:] {
		m := out[lang]
		var problems []string
		for _, id := range sortedIDs(ref) {
			s, ok := m.text[id]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s.toml has no %s", lang, id))
			case verbs(s) != verbs(ref.text[id]):
				problems = append(problems, fmt.Sprintf("%s has %d %%s in %s.toml and %d in %s.toml", id, verbs(ref.text[id]), defaultLang, verbs(s), lang))
			}
		}
		for _, id := range sortedIDs(m) {
			if !ref.has(id) {
				problems = append(problems, fmt.Sprintf("%s.toml has no %s", defaultLang, id))
			}
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("console: catalogs differ: %s", strings.Join(problems, "; "))
		}
	}
	return out, nil
}

func sortedIDs(m *msgs) []string {
	ids := slices.Collect(maps.Keys(m.text))
	sort.Strings(ids)
	return ids
}

// verbs counts the %s of s (not %%).
func verbs(s string) int { return strings.Count(strings.ReplaceAll(s, "%%", ""), "%s") }

// validLang returns lang if the console speaks it, else the default.
func validLang(lang string) string {
	if slices.Contains(tickets.Langs, lang) {
		return lang
	}
	return defaultLang
}
