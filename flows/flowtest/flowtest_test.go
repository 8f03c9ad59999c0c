package flowtest

import (
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for src, want := range map[string]string{
		"caller: da\n":                        "x.conv:1: caller: before the first \"test:\"",
		"test: a\nivr:\n":                     "x.conv:2: ivr: needs the words expected",
		"test: a\nivr: /(/\n":                 "x.conv:2: ivr: bad regular expression",
		"test: a\nticket: colour = red\n":     "x.conv:2: ticket: unknown field \"colour\"",
		"test: a\ntime: tomorrow\n":           "x.conv:2: time: want YYYY-MM-DD HH:MM",
		"test: a\nsay hello\n":                "x.conv:2: want \"KEY: VALUE\"",
		"# nothing\n":                         "x.conv: no test",
		"test: a\nexisting ticket: 12 new\n":  "x.conv:2: existing ticket: want NUMBER STATUS SERVICE",
		"flow: a.lua\ntest: a\nwhatever: x\n": "x.conv:3: unknown key \"whatever\"",
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
