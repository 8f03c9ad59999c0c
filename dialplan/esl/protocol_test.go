package esl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func plainEvent(body string) string {
	return fmt.Sprintf("Content-Length: %d\nContent-Type: text/event-plain\n\n%s", len(body), body)
}

// TestSamplesParse: the testdata samples decode as FreeSWITCH means them.
func TestSamplesParse(t *testing.T) {
	fr := newFrameReader(strings.NewReader(sample(t, "connect_reply.txt")))
	f, err := fr.read()
	if err != nil {
		t.Fatal(err)
	}
	if text, ok := replyText(f); !ok || text != "+OK" {
		t.Errorf("connect reply %q %v", text, ok)
	}
	if f.contentType() != typeCommandReply || decodeValue(f.header.Get("Caller-Caller-ID-Name")) != "Ion Popescu" || f.header.Get("Unique-ID") != sampleUUID {
		t.Errorf("connect reply headers: %v", f.header)
	}
	for name, want := range map[string]string{"dtmf.txt": "DTMF", "channel_hangup.txt": "CHANNEL_HANGUP", "channel_hangup_complete.txt": "CHANNEL_HANGUP_COMPLETE",
		"channel_answer.txt": "CHANNEL_ANSWER", "channel_execute_complete.txt": "CHANNEL_EXECUTE_COMPLETE", "channel_bridge.txt": "CHANNEL_BRIDGE"} {
		fr := newFrameReader(strings.NewReader(plainEvent(sample(t, name))))
		f, err := fr.read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ev, err := parseEventPlain(f.body, defaultMaxBodySize)
		if err != nil || ev.Name != want || ev.Get("Unique-ID") != sampleUUID {
			t.Errorf("%s: %v %+v", name, err, ev)
		}
		if strings.Contains(ev.summary(), "0722123456") {
			t.Errorf("%s: the summary logs the caller's number: %s", name, ev.summary())
		}
	}
	ev, err := parseEventJSON([]byte(`{"Event-Name":"DTMF","DTMF-Digit":"5","Unique-ID":"u","_body":"b","Event-Sequence":12}`))
	if err != nil || ev.Name != "DTMF" || ev.Get("dtmf-digit") != "5" || ev.Body != "b" || ev.Get("Event-Sequence") != "12" {
		t.Errorf("json event: %v %+v", err, ev)
	}
}

// pipeConn runs a conn against bytes written by the test as FreeSWITCH.
func pipeConn(t *testing.T, timeout time.Duration) (*conn, net.Conn, *Metrics, *logLines) {
	t.Helper()
	a, b := net.Pipe()
	m := NewMetrics()
	lines := &logLines{}
	c := newConn(a, lines.record, m, timeout)
	t.Cleanup(func() { b.Close(); c.Close() })
	return c, b, m, lines
}

type logLines struct {
	mu sync.Mutex
	l  []string
}

func (l *logLines) record(kind, detail string) {
	l.mu.Lock()
	l.l = append(l.l, kind+" "+detail)
	l.mu.Unlock()
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.l, "\n")
}

func waitDone(t *testing.T, c *conn) error {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(3 * time.Second):
		t.Fatal("the connection did not end")
	}
	return nil
}

// TestRudeRejection: FreeSWITCH's ACL refusal ends the connection with
// ErrRejected; nothing exits or panics.
func TestRudeRejection(t *testing.T) {
	c, fs, m, lines := pipeConn(t, time.Second)
	go io.WriteString(fs, "Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n")
	if err := waitDone(t, c); !errors.Is(err, ErrRejected) {
		t.Fatalf("err %v, want ErrRejected", err)
	}
	if m.RudeRejections.Load() != 1 || !strings.Contains(lines.String(), "esl.rude-rejection Access Denied, go away.") {
		t.Errorf("rejections %d, log %s", m.RudeRejections.Load(), lines)
	}
}

