package imaptest_test

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/govline/ivr/internal/imaptest"
)

func TestDovecotServesDeliveredMessage(t *testing.T) {
	srv := imaptest.Start(t)
	srv.AddUser(t, "support", "s3cret")
	srv.Deliver(t, "support", []byte("From: a@example.org\r\nTo: support@example.org\r\nSubject: hello\r\nMessage-ID: <1@example.org>\r\n\r\nbody\r\n"))
	c, err := imapclient.DialInsecure(srv.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("support", "s3cret").Wait(); err != nil {
		t.Fatalf("login: %v\n%s", err, srv.Log())
	}
	d, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if d.NumMessages != 1 {
		t.Fatalf("INBOX has %d messages, want 1", d.NumMessages)
	}
	if !c.Caps().Has(imap.CapIdle) {
		t.Errorf("no IDLE capability: %v", c.Caps())
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
}
