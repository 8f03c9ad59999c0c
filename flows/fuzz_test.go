package flows

import (
	"strings"
	"testing"
)

// FuzzCompile: no flow source, however broken, crashes the loader.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"say('x')", "if x then", "local = 3", "a = 'x' .. b .. (c .. d)", "x = {[1 .. 2] = f(a .. b)}",
		"function m:f(...) return ... end", "goto l ::l::", "return", "--[[", "\"\\u{ff}\"", "local function f() f() end"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, diags := compileSource([]byte(src), "fuzz.lua")
		if c == nil && len(diags) == 0 {
			t.Fatal("neither a flow nor a diagnostic")
		}
		for _, d := range diags {
			if !strings.HasPrefix(d.String(), "fuzz.lua:") {
				t.Fatalf("diagnostic without the file: %s", d)
			}
		}
	})
}

// FuzzSpokenDigits: only digits come out.
func FuzzSpokenDigits(f *testing.F) {
	f.Add("unu doi trei")
	f.Add("double five 12")
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := SpokenDigits(s)
		if strings.Trim(d, "0123456789") != "" || ok != (d != "") {
			t.Fatalf("SpokenDigits(%q) = %q, %v", s, d, ok)
		}
		_ = YesNo(s)
		_ = matchChoice(s, []choice{{id: "a", phrases: []string{Normalize(s)}}})
	})
}
