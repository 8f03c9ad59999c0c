package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/internal/imaptest"
	"github.com/govline/ivr/internal/smtptest"
	"github.com/govline/ivr/tickets"
)

// ivrd configured by IVR_EMAIL_* reads the support mailbox on a real
// Dovecot: a citizen's message becomes a ticket of channel email and its
// acknowledgement reaches the SMTP server; the citizen's address is not in
// the logs.
func TestDaemonTakesTheSupportMailbox(t *testing.T) {
	imap := imaptest.Start(t)
	imap.AddUser(t, "support", "s3cret")
	sink := smtptest.Start(t, nil)
	d := startDaemon(t,
		"IVR_EMAIL_IMAP_URL="+imap.URL("support", "s3cret"),
		"IVR_EMAIL_SMTP_URL="+sink.URL(),
		"IVR_EMAIL_ADDRESS=support@line.example")
	imap.Deliver(t, "support", []byte("From: Ion <ion.popescu@example.org>\r\nTo: support@line.example\r\nSubject: Pierdut buletinul\r\n"+
		"Message-ID: <d1@example.org>\r\n\r\nMi-am pierdut buletinul.\r\n"))
	msgs := sink.Wait(1, 30*time.Second)
	if len(msgs) != 1 || msgs[0].To[0] != "ion.popescu@example.org" || !strings.Contains(string(msgs[0].Data), "Auto-Submitted: auto-replied") {
		t.Fatalf("acknowledgements: %+v", msgs)
	}
	st, err := tickets.OpenReadOnly(filepath.Join(d.dataDir, tickets.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, err := st.ListTickets(context.Background(), tickets.TicketQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Channel != tickets.ChannelEmail || all[0].Caller != "ion.popescu@example.org" {
		t.Fatalf("tickets: %+v", all)
	}
	if !strings.Contains(string(msgs[0].Data), all[0].Number) {
		t.Fatalf("the acknowledgement lacks the ticket number %s", all[0].Number)
	}
	for _, secret := range []string{"popescu", "Mi-am pierdut", "s3cret"} {
		if strings.Contains(d.logs.String(), secret) {
			t.Fatalf("ivrd's log holds %q", secret)
		}
	}
}
