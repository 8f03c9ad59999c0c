package esl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/dialplan/sip/siptest"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
)

var promptCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ivr-esl-prompts-")
	if err != nil {
		panic(err)
	}
	promptCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	w.t.Log(line)
	if ivr.LostWrite(line) {
		w.t.Errorf("a write that belongs to the call was lost: %s", line)
	}
	return len(p), nil
}

func testLevel() slog.Level {
	if os.Getenv("IVR_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// flowFunc is a call flow written in Go.
type flowFunc func(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome

func (fn flowFunc) Run(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome {
	return fn(ctx, f, ch, svc)
}

// engine is the whole engine on loopback: a real store in a temporary
// folder, the SIP endpoint (which receives the media legs) and the event
// socket server.
type engine struct {
	eng     *ivr.Engine
	store   *tickets.Store
	srv     *Server
	sipPort int
	eslAddr string
}

var promptsMu sync.Mutex

func startEngine(t *testing.T, flow ivr.FlowRunner, adjust func(*Config)) *engine {
	t.Helper()
	promptsMu.Lock()
	prompts, err := ivr.LoadPrompts(ivr.PromptConfig{Dir: filepath.Join("..", "..", "flows", "prompts"), Cache: promptCache, Lang: "ro", Rates: []int{8000, 16000}})
	promptsMu.Unlock()
	if err != nil {
		t.Fatalf("prompts: %v", err)
	}
	dir := t.TempDir()
	store, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: testLevel()}))
	calls := store.NewCallLog(0, log)
	t.Cleanup(func() { calls.Close() })
	eng := &ivr.Engine{
		Calls: calls, Metrics: ivr.NewMetrics(), Log: log, Prompts: prompts,
		Timing: ivr.Timing{FirstDigit: 3 * time.Second, Retries: 2},
		RecDir: filepath.Join(dir, "recordings"),
		Flow:   flow, Synth: &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}, Lang: "ro",
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	cfg := Config{Listen: "127.0.0.1:0", CommandTimeout: 2 * time.Second, LegTimeout: 5 * time.Second, Linger: time.Second}
	if adjust != nil {
		adjust(&cfg)
	}
	var (
		srv     *Server
		sipSrv  *sip.Server
		sipPort int
	)
	for attempt := 0; ; attempt++ {
		sipPort = siptest.Port(t)
		c := cfg
		if c.MediaDial == "" {
			c.MediaDial = fmt.Sprintf("sofia/internal/ivr@127.0.0.1:%d", sipPort)
		}
		srv, err = New(c, eng)
		if err != nil {
			t.Fatal(err)
		}
		sipSrv, err = sip.New(sip.Config{Listen: fmt.Sprintf("127.0.0.1:%d", sipPort), RTPTimeout: 10 * time.Second, LegHeader: srv.Config().LegHeader, Legs: srv}, eng)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- sipSrv.Serve(ctx) }()
		select {
		case <-sipSrv.Ready():
		case err := <-errc:
			sipSrv.Close()
			if attempt < 5 {
				continue
			}
			t.Fatalf("sip: %v", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); <-errc }()
		break
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx); err != nil {
			t.Errorf("esl serve: %v", err)
		}
	}()
	<-srv.Ready()
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		if err := eng.Drain(dctx); err != nil {
			t.Errorf("drain: %v", err)
		}
		cancel()
		wg.Wait()
		sipSrv.Close()
	})
	return &engine{eng: eng, store: store, srv: srv, sipPort: sipPort, eslAddr: srv.Addr().String()}
}

// record waits for the call record to be closed and returns it with its
// event log.
func (e *engine) record(t *testing.T, id string) (tickets.CallRecord, []tickets.CallEvent) {
	t.Helper()
	ctx := context.Background()
	var r tickets.CallRecord
	ok := waitFor(30*time.Second, func() bool {
		_ = e.eng.Calls.Flush(ctx)
		var err error
		r, err = e.store.Call(ctx, id)
		return err == nil && r.EndReason != ""
	})
	if !ok {
		t.Fatalf("call %s: no closed record (%+v)", id, r)
	}
	_ = e.eng.Calls.Flush(ctx)
	ev, err := e.store.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return r, ev
}

func eventLog(ev []tickets.CallEvent) string {
	var b strings.Builder
	for _, e := range ev {
		b.WriteString(e.Kind + " " + e.Detail + "\n")
	}
	return b.String()
}

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

