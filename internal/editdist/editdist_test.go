package editdist

import (
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"say", "say", 0},
		{"", "menu", 4},
		{"sya", "say", 2},        // a transposition is two edits
		{"digit", "digits", 1},   // insertion
		{"hangup", "hang", 2},    // deletions
		{"kitten", "sitting", 3}, // the textbook pair
		{"pasaport", "pasaportul", 2},
	} {
		if got := Strings(tc.a, tc.b); got != tc.want {
			t.Errorf("Strings(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := Strings(tc.b, tc.a); got != tc.want {
			t.Errorf("Strings(%q, %q) = %d, want %d (symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
	// Words: a recognizer that heard "un" for "doi" and missed "trei".
	ref := strings.Fields("unu doi trei patru")
	hyp := strings.Fields("unu un patru")
	if got := Distance(ref, hyp); got != 2 {
		t.Errorf("word distance = %d, want 2", got)
	}
}
