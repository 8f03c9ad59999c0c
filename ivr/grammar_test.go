package ivr

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/speechtest"
)

// Whatever the call's language, every question hears the escape words
// of both languages, each in its own pronunciation, with tags the flows
// understand.
func TestGrammarForEscapes(t *testing.T) {
	for _, lang := range []string{"ro", "en"} {
		menu := grammarFor(flows.Listen{Lang: lang, Expect: flows.ExpectChoice, Phrases: []string{"pașaport"}})
		for say, tag := range map[string]string{
			"operator": "operator", "agent": "operator", "om": "operator", "persoană": "operator",
			"talk to an operator": "operator", "vreau să vorbesc cu un operator": "operator",
			"english": "english", "engleză": "english", "română": "romana", "romanian": "romana",
			"da": "da", "nu": "nu", "yes": "yes", "no": "no",
		} {
			if got := menu.Match(lang, say); got != tag {
				t.Errorf("%s menu: %q matched %q, want %q", lang, say, got, tag)
			}
		}
		yn := grammarFor(flows.Listen{Lang: lang, Expect: flows.ExpectYesNo})
		for say, tag := range map[string]string{"da": "yes", "nu": "no", "yes": "yes", "no": "no", "operator": "operator"} {
			if got := yn.Match(lang, say); got != tag {
				t.Errorf("%s yes/no: %q matched %q, want %q", lang, say, got, tag)
			}
		}
		// Each phrase is pronounced in its language: "English" the
		// English way in a Romanian grammar, "română" the Romanian way
		// in an English one.
		for _, p := range menu.Phrases {
			for _, say := range p.Say {
				want := ""
				switch say {
				case "english", "romanian", "talk to an operator", "yes", "no":
					want = "en"
				case "engleză", "română", "om", "persoană", "da", "nu":
					want = "ro"
				default:
					continue
				}
				if want == lang {
					want = ""
				}
				if p.Lang != want {
					t.Errorf("%s menu: %q has language %q, want %q", lang, say, p.Lang, want)
				}
			}
		}
	}
}

// speechtest.ShippedMenu, on which the recognizer is measured, is the
// menu of the shipped flow: the same options with the same spoken forms.
func TestShippedMenuMatchesMainLua(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "flows", "main.lua"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	i := strings.Index(s, "local MENU = {")
	j := strings.Index(s[i:], "\n}\n")
	if i < 0 || j < 0 {
		t.Fatal("flows/main.lua has no `local MENU = {...}` table")
	}
	L := lua.NewState()
	defer L.Close()
	if err := L.DoString(s[i:i+j+2] + "\nreturn MENU"); err != nil {
		t.Fatal(err)
	}
	menu := L.Get(-1).(*lua.LTable)
	var got []speechtest.MenuOption
	menu.ForEach(func(_, v lua.LValue) {
		o := v.(*lua.LTable)
		opt := speechtest.MenuOption{ID: o.RawGetString("id").String()}
		say := o.RawGetString("say").(*lua.LTable)
		for _, l := range []string{"ro", "en"} {
			opt.Phrases = append(opt.Phrases, say.RawGetString(l).String())
		}
		o.RawGetString("synonyms").(*lua.LTable).ForEach(func(_, s lua.LValue) { opt.Phrases = append(opt.Phrases, s.String()) })
		got = append(got, opt)
	})
	norm := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, speech.NormalizeText(p))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	if len(got) != len(speechtest.ShippedMenu) {
		t.Fatalf("main.lua has %d options, speechtest.ShippedMenu %d", len(got), len(speechtest.ShippedMenu))
	}
	for k, o := range got {
		w := speechtest.ShippedMenu[k]
		if o.ID != w.ID || !slices.Equal(norm(o.Phrases), norm(w.Phrases)) {
			t.Errorf("main.lua option %s %v\nspeechtest has %s %v", o.ID, norm(o.Phrases), w.ID, norm(w.Phrases))
		}
	}
}
