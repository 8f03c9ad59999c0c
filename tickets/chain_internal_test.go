package tickets

import (
	"database/sql"
	"testing"
)

// The canonical form of an event's data: the same for every encoding of
// the same object (key order, spaces, a number's spelling, the JSON a
// database re-encodes), without caller and personal; different for any
// other difference, invalid UTF-8 included.
func TestCanonicalData(t *testing.T) {
	base := string(canonicalData(`{"text":"n","level":1,"deadline_ns":1767225600000000000,"articles":["a","b"],"personal":{"cnp":"1"},"caller":"+407"}`))
	if base != `{"articles":["a","b"],"deadline_ns":1767225600000000000,"level":1,"text":"n"}` {
		t.Fatalf("canonical: %s", base)
	}
	for _, same := range []string{
		`{ "level": 1, "text": "n", "articles": [ "a", "b" ], "deadline_ns": 1767225600000000000 }`,
		`{"level":1.0,"text":"n","articles":["a","b"],"deadline_ns":1767225600000000000,"caller":"","personal":{}}`,
		`{"level":1e0,"text":"\u006e","articles":["a","b"],"deadline_ns":1767225600000000000,"personal":{"other":"x"}}`,
	} {
		if got := string(canonicalData(same)); got != base {
			t.Errorf("%s: canonical %s, want %s", same, got, base)
		}
	}
	for _, other := range []string{
		`{"level":2,"text":"n","articles":["a","b"],"deadline_ns":1767225600000000000}`,
		`{"level":1,"text":"n","articles":["b","a"],"deadline_ns":1767225600000000000}`,
		`{"level":1,"text":"n","articles":["a","b"],"deadline_ns":1767225600000000001}`,
		`{"level":1,"text":"n","articles":["a","b"],"deadline_ns":1767225600000000000,"callers":"x"}`,
		`["level"]`, `not json`,
	} {
		if got := string(canonicalData(other)); got == base {
			t.Errorf("%s: the same canonical form as the original", other)
		}
	}
	if string(canonicalData("{\"text\":\"\xff\"}")) == string(canonicalData("{\"text\":\"\xfe\"}")) {
		t.Error("two data with different invalid UTF-8 have one canonical form")
	}
	a := eventRow(1, "10000004", 1, "ana", "note", `{}`, sql.NullInt64{})
	b := eventRow(1, "10000004", 1, "ana\xff", "note", `{}`, sql.NullInt64{})
	c := eventRow(1, "10000004", 1, "ana\xfe", "note", `{}`, sql.NullInt64{})
	if string(a) == string(b) || string(b) == string(c) {
		t.Errorf("rows differing in invalid UTF-8 share a canonical form: %s %s %s", a, b, c)
	}
	if string(auditRow(1, 1, "\xff", "a", "", "", "", 1)) == string(auditRow(1, 1, "\xfe", "a", "", "", "", 1)) {
		t.Error("audit rows differing in invalid UTF-8 share a canonical form")
	}
}
