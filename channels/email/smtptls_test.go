package email_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/govline/ivr/channels/email"
	"github.com/govline/ivr/internal/smtptest"
	"github.com/govline/ivr/tickets"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtptest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// The mailer over STARTTLS (offered by the server on smtp://) and over
// implicit TLS (smtps://), with authentication, the certificate checked.
func TestMailerOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	sink := smtptest.StartTLS(t, nil, cert)
	sink.Auth("line", "smtp-pw")
	st, err := tickets.Open(filepath.Join(t.TempDir(), tickets.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for i, u := range []string{"smtp://line:smtp-pw@" + sink.Addr(), "smtps://line:smtp-pw@" + sink.TLSAddr()} {
		res, err := st.IngestEmail(ctx, tickets.EmailIntake{
			Message: tickets.EmailMessage{MessageID: "tls-" + string(rune('a'+i)) + "@example.org", Address: "ion@example.org", Subject: "s"},
			New:     tickets.NewTicket{Caller: "ion@example.org"},
			Reply: func(tk tickets.Ticket, _ bool, _ int) *tickets.EmailMessage {
				return &tickets.EmailMessage{MessageID: "ack-" + tk.Number + "@line.example", Address: "ion@example.org", Subject: "Re: s", Text: "ok"}
			}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := email.NewMailer(email.Config{IMAPURL: "imap://u:p@127.0.0.1:1/INBOX", SMTPURL: u, Address: line}, st)
		if err != nil {
			t.Fatal(err)
		}
		m.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		if n, err := m.SendDue(ctx); n != 1 || err != nil {
			t.Fatalf("%s: sent %d, %v", u, n, err)
		}
		th, _ := st.EmailThread(ctx, res.Ticket.Number)
		if th[1].Sent == nil {
			t.Fatalf("%s: not sent: %s", u, th[1].LastError)
		}
	}
	if got := sink.Messages(); len(got) != 2 {
		t.Fatalf("%d messages at the server", len(got))
	}
	// An untrusted certificate: refused, the e-mail kept for a retry.
	res, _ := st.IngestEmail(ctx, tickets.EmailIntake{
		Message: tickets.EmailMessage{MessageID: "tls-untrusted@example.org", Address: "ion@example.org", Subject: "s"},
		New:     tickets.NewTicket{Caller: "ion@example.org"},
		Reply: func(tk tickets.Ticket, _ bool, _ int) *tickets.EmailMessage {
			return &tickets.EmailMessage{MessageID: "ack-" + tk.Number + "@line.example", Address: "ion@example.org", Subject: "Re: s", Text: "ok"}
		}})
	m, _ := email.NewMailer(email.Config{IMAPURL: "imap://u:p@127.0.0.1:1/INBOX", SMTPURL: "smtps://line:smtp-pw@" + sink.TLSAddr(), Address: line}, st)
	_, _ = m.SendDue(ctx)
	th, _ := st.EmailThread(ctx, res.Ticket.Number)
	if th[1].Sent != nil || th[1].LastError == "" || len(sink.Messages()) != 2 {
		t.Fatalf("sent over an untrusted connection: %+v", th[1])
	}
}
