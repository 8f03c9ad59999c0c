package testenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fake records what the helper did.
type fake struct{ fatal, skip string }

func (f *fake) Helper()                           {}
func (f *fake) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }
func (f *fake) Skipf(format string, args ...any)  { f.skip = fmt.Sprintf(format, args...) }

func TestMissingFailsUnderCIAndSkipsElsewhere(t *testing.T) {
	for _, tc := range []struct {
		ci, makelevel string
		fails         bool
	}{
		{"true", "", true},
		{"1", "", true},
		{"", "1", true}, // make test
		{"", "", false},
		{"false", "", false},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv("MAKELEVEL", tc.makelevel)
		f := &fake{}
		Need(f, "espeak-ng", "Debian package espeak-ng (make deps)", errors.New("no voice data"))
		got := f.skip
		if tc.fails {
			got = f.fatal
		}
		if got == "" || (f.fatal != "") != tc.fails {
			t.Errorf("CI=%q MAKELEVEL=%q: fatal %q skip %q, want fails=%v", tc.ci, tc.makelevel, f.fatal, f.skip, tc.fails)
		}
		for _, want := range []string{"espeak-ng is missing", "Debian package espeak-ng (make deps)", "no voice data"} {
			if !strings.Contains(got, want) {
				t.Errorf("message %q lacks %q", got, want)
			}
		}
	}
}

func TestNeedAndToolPassWhenPresent(t *testing.T) {
	t.Setenv("CI", "true")
	f := &fake{}
	Need(f, "x", "y", nil)
	if p := Tool(f, "coreutils", "no-such-tool-here", "sh"); p == "" || f.fatal != "" || f.skip != "" {
		t.Errorf("Tool found %q, fatal %q skip %q", p, f.fatal, f.skip)
	}
	Tool(f, "sip-tester", "no-such-tool-here")
	if !strings.Contains(f.fatal, "no-such-tool-here is missing: install the Debian package sip-tester (make deps)") {
		t.Errorf("fatal %q", f.fatal)
	}
}
