package ari

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/ari/aritest"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
)

var promptCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ivr-ari-prompts-")
	if err != nil {
		panic(err)
	}
	promptCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var promptsMu sync.Mutex

// syncBuffer collects every log line of a test, to check that no
// credential reaches a log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t   testing.TB
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if os.Getenv("IVR_TEST_DEBUG") != "" {
		b.t.Log(strings.TrimSpace(string(p)))
	}
	if ivr.LostWrite(string(p)) {
		b.t.Errorf("a write that belongs to the call was lost: %s", strings.TrimSpace(string(p)))
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// line is an engine with a real store, the rendered prompts and the ARI
// adapter connected to a fake Asterisk.
type line struct {
	t     testing.TB
	ast   *aritest.Asterisk
	eng   *ivr.Engine
	store *tickets.Store
	calls *tickets.CallLog
	srv   *Server
	logs  *syncBuffer
	stop  func()

	password string // the ARI password, which no log may show
}

func startLine(t testing.TB, adjust func(*Config)) *line {
	t.Helper()
	ast := aritest.New(t)
	l := startLineAt(t, ServerConfig{URL: ast.URL(), User: ast.User, Password: ast.Password}, adjust)
	l.ast = ast
	return l
}

// startLineAt starts the engine and the adapter connected to server.
func startLineAt(t testing.TB, server ServerConfig, adjust func(*Config)) *line {
	t.Helper()
	promptsMu.Lock()
	prompts, err := ivr.LoadPrompts(ivr.PromptConfig{
		Dir: filepath.Join("..", "..", "flows", "prompts"), Cache: promptCache, Lang: "ro", Rates: []int{8000, 16000},
	})
	promptsMu.Unlock()
	if err != nil {
		t.Fatalf("prompts: %v", err)
	}
	dir := t.TempDir()
	store, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{t: t}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	calls := store.NewCallLog(0, log)
	eng := &ivr.Engine{
		Calls: calls, Metrics: ivr.NewMetrics(), Log: log, Prompts: prompts,
		Timing: ivr.Timing{FirstDigit: 3 * time.Second, Retries: 2},
		RecDir: filepath.Join(dir, "recordings"),
	}
	cfg := Config{
		Servers:        []ServerConfig{server},
		RTPTimeout:     5 * time.Second,
		RequestTimeout: 2 * time.Second,
		ReconnectMin:   50 * time.Millisecond,
		ReconnectMax:   400 * time.Millisecond,
		PingInterval:   time.Second,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := New(cfg, eng)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	select {
	case <-srv.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("the adapter did not connect to the fake Asterisk")
	}
	l := &line{t: t, eng: eng, store: store, calls: calls, srv: srv, logs: logs, password: server.Password}
	var once sync.Once
	l.stop = func() {
		once.Do(func() {
			dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer dcancel()
			_ = eng.Drain(dctx)
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Serve did not return")
			}
			calls.Close()
		})
	}
	t.Cleanup(func() {
		l.stop()
		l.checkNoSecrets()
		store.Close()
	})
	return l
}

// checkNoSecrets fails the test if the ARI password is in a log line or
// in any call event.
func (l *line) checkNoSecrets() {
	pw := l.password
	if strings.Contains(l.logs.String(), pw) {
		l.t.Errorf("the ARI password appears in the logs")
	}
	recs, err := l.store.ListCalls(context.Background(), tickets.CallQuery{Limit: 10000})
	if err != nil {
		l.t.Errorf("list calls: %v", err)
		return
	}
	for _, r := range recs {
		evs, _ := l.store.Events(context.Background(), r.ID)
		for _, e := range evs {
			if strings.Contains(e.Detail, pw) || strings.Contains(e.Detail, "Authorization") {
				l.t.Errorf("call %s event %s carries a credential: %s", r.ID, e.Kind, e.Detail)
			}
		}
	}
}

// record waits for the call record to be closed and returns it.
func (l *line) record(id string) tickets.CallRecord {
	l.t.Helper()
	var rec tickets.CallRecord
	ok := waitFor(15*time.Second, func() bool {
		_ = l.calls.Flush(context.Background())
		r, err := l.store.Call(context.Background(), id)
		rec = r
		return err == nil && r.End != nil
	})
	if !ok {
		l.t.Fatalf("call %s not closed: %+v", id, rec)
	}
	return rec
}

func (l *line) events(id string) []tickets.CallEvent {
	l.t.Helper()
	_ = l.calls.Flush(context.Background())
	evs, err := l.store.Events(context.Background(), id)
	if err != nil {
		l.t.Fatal(err)
	}
	return evs
}

// clean waits until the fake Asterisk and the adapter hold nothing.
func (l *line) clean() {
	l.t.Helper()
	m := l.srv.Metrics()
	ok := waitFor(10*time.Second, func() bool {
		ch, br, rtp := l.ast.Books()
		return ch == 0 && br == 0 && rtp == 0 && l.srv.ActiveCalls() == 0 &&
			m.Channels.Load() == 0 && m.Bridges.Load() == 0 && m.RTPPorts.Load() == 0
	})
	if !ok {
		ch, br, rtp := l.ast.Books()
		l.t.Fatalf("left behind: asterisk channels %d bridges %d rtp %d; adapter calls %d channels %d bridges %d ports %d",
			ch, br, rtp, l.srv.ActiveCalls(), m.Channels.Load(), m.Bridges.Load(), m.RTPPorts.Load())
	}
}

func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// bridged waits until the caller's media leg is up and the engine's audio
// (the greeting) is heard.
func bridged(t testing.TB, c *aritest.Caller) {
	t.Helper()
	if !waitFor(10*time.Second, c.Bridged) {
		t.Fatal("the caller was never bridged with an ExternalMedia channel")
	}
}

// speechFrames counts 20 ms frames louder than -40 dBFS.
func speechFrames(pcm []int16, rate int) int {
	n := rate / 50
	k := 0
	for off := 0; off+n <= len(pcm); off += n {
		if audio.DBFS(pcm[off:off+n]) > -40 {
			k++
		}
	}
	return k
}

func hasEvent(evs []tickets.CallEvent, kind, contains string) bool {
	for _, e := range evs {
		if e.Kind == kind && strings.Contains(e.Detail, contains) {
			return true
		}
	}
	return false
}

// readStereo reads a two-channel 16-bit WAV (the call recording: caller
// left, engine right) as interleaved samples.
func readStereo(t testing.TB, path string) ([]int16, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("recording: %v", err)
	}
	if len(b) < 44 || string(b[:4]) != "RIFF" || binary.LittleEndian.Uint16(b[22:]) != 2 {
		t.Fatalf("recording %s is not a two-channel WAV", path)
	}
	rate := int(binary.LittleEndian.Uint32(b[24:]))
	off := 12
	for off+8 <= len(b) {
		id, n := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		off += 8
		if id == "data" {
			end := min(off+n, len(b))
			pcm := make([]int16, (end-off)/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(b[off+2*i:]))
			}
			return pcm, rate
		}
		off += n + n&1
	}
	t.Fatalf("recording %s has no data chunk", path)
	return nil, 0
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// callOf finds the adapter's call for a caller channel on any server.
func (l *line) callOf(id string) *call {
	for _, cn := range l.srv.conns {
		if c := l.srv.lookup(cn, id); c != nil {
			return c
		}
	}
	return nil
}

