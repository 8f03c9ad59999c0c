package flows_test

import (
	"testing"
	"time"

	"github.com/govline/ivr/flows"
)

// A keyed answer began with its first key, whether the keys were pressed
// during the question or ahead of it (the console plays the recording of
// a transcript line from there).
func TestKeyedAnswerBeganWithItsFirstKey(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var k flows.Keypad
	k.Start(flows.Listen{Expect: flows.ExpectDigits, MaxDigits: 3, Terminator: '#'})
	k.Press('1', t0)
	k.Press('2', t0.Add(400*time.Millisecond))
	in, done, _ := k.Press('3', t0.Add(900*time.Millisecond))
	if !done || in.Text != "123" || !in.Began.Equal(t0) {
		t.Errorf("answer %+v (done %v), want 123 begun at the first key %s", in, done, t0)
	}
	k.Stop()

	// Keys pressed ahead answer the next question: they began when pressed.
	k.Press('4', t0.Add(5*time.Second))
	in, ok := k.Start(flows.Listen{Expect: flows.ExpectChoice, MaxDigits: 1})
	if !ok || in.Text != "4" || !in.Began.Equal(t0.Add(5*time.Second)) {
		t.Errorf("key pressed ahead: %+v (ok %v), want 4 begun when pressed", in, ok)
	}
}
