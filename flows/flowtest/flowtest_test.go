package flowtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for src, want := range map[string]string{
		"caller: da\n":                                    "x.conv:1: caller: before the first \"test:\"",
		"test: a\nivr:\n":                                 "x.conv:2: ivr: needs the words expected",
		"test: a\nivr: /(/\n":                             "x.conv:2: ivr: bad regular expression",
		"test: a\nticket: colour = red\n":                 "x.conv:2: ticket: unknown field \"colour\"",
		"test: a\ntime: tomorrow\n":                       "x.conv:2: time: want YYYY-MM-DD HH:MM",
		"test: a\nsay hello\n":                            "x.conv:2: want \"KEY: VALUE\"",
		"# nothing\n":                                     "x.conv: no test",
		"test: a\nexisting ticket: 12 new\n":              "x.conv:2: existing ticket: want NUMBER STATUS SERVICE",
		"test: a\nexisting ticket: 123456 new passport\n": "x.conv:2: existing ticket: ticket \"123456\": not a valid ticket number",
		"speech: loud\ntest: a\n":                         "x.conv:1: speech \"loud\": want embedded",
		"test: a\nvars: x\n":                              "x.conv:2: vars: want NAME = VALUE",
		"test: a\nbarge-in:\n":                            "x.conv:2: barge-in: needs the words or keys",
		"flow: a.lua\ntest: a\nwhatever: x\n":             "x.conv:3: unknown key \"whatever\"",
	} {
		_, err := Parse(strings.NewReader(src), "x.conv")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", src, err, want)
		}
	}
}

func TestParseSettings(t *testing.T) {
	cases, err := Parse(strings.NewReader(`flow: a.lua
lang: en
test: one
caller: #12#
caller:
caller: yes @0.2
test: two
flow: b.lua
time: 2026-11-28 11:00
ticket: description ~ x
`), "x.conv")
	if err != nil {
		t.Fatal(err)
	}
	one, two := cases[0], cases[1]
	if one.Flow != "a.lua" || one.Lang != "en" || two.Flow != "b.lua" || two.Lang != "en" || two.Time.Weekday().String() != "Saturday" {
		t.Errorf("settings: %+v %+v", one, two)
	}
	in := one.Steps
	if in[0].Input.Mode != "dtmf" || in[0].Input.Text != "12#" || in[1].Input.Mode != "none" || in[2].Input.Confidence != 0.2 || in[2].Input.Text != "yes" {
		t.Errorf("caller turns: %+v", in)
	}
	if s := two.Steps[0]; s.Field != "description" || s.Op != "~" || s.Value != "x" {
		t.Errorf("ticket step: %+v", s)
	}
}

// FuzzParse: no test file crashes the parser.
func FuzzParse(f *testing.F) {
	f.Add("test: a\ncaller: #1\nivr: /x+/\nticket: service = passport\ntransfer: level1\n")
	f.Add("flow: main.lua\ntime: 2026-01-01 00:00\nexisting ticket: 1 new other\ntest: b\nno ticket\nhangup:\n")
	f.Fuzz(func(t *testing.T, src string) {
		cases, err := Parse(strings.NewReader(src), "f.conv")
		if err == nil && len(cases) == 0 {
			t.Fatal("no error and no test")
		}
	})
}

// The word rule of "ivr:": whole words, in order, next to each other, in
// one prompt; case, diacritics and punctuation aside.
func TestHasWords(t *testing.T) {
	for _, c := range []struct {
		text, want string
		ok         bool
	}{
		{"Pentru preschimbarea permisului, apăsați 2.", "preschimbarea permisului", true},
		{"Pentru preschimbarea permisului, apăsați 2.", "PRESCHIMBAREA, permisului", true},
		{"Pentru preschimbarea permisului, apăsați 2.", "preschimbarea permisului apasati 2", true},
		{"Pentru preschimbarea permisului, apăsați 2.", "schimba permisul", false},         // parts of words
		{"Pentru preschimbarea permisului, apăsați 2.", "permisului preschimbarea", false}, // order
		{"Pentru preschimbarea permisului, apăsați 2.", "pentru permisului", false},        // not next to each other
		{"Permis străin.", "permis strain", true},
		{"", "x", false},
	} {
		if got := HasWords(c.text, c.want); got != c.ok {
			t.Errorf("HasWords(%q, %q) = %v, want %v", c.text, c.want, got, c.ok)
		}
	}
}

// The false passes of issue 18 fail now: a word inside a longer word, and
// words found only in the question asked again after the line did not
// understand. The loose form (ivr~:) still finds parts of words. vars,
// article and barge-in expectations pass when true and fail when not.
func TestExpectationsCannotPassByAccident(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("permis.lua", `
local MENU = {
  { id = "exchange", key = "1", say = "preschimbarea permisului" },
  { id = "foreign", key = "2", say = "permis străin" },
}
while true do
  local r = ask{ prompt = "Pentru a preschimba permisul, apăsați 1. Pentru un permis străin, apăsați 2.", options = MENU }
  if not r then hangup("nothing") end
  vars.topic = r.option
  if r.option == "foreign" then
    say("Un permis obținut în afara Uniunii se preschimbă la serviciul de permise.")
    hangup("answered")
  end
  say("Preschimbarea se face cu programare.", { barge_in = false })
end
`)
	conv := func(body string) []string {
		t.Helper()
		cases, err := Parse(strings.NewReader("flow: permis.lua\nspeech: open\n"+body), "x.conv")
		if err != nil {
			t.Fatal(err)
		}
		r := Runner{FlowsDir: dir}
		var fails []string
		for _, c := range cases {
			res := r.Run(context.Background(), c)
			if res.Pass {
				fails = append(fails, "")
				continue
			}
			fails = append(fails, strings.Join(res.Failures, "\n"))
		}
		return fails
	}
	for _, c := range []struct {
		name, body, fail string // fail: "" when the test must pass
	}{
		{"a word inside another is not the word", "caller: #1\nivr: schimba permisul\n", `expected the line to say the words "schimba permisul" in one prompt`},
		{"the loose form finds parts of words", "caller: #1\nivr~: schimba permisul\n", ""},
		{"whole words pass", "caller: #1\nivr: preschimbarea se face\n", ""},
		{"a misunderstood turn is not passed by the question asked again", "caller: blabla\nivr: permis străin\n",
			`the line did not understand "blabla" (line 4): it said "Nu am înțeles." and asked again`},
		{"a misunderstood turn expected as such", "caller: blabla\nivr: nu am înțeles\nivr: permis străin\n", ""},
		{"vars at the end", "caller: #2\nvars: topic = foreign\n", ""},
		{"vars that differ", "caller: #2\nvars: topic = exchange\n", `expected vars.topic = "exchange", got "foreign"`},
		{"vars never set", "caller: #2\nvars: town = Cluj\n", `expected vars.town = "Cluj", the flow did not set it (it set: topic)`},
		{"barge-in over a prompt that allows it", "barge-in: #2\nivr: se preschimbă\nhangup: answered\n", ""},
		{"barge-in over a prompt that does not", "caller: #1\nbarge-in: #2\n", "expected the caller to interrupt the prompt before"},
	} {
		got := conv("test: " + c.name + "\n" + c.body)[0]
		if (c.fail == "") != (got == "") || !strings.Contains(got, c.fail) {
			t.Errorf("%s: failures %q, want %q", c.name, got, c.fail)
		}
	}
}
