package sphinx

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/govline/ivr/speech/speechtest"
)

// TestAccuracyFloor is the regression guard: a representative subset of
// the speech test set (menu and yes/no in both languages, two voices,
// through G.711 at 8 kHz) must stay above the floor measured when this
// engine was tuned (docs/speech.md has the full table).
func TestAccuracyFloor(t *testing.T) {
	r := newRec(t, Options{})
	syn := newSynth(t)
	c := speechtest.Conditions()[1] // G.711 8 kHz
	for _, lang := range []string{"ro", "en"} {
		var items []speechtest.Item
		for _, it := range speechtest.Items(lang) {
			if it.Grammar == "menu" || it.Grammar == "yesno" {
				items = append(items, it)
			}
		}
		sc := speechtest.Evaluate(t, r, syn, items, speechtest.Voices(lang)[:2], c, testing.Verbose())["all"]
		t.Logf("%s %s: %v", lang, c.Name, sc)
		if acc := sc.SentenceAccuracy(); acc < 0.80 {
			t.Errorf("%s menu+yes/no sentence accuracy %.1f%% on G.711, floor 80%%", lang, 100*acc)
		}
	}
}

// BenchmarkAccuracy prints the whole accuracy table (every language,
// condition, grammar kind and voice): go test -tags sqlite_fts5 -run '^$'
// -bench Accuracy -benchtime 1x -timeout 30m ./speech/sphinx/. Set
// SPHINX_FRONT=native8k for the 8 kHz front end, SPHINX_LANG and
// SPHINX_COND (comma-separated condition names) to run a part, SPHINX_GRAMMAR to run some grammar kinds only
// (comma-separated: "digits,digitsN"), VERBOSE=1 to list the misses.
func BenchmarkAccuracy(b *testing.B) {
	o := Options{}
	if os.Getenv("SPHINX_FRONT") == "native8k" {
		o.Front8k = Native8k
	}
	r := newRec(b, o)
	syn := newSynth(b)
	var table strings.Builder
	for b.Loop() {
		table.Reset()
		fmt.Fprintf(&table, "| lang | condition | grammar | utterances | sentence accuracy | WER |\n|---|---|---|---|---|---|\n")
		for _, lang := range []string{"ro", "en"} {
			if f := os.Getenv("SPHINX_LANG"); f != "" && f != lang {
				continue
			}
			for _, c := range speechtest.Conditions() {
				if f := os.Getenv("SPHINX_COND"); f != "" && !slices.Contains(strings.Split(f, ","), c.Name) {
					continue
				}
				if o.Front8k == Native8k && c.Rate != 8000 {
					continue
				}
				sc := speechtest.Evaluate(stdoutLog{b}, r, syn, items(lang), speechtest.Voices(lang), c, os.Getenv("VERBOSE") != "")
				for _, k := range []string{"menu", "yesno", "digits", "digitsN", "all"} {
					s, ok := sc[k]
					if !ok {
						continue
					}
					fmt.Fprintf(&table, "| %s | %s | %s | %d | %.1f%% | %.1f%% |\n", lang, c.Name, k, s.Utterances, 100*s.SentenceAccuracy(), 100*s.WER())
				}
			}
		}
	}
	fmt.Println(table.String()) // b.Log truncates long output
}

// items returns the test set of lang, restricted to the grammar kinds
// named in $SPHINX_GRAMMAR (comma-separated) when it is set.
func items(lang string) []speechtest.Item {
	all := speechtest.Items(lang)
	f := os.Getenv("SPHINX_GRAMMAR")
	if f == "" {
		return all
	}
	want := map[string]bool{}
	for _, k := range strings.Split(f, ",") {
		want[strings.TrimSpace(k)] = true
	}
	var out []speechtest.Item
	for _, it := range all {
		if want[it.Grammar] {
			out = append(out, it)
		}
	}
	return out
}

// stdoutLog prints log lines on stdout: a benchmark's own log keeps only
// its first lines, and the list of misses is longer.
type stdoutLog struct{ testing.TB }

func (l stdoutLog) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
