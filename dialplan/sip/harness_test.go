package sip_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/dialplan/sip/siptest"
	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// promptCache holds the prompts rendered once for the whole test binary.
var promptCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ivr-prompts-")
	if err != nil {
		panic(err)
	}
	promptCache = dir
	code := pgtest.Main(m) // m.Run, then the PostgreSQL of the shared-queue tests stops
	os.RemoveAll(dir)
	// Nothing personal reached a log line of the whole run: the test
	// callers' numbers, the numbers they typed or put in their requests.
	if leaks := allLogs.leaks(personalData); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: personal data in the logs of the SIP test run:\n%s\n", strings.Join(leaks, "\n"))
		code = 1
	}
	os.Exit(code)
}

// testCaller is the number the test phones call from (their From user).
const testCaller = "0721123456"

// personalData are strings no log line of the run may hold: the test
// callers' number, a national ID number typed with the keys
// (TestNoPersonalDataInLogs), the numbers of the RFC 4475 messages.
var personalData = []string{testCaller, "1900101456781", "3035551111", "6505552222"}

// logSink keeps every log line of the run (all lines go to t.Log too).
type logSink struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines int
}

var allLogs logSink

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines += bytes.Count(p, []byte("\n"))
	return s.buf.Write(p)
}

// leaks returns the lines (masked, to report them) that hold one of secrets.
func (s *logSink) leaks(secrets []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, line := range strings.Split(s.buf.String(), "\n") {
		for _, sec := range secrets {
			if strings.Contains(line, sec) {
				out = append(out, fmt.Sprintf("%q in: %s", sec, strings.ReplaceAll(line, sec, "<"+strings.Repeat("#", len(sec))+">")))
			}
		}
	}
	return out
}

// testLogger is the logger of a test line: a text handler to t.Log, to
// allLogs and to the line's own sink, behind the same masking as the
// daemon's (redact.NewHandler).
func testLogger(t testing.TB, own *logSink) *slog.Logger {
	h := slog.NewTextHandler(io.MultiWriter(testWriter{t}, &allLogs, own), &slog.HandlerOptions{Level: testLogLevel()})
	return slog.New(redact.NewHandler(h, nil))
}

// size is the bytes and lines logged so far.
func (s *logSink) size() (bytes, lines int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Len(), s.lines
}

// line is one engine (store, prompts, SIP endpoint) on a free loopback port.
type line struct {
	eng   *ivr.Engine
	store *tickets.Store
	srv   *sip.Server
	addr  string
	port  int
	dir   string
	cfg   sip.Config
	logs  *logSink // this line's log lines
}

func loadTestPrompts(t testing.TB) *ivr.Prompts {
	t.Helper()
	p, err := ivr.LoadPrompts(ivr.PromptConfig{
		Dir:   filepath.Join("..", "..", "flows", "prompts"),
		Cache: promptCache,
		Lang:  "ro",
		Rates: []int{8000, 16000},
	})
	if err != nil {
		t.Fatalf("prompts: %v", err)
	}
	return p
}

var promptsOnce sync.Mutex

// startLine starts an engine; adjust lets a test change the SIP config.
func startLine(t testing.TB, adjust func(*sip.Config, *ivr.Engine)) *line {
	t.Helper()
	if adjust == nil {
		return startLineStore(t, nil)
	}
	return startLineStore(t, func(c *sip.Config, e *ivr.Engine, _ *tickets.Store) { adjust(c, e) })
}

