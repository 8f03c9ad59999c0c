package flows

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// CatalogDir is the folder, inside the flows folder, of the sentence
// catalog: one LANG.toml per language (ro.toml, en.toml).
const CatalogDir = "catalog"

// DefaultLang is the language said when a call's language has no catalog.
const DefaultLang = "ro"

// shipped is the catalog shipped with the engine: the defaults of every id
// the Go code says, and the copy in the flows folder that designers edit.
//
//go:embed catalog/*.toml
var shipped embed.FS

// Catalog holds every caller-facing sentence by id ("survey.thanks") and
// language. Every id has a sentence in every language of the catalog (the
// loaders refuse one that does not), so Text never falls back to silence.
// A Catalog is read-only once loaded: safe for concurrent use.
type Catalog struct {
	texts map[string]map[string]string // lang -> id -> sentence
	where map[string]map[string]string // lang -> id -> file:line, for diagnostics
}

// engineIDs are the ids the Go code of the engine says (the flow runtime,
// ivr, the embedded queue): the shipped catalog must have them, and a
// folder's catalog gets them from it when it leaves them out.
var engineIDs = []string{
	"ask.no_input", "ask.no_match", "ask.keypad", "ask.for", "ask.confirm", "ask.digits_ok",
	"ask.transfer", "ask.closed", "ask.ticket", "ask.callback", "ask.yes_no", "ask.hours",
	"hours.default", "hours.next_open",
	"weekday.sunday", "weekday.monday", "weekday.tuesday", "weekday.wednesday",
	"weekday.thursday", "weekday.friday", "weekday.saturday",
	"status.new", "status.in_progress", "status.escalated", "status.waiting", "status.resolved", "status.closed",
	"failure.sorry", "failure.transfer", "failure.ticket", "failure.callback",
	"no_queue.busy", "no_queue.callback",
	"queue.wait", "queue.callback_speech", "queue.one_minute", "queue.minutes", "queue.many_minutes",
	"survey.question", "survey.thanks",
	"callback.intro", "callback.connect", "callback.number", "callback.confirm", "callback.type",
	"callback.spoken", "callback.stay", "callback.kept", "callback.about", "callback.bye",
}

var defaultCatalog = sync.OnceValues(func() (*Catalog, error) {
	c, diags := parseCatalog(shipped, ".", nil)
	if len(diags) > 0 {
		return nil, &LoadError{Diags: diags}
	}
	for _, id := range engineIDs {
		if !c.Has(id) {
			return nil, fmt.Errorf("flows: the shipped catalog has no %s", id)
		}
	}
	return c, nil
})

// DefaultCatalog is the catalog shipped with the engine (embedded in the
// binary). It panics if the shipped files are broken, which the package's
// tests rule out.
func DefaultCatalog() *Catalog {
	c, err := defaultCatalog()
	if err != nil {
		panic(err)
	}
	return c
}

// LoadCatalog reads the catalog of the flows folder dir (dir/catalog/*.toml)
// over the shipped one: a sentence of the folder replaces the shipped
// sentence of its id, an id the folder leaves out keeps the shipped one, an
// id the folder adds must be in every language. A folder without a catalog
// uses the shipped one. Diagnostics name the file and line of each problem
// (a missing sentence, a TOML error, a value that is not a sentence, a
// sentence with a different number of %s than its id's other sentences).
func LoadCatalog(dir string) (*Catalog, []Diagnostic) {
	base := DefaultCatalog()
	if _, err := os.Stat(filepath.Join(dir, CatalogDir)); errors.Is(err, fs.ErrNotExist) {
		return base, nil
	}
	return parseCatalog(os.DirFS(dir), dir, base)
}

// parseCatalog reads fsys's catalog/*.toml over base (nil: nothing) and
// checks the result. Diagnostics name files under shown.
func parseCatalog(fsys fs.FS, shown string, base *Catalog) (*Catalog, []Diagnostic) {
	c := &Catalog{texts: map[string]map[string]string{}, where: map[string]map[string]string{}}
	if base != nil {
		for lang, m := range base.texts {
			c.texts[lang] = maps.Clone(m)
			c.where[lang] = maps.Clone(base.where[lang])
		}
	}
	files, err := fs.Glob(fsys, CatalogDir+"/*.toml")
	name := func(f string) string { return filepath.Join(shown, filepath.FromSlash(f)) }
	if err != nil {
		return nil, []Diagnostic{{File: name(CatalogDir), Msg: err.Error()}}
	}
	var diags []Diagnostic
	if len(files) == 0 {
		diags = append(diags, Diagnostic{File: name(CatalogDir), Msg: "no LANG.toml file: the catalog needs one file per language (ro.toml, en.toml)"})
	}
	for _, f := range files {
		lang := strings.TrimSuffix(path.Base(f), ".toml")
		if !langName.MatchString(lang) {
			diags = append(diags, Diagnostic{File: name(f), Msg: fmt.Sprintf("%q is not a language: name catalog files by the language's code (ro.toml, en.toml)", lang)})
			continue
		}
		src, err := fs.ReadFile(fsys, f)
		if err != nil {
			diags = append(diags, Diagnostic{File: name(f), Msg: err.Error()})
			continue
		}
		ds := c.read(lang, name(f), src)
		diags = append(diags, ds...)
	}
	return c, append(diags, c.check(base)...)
}

