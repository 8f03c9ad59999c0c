package sip_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/diago"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// issue makes a certificate signed by the CA for the IP addresses and
// names given (a server's), or a client's when client is set.
func (ca *testCA) issue(t *testing.T, client bool, ips []net.IP, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "test " + strings.Join(names, ",")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  ips,
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writePair writes cert and its key as PEM files (a client certificate
// for sip.trunk_cert and sip.trunk_key).
func writePair(t *testing.T, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	kb, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

var loopback = []net.IP{net.ParseIP("127.0.0.1")}

// newTLSTrunk is a test trunk listening on TLS with cert, and on UDP at
// the same port, where an INVITE that fell back to clear text would
// arrive. clientCAs, when set, makes it require a client certificate
// signed by them. It sends its in-dialog requests (the BYE when the
// citizen hangs up) over the connection the line opened, as a trunk does
// for a client that listens on no TLS port.
func newTLSTrunk(t *testing.T, mode trunkMode, password string, cert tls.Certificate, clientCAs *x509.CertPool) *testTrunk {
	t.Helper()
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		conf.ClientCAs, conf.ClientAuth = clientCAs, tls.RequireAndVerifyClientCert
	}
	tk := newTestTrunkOver(t, mode, password, []diago.Transport{
		{Transport: "tls", TLSConf: conf, RewriteContact: true},
		{Transport: "udp"},
	})
	tk.uriForm = "sips:%s:%s@127.0.0.1:%d"
	return tk
}

// callThrough places one call through tk on l, waits for the citizen's
// phone to answer and hear the line, holds the call for hold, then has
// the phone hang up; it returns Originate's result.
func callThrough(t *testing.T, l *line, tk *testTrunk, hold time.Duration) sip.OutboundResult {
	t.Helper()
	type result struct {
		res sip.OutboundResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := l.srv.Originate(context.Background(), sip.OriginateRequest{Number: testCaller})
		done <- result{res, err}
	}()
	select {
	case <-tk.phone.up:
	case r := <-done:
		t.Fatalf("the call was not answered: %v", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the trunk was never called")
	}
	if !waitFor(8*time.Second, func() bool {
		tk.phone.mu.Lock()
		defer tk.phone.mu.Unlock()
		return !tk.phone.loud.IsZero()
	}) {
		t.Error("the citizen's phone heard nothing of the line")
	}
	time.Sleep(hold)
	close(tk.phone.hang) // the trunk sends the BYE
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Originate did not return after the phone hung up")
	}
	if r.err != nil {
		t.Fatalf("Originate: %v", r.err)
	}
	if r.res.End != ivr.EndCallerHangup {
		t.Errorf("ended %q, want %q (the trunk's BYE reached the line)", r.res.End, ivr.EndCallerHangup)
	}
	return r.res
}

// TestOutboundTrunkTCP: a trunk written with ;transport=tcp that listens on
// TCP only gets the INVITE (and the one with credentials) over TCP; the
// call is answered, talks and ends with the trunk's BYE.
func TestOutboundTrunkTCP(t *testing.T) {
	tk := newTestTrunkOver(t, trunkAnswer, trunkPass, []diago.Transport{{Transport: "tcp"}})
	tk.uriForm = "sip:%s:%s@127.0.0.1:%d;transport=tcp"
	l := startOutboundLine(t, tk, nil)
	callThrough(t, l, tk, 0)
	invites, _, challenges, _ := tk.seen()
	if len(invites) != 1 || challenges != 1 {
		t.Fatalf("trunk saw %d authenticated INVITEs and %d challenges, want 1 and 1", len(invites), challenges)
	}
	if over := tk.transports(); len(over) != 2 || over[0] != "TCP" || over[1] != "TCP" {
		t.Errorf("the INVITEs (the challenged one, the one with credentials) came over %v, want [TCP TCP]", over)
	}
	if v := invites[0].Via(); v == nil || v.Transport != "TCP" {
		t.Errorf("Via %v, want SIP/2.0/TCP", v)
	}
}

// TestOutboundTrunkTLS: a sips: trunk whose certificate is signed by a CA
// made here (sip.trunk_ca) and names the trunk by a name, not its IP
// (sip.trunk_server_name), and that requires a client certificate
// (sip.trunk_cert, sip.trunk_key): the digest challenge and the INVITE
// with credentials go over TLS, the Request-URI and Contact are sips:, the
// call is answered and ends with the trunk's BYE over the same connection;
// the password is in no log line.
func TestOutboundTrunkTLS(t *testing.T) {
	ca := newTestCA(t, "trunk-ca")
	tk := newTLSTrunk(t, trunkAnswer, trunkPass, ca.issue(t, false, nil, "trunk.operator.test"), pool(ca))
	certFile, keyFile := writePair(t, ca.issue(t, true, nil, "ivr-line"))
	l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) {
		o.TLS = sip.TrunkTLS{CAFile: ca.file, ServerName: "trunk.operator.test", CertFile: certFile, KeyFile: keyFile}
	})
	callThrough(t, l, tk, 0)
	invites, _, challenges, _ := tk.seen()
	if len(invites) != 1 || challenges != 1 {
		t.Fatalf("trunk saw %d authenticated INVITEs and %d challenges, want 1 and 1", len(invites), challenges)
	}
	inv := invites[0]
	if over := tk.transports(); len(over) != 2 || over[0] != "TLS" || over[1] != "TLS" {
		t.Errorf("the INVITEs (the challenged one, the one with credentials) came over %v, want [TLS TLS]", over)
	}
	if inv.Recipient.Scheme != "sips" || inv.Recipient.User != testCaller {
		t.Errorf("Request-URI %s, want sips: with the number", inv.Recipient.String())
	}
	if c := inv.Contact(); c == nil || c.Address.Scheme != "sips" || !strings.Contains(c.Address.String(), "transport=tls") {
		t.Errorf("Contact %v, want a sips: one with transport=tls", c)
	}
	if leaks := l.logs.leaks([]string{trunkPass}); len(leaks) > 0 {
		t.Errorf("the trunk's password is logged: %v", leaks)
	}
}

