package flows_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/sim"
)

// The shipped catalog (embedded) and the flows folder's copy are the same
// files, load without a problem and speak Romanian and English.
func TestShippedCatalog(t *testing.T) {
	cat := flows.DefaultCatalog()
	if got := cat.Langs(); !slices.Equal(got, []string{"en", "ro"}) {
		t.Errorf("languages %v, want en and ro", got)
	}
	folder, diags := flows.LoadCatalog(".")
	for _, d := range diags {
		t.Error(d)
	}
	for _, lang := range []string{"ro", "en"} {
		for _, id := range []string{"survey.question", "ask.no_input", "queue.wait", "failure.sorry"} {
			if cat.Text(lang, id) == "" || cat.Text(lang, id) != folder.Text(lang, id) {
				t.Errorf("%s %s: shipped %q, folder %q", lang, id, cat.Text(lang, id), folder.Text(lang, id))
			}
		}
	}
	if got := cat.Text("ro", "ask.no_input"); got != "Nu v-am auzit." {
		t.Errorf("ro ask.no_input = %q", got)
	}
	if got := cat.Text("fr", "ask.no_input"); got != "Nu v-am auzit." {
		t.Errorf("a language without a catalog falls back to Romanian: %q", got)
	}
	if got := cat.Text("en", "ask.confirm", "passport"); got != "I understood: passport. Is that right?" {
		t.Errorf("en ask.confirm = %q", got)
	}
	if got := cat.Text("en", "no.such"); got != "" {
		t.Errorf("unknown id = %q", got)
	}
}

