package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip/siptest"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
)

// buildBinaries builds ivrd and ivrctl once for the tests of this file.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) (ivrd, ivrctl string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "ivrd-bin-")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{"ivrd", "ivrctl"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, pkg), "../"+pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "ivrd"), filepath.Join(binDir, "ivrctl")
}

func freePort(t *testing.T) int { return siptest.Port(t) }

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type daemon struct {
	cmd         *exec.Cmd
	logs        *syncBuffer
	sipPort     int
	consolePort int
	chatPort    int
	httpAddr    string
	dataDir     string
	exited      chan error
}

// startDaemon starts ivrd on free ports; a port taken between the check
// and the bind makes it try again.
func startDaemon(t *testing.T, extra ...string) *daemon {
	t.Helper()
	for attempt := 0; ; attempt++ {
		d, err := tryDaemon(t, extra...)
		if err == nil {
			return d
		}
		if attempt >= 4 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func tryDaemon(t *testing.T, extra ...string) (*daemon, error) {
	return tryDaemonIn(t, t.TempDir(), extra...)
}

func tryDaemonIn(t *testing.T, dataDir string, extra ...string) (*daemon, error) {
	t.Helper()
	ivrd, _ := binaries(t)
	d := &daemon{logs: &syncBuffer{}, sipPort: freePort(t), consolePort: freePort(t), chatPort: freePort(t), dataDir: dataDir, exited: make(chan error, 1)}
	d.httpAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d.cmd = exec.Command(ivrd)
	d.cmd.Env = append(os.Environ(),
		fmt.Sprintf("IVR_SIP_LISTEN=127.0.0.1:%d", d.sipPort),
		"IVR_HTTP_LISTEN="+d.httpAddr,
		fmt.Sprintf("IVR_CONSOLE_LISTEN=127.0.0.1:%d", d.consolePort),
		fmt.Sprintf("IVR_CHAT_LISTEN=127.0.0.1:%d", d.chatPort),
		"IVR_DATA_DIR="+d.dataDir,
		"IVR_FLOWS_DIR="+flowsDir(t),
		"IVR_SHUTDOWN_GRACE=20s",
		"IVR_LOG_FORMAT=json",
	)
	d.cmd.Env = append(d.cmd.Env, extra...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.exited <- d.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second) // the first start renders the prompts
	for time.Now().Before(deadline) {
		if code, _ := d.get(t, "/healthz"); code == 200 {
			t.Cleanup(func() {
				_ = d.cmd.Process.Kill()
				<-d.exited
				for _, line := range strings.Split(d.logs.String(), "\n") {
					if ivr.LostWrite(line) {
						t.Errorf("ivrd lost a write that belongs to a call: %s", line)
					}
				}
				if t.Failed() {
					t.Logf("ivrd output:\n%s", d.logs.String())
				}
			})
			return d, nil
		}
		select {
		case err := <-d.exited:
			return nil, fmt.Errorf("ivrd exited at start: %v\n%s", err, d.logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	return nil, fmt.Errorf("ivrd not healthy after 30 s\n%s", d.logs.String())
}

func (d *daemon) get(t *testing.T, path string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get("http://" + d.httpAddr + path)
	if err != nil {
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// metric returns the value of one unlabelled metric line.
func (d *daemon) metric(t *testing.T, name string) string {
	_, body := d.get(t, "/metrics")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

func newUA(t *testing.T) *diago.Diago {
	dg, _ := siptest.NewPhone(t, "test-phone")
	return dg
}

const callerNumber = "0722123456"

// The daemon as an operator runs it: healthy, metrics, a real call, then
// SIGTERM drains (503 to new calls, the active call goes on), and it exits
// 0 when the call ends. The caller's number is in the store, not the logs.
func TestDaemonServesDrainsAndExits(t *testing.T) {
	d := startDaemon(t)
	// The flows' fixed sentences are rendered at start, before any call.
	if !waitFor(60*time.Second, func() bool { return strings.Contains(d.logs.String(), `"msg":"prompts ready"`) }) {
		t.Error("the flows' sentences were not rendered at start")
	} else if files, _ := filepath.Glob(filepath.Join(d.dataDir, "prompts", "tts", "ro", "*.wav")); len(files) < 50 {
		t.Errorf("%d Romanian sentences rendered at start, want the flows' (more than 50)", len(files))
	}
	_, body := d.get(t, "/metrics")
	for _, m := range []string{"ivr_active_calls 0", "ivr_rtp_packets_in_total", "ivr_rtp_packets_out_total", "ivr_rtp_packets_lost_total", "ivr_rtp_packets_late_total", "# TYPE ivr_calls_total counter", "ivr_dtmf_digits_total", "ivr_rtp_send_interval_deviation_seconds_bucket"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}

	dg := newUA(t)
	opts := diago.InviteOptions{}
	opts.Headers = append(opts.Headers, &sip.FromHeader{Address: sip.Uri{User: callerNumber, Host: "127.0.0.1"}, Params: sip.NewParams()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := invite(ctx, dg, sip.Uri{User: "1919", Host: "127.0.0.1", Port: d.sipPort}, diago.InviteOptions{Headers: opts.Headers})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	// The caller sends audio, as a phone does.
	stopAudio := make(chan struct{})
	go func() {
		w, err := call.AudioWriter()
		if err != nil {
			return
		}
		silence := bytes.Repeat([]byte{0xff}, 160)
		for {
			select {
			case <-stopAudio:
				return
			default:
			}
			if _, err := w.Write(silence); err != nil {
				return
			}
		}
	}()
	defer close(stopAudio)
	if !waitFor(5*time.Second, func() bool { return d.metric(t, "ivr_active_calls") == "1" }) {
		t.Fatalf("active calls = %s", d.metric(t, "ivr_active_calls"))
	}
	time.Sleep(time.Second)
	if v := d.metric(t, "ivr_rtp_packets_out_total"); v == "0" || v == "" {
		t.Errorf("no RTP sent: %q", v)
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitFor(3*time.Second, func() bool { code, _ := d.get(t, "/healthz"); return code == 503 }) {
		t.Error("/healthz is not 503 while draining")
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	_, err = invite(ctx2, newUA(t), sip.Uri{User: "1919", Host: "127.0.0.1", Port: d.sipPort}, diago.InviteOptions{})
	var re *sipgo.ErrDialogResponse
	var rv sipgo.ErrDialogResponse
	switch {
	case errors.As(err, &re) && re.Res.StatusCode == 503:
	case errors.As(err, &rv) && rv.Res.StatusCode == 503:
	default:
		t.Errorf("a new call while draining: %v, want 503", err)
	}
	if call.Context().Err() != nil {
		t.Fatal("the active call was dropped when draining began")
	}
	select {
	case err := <-d.exited:
		t.Fatalf("ivrd exited with a call still active: %v", err)
	case <-time.After(time.Second):
	}

	hctx, hcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer hcancel()
	if err := call.Hangup(hctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("ivrd exit: %v", err)
		}
		d.exited <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("ivrd did not exit after its last call")
	}

	logs := d.logs.String()
	if strings.Contains(logs, callerNumber) {
		t.Error("the caller's number appears in the logs")
	}
	if !strings.Contains(logs, "ivrd stopped cleanly") {
		t.Errorf("no clean stop in the logs")
	}

	// The administrator reads the call with ivrctl.
	calls := listCalls(t, d.dataDir)
	var found bool
	for _, c := range calls {
		if c.Caller == callerNumber {
			found = true
			if c.EndReason != "caller_hangup" || c.Recording == "" {
				t.Errorf("call record = %+v", c)
			}
		}
	}
	if !found {
		t.Errorf("the call is not in ivrctl calls list: %+v", calls)
	}
}

// A corrupt prompt stops the daemon at start with an error naming the file.
func TestCorruptPromptIsAClearErrorAtStart(t *testing.T) {
	ivrd, _ := binaries(t)
	flows := filepath.Join(t.TempDir(), "flows")
	if err := os.CopyFS(flows, os.DirFS(flowsDir(t))); err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(flows, "prompts", "ro")
	bad := filepath.Join(ro, "menu.wav")
	if err := os.WriteFile(bad, []byte("RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ivrd, "-check")
	cmd.Env = append(os.Environ(), "IVR_FLOWS_DIR="+flows, "IVR_DATA_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("ivrd -check with a corrupt prompt: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), bad) || !strings.Contains(string(out), "menu") {
		t.Errorf("the error does not name %s:\n%s", bad, out)
	}
}

// A bad configuration exits 2 naming the key.
func TestBadConfigExits2(t *testing.T) {
	ivrd, _ := binaries(t)
	cmd := exec.Command(ivrd, "-check")
	cmd.Env = append(os.Environ(), "IVR_FLOWS_DIR="+flowsDir(t), "IVR_SIP_LISTEN=nowhere")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "sip.listen") {
		t.Fatalf("exit %v, output %s", err, out)
	}
}

func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

var invite = siptest.Invite

// kill -9 in the middle of a call loses nothing already said: at the next
// start the call record is closed as engine_restart with its keys, and the
// recording is a valid WAV up to about the moment of the crash.
func TestKilledMidCallKeepsRecordAndRecording(t *testing.T) {
	d := startDaemon(t)
	dg := newUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := invite(ctx, dg, sip.Uri{User: "1919", Host: "127.0.0.1", Port: d.sipPort}, diago.InviteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	answered := time.Now()
	w, err := call.AudioWriter()
	if err != nil {
		t.Fatal(err)
	}
	tone := bytes.Repeat([]byte{0x10, 0x90}, 80) // loud u-law: the caller speaks
	for range 150 {                              // 3 s, paced by diago's writer
		if _, err := w.Write(tone); err != nil {
			t.Fatal(err)
		}
	}
	dw, err := call.AudioWriterDTMF()
	if err != nil {
		t.Fatal(err)
	}
	if err := dw.WriteDTMF('1'); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-d.exited
	d.exited <- nil
	time.Sleep(2 * time.Second) // down a while: the record must not count it

	// The same data folder, a new process.
	d2, err := tryDaemonIn(t, d.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	_ = d2
	calls := listCalls(t, d.dataDir)
	if len(calls) != 1 {
		t.Fatalf("calls after the crash: %+v", calls)
	}
	c := calls[0]
	if c.EndReason != "engine_restart" || c.DTMF != "1" || c.Recording == "" {
		t.Fatalf("record after the crash: %+v", c)
	}
	// It ended at the last moment the engine knew it alive (its last
	// checkpoint, within a second of the kill), not at the restart; its
	// packet counts are the last checkpoint's.
	if c.End == nil || c.End.Before(killed.Add(-1500*time.Millisecond)) || c.End.After(killed) {
		t.Errorf("call ended at %v, killed at %v", c.End, killed)
	}
	if c.Stats.In < 100 || c.Stats.Out < 100 {
		t.Errorf("packet counts after the crash: %+v, want those of the last checkpoint (150 sent)", c.Stats)
	}
	f, err := os.Open(c.Recording)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pcm, rate, err := audio.ReadWAV(f)
	if err != nil {
		t.Fatalf("recording after the crash: %v", err)
	}
	// Repaired at start: the header's data size covers the whole file.
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 44)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		t.Fatal(err)
	}
	if size := int64(binary.LittleEndian.Uint32(hdr[40:44])); size != st.Size()-44 {
		t.Errorf("WAV data size %d, file holds %d bytes of samples: not repaired", size, st.Size()-44)
	}
	got := time.Duration(len(pcm)) * time.Second / time.Duration(rate)
	want := killed.Sub(answered)
	t.Logf("the recording holds %s of the %s until the crash (%s lost)", got, want, want-got)
	if got < want-time.Second || got > want+500*time.Millisecond {
		t.Errorf("recording holds %s, the call lasted %s until the crash: more than the second docs/operations.md allows is lost", got, want)
	}
	if audio.RMS(pcm[:rate*2]) < 500 {
		t.Errorf("the caller's audio is missing from the recording (RMS %.0f)", audio.RMS(pcm[:rate*2]))
	}
	// Every turn said before the kill is in the transcript: the welcome
	// (cut by the key) and the caller's key.
	st2, err := tickets.OpenReadOnly(tickets.DBPath(d.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	turns, err := st2.Transcript(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	key := slices.IndexFunc(turns, func(tu tickets.Turn) bool {
		return tu.Speaker == tickets.SpeakerCaller && tu.Mode == tickets.ModeDTMF && tu.Text == "1"
	})
	if len(turns) < 2 || turns[0].Speaker != tickets.SpeakerIVR || turns[0].Text == "" || key < 1 {
		t.Errorf("transcript after the crash: %+v, want the welcome then the caller's key 1", turns)
	}
}

// listedCall is what the tests read of `ivrctl calls list --json`.
type listedCall struct {
	ID        string     `json:"id"`
	Caller    string     `json:"caller"`
	End       *time.Time `json:"end"`
	EndReason string     `json:"end_reason"`
	DTMF      string     `json:"dtmf"`
	Recording string     `json:"recording"`
	Stats     struct {
		In  uint64 `json:"packets_in"`
		Out uint64 `json:"packets_out"`
	} `json:"stats"`
}

// listCalls runs `ivrctl calls list --json` on a data folder.
func listCalls(t *testing.T, dataDir string) []listedCall {
	t.Helper()
	_, ivrctl := binaries(t)
	out, err := exec.Command(ivrctl, "calls", "list", "--json", "--data", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("ivrctl: %v\n%s", err, out)
	}
	var list struct {
		Calls []listedCall `json:"calls"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("ivrctl output: %v\n%s", err, out)
	}
	return list.Calls
}