// TestGarbageAndTruncatedFrames: whatever arrives, the reader ends with an
// error or skips the frame, within its limits, and never panics.
func TestGarbageAndTruncatedFrames(t *testing.T) {
	cases := []struct {
		name, in string
		want     error // nil: the connection goes on (checked with a DTMF event after)
	}{
		{"binary garbage", "\x00\x01\x02\xff\xfe garbage\n\n", ErrProtocol},
		{"line without colon", "hello world\n\n", ErrProtocol},
		{"negative length", "Content-Type: api/response\nContent-Length: -5\n\n", ErrProtocol},
		{"huge length", "Content-Type: api/response\nContent-Length: 99999999999\n\n", ErrProtocol},
		{"length not a number", "Content-Type: api/response\nContent-Length: 12abc\n\n", ErrProtocol},
		{"long line", "X-A: " + strings.Repeat("a", 70000) + "\n\n", ErrProtocol},
		{"truncated body", "Content-Type: text/event-plain\nContent-Length: 500\n\nEvent-Name: DTMF\n", io.ErrUnexpectedEOF},
		{"truncated header", "Content-Type: text/event-pl", io.ErrUnexpectedEOF},
		{"unknown content type", "Content-Type: text/weird\nContent-Length: 3\n\nabc", nil},
		{"event without name", plainEvent("Unique-ID: x\n\n"), nil},
		{"event cut inside", plainEvent("Event-Name: DTMF\nUnique-ID: x"), nil},
		{"bad json", "Content-Type: text/event-json\nContent-Length: 5\n\n{\"a\":", nil},
		{"reply nobody asked for", "Content-Type: command/reply\nReply-Text: +OK\n\n", nil},
		{"empty reply text", "Content-Type: command/reply\n\n", nil},
		{"log data", "Content-Type: log/data\nContent-Length: 4\n\nxxxx", nil},
		{"disconnect notice", "Content-Type: text/disconnect-notice\nContent-Length: 0\n\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, fs, _, _ := pipeConn(t, time.Second)
			go func() {
				_, _ = io.WriteString(fs, tc.in)
				if tc.want == nil {
					_, _ = io.WriteString(fs, plainEvent("Event-Name: DTMF\nDTMF-Digit: 7\n\n"))
				} else {
					fs.Close()
				}
			}()
			if tc.want != nil {
				if err := waitDone(t, c); !errors.Is(err, tc.want) {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
				return
			}
			for {
				select {
				case ev := <-c.Events():
					if ev.Name == "DTMF" && ev.Get("DTMF-Digit") == "7" {
						return
					}
				case <-c.Done():
					t.Fatalf("the connection ended: %v", c.Err())
				case <-time.After(3 * time.Second):
					t.Fatal("the stream did not go on after the bad frame")
				}
			}
		})
	}
}

// TestShortRepliesAndErrors: -ERR, empty and short replies are errors,
// not panics; a stalled reply times out and closes the connection.
func TestShortRepliesAndErrors(t *testing.T) {
	c, fs, m, _ := pipeConn(t, 300*time.Millisecond)
	r := bufio.NewReader(fs)
	go func() {
		for _, reply := range []string{"Content-Type: command/reply\nReply-Text: -ERR\n\n", "Content-Type: api/response\nContent-Length: 1\n\n-", "Content-Type: command/reply\nReply-Text: +\n\n"} {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			_, _ = r.ReadString('\n')
			_, _ = io.WriteString(fs, reply)
		}
		_, _ = io.ReadAll(r) // the last command gets no reply
	}()
	ctx := context.Background()
	if _, err := c.command(ctx, []byte("a\n\n"), "a"); err == nil {
		t.Error("-ERR is not an error")
	}
	if _, err := c.command(ctx, []byte("api b\n\n"), "api b"); err == nil {
		t.Error("api reply '-' is not an error")
	}
	if _, err := c.command(ctx, []byte("c\n\n"), "c"); err != nil {
		t.Errorf("'+' reply: %v", err)
	}
	start := time.Now()
	if _, err := c.command(ctx, []byte("d\n\n"), "d"); !errors.Is(err, ErrTimeout) {
		t.Errorf("stalled: %v", err)
	}
	if time.Since(start) > 2*time.Second || m.CommandTimeouts.Load() != 1 {
		t.Errorf("timeout took %s, counted %d", time.Since(start), m.CommandTimeouts.Load())
	}
	waitDone(t, c)
}

