package email_test

import (
	"testing"
	"unicode/utf8"

	"github.com/govline/ivr/channels/email"
)

func TestHTMLToTextDropsActiveContent(t *testing.T) {
	for in, want := range map[string]string{
		"<p>a</p><p>b</p>": "a\n\nb",
		"<script>alert(1)</script>x<style>p{}</style>": "x",
		"1 &lt; 2 &amp;&amp; <b>bold</b><br>next":      "1 < 2 && bold\nnext",
		"<!-- hidden -->shown":                         "shown",
		"<iframe src=x>inside</iframe>out":             "out",
	} {
		if got := email.HTMLToText(in); got != want {
			t.Errorf("HTMLToText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAutomaticMessagesRecognised(t *testing.T) {
	for hdr, want := range map[string]string{
		"Auto-Submitted: auto-replied\r\n":   "auto_submitted",
		"Auto-Submitted: no\r\n":             "",
		"Precedence: bulk\r\n":               "precedence",
		"List-Unsubscribe: <mailto:x@y>\r\n": "list",
		"X-Loop: support@line.example\r\n":   "x_loop",
		"Return-Path: <>\r\n":                "bounce",
		"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n": "bounce",
	} {
		raw := "From: ion@example.org\r\nSubject: s\r\nMessage-ID: <a@b>\r\n" + hdr + "\r\nbody\r\n"
		if got := email.Parse([]byte(raw), "support@line.example").Automatic; got != want {
			t.Errorf("%q: automatic %q, want %q", hdr, got, want)
		}
	}
	if got := email.Parse([]byte("From: Support <SUPPORT@line.example>\r\n\r\nx"), "support@line.example").Automatic; got != "own_address" {
		t.Errorf("own address: %q", got)
	}
}

func TestThreadSubject(t *testing.T) {
	for in, want := range map[string]string{
		"Pașaport":                 "Re: Pașaport [#12345674]",
		"Re: Pașaport [#12345674]": "Re: Pașaport [#12345674]",
		"":                         "Re: [#12345674]",
	} {
		if got := email.ThreadSubject(in, "12345674"); got != want {
			t.Errorf("ThreadSubject(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParse: no message, however broken, makes Parse panic, and every
// result has a Message-ID and valid UTF-8 text.
func FuzzParse(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--z"))
	f.Add([]byte("Subject: =?ISO-8859-2?Q?Pa=BAaport?=\r\nContent-Type: text/plain; charset=ISO-8859-2\r\n\r\n\xba"))
	f.Add([]byte("no header at all"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := email.Parse(raw, "support@line.example")
		if p.MessageID == "" {
			t.Fatal("no Message-ID")
		}
		if !utf8.ValidString(p.Text) || !utf8.ValidString(p.Subject) {
			t.Fatalf("invalid UTF-8: %q %q", p.Subject, p.Text)
		}
	})
}
