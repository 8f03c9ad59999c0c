package flows

import "time"

// Keypad is how a flow hears the caller's keys: when the keys pressed make
// an answer, which keys pressed ahead wait for the next question, and the
// terminator that follows a number typed to its full length. The phone
// line (package ivr) and the simulator (flows/sim) both collect keys with
// it, so the same keys give a flow the same answers on both. The rules:
//
//   - A question that is not a digit string (a choice, yes/no) is answered
//     by one key (or, when Listen.MaxDigits > 1, by up to that many, ended
//     by the inter-digit pause).
//   - A digit string (ExpectDigits) ends with the terminator (not part of
//     the answer), with the MaxDigits-th key, or after the inter-digit pause.
//   - When it ended with its MaxDigits-th key, a terminator pressed next,
//     within the inter-digit pause, is swallowed: the caller who was told
//     to end with '#' does not answer the next question with it.
//   - Keys pressed while no question waits (during a prompt, or after an
//     answer) are kept, in order, for the next question; a prompt that
//     allows barge-in is skipped while keys wait (type-ahead).
//
// The zero value is ready to use. It is used from one goroutine (the
// flow's): the channel that owns it calls its methods from Say and Listen.
type Keypad struct {
	ahead  []key
	l      Listen
	active bool      // a question waits (between Start and its answer, Pause or Stop)
	keys   []rune    // collected for the active question
	first  time.Time // when the first of keys was pressed

	swallow      rune // a terminator to drop when pressed next, before swallowUntil
	swallowUntil time.Time
}

type key struct {
	r  rune
	at time.Time
}

// Start begins a question. Keys pressed ahead are taken first: when they
// already make the answer, Start returns it (ok true), and the keys after
// it stay for the next question.
func (k *Keypad) Start(l Listen) (in Input, ok bool) {
	k.l, k.active, k.keys = l, true, k.keys[:0]
	for len(k.ahead) > 0 {
		d := k.ahead[0]
		k.ahead = k.ahead[1:]
		if in, ok := k.add(d.r, d.at); ok {
			return in, true
		}
	}
	return Input{}, false
}

// Press records a key pressed at time at. During a question it returns the
// answer when the key completes it; otherwise the key waits for the next
// question. It reports kept false when the key was swallowed (a terminator
// after a full-length number): a prompt must not stop for it.
func (k *Keypad) Press(r rune, at time.Time) (in Input, done, kept bool) {
	if k.swallow != 0 {
		sw := k.swallow
		k.swallow = 0
		if r == sw && !at.After(k.swallowUntil) {
			return Input{}, false, false
		}
	}
	if !k.active {
		k.ahead = append(k.ahead, key{r, at})
		return Input{}, false, true
	}
	in, done = k.add(r, at)
	return in, done, true
}

// add appends a key to the active question's answer.
func (k *Keypad) add(r rune, at time.Time) (Input, bool) {
	k.keys = append(k.keys, r)
	if len(k.keys) == 1 {
		k.first = at
	}
	digits := k.l.Expect == ExpectDigits || k.l.MaxDigits > 1
	switch {
	case !digits:
	case k.l.Terminator != 0 && r == k.l.Terminator:
		k.keys = k.keys[:len(k.keys)-1]
	case k.l.MaxDigits > 0 && len(k.keys) >= k.l.MaxDigits:
		if k.l.Expect == ExpectDigits && k.l.Terminator != 0 {
			k.swallow, k.swallowUntil = k.l.Terminator, at.Add(k.interDigit())
		}
	default:
		return Input{}, false
	}
	return k.answer(), true
}

func (k *Keypad) interDigit() time.Duration {
	if k.l.InterDigit > 0 {
		return k.l.InterDigit
	}
	return DefaultInterDigit
}

func (k *Keypad) answer() Input {
	k.active = false
	return Input{Mode: InputDTMF, Text: string(k.keys), Confidence: 1, Began: k.first}
}

// Collecting reports whether the active question has keys already: it
// then waits the inter-digit pause (Listen.InterDigit) for the next one
// rather than the no-input timeout, and speech no longer answers it.
func (k *Keypad) Collecting() bool { return k.active && len(k.keys) > 0 }

// Pause ends the active question when the caller paused longer than the
// inter-digit pause (or the no-input timeout passed): the keys collected
// are the answer (ok true), or there is none.
func (k *Keypad) Pause() (in Input, ok bool) {
	if !k.active {
		return Input{}, false
	}
	if len(k.keys) == 0 {
		k.active = false
		return Input{}, false
	}
	return k.answer(), true
}

// Stop ends the active question without an answer from the keys (the
// caller answered by voice, or the call ended).
func (k *Keypad) Stop() { k.active, k.keys = false, k.keys[:0] }

// Ahead reports whether keys wait for the next question.
func (k *Keypad) Ahead() bool { return len(k.ahead) > 0 }
