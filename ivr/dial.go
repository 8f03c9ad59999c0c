package ivr

import "strings"

// DialableNumber accepts 3 to 20 digits with an optional leading +: the
// only numbers the engine dials or sends as its caller ID (a callback's
// number, a survey call's, sip.caller_id), so that nothing else reaches a
// Request-URI, an ARI endpoint or a FreeSWITCH dial string.
func DialableNumber(n string) bool {
	d := strings.TrimPrefix(n, "+")
	if len(d) < 3 || len(d) > 20 {
		return false
	}
	for _, r := range d {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
