package speech

import (
	"strings"
	"testing"
	"time"
)

func TestSpellDigits(t *testing.T) {
	for _, c := range []struct{ lang, in, want string }{
		{"ro", "0721", "zero șapte doi unu"},
		{"ro", "0721 234-567", "zero șapte doi unu, doi trei patru, cinci șase șapte"},
		{"en", "+40 21", "plus four zero, two one"},
		{"en", "T-2026-0042", "T, two zero two six, zero zero four two"},
		{"ro", "", ""},
	} {
		if got := SpellDigits(c.lang, c.in); got != c.want {
			t.Errorf("SpellDigits(%s, %q) = %q, want %q", c.lang, c.in, got, c.want)
		}
	}
	if d, ok := ParseDigits("ro", "zero Șapte doi"); !ok || d != "072" {
		t.Errorf("ParseDigits = %q %v", d, ok)
	}
	// Numerals, as whisper writes digits read one by one.
	for text, want := range map[string]string{"0721": "0721", "0 7 2 1": "0721", "zero 7 doi 1": "0721"} {
		if d, ok := ParseDigits("ro", text); !ok || d != want {
			t.Errorf("ParseDigits(%q) = %q %v, want %q", text, d, ok, want)
		}
	}
	if _, ok := ParseDigits("ro", "0721 da"); ok {
		t.Error("ParseDigits accepted a numeral followed by a word")
	}
	if _, ok := ParseDigits("en", "one operator"); ok {
		t.Error("ParseDigits accepted a non-digit word")
	}
}

func TestNumberWords(t *testing.T) {
	for _, c := range []struct {
		lang string
		n    int64
		want string
	}{
		{"ro", 0, "zero"},
		{"ro", 12, "doisprezece"},
		{"ro", 21, "douăzeci și unu"},
		{"ro", 100, "o sută"},
		{"ro", 215, "două sute cincisprezece"},
		{"ro", 1000, "o mie"},
		{"ro", 2026, "două mii douăzeci și șase"},
		{"ro", 12000, "douăsprezece mii"},
		{"ro", 22000, "douăzeci și două de mii"},
		{"ro", 1000000, "un milion"},
		{"ro", 3500000, "trei milioane cinci sute de mii"},
		{"ro", -5, "minus cinci"},
		{"en", 0, "zero"},
		{"en", 42, "forty-two"},
		{"en", 2026, "two thousand twenty-six"},
		{"en", 1000001, "one million one"},
		{"en", 915, "nine hundred fifteen"},
	} {
		if got := NumberWords(c.lang, c.n); got != c.want {
			t.Errorf("NumberWords(%s, %d) = %q, want %q", c.lang, c.n, got, c.want)
		}
	}
}

func TestDateTimeWords(t *testing.T) {
	d := time.Date(2026, 11, 23, 14, 30, 0, 0, time.UTC)
	if got, want := DateWords("ro", d, true), "luni, douăzeci și trei noiembrie două mii douăzeci și șase"; got != want {
		t.Errorf("ro date %q, want %q", got, want)
	}
	if got, want := DateWords("en", d, true), "Monday, November twenty-third, twenty twenty-six"; got != want {
		t.Errorf("en date %q, want %q", got, want)
	}
	first := time.Date(2005, 3, 1, 9, 5, 0, 0, time.UTC)
	if got, want := DateWords("ro", first, false), "întâi martie două mii cinci"; got != want {
		t.Errorf("ro date %q, want %q", got, want)
	}
	if got, want := DateWords("en", first, false), "March first, two thousand five"; got != want {
		t.Errorf("en date %q, want %q", got, want)
	}
	if got := DateWords("en", time.Date(1990, 1, 30, 0, 0, 0, 0, time.UTC), false); !strings.HasSuffix(got, "thirtieth, nineteen ninety") {
		t.Errorf("en date %q", got)
	}
	if got, want := TimeWords("ro", d), "ora paisprezece și treizeci"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got, want := TimeWords("en", first), "nine oh five"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestGrammar(t *testing.T) {
	g, err := ParseGrammar(strings.NewReader("# menu\nbuletin: buletin | carte de identitate\npașaport\noperator: operator | un om\ndigits 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	for text, want := range map[string]string{
		"Carte de identitate": "buletin", "pașaport": "pașaport", "un om": "operator",
		"pasaport": "pașaport", "cărte de identitate": "buletin", // diacritics folded as flows fold them
		"zero șapte": "07", "unu doi trei patru cinci": "", "altceva": "", "": "",
	} {
		if got := g.Match("ro", text); got != want {
			t.Errorf("Match(%q) = %q, want %q", text, got, want)
		}
	}
	if w := g.Words("ro"); len(w) != 8+10 {
		t.Errorf("Words = %v", w)
	}
	for _, bad := range []string{"", "# only\n", "digits x\n", "tag: | |\n"} {
		if _, err := ParseGrammar(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseGrammar(%q) accepted", bad)
		}
	}
	if YesNo("ro").Match("ro", "Da") != "yes" || YesNo("en").Match("en", "nope") != "no" {
		t.Error("YesNo")
	}
}

func FuzzParseGrammar(f *testing.F) {
	f.Add("buletin: buletin | carte de identitate\ndigits 4\n")
	f.Add("digits 99999999999999999999\n")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGrammar(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, p := range g.Phrases {
			if len(p.Say) == 0 {
				t.Fatalf("phrase %q without variants", p.Tag)
			}
			if g.Match("ro", p.Say[0]) == "" {
				t.Fatalf("variant %q of %q does not match", p.Say[0], p.Tag)
			}
		}
	})
}

func FuzzSpellDigits(f *testing.F) {
	f.Add("0721 234-567")
	f.Fuzz(func(t *testing.T, s string) {
		out := SpellDigits("ro", s)
		if d, ok := ParseDigits("ro", strings.ReplaceAll(out, ",", "")); ok {
			for _, r := range d {
				if !strings.ContainsRune(s, r) {
					t.Fatalf("%q spelled as %q has digit %c", s, out, r)
				}
			}
		}
	})
}

func TestNormalizeText(t *testing.T) {
	for in, want := range map[string]string{
		"Vreau să vorbesc cu un operator, vă rog!": "vreau să vorbesc cu un operator vă rog",
		"Ştiu ţara  ŞI ŢARA":                       "știu țara și țara",
		"  cont-ul   de pe portal. ":               "cont ul de pe portal",
		"l'ora 9":                                  "l'ora 9",
		"":                                         "",
	} {
		if got := NormalizeText(in); got != want {
			t.Errorf("NormalizeText(%q) = %q, want %q", in, got, want)
		}
	}
}