func writeCatalog(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, flows.CatalogDir), 0o755); err != nil {
		t.Fatal(err)
	}
	for lang, src := range files {
		if err := os.WriteFile(filepath.Join(dir, flows.CatalogDir, lang+".toml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A folder's catalog replaces the sentences it has, keeps the shipped ones
// it leaves out, and is refused, naming file, line and id, when a sentence
// is missing in a language, empty, not a sentence, or has another number
// of %s than its id's other sentences.
func TestFolderCatalog(t *testing.T) {
	dir := t.TempDir()
	writeCatalog(t, dir, map[string]string{
		"ro": "[survey]\nthanks = \"Mulțumim!\"\n[mine]\nhello = \"Salut, %s.\"\n",
		"en": "[mine]\nhello = \"Hello, %s.\"\n",
	})
	cat, diags := flows.LoadCatalog(dir)
	if len(diags) > 0 {
		t.Fatalf("good catalog refused: %v", diags)
	}
	if got := cat.Text("ro", "survey.thanks"); got != "Mulțumim!" {
		t.Errorf("override: %q", got)
	}
	if got := cat.Text("en", "survey.thanks"); got != flows.DefaultCatalog().Text("en", "survey.thanks") {
		t.Errorf("an id the folder leaves out keeps the shipped sentence: %q", got)
	}
	if got := cat.Text("en", "mine.hello", "Ana"); got != "Hello, Ana." {
		t.Errorf("a folder's own id: %q", got)
	}

	for _, c := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"missing in a language", map[string]string{"ro": "[mine]\nhello = \"Salut.\"\n", "en": "[ask]\nno_input = \"Pardon?\"\n"},
			[]string{"en.toml", "no en sentence for mine.hello", "ro.toml:2"}},
		{"a new language lacks everything", map[string]string{"de": "[ask]\nno_input = \"Wie bitte?\"\n"},
			[]string{"de.toml", "no de sentence for survey.thanks"}},
		{"placeholders", map[string]string{"en": "[ask]\nconfirm = \"I understood. Is that right?\"\n"},
			[]string{"en.toml:2", "ask.confirm has 0 %s, the shipped sentence has 1"}},
		{"empty", map[string]string{"ro": "[survey]\n\nthanks = \"  \"\n"}, []string{"ro.toml:3", "survey.thanks: the sentence is empty"}},
		{"not a sentence", map[string]string{"ro": "[survey]\nthanks = 3\n"}, []string{"ro.toml:2", "survey.thanks: want a sentence in quotes"}},
		{"not a section", map[string]string{"ro": "thanks = \"x\"\n"}, []string{"ro.toml:1", "thanks: want a [section]"}},
		{"bad toml", map[string]string{"ro": "[survey]\nthanks = \"x\n"}, []string{"ro.toml:2", "not valid TOML"}},
		{"bad file name", map[string]string{"Romanian": "[survey]\nthanks = \"x\"\n"}, []string{"Romanian.toml", "not a language"}},
	} {
		dir := t.TempDir()
		writeCatalog(t, dir, c.files)
		_, diags := flows.LoadCatalog(dir)
		var all []string
		for _, d := range diags {
			all = append(all, d.String())
		}
		joined := strings.Join(all, "\n")
		for _, w := range c.want {
			if !strings.Contains(joined, w) {
				t.Errorf("%s: diagnostics %q, want %q", c.name, joined, w)
			}
		}
	}
}

// Flows say the catalog's sentences with text(); a literal id the catalog
// does not have stops the load (and lint) at its line; a changed sentence
// reloads the flows.
func TestTextInFlows(t *testing.T) {
	dir := writeFlows(t, map[string]string{"main.lua": `
say(text("mine.hello", call.lang))
set_language("en")
say({text("mine.hello", 7), text("survey.thanks")})
`})
	writeCatalog(t, dir, map[string]string{"ro": "[mine]\nhello = \"Salut, %s.\"\n", "en": "[mine]\nhello = \"Hello, %s.\"\n"})
	rt, err := flows.Load(dir, flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	said := func() string {
		var lines []string
		ch := sim.NewChannel(strings.NewReader(""), nil)
		ch.Lines = func(l string) { lines = append(lines, l) }
		rt.Run(context.Background(), flows.Facts{}, ch, flows.Services{Log: slog.New(slog.DiscardHandler)})
		return strings.Join(lines, "\n")
	}
	if got, want := said(), "ivr: Salut, ro.\nivr: Hello, 7. Thank you for your rating. Goodbye!"; got != want {
		t.Errorf("said %q, want %q", got, want)
	}
	texts := rt.Texts("ro")
	if !slices.ContainsFunc(texts, func(x flows.Text) bool { return x.Lang == "en" && x.Text == "Thank you for your rating. Goodbye!" }) {
		t.Errorf("the prompt cache is not given the catalog's sentences: %v", texts)
	}

	// A sentence changed on disk: the next reload serves it.
	time.Sleep(10 * time.Millisecond)
	writeCatalog(t, dir, map[string]string{"en": "[mine]\nhello = \"Hi, %s!\"\n"})
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := said(); !strings.Contains(got, "Hi, 7!") {
		t.Errorf("after the reload said %q", got)
	}

	// An unknown id, or a catalog missing a sentence, is refused at load.
	if err := os.WriteFile(filepath.Join(dir, "main.lua"), []byte("say('x')\nsay(text('mine.helo'))\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = rt.Reload()
	if err == nil || !strings.Contains(err.Error(), `main.lua:2: text("mine.helo"): no such sentence in the catalog`) || !strings.Contains(err.Error(), "mine.hello") {
		t.Errorf("unknown id: %v", err)
	}
	diags := flows.Lint(dir)
	if len(diags) != 1 || !strings.Contains(diags[0].String(), `main.lua:2: text("mine.helo")`) {
		t.Errorf("lint: %v", diags)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.lua"), []byte("say(text('mine.hello', 1))\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeCatalog(t, dir, map[string]string{"en": "[other]\nhello = \"Hi!\"\n"})
	err = rt.Reload()
	if err == nil || !strings.Contains(err.Error(), "no en sentence for mine.hello") {
		t.Errorf("missing sentence: %v", err)
	}
	if diags := flows.Lint(dir); len(diags) == 0 {
		t.Error("lint passes a catalog with a missing sentence")
	}

	// A non-literal unknown id fails the script at run time (an apology,
	// not silence).
	writeCatalog(t, dir, map[string]string{"en": "[mine]\nhello = \"Hi, %s!\"\n"})
	if err := os.WriteFile(filepath.Join(dir, "main.lua"), []byte("local id = 'mine.' .. 'nope'\nsay(text(id))\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := said(); !strings.Contains(got, flows.DefaultCatalog().Text("ro", "failure.sorry")) {
		t.Errorf("unknown id at run time: said %q", got)
	}
}