// fakeFS is FreeSWITCH as the engine sees it over the event socket in
// outbound mode: it connects for one channel, answers `connect` with the
// channel's data, replies to commands the way mod_event_socket does, fires
// the channel's events (from testdata samples), and, for `bridge`, places a
// real SIP call to the engine's endpoint with the leg header, carrying the
// caller's audio and RFC 4733 DTMF.
type fakeFS struct {
	t    *testing.T
	uuid string
	nc   net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex

	// Behaviour knobs, set before start.
	replyDelay  time.Duration // every reply comes this late
	answerFails bool          // the caller hangs up while the engine answers
	noLeg       bool          // bridge never reaches the engine
	hangupAfter string        // hang up with this cause right after connect
	hangupOnSet bool          // the caller hangs up when the first variable is set
	refuseXfer  bool          // uuid_transfer fails
	says        []int16       // the caller's voice on the media leg (8 kHz), then silence; nil: a steady tone

	mu       sync.Mutex
	cmds     []string          // every command block received
	vars     map[string]string // uuid_setvar
	transfer string            // uuid_transfer destination
	hungup   string            // hangup cause the engine sent
	leg      *legPhone
	legUp    chan struct{}
	closed   chan struct{}
	wg       sync.WaitGroup
}

func sample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const sampleUUID = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"

var uuidSeq struct {
	sync.Mutex
	n int
}

func newFakeFS(t *testing.T) *fakeFS {
	uuidSeq.Lock()
	uuidSeq.n++
	n := uuidSeq.n
	uuidSeq.Unlock()
	return &fakeFS{t: t, uuid: fmt.Sprintf("6f1a2b3c-4d5e-4f60-8a7b-%012d", n), vars: map[string]string{}, legUp: make(chan struct{}), closed: make(chan struct{})}
}

// dial connects to the engine as the `socket` application does and serves
// the connection until it closes.
func (f *fakeFS) dial(e *engine) {
	f.t.Helper()
	nc, err := net.Dial("tcp", e.eslAddr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.nc = nc
	f.br = bufio.NewReader(nc)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(f.closed)
		f.serve(e)
	}()
	f.t.Cleanup(func() {
		nc.Close()
		f.wg.Wait()
		if f.leg != nil {
			f.leg.close()
		}
	})
}

func (f *fakeFS) write(s string) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_, _ = io.WriteString(f.nc, s)
}

func (f *fakeFS) reply(text string) {
	if f.replyDelay > 0 {
		time.Sleep(f.replyDelay)
	}
	f.write("Content-Type: command/reply\nReply-Text: " + text + "\n\n")
}

func (f *fakeFS) apiReply(body string) {
	if f.replyDelay > 0 {
		time.Sleep(f.replyDelay)
	}
	f.write(fmt.Sprintf("Content-Type: api/response\nContent-Length: %d\n\n%s", len(body), body))
}

// event fires a sample event as text/event-plain, with its placeholders
// replaced.
func (f *fakeFS) event(name string, repl ...string) {
	body := strings.ReplaceAll(sample(f.t, name), sampleUUID, f.uuid)
	for i := 0; i+1 < len(repl); i += 2 {
		body = strings.ReplaceAll(body, repl[i], repl[i+1])
	}
	f.write(fmt.Sprintf("Content-Length: %d\nContent-Type: text/event-plain\n\n%s", len(body), body))
}

// readCommand reads one command block as mod_event_socket does.
func (f *fakeFS) readCommand() (string, map[string]string, error) {
	var lines []string
	for {
		l, err := f.br.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			if len(lines) == 0 {
				continue
			}
			break
		}
		lines = append(lines, l)
	}
	h := map[string]string{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	f.mu.Lock()
	f.cmds = append(f.cmds, strings.Join(lines, "\n"))
	f.mu.Unlock()
	return lines[0], h, nil
}

func (f *fakeFS) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

var dialRE = regexp.MustCompile(`^\{sip_h_(X-[A-Za-z0-9-]+)=([0-9a-f]+)(?:,absolute_codec_string=[A-Z0-9]+)?\}sofia/internal/ivr@127\.0\.0\.1:(\d+)$`)