// TestCommandsRefuseLineBreaks: no command or sendmsg header carries a
// line break to FreeSWITCH.
func TestCommandsRefuseLineBreaks(t *testing.T) {
	if _, err := command("api uuid_kill x\n\napi status"); !errors.Is(err, ErrBadArgument) {
		t.Errorf("command: %v", err)
	}
	if _, err := sendmsg("u", [2]string{"execute-app-arg", "x\ncall-command: hangup"}); !errors.Is(err, ErrBadArgument) {
		t.Errorf("sendmsg: %v", err)
	}
	if _, err := sendmsg("u\nx"); !errors.Is(err, ErrBadArgument) {
		t.Errorf("sendmsg uuid: %v", err)
	}
	if got := freeText("a\r\nb ${x} 'q' \\ c,d", 100); got != "a b $(x) q / c;d" {
		t.Errorf("freeText = %q", got)
	}
	if got := freeText(strings.Repeat("ă", 200), 11); got != "ăăăăă" {
		t.Errorf("freeText cut = %q", got)
	}
}

// TestOutboundGarbage: a peer that sends garbage, a rude rejection or
// nothing at all instead of FreeSWITCH's connect reply costs the engine
// nothing: the session ends, no call is opened.
func TestOutboundGarbage(t *testing.T) {
	e := startEngine(t, waitFlow(nil), func(c *Config) { c.CommandTimeout = 300 * time.Millisecond })
	for _, in := range []string{"\x16\x03\x01\x02\x00 TLS hello\n\n", "Content-Type: text/rude-rejection\nContent-Length: 3\n\nno\n", "", "Content-Type: command/reply\nReply-Text: %2BOK\n\n"} {
		nc, err := net.Dial("tcp", e.eslAddr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(nc, in)
		_, _ = io.Copy(io.Discard, nc) // until the engine closes
		nc.Close()
	}
	if !waitFor(3*time.Second, func() bool { return e.srv.Metrics.ActiveChannels.Load() == 0 }) || e.eng.Metrics.ActiveCalls.Load() != 0 {
		t.Errorf("left: %d channels, %d calls", e.srv.Metrics.ActiveChannels.Load(), e.eng.Metrics.ActiveCalls.Load())
	}
	if e.srv.Metrics.Sessions.Load() != 4 {
		t.Errorf("sessions %d", e.srv.Metrics.Sessions.Load())
	}
}

// fakeInbound is FreeSWITCH's event socket listener in inbound mode.
func fakeInbound(t *testing.T, serve func(nc net.Conn, r *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				serve(nc, bufio.NewReader(nc))
			}()
		}
	}()
	return ln.Addr().String()
}

func readCmd(r *bufio.Reader) string {
	var first string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return first
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			if first != "" {
				return first
			}
			continue
		}
		if first == "" {
			first = l
		}
	}
}

