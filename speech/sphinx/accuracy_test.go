package sphinx

import (
	"os"
	"testing"

	"github.com/govline/ivr/speech/speechtest"
)

// TestAccuracyExplore prints the accuracy of option sets (run with
// SPHINX_EXPLORE=1; not part of the suite).
func TestAccuracyExplore(t *testing.T) {
	if os.Getenv("SPHINX_EXPLORE") == "" {
		t.Skip("set SPHINX_EXPLORE=1")
	}
	syn := newSynth(t)
	sets := map[string]Options{
		"default":  {},
		"dither":   {Args: []string{"-dither", "yes"}},
		"batchcmn": {Args: []string{"-cmn", "batch"}},
		"en-in-ro": {EnglishInRomanian: true},
		"pip":      {Args: []string{"-pip", "0.5"}},
		"widebeam": {Args: []string{"-beam", "1e-60", "-wbeam", "1e-50"}},
	}
	for name, o := range sets {
		if f := os.Getenv("SPHINX_SET"); f != "" && f != name {
			continue
		}
		r := newRec(t, o)
		for _, lang := range []string{"ro", "en"} {
			for _, c := range speechtest.Conditions() {
				if os.Getenv("SPHINX_ALL") == "" && c.Name != "G.711 8 kHz" {
					continue
				}
				sc := speechtest.Evaluate(t, r, syn, speechtest.Items(lang), speechtest.Voices(lang), c, os.Getenv("VERBOSE") != "")
				t.Logf("%-9s %s %-20s %v", name, lang, c.Name, sc)
			}
		}
	}
}