// TestOutboundTrunkTLSLineHangsUp: a trunk written sip:...;transport=tls
// that listens on TLS alone: the flow hangs up at once and the line's BYE
// reaches the trunk (over TLS: there is nothing else to reach it on).
func TestOutboundTrunkTLSLineHangsUp(t *testing.T) {
	ca := newTestCA(t, "trunk-ca")
	conf := &tls.Config{Certificates: []tls.Certificate{ca.issue(t, false, loopback)}, MinVersion: tls.VersionTLS12}
	tk := newTestTrunkOver(t, trunkAnswer, trunkPass, []diago.Transport{{Transport: "tls", TLSConf: conf, RewriteContact: true}})
	tk.uriForm = "sip:%s:%s@127.0.0.1:%d;transport=tls"
	bye := make(chan struct{})
	tk.answered = func(d *diago.DialogServerSession) {
		select {
		case <-d.Context().Done():
			close(bye)
		case <-time.After(10 * time.Second):
		}
	}
	l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) { o.TLS.CAFile = ca.file })
	// The flow hangs up after a moment, as a real one does: a BYE sent
	// right behind the ACK may reach the test trunk's diago first (it
	// handles each request on its own goroutine), which then ends the
	// dialog as "No ACK received".
	hangup := flowFunc(func(ctx context.Context, _ flows.Facts, _ flows.Channel, _ flows.Services) flows.Outcome {
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
		return flows.Outcome{Kind: flows.OutcomeHangup}
	})
	if _, err := l.srv.Originate(context.Background(), sip.OriginateRequest{Number: testCaller, Flow: hangup}); err != nil {
		t.Fatalf("Originate: %v", err)
	}
	select {
	case <-bye:
	case <-time.After(5 * time.Second):
		t.Fatal("the line's BYE did not reach the trunk")
	}
	invites, _, _, _ := tk.seen()
	if len(invites) != 1 || invites[0].Recipient.Scheme != "sip" {
		t.Fatalf("trunk saw %d authenticated INVITEs, want 1 with a sip: Request-URI", len(invites))
	}
	if c := invites[0].Contact(); c == nil || c.Address.Scheme != "sip" || !strings.Contains(c.Address.String(), "transport=tls") {
		t.Errorf("Contact %v, want a sip: one with transport=tls", c)
	}
}

