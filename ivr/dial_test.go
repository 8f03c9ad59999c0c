package ivr_test

import (
	"testing"

	"github.com/govline/ivr/ivr"
)

func TestDialableNumber(t *testing.T) {
	for n, want := range map[string]bool{"0722123456": true, "+40722123456": true, "112": true, "12": false, "07 22": false, "0722;x": false, "": false, "+": false,
		"123456789012345678901": false, "+12345678901234567890": true} {
		if got := ivr.DialableNumber(n); got != want {
			t.Errorf("DialableNumber(%q) = %v", n, got)
		}
	}
}
