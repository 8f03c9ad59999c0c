package queue

import (
	"time"
)

// LeaveKey is the key a waiting caller presses to stop waiting and leave
// the request for a call back (the ticket stays open).
const LeaveKey = '1'

// Sentences gives the caller-facing sentences by id, in a language, with
// their %s filled from args; *flows.Catalog implements it. Safe for
// concurrent use.
type Sentences interface {
	Text(lang, id string, args ...any) string
}

// Announcement is the comfort prompt a waiting caller hears: their place
// in the queue, the expected wait and how to leave the request instead,
// in lang, from the sentences queue.wait (place, wait) and the wait's
// words: queue.one_minute, queue.minutes (2 to 19) and queue.many_minutes
// (20 and more: Romanian says "20 de minute"). The wait is said in whole
// minutes, at least one.
func Announcement(s Sentences, lang string, pos int, wait time.Duration) string {
	min := int((wait + 30*time.Second) / time.Minute)
	if min < 1 {
		min = 1
	}
	var m string
	switch {
	case min == 1:
		m = s.Text(lang, "queue.one_minute")
	case min >= 20:
		m = s.Text(lang, "queue.many_minutes", min)
	default:
		m = s.Text(lang, "queue.minutes", min)
	}
	return s.Text(lang, "queue.wait", pos, m)
}