var (
	langName   = regexp.MustCompile(`^[a-z]{2,3}$`)
	idPart     = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	tomlLineRe = regexp.MustCompile(`line (\d+)`)
)

// read adds one language file's sentences: tables of sentences, [section]
// then name = "sentence", give the ids "section.name".
func (c *Catalog) read(lang, file string, src []byte) []Diagnostic {
	var doc map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&doc); err != nil {
		d := Diagnostic{File: file, Msg: "not valid TOML: " + err.Error()}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			d.Line, d.Msg = pe.Position.Line, "not valid TOML: "+pe.Message
		} else if m := tomlLineRe.FindStringSubmatch(err.Error()); m != nil {
			fmt.Sscan(m[1], &d.Line)
		}
		return []Diagnostic{d}
	}
	if c.texts[lang] == nil {
		c.texts[lang], c.where[lang] = map[string]string{}, map[string]string{}
	}
	lines := strings.Split(string(src), "\n")
	var diags []Diagnostic
	sections := make([]string, 0, len(doc))
	for s := range doc {
		sections = append(sections, s)
	}
	sort.Strings(sections)
	for _, s := range sections {
		tbl, ok := doc[s].(map[string]any)
		if !ok || !idPart.MatchString(s) {
			diags = append(diags, Diagnostic{File: file, Line: keyLine(lines, "", s), Msg: fmt.Sprintf("%s: want a [section] of sentences (name = \"sentence\"), with a name in lower case letters, digits and _", s)})
			continue
		}
		for k, v := range tbl {
			id := s + "." + k
			line := keyLine(lines, s, k)
			text, ok := v.(string)
			switch {
			case !idPart.MatchString(k):
				diags = append(diags, Diagnostic{File: file, Line: line, Msg: fmt.Sprintf("%s: a sentence's name is lower case letters, digits and _", id)})
			case !ok:
				diags = append(diags, Diagnostic{File: file, Line: line, Msg: fmt.Sprintf("%s: want a sentence in quotes, not a %T", id, v)})
			case strings.TrimSpace(text) == "":
				diags = append(diags, Diagnostic{File: file, Line: line, Msg: fmt.Sprintf("%s: the sentence is empty (the caller would hear silence)", id)})
			default:
				c.texts[lang][id] = text
				c.where[lang][id] = fmt.Sprintf("%s:%d", file, line)
			}
		}
	}
	return diags
}

// keyLine finds the line of name = ... in [section] ("" for a top-level
// key), 0 when not found.
func keyLine(lines []string, section, name string) int {
	cur := ""
	for i, l := range lines {
		t, _, _ := strings.Cut(l, "#")
		t = strings.TrimSpace(t)
		if strings.HasPrefix(t, "[") {
			cur = strings.TrimSpace(strings.Trim(t, "[]"))
			if section == "" && cur == name {
				return i + 1
			}
			continue
		}
		if cur == section && (strings.HasPrefix(t, name+" ") || strings.HasPrefix(t, name+"=")) {
			return i + 1
		}
	}
	return 0
}

// check reports ids without a sentence in some language, and sentences
// whose placeholders (%s) do not match their id's other sentences (or the
// shipped one: the Go code fills in that many values).
func (c *Catalog) check(base *Catalog) []Diagnostic {
	ids := map[string]bool{}
	for _, m := range c.texts {
		for id := range m {
			ids[id] = true
		}
	}
	langs := c.Langs()
	var diags []Diagnostic
	for _, id := range sortedKeys(ids) {
		var have, want string // a language that has it; the placeholders to match
		wantN := -1
		if base != nil {
			if s, ok := base.texts[DefaultLang][id]; ok {
				wantN, want = placeholders(s), "the shipped sentence"
			}
		}
		for _, lang := range langs {
			if s, ok := c.texts[lang][id]; ok {
				if have == "" {
					have = lang
				}
				if wantN < 0 {
					wantN, want = placeholders(s), fmt.Sprintf("its %s sentence (%s)", lang, c.where[lang][id])
				}
			}
		}
		for _, lang := range langs {
			s, ok := c.texts[lang][id]
			file, line := c.file(lang)
			if !ok {
				diags = append(diags, Diagnostic{File: file, Line: line, Msg: fmt.Sprintf("no %s sentence for %s (%s has one): add %s = \"...\" under [%s]", lang, id, c.where[have][id], id[strings.IndexByte(id, '.')+1:], id[:strings.IndexByte(id, '.')])})
				continue
			}
			if n := placeholders(s); n != wantN {
				f, l := splitWhere(c.where[lang][id])
				diags = append(diags, Diagnostic{File: f, Line: l, Msg: fmt.Sprintf("%s has %d %%s, %s has %d: each is filled with one value when said", id, n, want, wantN)})
			}
		}
	}
	return diags
}