func (f *fakeFS) serve(e *engine) {
	for {
		cmd, h, err := f.readCommand()
		if err != nil {
			return
		}
		switch {
		case cmd == "connect":
			f.write(strings.ReplaceAll(sample(f.t, "connect_reply.txt"), sampleUUID, f.uuid))
			if f.hangupAfter != "" {
				f.hangup(f.hangupAfter)
				return
			}
		case strings.HasPrefix(cmd, "linger"):
			f.reply("+OK will linger 1 seconds")
		case cmd == "myevents":
			f.reply("+OK Events Enabled")
		case strings.HasPrefix(cmd, "sendmsg"):
			if strings.TrimPrefix(cmd, "sendmsg ") != f.uuid {
				f.reply("-ERR invalid session id")
				continue
			}
			f.reply("+OK")
			switch h["call-command"] {
			case "execute":
				f.execute(e, h)
			case "hangup":
				f.mu.Lock()
				f.hungup = h["hangup-cause"]
				f.mu.Unlock()
				f.hangup(h["hangup-cause"])
				return
			}
		case strings.HasPrefix(cmd, "api uuid_setvar "):
			parts := strings.SplitN(strings.TrimPrefix(cmd, "api uuid_setvar "), " ", 3)
			if len(parts) < 2 || parts[0] != f.uuid {
				f.apiReply("-ERR No such channel!\n")
				continue
			}
			f.mu.Lock()
			if len(parts) == 3 {
				f.vars[parts[1]] = parts[2]
			}
			f.mu.Unlock()
			if f.hangupOnSet {
				f.apiReply("+OK\n")
				f.callerHangup()
				return
			}
			f.apiReply("+OK\n")
		case strings.HasPrefix(cmd, "api uuid_transfer "):
			parts := strings.SplitN(strings.TrimPrefix(cmd, "api uuid_transfer "), " ", 2)
			if len(parts) < 2 || parts[0] != f.uuid {
				f.apiReply("-ERR No such channel!\n")
				continue
			}
			if f.refuseXfer {
				f.apiReply("-ERR No such extension\n")
				continue
			}
			f.mu.Lock()
			f.transfer = parts[1]
			f.mu.Unlock()
			f.apiReply("+OK\n")
			// The channel leaves the bridge: FreeSWITCH hangs up the leg to
			// the engine, and the bridge application completes.
			if f.leg != nil {
				f.leg.hangup()
			}
			f.event("channel_execute_complete.txt", "Application: answer", "Application: bridge", "APP_UUID", "")
		default:
			f.reply("-ERR command not found")
		}
	}
}

func (f *fakeFS) execute(e *engine, h map[string]string) {
	app, arg, id := h["execute-app-name"], h["execute-app-arg"], h["event-uuid"]
	switch app {
	case "answer":
		if f.answerFails {
			f.hangup("ORIGINATOR_CANCEL")
			return
		}
		f.event("channel_answer.txt")
		f.event("channel_execute_complete.txt", "APP_UUID", id)
	case "bridge":
		if f.noLeg {
			return
		}
		m := dialRE.FindStringSubmatch(arg)
		if m == nil {
			f.event("channel_execute_complete.txt", "Application: answer", "Application: bridge", "_none_", "INVALID_GATEWAY", "APP_UUID", id)
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			leg, err := dialLeg(f.t, e.sipPort, m[1], m[2], f.says)
			if err != nil {
				f.event("channel_execute_complete.txt", "Application: answer", "Application: bridge", "_none_", "NORMAL_TEMPORARY_FAILURE", "APP_UUID", id)
				return
			}
			f.mu.Lock()
			f.leg = leg
			f.mu.Unlock()
			f.event("channel_bridge.txt")
			close(f.legUp)
		}()
	default:
		f.event("channel_execute_complete.txt", "Application: answer", "Application: "+app, "APP_UUID", id)
	}
}

// hangup ends the channel as FreeSWITCH does: CHANNEL_HANGUP, BYE on the
// bridged leg, CHANNEL_HANGUP_COMPLETE, the linger notice, then the close.
func (f *fakeFS) hangup(cause string) {
	f.event("channel_hangup.txt", "CAUSE", cause)
	f.mu.Lock()
	leg := f.leg
	f.mu.Unlock()
	if leg != nil {
		leg.hangup()
	}
	f.event("channel_hangup_complete.txt", "CAUSE", cause)
	f.write("Content-Type: text/disconnect-notice\nControlled-Session-UUID: " + f.uuid + "\nContent-Disposition: linger\nChannel-Name: sofia/external/0722123456@10.0.0.20\nLinger-Time: 1\nContent-Length: 0\n\n")
	f.nc.Close()
}

// unexpected sends what a FreeSWITCH may send that the engine did not ask
// for: events of other kinds, a custom event, a DTMF event with a strange
// digit, a reply nobody asked for, an unknown content type, an event
// without a name, log data.
func (f *fakeFS) unexpected() {
	f.event("channel_answer.txt", "CHANNEL_ANSWER", "CHANNEL_PARK")
	f.event("channel_answer.txt", "CHANNEL_ANSWER", "CUSTOM\nEvent-Subclass: sofia%3A%3Aregister")
	f.event("dtmf.txt", "DIGIT", "X")
	f.write("Content-Type: command/reply\nReply-Text: +OK stray\n\n")
	f.write("Content-Type: text/event-xml\nContent-Length: 9\n\n<event/>\n")
	f.write(fmt.Sprintf("Content-Length: %d\nContent-Type: text/event-plain\n\n%s", 14, "Unique-ID: x\n\n"))
	f.write("Content-Type: log/data\nContent-Length: 5\n\nhello")
	f.write(fmt.Sprintf("Content-Length: %d\nContent-Type: text/event-json\n\n%s", 2, "[]"))
}

