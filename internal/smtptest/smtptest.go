// Package smtptest runs a real SMTP server for a test: go-smtp's server on
// a free loopback port, speaking SMTP over TCP to the engine's client as
// a mail relay would, and delivering each accepted message to a function
// the test gives (imaptest's Deliver puts it into the recipient's maildir
// on a real Dovecot, so the test reads it back over IMAP as the citizen
// would). It is stopped by t.Cleanup.
//
//	sink := smtptest.Start(t, func(m smtptest.Message) error {
//		return imap.DeliverErr(localPart(m.To[0]), m.Data)
//	})
//	url := sink.URL() // smtp://127.0.0.1:PORT
//
// With Auth set before the first message the server requires
// AUTH PLAIN with that user and password (over the loopback, without TLS).
package smtptest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message the server accepted.
type Message struct {
	From string
	To   []string
	Data []byte
}

// Server is one SMTP server.
type Server struct {
	srv     *smtp.Server
	port    int
	tlsPort int
	deliver func(Message) error

	mu       sync.Mutex
	msgs     []Message
	user     string
	password string
	arrived  chan struct{}
}

// Start starts a server that hands every accepted message to deliver
// (nil keeps them only in Messages).
func Start(t testing.TB, deliver func(Message) error) *Server {
	t.Helper()
	return start(t, deliver, nil)
}

// StartTLS is Start with TLS: STARTTLS offered on Addr, and implicit TLS
// (smtps) on TLSAddr, with cert (the test makes it and trusts it).
func StartTLS(t testing.TB, deliver func(Message) error, cert tls.Certificate) *Server {
	t.Helper()
	return start(t, deliver, &tls.Config{Certificates: []tls.Certificate{cert}})
}

func start(t testing.TB, deliver func(Message) error, tc *tls.Config) *Server {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{port: l.Addr().(*net.TCPAddr).Port, deliver: deliver, arrived: make(chan struct{}, 1)}
	s.srv = smtp.NewServer(s)
	s.srv.TLSConfig = tc
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 100 << 20
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	done := make(chan struct{})
	go func() { defer close(done); _ = s.srv.Serve(l) }()
	tlsDone := make(chan struct{})
	if tc != nil {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.tlsPort = tl.Addr().(*net.TCPAddr).Port
		go func() { defer close(tlsDone); _ = s.srv.Serve(tls.NewListener(tl, tc)) }()
	} else {
		close(tlsDone)
	}
	t.Cleanup(func() {
		_ = s.srv.Close()
		<-done
		<-tlsDone
	})
	return s
}

// TLSAddr is the implicit-TLS listener's host:port (StartTLS only).
func (s *Server) TLSAddr() string { return "127.0.0.1:" + strconv.Itoa(s.tlsPort) }

// Auth makes the server require AUTH PLAIN as user with password.
func (s *Server) Auth(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.password = user, password
}

// Addr is host:port on 127.0.0.1.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the engine's smtp_url for this server (without credentials).
func (s *Server) URL() string { return "smtp://" + s.Addr() }

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait waits until at least n messages were accepted, or d passed.
func (s *Server) Wait(n int, d time.Duration) []Message {
	deadline := time.After(d)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.arrived:
		case <-deadline:
			return s.Messages()
		}
	}
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }

type session struct {
	s      *Server
	authed bool
	m      Message
}

var errAuth = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}

func (x *session) needAuth() bool {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	return x.s.user != "" && !x.authed
}

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (x *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		x.s.mu.Lock()
		defer x.s.mu.Unlock()
		if username != x.s.user || password != x.s.password {
			return errors.New("invalid credentials")
		}
		x.authed = true
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.needAuth() {
		return errAuth
	}
	x.m = Message{From: from}
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.m.To = append(x.m.To, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.m.Data = b
	if x.s.deliver != nil {
		if err := x.s.deliver(x.m); err != nil {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "delivery failed: " + err.Error()}
		}
	}
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, x.m)
	x.s.mu.Unlock()
	select {
	case x.s.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (x *session) Reset()        { x.m = Message{} }
func (x *session) Logout() error { return nil }