// cleanReal waits until the adapter holds nothing (a real Asterisk has
// no books to read; its objects are checked over ARI).
func (l *line) cleanReal() {
	l.t.Helper()
	m := l.srv.Metrics()
	if !waitFor(10*time.Second, func() bool {
		return l.srv.ActiveCalls() == 0 && m.Channels.Load() == 0 && m.Bridges.Load() == 0 && m.RTPPorts.Load() == 0
	}) {
		l.t.Fatalf("left behind: calls %d channels %d bridges %d ports %d", l.srv.ActiveCalls(), m.Channels.Load(), m.Bridges.Load(), m.RTPPorts.Load())
	}
	cn := l.srv.conns[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var chans []Channel
	var bridges []Bridge
	if err := cn.cl.do(ctx, "", "GET", "/channels", nil, nil, &chans); err != nil {
		l.t.Fatal(err)
	}
	if err := cn.cl.do(ctx, "", "GET", "/bridges", nil, nil, &bridges); err != nil {
		l.t.Fatal(err)
	}
	for _, c := range chans {
		if strings.HasPrefix(c.ID, mediaPrefix) {
			l.t.Errorf("Asterisk still has %s", c.ID)
		}
	}
	for _, b := range bridges {
		if strings.HasPrefix(b.ID, bridgePrefix) {
			l.t.Errorf("Asterisk still has bridge %s", b.ID)
		}
	}
}

// holdWebSocket keeps a WebSocket for cn's application open until ctx
// ends, reading and dropping its events; the returned channel closes when
// it is closed.
func holdWebSocket(ctx context.Context, t testing.TB, cn *conn) <-chan struct{} {
	done := make(chan struct{})
	hdr := http.Header{}
	hdr.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cn.cfg.User+":"+cn.cfg.Password)))
	ws, _, err := websocket.Dial(ctx, cn.wsURL(), &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("tester WebSocket: %v", err)
	}
	go func() {
		defer close(done)
		defer ws.CloseNow()
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	}()
	return done
}
