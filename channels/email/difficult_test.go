package email_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/govline/ivr/channels/email"
	"github.com/govline/ivr/tickets"
)

func mime(from, id, subject, contentType, body string) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\nContent-Type: %s\r\n\r\n%s",
		from, line, subject, id, contentType, body))
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}

// Each difficult message of the issue has a clear outcome and loses
// nothing: a 10 MB attachment kept with its checksum, a broken MIME
// structure kept raw and flagged, ISO-8859-2 decoded, HTML only turned
// into text without its script, a forged From of the line's own address
// and an unreadable From opening tickets without an answer, and a 60 MB
// message over the 25 MB limit opening a ticket from its header, flagged,
// acknowledged with the limit, and left on the mail server.
func TestDifficultMessages(t *testing.T) {
	r := newRig(t, email.Config{})
	ctx := context.Background()
	take := func(raw []byte) (tickets.EmailIntakeResult, []tickets.EmailMessage) {
		t.Helper()
		r.imap.Deliver(t, "support", raw)
		res := r.next(t)
		th, err := r.st.EmailThread(ctx, res.Ticket.Number)
		if err != nil {
			t.Fatal(err)
		}
		return res, th
	}

	// 10 MB attachment.
	data := make([]byte, 10<<20)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	res, th := take(mime("ion@example.org", "big@example.org", "documente", `multipart/mixed; boundary="b1"`,
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVă trimit actele.\r\n--b1\r\nContent-Type: application/pdf\r\n"+
			"Content-Disposition: attachment; filename=\"acte.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
			wrap76(base64.StdEncoding.EncodeToString(data))+"--b1--\r\n"))
	if res.Queued == nil || len(th[0].Attachments) != 1 || th[0].Attachments[0].Size != 10<<20 ||
		th[0].Attachments[0].SHA256 != hex.EncodeToString(sum[:]) || th[0].Attachments[0].Flagged != "" || th[0].Text != "Vă trimit actele." {
		t.Fatalf("10 MB attachment: %+v %+v", res, th[0])
	}
	if a, err := r.st.EmailAttachmentData(ctx, th[0].ID, 0); err != nil || !bytes.Equal(a.Data, data) {
		t.Fatalf("10 MB attachment's data: %v", err)
	}

	// Broken MIME: the closing boundary missing, a part cut short.
	broken := mime("ion@example.org", "broken@example.org", "rupt", `multipart/mixed; boundary="zz"`,
		"--zz\r\nContent-Type: text/plain\r\n\r\nprima parte\r\n--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64")
	res, th = take(broken)
	raw, err := r.st.EmailRaw(ctx, th[0].ID)
	if err != nil || !bytes.Equal(raw, broken) || !contains(th[0].Flags, "broken_mime") || !strings.Contains(th[0].Text, "prima parte") {
		t.Fatalf("broken MIME: flags %v text %q raw kept %v (%v)", th[0].Flags, th[0].Text, bytes.Equal(raw, broken), err)
	}

	// ISO-8859-2, subject and body.
	res, th = take(mime("ion@example.org", "latin2@example.org", "=?ISO-8859-2?Q?Pa=BAaport_pierdut?=", "text/plain; charset=ISO-8859-2",
		"Bun\xe3 ziua, mi-am pierdut pa\xbaaportul \xeen Ia\xbai.\r\n"))
	if th[0].Subject != "Paşaport pierdut" || th[0].Text != "Bună ziua, mi-am pierdut paşaportul în Iaşi." ||
		!strings.Contains(res.Ticket.Description, "paşaportul") {
		t.Fatalf("ISO-8859-2: %q / %q", th[0].Subject, th[0].Text)
	}

	// HTML only.
	res, th = take(mime("ion@example.org", "html@example.org", "html", "text/html; charset=utf-8",
		"<html><head><style>p{color:red}</style><script>alert('x')</script></head><body><p>Bună&nbsp;ziua,</p><p>am o <b>întrebare</b> &amp; o cerere.</p><img src=x onerror=alert(1)></body></html>"))
	if th[0].Text != "Bună\u00a0ziua,\n\nam o întrebare & o cerere." && th[0].Text != "Bună\u00a0ziua,\nam o întrebare & o cerere." {
		t.Fatalf("HTML only: %q", th[0].Text)
	}
	if strings.Contains(th[0].Text, "alert") || strings.Contains(th[0].Text, "color") || !contains(th[0].Flags, "html_only") {
		t.Fatalf("HTML only: %q %v", th[0].Text, th[0].Flags)
	}

	// A forged From (the line's own address) and an unreadable one.
	res, _ = take(mime(line, "forged@evil.example", "urgent", "text/plain", "click here\r\n"))
	if res.Queued != nil || res.Ticket.Channel != tickets.ChannelEmail {
		t.Fatalf("forged From: %+v", res)
	}
	res, th = take(mime("<<<not an address>>>", "nofrom@evil.example", "?", "text/plain", "x\r\n"))
	if res.Queued != nil || !contains(th[0].Flags, "no_from") {
		t.Fatalf("unreadable From: %+v %v", res, th[0].Flags)
	}

	// 60 MB: over the 25 MB limit.
	huge := mime("maria@example.org", "huge@example.org", "video", `multipart/mixed; boundary="h"`,
		"--h\r\nContent-Type: text/plain\r\n\r\nfilmul\r\n--h\r\nContent-Type: video/mp4\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
			strings.Repeat(strings.Repeat("A", 76)+"\r\n", 60<<20/78)+"--h--\r\n")
	if len(huge) < 60<<20-1000 {
		t.Fatalf("the big message is %d bytes", len(huge))
	}
	res, th = take(huge)
	if !contains(th[0].Flags, "too_large") || th[0].Size != int64(len(huge)) || res.Queued == nil ||
		!strings.Contains(res.Ticket.Description, "over the limit of 25.0 MB") {
		t.Fatalf("60 MB: %+v flags %v size %d", res, th[0].Flags, th[0].Size)
	}
	if raw, _ := r.st.EmailRaw(ctx, th[0].ID); raw != nil {
		t.Fatalf("60 MB message stored (%d bytes)", len(raw))
	}
	got := r.inbox(t, "maria", 1)
	if !strings.Contains(body(t, got[0]), "over the limit of 25 MB") {
		t.Fatalf("the acknowledgement does not name the limit: %q", body(t, got[0]))
	}
	if n := unprocessed(t, r.imap); n != 0 {
		t.Fatalf("%d messages unmarked", n)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
