package queue

import (
	"testing"
	"time"

	"github.com/govline/ivr/flows"
)

// The announcement says what it said when its words were written in Go.
func TestAnnouncementSentences(t *testing.T) {
	cat := flows.DefaultCatalog()
	for _, c := range []struct {
		lang string
		pos  int
		wait time.Duration
		want string
	}{
		{"ro", 1, 10 * time.Second, "Vă rugăm să așteptați, un operator vă va răspunde în curând. Sunteți numărul 1 la rând. Timpul estimat de așteptare este de aproximativ un minut. Dacă preferați să fiți sunat înapoi, apăsați tasta 1."},
		{"ro", 3, 2 * time.Minute, "Vă rugăm să așteptați, un operator vă va răspunde în curând. Sunteți numărul 3 la rând. Timpul estimat de așteptare este de aproximativ 2 minute. Dacă preferați să fiți sunat înapoi, apăsați tasta 1."},
		{"ro", 12, 25 * time.Minute, "Vă rugăm să așteptați, un operator vă va răspunde în curând. Sunteți numărul 12 la rând. Timpul estimat de așteptare este de aproximativ 25 de minute. Dacă preferați să fiți sunat înapoi, apăsați tasta 1."},
		{"en", 1, 0, "Please hold, an operator will answer you shortly. You are number 1 in the queue. The expected wait is about one minute. To be called back instead, press 1."},
		{"en", 2, 5 * time.Minute, "Please hold, an operator will answer you shortly. You are number 2 in the queue. The expected wait is about 5 minutes. To be called back instead, press 1."},
		{"fr", 2, 5 * time.Minute, "Vă rugăm să așteptați, un operator vă va răspunde în curând. Sunteți numărul 2 la rând. Timpul estimat de așteptare este de aproximativ 5 minute. Dacă preferați să fiți sunat înapoi, apăsați tasta 1."},
	} {
		if got := Announcement(cat, c.lang, c.pos, c.wait); got != c.want {
			t.Errorf("Announcement(%s, %d, %s)\n got %q\nwant %q", c.lang, c.pos, c.wait, got, c.want)
		}
	}
}
