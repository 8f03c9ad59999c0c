package g2p

import (
	"strings"
	"testing"
)

func TestRomanian(t *testing.T) {
	for word, want := range map[string]string{
		"da":         "D AA",
		"nu":         "N UW",
		"buletin":    "B UW L EH T IY N",
		"pașaport":   "P AA SH AA P OW R T",
		"cont":       "K OW N T",
		"operator":   "OW P EH R AA T OW R",
		"cinci":      "CH IY N CH",
		"șase":       "SH AA S EH",
		"șapte":      "SH AA P T EH",
		"nouă":       "N OW W AH",
		"doi":        "D OY",
		"vreau":      "V R Y AA W",
		"poate":      "P W AA T EH",
		"chiar":      "K Y AA R",
		"ghișeu":     "G IY SH EH W",
		"ciorbă":     "CH OW R B AH",
		"este":       "Y EH S T EH",
		"unsprezece": "UW N S P R EH Z EH CH EH",
		"mulțumesc":  "M UW L T S UW M EH S K",
		"înapoi":     "IH N AA P OY",
		"lung":       "L UW NG G",
		"Pașaportul": "P AA SH AA P OW R T UW L",
		"Ţară":       "T S AA R AH",
	} {
		got := Romanian(word)
		if len(got) == 0 || got[0] != want {
			t.Errorf("Romanian(%q) = %q, want first %q", word, got, want)
		}
	}
	// Variants: the syllabic final i and the alternative vowels.
	v := Romanian("pomi")
	if len(v) < 2 || v[0] != "P OW M" || v[1] != "P OW M IY" {
		t.Errorf("pomi: %q", v)
	}
	if got := Romanian("123 !"); got != nil {
		t.Errorf("no letters: %q", got)
	}
	phones := "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
	for _, w := range []string{"șoșon", "știință", "iaurt", "quasar", "xilofon", "ceai", "gheață", "ziuă", "băiat", "înșiși"} {
		for _, pron := range Romanian(w) {
			for _, ph := range strings.Fields(pron) {
				if !strings.Contains(" "+phones+" ", " "+ph+" ") {
					t.Errorf("%q: phone %q not in the model's set", w, ph)
				}
			}
		}
	}
}

func FuzzRomanian(f *testing.F) {
	f.Add("pașaport")
	f.Add("ciii")
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range Romanian(s) {
			if p == "" || strings.Contains(p, "  ") {
				t.Fatalf("%q -> bad pronunciation %q", s, p)
			}
		}
	})
}

// A word written without diacritics also reads with one s as ș or one t
// as ț; a word with diacritics is read as written.
func TestUndiacritized(t *testing.T) {
	got := Undiacritized("pasaportul")
	want := []string{"P AA SH AA P OW R T UW L", "P AA S AA P OW R T S UW L"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Undiacritized(pasaportul) = %q, want %q", got, want)
	}
	if got := Undiacritized("pașaport"); got != nil {
		t.Errorf("Undiacritized(pașaport) = %q, want nil (it has its diacritics)", got)
	}
	if got := Undiacritized("buletin"); len(got) != 1 || got[0] != "B UW L EH T S IY N" {
		t.Errorf("Undiacritized(buletin) = %q", got)
	}
}
