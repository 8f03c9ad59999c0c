package flows

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The fixed sentences of the shipped flow are found with their language,
// and the runtime's own are added: what the line renders at start.
func TestTexts(t *testing.T) {
	rt, err := Load(".", Config{})
	if err != nil {
		t.Fatal(err)
	}
	texts := rt.Texts("ro")
	has := func(lang, text string) bool {
		return slices.ContainsFunc(texts, func(x Text) bool { return x.Lang == lang && x.Text == text })
	}
	for _, want := range []Text{
		{Lang: "ro", Text: "Bună ziua!"},
		{Lang: "ro", Text: "Spuneți pe scurt cu ce vă putem ajuta."},
		{Lang: "en", Text: "Please tell us briefly how we can help."},
		{Lang: "en", Text: "For English, press 9, or say English."},
		{Lang: "ro", Text: "Vă mulțumim pentru apel. La revedere!"},
		{Lang: "ro", Text: DefaultCatalog().Text("ro", "ask.no_input")},     // the catalog's
		{Lang: "en", Text: DefaultCatalog().Text("en", "failure.transfer")}, // the catalog's
		{Lang: "en", Text: DefaultCatalog().Text("en", "survey.thanks")},    // the catalog's
	} {
		if !has(want.Lang, want.Text) {
			t.Errorf("texts lack %s %q", want.Lang, want.Text)
		}
	}
	for _, x := range texts {
		if strings.Contains(x.Text, "%") || strings.Contains(x.Text, "Întrebați despre: ") {
			t.Errorf("a sentence built at run time is listed: %q", x.Text)
		}
	}
}

// Lint warns, with file and line, about a fixed sentence that takes too
// long to say, unless its line says it knows.
func TestLongPrompts(t *testing.T) {
	dir := t.TempDir()
	src := `say{ ro = "Bună ziua!", en = "Hello!" }
local r = ask{ prompt = "Pentru cartea de identitate apăsați 1, pentru pașaport apăsați 2, pentru contul de pe portal apăsați 3, pentru o cerere online apăsați 4, pentru stadiul unei solicitări apăsați 5.", options = {} }
local list = { "Puteți alege: cartea de identitate, apăsați 1; pașaportul, 2; contul de pe portal, 3; o cerere online, 4." } -- lint: long
`
	f := filepath.Join(dir, "x.lua")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ds := LongPrompts(8*time.Second, dir)
	if len(ds) != 1 || ds[0].Line != 2 || !strings.Contains(ds[0].String(), "x.lua:2: warning") {
		t.Fatalf("diagnostics %v, want one for line 2", ds)
	}
	if ds := LongPrompts(time.Minute, dir); len(ds) != 0 {
		t.Errorf("with a minute allowed: %v", ds)
	}

	// The catalog's sentences too, those the folder writes.
	if err := os.MkdirAll(filepath.Join(dir, CatalogDir), 0o755); err != nil {
		t.Fatal(err)
	}
	long := "Pentru cartea de identitate apăsați 1, pentru pașaport apăsați 2, pentru contul de pe portal apăsați 3, pentru o cerere online apăsați 4."
	for lang, body := range map[string]string{
		"ro": "[mine]\nshort = \"Bună.\"\nlong = \"" + long + "\"\nknown = \"" + long + "\" # lint: long\n",
		"en": "[mine]\nshort = \"Hi.\"\nlong = \"Hi.\"\nknown = \"Hi.\"\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, CatalogDir, lang+".toml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ds = LongPrompts(8*time.Second, dir)
	if len(ds) != 2 || !strings.Contains(ds[0].String(), filepath.Join(CatalogDir, "ro.toml")+":3: warning: this ro sentence") {
		t.Errorf("with a catalog: %v, want x.lua:2 and ro.toml:3", ds)
	}
	// The shipped catalog is short enough.
	if ds := LongPrompts(DefaultMaxPrompt, "."); len(ds) != 0 {
		t.Errorf("shipped flows and catalog: %v", ds)
	}
}

// The estimate is within about a second of what the embedded voice takes
// (measured durations, see SpokenLength).
func TestSpokenLength(t *testing.T) {
	for _, c := range []struct {
		text string
		secs float64 // espeak-ng, 150 words a minute
	}{
		{"Bună ziua!", 1.19},
		{"Spuneți pe scurt cu ce vă putem ajuta.", 2.82},
		{"Please tell us briefly how we can help.", 2.74},
		{"Spuneți pe scurt cu ce vă putem ajuta. Sau alegeți: cartea de identitate, apăsați 1; pașaportul, 2; contul de pe portal, 3; o cerere online, 4; stadiul unei solicitări, 5; un operator, 0.", 16.58},
	} {
		if d := SpokenLength(c.text).Seconds() - c.secs; d > 1.3 || d < -1.3 {
			t.Errorf("%q: estimated %.1f s, said in %.1f s", c.text, SpokenLength(c.text).Seconds(), c.secs)
		}
	}
}
