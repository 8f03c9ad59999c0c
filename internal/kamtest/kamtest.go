// Package kamtest runs the shipped Kamailio configuration
// (dialplan/kamailio/kamailio.cfg) for a test: Debian's kamailio in the
// foreground, on a free loopback UDP port, with a dispatcher list of the
// engines given (set 1) in a temporary folder, stopped by t.Cleanup.
// Without kamailio installed the test follows internal/testenv's rule
// (fails under CI=true and make, skips elsewhere).
package kamtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govline/ivr/internal/testenv"
)

// Config is the shipped configuration's path, found from this file.
func Config(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("kamtest: no source path")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "dialplan", "kamailio", "kamailio.cfg")
}

// Start runs Kamailio in front of engines ("127.0.0.1:5060", ...) and
// returns its UDP port once it answers OPTIONS.
func Start(t testing.TB, engines ...string) int {
	t.Helper()
	bin := testenv.Tool(t, "kamailio", "kamailio")
	dir := t.TempDir()
	var list bytes.Buffer
	for i, e := range engines {
		fmt.Fprintf(&list, "1 sip:%s 0 0 name=engine-%d\n", e, i+1)
	}
	dslist := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(dslist, list.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	out := &syncBuffer{}
	cmd := exec.Command(bin, "-DD", "-E", "-f", Config(t), "-Y", dir, "-P", filepath.Join(dir, "kamailio.pid"),
		"-A", fmt.Sprintf("LISTEN=udp:127.0.0.1:%d", port), "-A", `DSLIST="`+dslist+`"`)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("kamailio's log:\n%s", out.tail(40))
		}
	})
	if !waitOptions(port, 10*time.Second) {
		t.Fatalf("kamailio did not start:\n%s", out.tail(40))
	}
	return port
}

// waitOptions sends OPTIONS to Kamailio until it answers (its own
// keepalive answer, 200).
func waitOptions(port int, limit time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for ctx.Err() == nil {
		if optionsOK(port) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func optionsOK(port int) bool {
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr)
	msg := fmt.Sprintf("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKkamtest%d\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:kamtest@127.0.0.1>;tag=kt\r\nTo: <sip:127.0.0.1:%d>\r\nCall-ID: kamtest-%d\r\n"+
		"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", port, local.Port, time.Now().UnixNano(), port, time.Now().UnixNano())
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 200")
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(s.b.String(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