// agentDirectory is the SIP agents of the line's database (a second handle
// on st's SQLite file, closed when the test ends).
func agentDirectory(t testing.TB, st *tickets.Store) queue.Directory {
	t.Helper()
	db, err := store.Open(context.Background(), store.SQLiteURL(st.Path()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return queue.Directory{DB: db}
}

// openKB opens a knowledge base index beside st's SQLite file (closed when
// the test ends).
func openKB(t testing.TB, st *tickets.Store) (*kb.Index, error) {
	ix, err := kb.Open(kb.IndexPath(filepath.Dir(st.Path())), nil)
	if err == nil {
		t.Cleanup(func() { ix.Close() })
	}
	return ix, err
}

// startLineStore is startLine for adjustments that need the line's store.
func startLineStore(t testing.TB, adjust func(*sip.Config, *ivr.Engine, *tickets.Store)) *line {
	t.Helper()
	promptsOnce.Lock()
	prompts := loadTestPrompts(t)
	promptsOnce.Unlock()

	dir := t.TempDir()
	store, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	logs := &logSink{}
	calls := store.NewCallLog(0, testLogger(t, logs))
	t.Cleanup(func() { calls.Close() })
	eng := &ivr.Engine{
		Calls:   calls,
		Metrics: ivr.NewMetrics(),
		Log:     testLogger(t, logs),
		Prompts: prompts,
		Timing:  ivr.Timing{FirstDigit: 3 * time.Second, Retries: 2},
		RecDir:  filepath.Join(dir, "recordings"),
	}
	// A free port can be taken between the check and the bind: try again.
	var (
		srv  *sip.Server
		cfg  sip.Config
		port int
	)
	for attempt := 0; ; attempt++ {
		port = freePort(t)
		cfg = sip.Config{Listen: fmt.Sprintf("127.0.0.1:%d", port), RTPTimeout: 10 * time.Second}
		if adjust != nil {
			adjust(&cfg, eng, store)
		}
		var err error
		srv, err = sip.New(cfg, eng)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ctx) }()
		select {
		case <-srv.Ready():
			t.Cleanup(func() {
				dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer dcancel()
				_ = eng.Drain(dctx)
				cancel()
				<-errc
				srv.Close()
			})
		case err := <-errc:
			cancel()
			srv.Close()
			if attempt < 5 {
				continue
			}
			t.Fatalf("serve: %v", err)
		}
		break
	}
	return &line{eng: eng, store: store, srv: srv, addr: cfg.Listen, port: port, dir: dir, cfg: cfg, logs: logs}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	// sipgo's logger is package-wide (set once per process, with the first
	// line's handler): a line it logs after that test ended (a UDP
	// connection closing late) would panic in t.Log. Such a line is dropped.
	defer func() { _ = recover() }()
	line := string(p[:len(p)-1])
	w.t.Log(line)
	if ivr.LostWrite(line) {
		w.t.Errorf("a write that belongs to the call was lost: %s", line)
	}
	return len(p), nil
}

func freePort(t testing.TB) int { return siptest.Port(t) }

// phone is a real SIP user agent (diago) calling the line over loopback.
type phone struct {
	t     *testing.T
	dg    *diago.Diago
	ua    *sipgo.UserAgent
	codec media.Codec
}

func newPhone(t *testing.T, codecs ...media.Codec) *phone {
	t.Helper()
	if len(codecs) == 0 {
		codecs = []media.Codec{media.CodecAudioUlaw, media.CodecTelephoneEvent8000}
	}
	dg, ua := siptest.NewPhone(t, testCaller, codecs...)
	return &phone{t: t, dg: dg, ua: ua, codec: codecs[0]}
}

// answered places a call to the line from a new phone offering codecs and
// fails the test unless it is answered.
func (l *line) answered(t *testing.T, codecs ...media.Codec) *call {
	t.Helper()
	c, err := newPhone(t, codecs...).dial(l, "1919", diago.InviteOptions{})
	if err != nil {
		t.Fatalf("call not answered: %v", err)
	}
	return c
}

// call is an answered call seen from the phone: it sends silence (or a
// tone) every 20 ms and decodes everything it hears.
type call struct {
	t     *testing.T
	d     *diago.DialogClientSession
	rate  int
	mu    sync.Mutex
	heard []int16
	send  chan []int16 // frames to send instead of silence
	bg    []int16      // a sound of the caller's room, looped under what is sent (under mu)
	bgOff int
	keys  chan dtmfReq // RFC 4733 keys, sent by the speaker between frames
	mute  chan bool
	wg    sync.WaitGroup
	stop  context.CancelFunc
}

