package email_test

import (
	"strings"
	"testing"

	"github.com/govline/ivr/channels/email"
)

// What counts as a rating in a reply to the survey by e-mail.
func TestRatingReply(t *testing.T) {
	for _, c := range []struct {
		text string
		want int
	}{
		{"4", 4},
		{"  5.  ", 5},
		{"1!", 1},
		{"5/5", 5},
		{"5 / 5", 5},
		{"Nota 4", 4},
		{"nota 3.", 3},
		{"4 stele", 4},
		{"5 stars", 5},
		{"5, mulțumesc!", 5},
		{"4 - Thank you", 4},
		{"\n\n4\n", 4},
		{"4\r\n\r\nOn Sun, 6 Dec 2026 at 10:00, <support@line.example> wrote:\r\n> Bună ziua,\r\n> Răspundeți cu o cifră de la 1 la 5\r\n", 4},
		{"3\n\nÎn dum., 6 dec. 2026 la 10:00, Linia <support@line.example> a scris:\n> text", 3},
		{"2\n\nOn Sun, 6 Dec 2026 at 10:00, Linia de asistență\n<support@line.example> wrote:\n\nBună ziua", 2},
		{"5\n\nPe 06.12.2026 10:00, support@line.example a scris:\n> 5 (foarte mulțumit)", 5},
		{"4\n> quoted 1 la 5", 4},
		{"4\n\n-----Original Message-----\nFrom: support@line.example\n", 4},
		{"4\n\nDe la: support@line.example\nTrimis: duminică", 4},
		{"5\n\n-- \nIon Popescu\nStr. Florilor 5, Cluj\nTel. 0722 000 000", 5},
		{"5\n\nIon Popescu\n0722 000 000", 5},
		{"5\n\nSent from my iPhone", 5},
		{"4\n\nTrimis de pe iPhone", 4},
		// Not ratings: a reply as any, which reopens the ticket.
		{"", 0},
		{"Mulțumesc, dar mai am o întrebare: ce fac cu copilul?", 0},
		{"4 zile am așteptat", 0},
		{"10", 0},
		{"0", 0},
		{"6", 0},
		{"1-5", 0},
		{"3 sau 4", 0},
		{"4/10", 0},
		{"4, dar mai am o întrebare", 0},
		{"4\nMai am o întrebare despre pașaport", 0},
		{"4\n\nMai am o întrebare: ce acte trebuie să aduc pentru copil la ghișeu?", 0},
		{"5\n\nMai am o întrebare?", 0},
		{"5\n\nUn rând\nDoi\nTrei\nPatru\nCinci", 0},
		{"> 4\nok", 0},
		{"On Sun, 6 Dec 2026 at 10:00, <support@line.example> wrote:\n> 4", 0},
	} {
		if got := email.RatingReply(c.text); got != c.want {
			t.Errorf("RatingReply(%q) = %d, want %d", c.text, got, c.want)
		}
	}
}

// An HTML-only reply (as Gmail's and Outlook's web mail write them):
// the rating above the quoted original.
func TestRatingReplyHTML(t *testing.T) {
	for _, c := range []struct {
		html string
		want int
	}{
		{`<div dir="ltr">4</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Sun, 6 Dec 2026 at 10:00, &lt;support@line.example&gt; wrote:<br></div><blockquote class="gmail_quote">Bună ziua,<br>răspundeți cu o cifră de la 1 la 5</blockquote></div>`, 4},
		{`<html><body><p>5</p><hr><div><b>De la:</b> support@line.example<br><b>Trimis:</b> duminică</div><p>Răspundeți cu o cifră de la 1 la 5</p></body></html>`, 5},
		{`<p>Mulțumesc, dar mai am o întrebare...</p><blockquote>1 la 5</blockquote>`, 0},
	} {
		if got := email.RatingReply(email.HTMLToText(c.html)); got != c.want {
			t.Errorf("RatingReply(HTMLToText(%q)) = %d (text %q), want %d", c.html, got, email.HTMLToText(c.html), c.want)
		}
	}
}

// RatingReply never panics and says 0 or a rating from 1 to 5; a text it
// takes for a rating starts, after the quote cut, with that digit's line.
func FuzzRatingReply(f *testing.F) {
	for _, s := range []string{"4", "5/5", "nota 4", "4 stele", "4\n\n> quoted", "4\r\n\r\nOn x wrote:\r\n> y",
		"Mulțumesc, dar mai am o întrebare?", "5\n\n-- \nIon", "\xff\xfe4", "4\n\nIon\n0722"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := email.RatingReply(s)
		if r < 0 || r > 5 {
			t.Fatalf("RatingReply(%q) = %d", s, r)
		}
		if r > 0 && !strings.ContainsRune(s, rune('0'+r)) {
			t.Fatalf("RatingReply(%q) = %d, a digit the text lacks", s, r)
		}
	})
}