// TestInboundReconnectsAndHidesPassword: the inbound connection
// authenticates, subscribes, follows HEARTBEAT, comes back after
// FreeSWITCH drops it (reconnects counted), survives a rude rejection, and
// never logs the password.
func TestInboundReconnectsAndHidesPassword(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	conns := 0
	addr := fakeInbound(t, func(nc net.Conn, r *bufio.Reader) {
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		if n == 2 {
			io.WriteString(nc, "Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n")
			return
		}
		io.WriteString(nc, "Content-Type: auth/request\n\n")
		auth := readCmd(r)
		mu.Lock()
		seen = append(seen, auth)
		mu.Unlock()
		if auth != "auth s3cret-Pw" {
			io.WriteString(nc, "Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
			return
		}
		io.WriteString(nc, "Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
		ev := readCmd(r)
		mu.Lock()
		seen = append(seen, ev)
		mu.Unlock()
		io.WriteString(nc, "Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n")
		io.WriteString(nc, plainEvent("Event-Name: HEARTBEAT\nSession-Count: 3\n\n"))
		if n == 1 {
			time.Sleep(100 * time.Millisecond)
			return // FreeSWITCH restarts
		}
		readCmd(r) // hold until the client leaves
	})
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logBuf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := NewMetrics()
	in := &Inbound{Addr: addr, Password: "s3cret-Pw", Metrics: m, Log: log, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Timeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.Run(ctx) }()
	if !waitFor(5*time.Second, func() bool { return m.Reconnects.Load() == 1 && m.InboundConnected.Load() == 1 }) {
		t.Fatalf("reconnects %d, connected %d", m.Reconnects.Load(), m.InboundConnected.Load())
	}
	cancel()
	<-done
	if m.InboundConnected.Load() != 0 || m.RudeRejections.Load() != 1 {
		t.Errorf("connected %d after stop, rude rejections %d", m.InboundConnected.Load(), m.RudeRejections.Load())
	}
	mu.Lock()
	if len(seen) < 2 || seen[1] != "event plain CHANNEL_HANGUP_COMPLETE HEARTBEAT" {
		t.Errorf("commands %q", seen)
	}
	mu.Unlock()
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logBuf.String(), "s3cret") {
		t.Errorf("the password reached the log:\n%s", logBuf.String())
	}
	if !strings.Contains(logBuf.String(), "auth ********") {
		t.Errorf("the auth command is not in the debug log:\n%s", logBuf.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// FuzzFrames: no input makes the reader or the event decoders panic or
// allocate past their limits.
func FuzzFrames(f *testing.F) {
	for _, name := range []string{"connect_reply.txt", "dtmf.txt", "channel_hangup.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add([]byte(plainEvent(string(b))))
	}
	f.Add([]byte("Content-Type: text/rude-rejection\nContent-Length: 3\n\nno\n"))
	f.Add([]byte("Content-Type: text/event-json\nContent-Length: 2\n\n{}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := newFrameReader(bytes.NewReader(in))
		fr.maxBody = 1 << 16
		for range 8 {
			fr0, err := fr.read()
			if err != nil {
				return
			}
			replyText(fr0)
			if ev, err := parseEventPlain(fr0.body, 1<<16); err == nil {
				_ = ev.summary()
			}
			_, _ = parseEventJSON(fr0.body)
		}
	})
}

// BenchmarkParseEvent: decoding one CHANNEL_DATA-sized plain event (about
// 90 headers), as the reader does for every event.
func BenchmarkParseEvent(b *testing.B) {
	raw, err := os.ReadFile("testdata/connect_reply.txt")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := parseEventPlain(raw, defaultMaxBodySize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadEvents: frames read from a stream of DTMF events, as one
// connection's reader sees them.
func BenchmarkReadEvents(b *testing.B) {
	raw, err := os.ReadFile("testdata/dtmf.txt")
	if err != nil {
		b.Fatal(err)
	}
	one := []byte(plainEvent(string(raw)))
	stream := bytes.Repeat(one, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(one)))
	var fr *frameReader
	var r *bytes.Reader
	n := 0
	for b.Loop() {
		if n%1000 == 0 {
			r = bytes.NewReader(stream)
			fr = newFrameReader(r)
		}
		n++
		f, err := fr.read()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := parseEventPlain(f.body, defaultMaxBodySize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommandRoundTrip: one command and its reply over loopback TCP,
// the adapter's overhead on every answer, bridge, setvar and transfer.
func BenchmarkCommandRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		r := bufio.NewReader(nc)
		for {
			if readCmd(r) == "" {
				return
			}
			if _, err := io.WriteString(nc, "Content-Type: api/response\nContent-Length: 4\n\n+OK\n"); err != nil {
				return
			}
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c := newConn(nc, nil, NewMetrics(), 5*time.Second)
	defer c.Close()
	wire := []byte("api uuid_setvar 6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b IVR_TICKET 40517263\n\n")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.command(ctx, wire, "api uuid_setvar"); err != nil {
			b.Fatal(err)
		}
	}
}
