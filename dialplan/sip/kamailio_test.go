package sip_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/diago"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/internal/testenv"
)

// startKamailio runs the shipped dialplan/kamailio/kamailio.cfg on a free
// loopback port with a dispatcher list of the given engines' ports (set 1),
// stopped when the test ends. It returns Kamailio's port.
func startKamailio(t *testing.T, engines ...int) int {
	t.Helper()
	bin := testenv.Tool(t, "kamailio", "kamailio")
	cfg, err := filepath.Abs(filepath.Join("..", "kamailio", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var list bytes.Buffer
	for i, p := range engines {
		fmt.Fprintf(&list, "1 sip:127.0.0.1:%d 0 0 name=engine-%d\n", p, i+1)
	}
	dslist := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(dslist, list.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	var out bytes.Buffer
	cmd := exec.Command(bin, "-DD", "-E", "-f", cfg, "-Y", dir, "-P", filepath.Join(dir, "kamailio.pid"),
		"-A", fmt.Sprintf("LISTEN=udp:127.0.0.1:%d", port), "-A", `DSLIST="`+dslist+`"`)
	cmd.Stdout, cmd.Stderr = &out, &out
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
			t.Logf("kamailio's log:\n%s", lastLinesOf(out.String(), 40))
		}
	})
	// Ready when it answers its own OPTIONS keepalive.
	p := newPhone(t)
	client, err := newClient(p)
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		res, err := client.Do(ctx, gosip.NewRequest(gosip.OPTIONS, gosip.Uri{Host: "127.0.0.1", Port: port}))
		return err == nil && res.StatusCode == 200
	}) {
		t.Fatalf("kamailio did not start:\n%s", lastLinesOf(out.String(), 40))
	}
	return port
}

func lastLinesOf(s string, n int) string {
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// The shipped Kamailio configuration in front of two engines and a dead
// destination: calls through it are answered by both engines (none lost
// to the dead one: failover); a draining engine answers the probes with
// 503 and new calls go to the other while its own calls go on.
func TestThroughKamailio(t *testing.T) {
	a, b := startLine(t, nil), startLine(t, nil)
	dead := freePort(t) // nothing listens there
	kam := startKamailio(t, a.port, dead, b.port)
	via := &line{port: kam}
	dial := func() *call {
		t.Helper()
		c, err := newPhone(t).dial(via, "1919", diago.InviteOptions{})
		if err != nil {
			t.Fatalf("a call through kamailio was not answered: %v", err)
		}
		return c
	}
	const first = 4
	for range first {
		dial()
	}
	na, nb := a.eng.Metrics.ActiveCalls.Load(), b.eng.Metrics.ActiveCalls.Load()
	if na+nb != first || na == 0 || nb == 0 {
		t.Fatalf("engines hold %d and %d calls, want the %d calls through kamailio on both", na, nb, first)
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drained <- b.eng.Drain(ctx)
	}()
	// Probing every 2 s: B is out of the set after its next probe's 503,
	// so no new INVITE reaches it (without the probe's 503 they would,
	// and be refused, and fail over).
	time.Sleep(5 * time.Second)
	refusedBefore := b.logs.count("call refused")
	for range 3 {
		dial()
	}
	if n := b.logs.count("call refused") - refusedBefore; n != 0 {
		t.Errorf("draining engine B was sent %d new calls after its probes answered 503", n)
	}
	if got := a.eng.Metrics.ActiveCalls.Load(); got != na+3 {
		t.Errorf("engine A holds %d calls after 3 more, want %d (B drains)", got, na+3)
	}
	if got := b.eng.Metrics.ActiveCalls.Load(); got != nb {
		t.Errorf("draining engine B holds %d calls, want its %d calls going on", got, nb)
	}
	select {
	case err := <-drained:
		t.Fatalf("engine B finished draining with its calls still up: %v", err)
	default:
	}
}

// count returns how many log lines hold sub.
func (s *logSink) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Count(s.buf.Bytes(), []byte(sub))
}