// callerHangup is the caller hanging up mid-call.
func (f *fakeFS) callerHangup() { f.hangup("NORMAL_CLEARING") }

// dtmf is the caller pressing a key: FreeSWITCH fires a DTMF event and
// relays the key on the bridged leg as RFC 4733.
func (f *fakeFS) dtmf(k rune) {
	f.event("dtmf.txt", "DIGIT", string(k))
	f.mu.Lock()
	leg := f.leg
	f.mu.Unlock()
	if leg != nil {
		leg.dtmf(k)
	}
}

func (f *fakeFS) waitLeg() *legPhone {
	f.t.Helper()
	select {
	case <-f.legUp:
	case <-time.After(10 * time.Second):
		f.t.Fatal("the engine never answered the media leg")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leg
}

func (f *fakeFS) waitClosed(limit time.Duration) bool {
	select {
	case <-f.closed:
		return true
	case <-time.After(limit):
		return false
	}
}

// legPhone is FreeSWITCH's side of the media leg: a real SIP UA (diago)
// that sends a tone (or what it says) as the caller's voice and keeps
// what it hears.
type legPhone struct {
	d     *diago.DialogClientSession
	mu    sync.Mutex
	heard []int16
	began time.Time // the first frame of says sent
	keys  chan rune
	stop  context.CancelFunc
	wg    sync.WaitGroup
	once  sync.Once
}

func dialLeg(t *testing.T, port int, header, token string, says []int16) (*legPhone, error) {
	dg, _ := siptest.NewPhone(t, "FreeSWITCH", media.CodecAudioUlaw, media.CodecTelephoneEvent8000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := siptest.Invite(ctx, dg, gosip.Uri{User: "ivr", Host: "127.0.0.1", Port: port},
		diago.InviteOptions{Headers: []gosip.Header{gosip.NewHeader(header, token)}})
	if err != nil {
		return nil, err
	}
	p := &legPhone{d: d, keys: make(chan rune, 8)}
	r, err := d.AudioReader()
	if err != nil {
		return nil, err
	}
	w, err := d.AudioWriter()
	if err != nil {
		return nil, err
	}
	dw, err := d.AudioWriterDTMF()
	if err != nil {
		return nil, err
	}
	dec, _ := audio.NewDecoder("PCMU")
	enc, _ := audio.NewEncoder("PCMU")
	sctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, media.RTPBufSize)
		pcm := make([]int16, 4000)
		for {
			n, err := r.Read(buf)
			if err != nil {
				return
			}
			m, err := dec.Decode(pcm, buf[:n])
			if err != nil {
				continue
			}
			p.mu.Lock()
			p.heard = append(p.heard, pcm[:m]...)
			p.mu.Unlock()
		}
	}()
	go func() {
		defer p.wg.Done()
		tone := make([]int16, 160)
		for i := range tone {
			tone[i] = int16(3000 * math.Sin(2*3.14159265*300*float64(i)/8000))
		}
		payload := make([]byte, 400)
		silence := make([]int16, 160)
		for off := 0; sctx.Err() == nil; {
			select {
			case k := <-p.keys:
				_ = dw.WriteDTMF(k)
				continue
			default:
			}
			frame := tone
			switch {
			case says != nil && off+160 <= len(says):
				frame = says[off : off+160]
			case says != nil:
				frame = silence
			}
			if off == 0 {
				p.mu.Lock()
				p.began = time.Now()
				p.mu.Unlock()
			}
			off += 160
			n, _ := enc.Encode(payload, frame)
			if _, err := w.Write(payload[:n]); err != nil {
				return
			}
		}
	}()
	return p, nil
}

func (p *legPhone) dtmf(k rune) { p.keys <- k }

func (p *legPhone) heardLoud() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	loud := 0
	for off := 0; off+160 <= len(p.heard); off += 160 {
		if audio.RMS(p.heard[off:off+160]) > 300 {
			loud++
		}
	}
	return loud
}

func (p *legPhone) ended() bool { return p.d.Context().Err() != nil }

func (p *legPhone) hangup() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if p.d.Context().Err() == nil {
		_ = p.d.Hangup(ctx)
	}
}

func (p *legPhone) close() {
	p.once.Do(func() {
		p.hangup()
		p.stop()
		p.d.Close()
		p.wg.Wait()
	})
}
