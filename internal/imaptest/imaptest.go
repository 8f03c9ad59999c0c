// Package imaptest runs a real IMAP server for a test: Debian's Dovecot
// (dovecot-imapd) started in the foreground from a configuration in a
// temporary folder, on a free loopback port, with a maildir per user and
// a passwd-file of users. Each Start makes a server of its own, stopped
// and removed by t.Cleanup:
//
//	srv := imaptest.Start(t)
//	srv.AddUser(t, "support", "secret")
//	srv.Deliver(t, "support", rawMessage) // a message arrives
//	url := srv.URL("support", "secret")   // imap://support:secret@127.0.0.1:PORT/INBOX
//
// Deliver writes the message into the user's maildir as a local delivery
// agent does (tmp/ then a rename into new/), so the server sees a message
// arrive while a client is connected (IDLE reports it).
//
// Without Dovecot installed a test follows internal/testenv's rule: it
// fails under CI=true and under make, and skips elsewhere naming the
// package. As root, the mail is owned by nobody (65534) and the server's
// own processes run as the dovecot and dovenull users, as Debian's package
// sets them up; otherwise everything runs as the current user.
package imaptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govline/ivr/internal/testenv"
)

// Package is the Debian package that brings the server.
const Package = "dovecot-imapd"

// dovecotBin is where Debian installs the master process.
const dovecotBin = "/usr/sbin/dovecot"

// Server is one Dovecot instance.
type Server struct {
	dir      string
	port     int
	tlsPort  int
	pool     *x509.CertPool
	uid, gid int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	users  []string
}

// Start starts a server for the test; it is stopped by t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	_, err := os.Stat(dovecotBin)
	if err == nil {
		if _, e := os.Stat("/usr/lib/dovecot/imap"); e != nil {
			err = e
		}
	}
	if err != nil {
		testenv.Missing(t, "Dovecot", "Debian package "+Package+" (make deps)", err)
		return nil
	}
	dir, err := os.MkdirTemp("", "imaptest-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755) // the dovecot user traverses it
	s := &Server{dir: dir, uid: os.Getuid(), gid: os.Getgid()}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	internal, login := "dovecot", "dovenull"
	if os.Geteuid() == 0 {
		s.uid, s.gid = 65534, 65534
	} else {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		internal, login = u.Username, u.Username
	}
	for _, d := range []string{"run", "state", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chown(filepath.Join(dir, "mail"), s.uid, s.gid)
	if err := os.WriteFile(s.passwd(), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if s.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if s.tlsPort, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if s.pool, err = writeCert(dir); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`# written by internal/imaptest
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = %[3]s
default_internal_group = %[3]s
default_login_user = %[4]s
first_valid_uid = %[5]d
last_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:%[1]s/mail/%%u
mail_uid = %[5]d
mail_gid = %[6]d
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = uid=%[5]d gid=%[6]d home=%[1]s/mail/%%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[2]d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[7]d
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
protocol imap {
  mail_max_userip_connections = 100
}
`, dir, s.port, internal, login, s.uid, s.gid, s.tlsPort)
	if err := os.WriteFile(s.conf(), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *Server) conf() string   { return filepath.Join(s.dir, "dovecot.conf") }
func (s *Server) passwd() string { return filepath.Join(s.dir, "passwd") }

// Addr is the server's host:port on 127.0.0.1.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// TLSAddr is the host:port of the server's implicit TLS (imaps) listener;
// the plain listener (Addr) offers STARTTLS.
func (s *Server) TLSAddr() string { return "127.0.0.1:" + strconv.Itoa(s.tlsPort) }

// CertPool trusts the server's certificate (self-signed for 127.0.0.1 and
// localhost, made by Start).
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// writeCert makes a self-signed certificate for 127.0.0.1 and localhost
// into dir/cert.pem and dir/key.pem.
func writeCert(dir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imaptest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

// URL is the engine's imap_url for user's INBOX.
func (s *Server) URL(user, password string) string {
	u := url.URL{Scheme: "imap", User: url.UserPassword(user, password), Host: s.Addr(), Path: "/INBOX"}
	return u.String()
}

// AddUser adds a mailbox user with a password (plain, a test server).
func (s *Server) AddUser(t testing.TB, name, password string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.passwd(), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s:{PLAIN}%s::::::\n", name, password); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		p := filepath.Join(s.dir, "mail", name, sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		_ = os.Chown(p, s.uid, s.gid)
	}
	s.users = append(s.users, name)
}

// Deliver puts raw into user's INBOX as a local delivery agent does.
func (s *Server) Deliver(t testing.TB, user string, raw []byte) {
	t.Helper()
	if err := s.DeliverErr(user, raw); err != nil {
		t.Fatal(err)
	}
}

// DeliverErr is Deliver for a goroutine (no t).
func (s *Server) DeliverErr(user string, raw []byte) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("%d.%s.imaptest", time.Now().UnixNano(), hex.EncodeToString(b[:]))
	tmp := filepath.Join(s.dir, "mail", user, "tmp", name)
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	_ = os.Chown(tmp, s.uid, s.gid)
	return os.Rename(tmp, filepath.Join(s.dir, "mail", user, "new", name))
}

// Start starts the server (after Stop) and waits until it accepts
// connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("imaptest: already running")
	}
	cmd := exec.Command(dovecotBin, "-F", "-c", s.conf())
	logf, err := os.OpenFile(filepath.Join(s.dir, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("imaptest: start dovecot: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("imaptest: dovecot exited at start: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("imaptest: dovecot not listening after 20 s: %s", s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server (its whole process group) and waits for it.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	// Its children (imap, auth) leave with the master; wait for the port.
	for range 100 {
		c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd = nil
}

// Restart stops and starts the server on the same port.
func (s *Server) Restart() error {
	s.Stop()
	return s.Start()
}

// Log is the server's log so far (for a failing test's message).
func (s *Server) Log() string { return s.logTail() }

func (s *Server) logTail() string {
	var out []string
	for _, f := range []string{"dovecot.log", "stderr.log"} {
		b, _ := os.ReadFile(filepath.Join(s.dir, f))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	return strings.Join(out, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
