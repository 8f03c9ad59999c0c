package queue

import (
	"fmt"
	"time"
)

// LeaveKey is the key a waiting caller presses to stop waiting and leave
// the request for a call back (the ticket stays open).
const LeaveKey = '1'

// Announcement is the comfort prompt a waiting caller hears: their place
// in the queue, the expected wait and how to leave the request instead,
// in lang ("ro" or "en"; anything else is Romanian). The wait is said in
// whole minutes, at least one.
func Announcement(lang string, pos int, wait time.Duration) string {
	min := int((wait + 30*time.Second) / time.Minute)
	if min < 1 {
		min = 1
	}
	if lang == "en" {
		m := fmt.Sprintf("%d minutes", min)
		if min == 1 {
			m = "one minute"
		}
		return fmt.Sprintf("Please hold, an operator will answer you shortly. You are number %d in the queue. The expected wait is about %s. To be called back instead, press 1.", pos, m)
	}
	m := fmt.Sprintf("%d minute", min)
	switch {
	case min == 1:
		m = "un minut"
	case min >= 20:
		m = fmt.Sprintf("%d de minute", min)
	}
	return fmt.Sprintf("Vă rugăm să așteptați, un operator vă va răspunde în curând. Sunteți numărul %d la rând. Timpul estimat de așteptare este de aproximativ %s. Dacă preferați să fiți sunat înapoi, apăsați tasta 1.", pos, m)
}