func (p *phone) dial(l *line, user string, opts diago.InviteOptions) (*call, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := invite(ctx, p.dg, gosip.Uri{User: user, Host: "127.0.0.1", Port: l.port}, opts)
	if err != nil {
		return nil, err
	}
	c := &call{t: p.t, d: d, send: make(chan []int16, 500), keys: make(chan dtmfReq), mute: make(chan bool, 1)}
	c.start()
	p.t.Cleanup(func() { c.hangup() })
	return c, nil
}

func (c *call) start() {
	ms := c.d.MediaSession()
	codec := media.CodecAudioFromSession(ms)
	dec, err := audio.NewDecoder(codec.Name)
	if err != nil {
		c.t.Fatal(err)
	}
	enc, err := audio.NewEncoder(codec.Name)
	if err != nil {
		c.t.Fatal(err)
	}
	c.rate = dec.Rate()
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	r, err := c.d.AudioReader()
	if err != nil {
		c.t.Fatal(err)
	}
	w, err := c.d.AudioWriter()
	if err != nil {
		c.t.Fatal(err)
	}
	// diago's DTMF writer shares the audio writer's packet state without a
	// lock, so the speaker goroutine sends both, like a phone that sends
	// events instead of audio while a key is down.
	dw, err := c.d.AudioWriterDTMF()
	if err != nil {
		c.t.Fatal(err)
	}
	c.wg.Add(2)
	go func() { // listen
		defer c.wg.Done()
		buf := make([]byte, media.RTPBufSize)
		pcm := make([]int16, 48000/10)
		for {
			n, err := r.Read(buf)
			if err != nil {
				return
			}
			if n == 0 {
				continue
			}
			m, err := dec.Decode(pcm, buf[:n])
			if err != nil {
				continue
			}
			c.mu.Lock()
			c.heard = append(c.heard, pcm[:m]...)
			c.mu.Unlock()
		}
	}()
	go func() { // speak: paced by diago's RTP writer clock
		defer c.wg.Done()
		silence := make([]int16, audio.SamplesPerFrame(enc.Rate()))
		payload := make([]byte, 1500)
		muted := false
		for ctx.Err() == nil {
			select {
			case muted = <-c.mute:
			case k := <-c.keys:
				k.done <- dw.WriteDTMF(k.key)
				continue
			default:
			}
			if muted {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			frame := silence
			select {
			case frame = <-c.send:
			default:
			}
			frame = c.withBackground(frame)
			n, err := enc.Encode(payload, frame)
			if err != nil {
				c.t.Errorf("encode: %v", err)
				return
			}
			if _, err := w.Write(payload[:n]); err != nil {
				return
			}
		}
	}()
}

// background loops pcm (at the call's rate) under everything the phone
// sends from now on: the caller's room.
func (c *call) background(pcm []int16) {
	c.mu.Lock()
	c.bg, c.bgOff = pcm, 0
	c.mu.Unlock()
}

// withBackground returns frame with the room's sound added (a new slice),
// or frame itself when the room is quiet.
func (c *call) withBackground(frame []int16) []int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bg) == 0 {
		return frame
	}
	out := make([]int16, len(frame))
	for i, v := range frame {
		out[i] = clip16(float64(v) + float64(c.bg[c.bgOff]))
		c.bgOff = (c.bgOff + 1) % len(c.bg)
	}
	return out
}

// heardSince returns a copy of the audio heard from sample index from.
func (c *call) heardSince(from int) []int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if from > len(c.heard) {
		from = len(c.heard)
	}
	return append([]int16(nil), c.heard[from:]...)
}

// heardSpeech is the number of 20 ms frames heard since sample from that
// are louder than -40 dBFS: prompt audio, not the silence of a line
// waiting for a slow render.
func (c *call) heardSpeech(from int) int {
	n := 0
	for _, v := range envelope(c.heardSince(from), c.rate) {
		if v > 50 { // as speechSpan
			n++
		}
	}
	return n
}

func (c *call) heardLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.heard)
}

func (c *call) hangup() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if c.d.Context().Err() == nil {
		_ = c.d.Hangup(ctx)
	}
	c.stop()
	c.d.Close()
	c.wg.Wait()
}