// TestOutboundTrunkTLSNoAnswer: a phone that rings past the ring timeout
// behind a trunk that listens on TLS alone gets the line's CANCEL, and the
// attempt ends as no_answer.
func TestOutboundTrunkTLSNoAnswer(t *testing.T) {
	ca := newTestCA(t, "trunk-ca")
	conf := &tls.Config{Certificates: []tls.Certificate{ca.issue(t, false, loopback)}, MinVersion: tls.VersionTLS12}
	tk := newTestTrunkOver(t, trunkRing, trunkPass, []diago.Transport{{Transport: "tls", TLSConf: conf, RewriteContact: true}})
	tk.uriForm = "sips:%s:%s@127.0.0.1:%d"
	l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) { o.TLS.CAFile = ca.file; o.RingTimeout = 700 * time.Millisecond })
	_, err := l.srv.Originate(context.Background(), sip.OriginateRequest{Number: testCaller})
	if sip.ReasonOfOutbound(err) != sip.OutboundNoAnswer {
		t.Fatalf("Originate: %v, want no_answer", err)
	}
	if !waitFor(3*time.Second, func() bool { _, _, _, cancelled := tk.seen(); return cancelled == 1 }) {
		t.Fatal("the phone did not see the call end before an answer (no CANCEL over TLS)")
	}
}

// TestOutboundTrunkTLSAuthRefused: wrong credentials over TLS: the
// challenge and the INVITE sent again both reach the trunk over TLS, and
// the attempt ends as auth_refused.
func TestOutboundTrunkTLSAuthRefused(t *testing.T) {
	ca := newTestCA(t, "trunk-ca")
	tk := newTLSTrunk(t, trunkAnswer, "another-password", ca.issue(t, false, loopback), nil)
	l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) { o.TLS.CAFile = ca.file })
	_, err := l.srv.Originate(context.Background(), sip.OriginateRequest{Number: testCaller})
	if sip.ReasonOfOutbound(err) != sip.OutboundAuthRefused {
		t.Fatalf("Originate: %v, want auth_refused", err)
	}
	if _, _, challenges, _ := tk.seen(); challenges != 2 {
		t.Errorf("trunk answered %d INVITEs with 401, want 2 (the challenge, the wrong credentials)", challenges)
	}
	if over := tk.transports(); len(over) != 2 || over[0] != "TLS" || over[1] != "TLS" {
		t.Errorf("the INVITEs came over %v, want [TLS TLS]", over)
	}
}

// TestOutboundTrunkTLSUntrusted: a trunk whose certificate another CA
// signed, or that does not name the trunk, ends the attempt as unreachable
// with a log line that says why; no INVITE reaches the trunk, neither over
// TLS nor in clear text on its UDP port.
func TestOutboundTrunkTLSUntrusted(t *testing.T) {
	trusted, other := newTestCA(t, "trusted-ca"), newTestCA(t, "other-ca")
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		why  string
	}{
		{"another CA", other.issue(t, false, loopback), "not trusted"},
		{"another name", trusted.issue(t, false, []net.IP{net.ParseIP("127.0.0.2")}), "not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := newTLSTrunk(t, trunkAnswer, trunkPass, tc.cert, nil)
			l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) { o.TLS.CAFile = trusted.file; o.Retries = -1 })
			_, err := l.srv.Originate(context.Background(), sip.OriginateRequest{Number: testCaller})
			if sip.ReasonOfOutbound(err) != sip.OutboundUnreachable {
				t.Fatalf("Originate: %v, want unreachable", err)
			}
			time.Sleep(200 * time.Millisecond) // a clear-text fallback would have arrived by now
			if invites, _, challenges, _ := tk.seen(); len(invites)+challenges != 0 {
				t.Errorf("the trunk got %d INVITEs", len(invites)+challenges)
			}
			l.logs.mu.Lock()
			logged := l.logs.buf.String()
			l.logs.mu.Unlock()
			if !strings.Contains(logged, "TLS connection to the trunk failed") || !strings.Contains(logged, tc.why) {
				t.Errorf("no log line says why the trunk was not called; the line logged:\n%s", logged)
			}
			if n := l.eng.Metrics.OutboundAttempts("unreachable"); n != 1 {
				t.Errorf("unreachable attempts counted %d, want 1", n)
			}
		})
	}
}

func pool(ca *testCA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}