// file is where a language's sentences are written (for a missing one).
func (c *Catalog) file(lang string) (string, int) {
	for _, w := range c.where[lang] {
		f, _ := splitWhere(w)
		return f, 0
	}
	return CatalogDir + "/" + lang + ".toml", 0
}

func splitWhere(w string) (string, int) {
	i := strings.LastIndexByte(w, ':')
	if i < 0 {
		return w, 0
	}
	var n int
	fmt.Sscan(w[i+1:], &n)
	return w[:i], n
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// placeholders counts the %s (or %d) of a sentence; %% is a percent sign.
func placeholders(s string) int {
	n := 0
	for i := 0; i < len(s)-1; i++ {
		if s[i] == '%' {
			if s[i+1] == 's' || s[i+1] == 'd' {
				n++
			}
			i++
		}
	}
	return n
}

// Langs lists the catalog's languages, sorted.
func (c *Catalog) Langs() []string { return sortedKeys(c.texts) }

// HasLang reports whether the catalog speaks lang.
func (c *Catalog) HasLang(lang string) bool { return c.texts[lang] != nil }

// Has reports whether id has sentences (then it has one in every language).
func (c *Catalog) Has(id string) bool {
	for _, m := range c.texts {
		if _, ok := m[id]; ok {
			return true
		}
	}
	return false
}

// Text returns the sentence id in lang (DefaultLang when the catalog does
// not speak lang), each %s filled with the next of args (fmt.Sprint); ""
// only for an id the catalog does not have (the engine's ids are always
// there; a flow's are checked when the flows load).
func (c *Catalog) Text(lang, id string, args ...any) string {
	m := c.texts[lang]
	if m == nil {
		m = c.texts[DefaultLang]
	}
	s, ok := m[id]
	if !ok {
		return ""
	}
	if len(args) == 0 && !strings.Contains(s, "%") {
		return s
	}
	return fill(s, args)
}

// fill replaces each %s (or %d) of s with the next of args; %% is a
// percent sign; a placeholder without a value stays empty.
func fill(s string, args []any) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i == len(s)-1 {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case 's', 'd':
			if len(args) > 0 {
				b.WriteString(fmt.Sprint(args[0]))
				args = args[1:]
			}
			i++
		case '%':
			b.WriteByte('%')
			i++
		default:
			b.WriteByte('%')
		}
	}
	return b.String()
}

// sentences are the sentences written in the files of the flows folder
// dir (not those kept from the shipped catalog), sorted by file and line.
func (c *Catalog) sentences(dir string) []Text {
	var out []Text
	prefix := filepath.Join(dir, CatalogDir) + string(filepath.Separator)
	for _, lang := range c.Langs() {
		for _, id := range sortedKeys(c.texts[lang]) {
			f, l := splitWhere(c.where[lang][id])
			if strings.HasPrefix(f, prefix) && spoken(id) {
				out = append(out, Text{Lang: lang, Text: c.texts[lang][id], File: f, Line: l})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out
}

// Texts are the catalog's sentences without placeholders, in every
// language: what the prompt cache renders ahead.
func (c *Catalog) Texts() []Text {
	var out []Text
	for _, lang := range c.Langs() {
		for _, id := range sortedKeys(c.texts[lang]) {
			s := c.texts[lang][id]
			if placeholders(s) > 0 || !spoken(id) {
				continue
			}
			f, l := splitWhere(c.where[lang][id])
			out = append(out, Text{Lang: lang, Text: s, File: f, Line: l})
		}
	}
	return out
}

// spoken reports whether sentence id is ever said on the phone: an id
// ending in _chat is the written variant the web chat shows instead of
// its spoken one (docs/flows.md), never rendered or timed for the ear.
func spoken(id string) bool { return !strings.HasSuffix(id, "_chat") }

// suggest names the catalog's closest id to a misspelt one.
func (c *Catalog) suggest(id string) string {
	ids := map[string]bool{}
	for _, m := range c.texts {
		for k := range m {
			ids[k] = true
		}
	}
	return didYouMean(id, sortedKeys(ids))
}