// dtmf sends a key as RFC 4733 events.
func (c *call) dtmf(key rune) {
	c.t.Helper()
	done := make(chan error, 1)
	c.keys <- dtmfReq{key: key, done: done}
	if err := <-done; err != nil {
		c.t.Fatalf("rfc4733 %c: %v", key, err)
	}
}

// press sends keys as a caller presses them: RFC 4733 events with the
// phone's audio running between two presses (diago sends an event without
// advancing the RTP timestamp, and two presses of one key back to back
// would be one event to the line).
func (c *call) press(keys string) {
	c.t.Helper()
	for _, k := range keys {
		c.dtmf(k)
		time.Sleep(60 * time.Millisecond)
	}
}

// info sends a key as SIP INFO and returns the response status.
func (c *call) info(contentType, body string) int {
	c.t.Helper()
	req := gosip.NewRequest(gosip.INFO, c.d.InviteResponse.Contact().Address)
	req.AppendHeader(gosip.NewHeader("Content-Type", contentType))
	req.SetBody([]byte(body))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := c.d.Do(ctx, req)
	if err != nil {
		c.t.Fatalf("INFO: %v", err)
	}
	return res.StatusCode
}

// pressToEnd presses a key that ends the menu (RFC 4733) and fails the
// test unless the line hangs up within 20 s (goodbye included).
func (c *call) pressToEnd(key rune) {
	c.t.Helper()
	c.dtmf(key)
	if !c.waitEnded(20 * time.Second) {
		c.t.Fatalf("the line did not hang up after %c", key)
	}
}

// waitEnded waits until the line hangs up on the phone.
func (c *call) waitEnded(limit time.Duration) bool {
	select {
	case <-c.d.Context().Done():
		return true
	case <-time.After(limit):
		return false
	}
}

// speech analysis -----------------------------------------------------------

// envelope is the level per 20 ms frame, in dB.
func envelope(pcm []int16, rate int) []float64 {
	n := rate / 50
	var out []float64
	for off := 0; off+n <= len(pcm); off += n {
		out = append(out, 20*math.Log10(audio.RMS(pcm[off:off+n])+1))
	}
	return out
}

// speechSpan returns the first and last 20 ms frame louder than -40 dBFS
// (about 330 in linear units), or -1, -1 for silence.
func speechSpan(env []float64) (first, last int) {
	first, last = -1, -1
	for i, v := range env {
		if v > 50 { // 20*log10(330)
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first, last
}

// match finds where prompt sits in heard and how well the level envelopes
// correlate there (1 = same shape).
func match(heard, prompt []float64) (offset int, corr float64) {
	best := -2.0
	for off := 0; off+len(prompt) <= len(heard); off++ {
		c := pearson(heard[off:off+len(prompt)], prompt)
		if c > best {
			best, offset = c, off
		}
	}
	return offset, best
}

func pearson(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= float64(len(a))
	mb /= float64(len(b))
	var num, da, db float64
	for i := range a {
		x, y := a[i]-ma, b[i]-mb
		num += x * y
		da += x * x
		db += y * y
	}
	if da == 0 || db == 0 {
		return 0
	}
	return num / math.Sqrt(da*db)
}

// promptEnvelope returns the level envelope of a prompt at rate.
func promptEnvelope(t testing.TB, p *ivr.Prompts, name string, rate int) []float64 {
	t.Helper()
	pcm, err := p.Get(name, rate)
	if err != nil {
		t.Fatal(err)
	}
	return envelope(pcm, rate)
}

// waitFor polls cond every 20 ms until it holds or limit passes.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// newClient returns a plain SIP client on the phone's user agent.
func newClient(p *phone) (*sipgo.Client, error) {
	return sipgo.NewClient(p.ua, sipgo.WithClientHostname("127.0.0.1"))
}

// testLogLevel is warn, or debug with IVR_TEST_DEBUG=1.
func testLogLevel() slog.Level {
	if os.Getenv("IVR_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

type dtmfReq struct {
	key  rune
	done chan error
}

var invite = siptest.Invite
