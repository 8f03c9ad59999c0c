package sip_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/dialplan/sip/sipptest"
	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
)

// sippCalls is the number of simultaneous SIPp callers.
const sippCalls = 50

// TestSIPpConcurrentCalls has SIPp (a SIP stack other than diago) place 50
// simultaneous calls to the engine over loopback. Every caller streams
// G.711 u-law speech as RTP, then presses 0 as RFC 4733 events; the engine
// must say goodbye and hang up each call with a BYE that SIPp answers.
func TestSIPpConcurrentCalls(t *testing.T) {
	sippBin := needTool(t, "sipp", "sip-tester")
	soxBin := needTool(t, "sox", "sox")
	const dtmfPcap = "/usr/share/sip-tester/dtmf_2833_0.pcap"
	if _, err := os.Stat(dtmfPcap); err != nil {
		t.Fatalf("%s (RFC 2833 key 0, shipped with the Debian package sip-tester) is missing: %v; `make test` installs sip-tester", dtmfPcap, err)
	}
	scenario, err := filepath.Abs(filepath.Join("testdata", "sipp", "uac_audio_dtmf0.xml"))
	if err != nil {
		t.Fatal(err)
	}

	l := startLine(t, func(_ *sip.Config, e *ivr.Engine) {
		// Calls end by the key, never by a menu timeout.
		e.Timing.FirstDigit = 20 * time.Second
	})

	// The caller's audio: a rendered prompt (real speech), u-law at 8 kHz,
	// 3 s of RTP in a pcap. play_pcap_audio paths are relative to sipp's
	// working directory.
	work := t.TempDir()
	speech := filepath.Join(promptCache, "ro", "info_identity.wav")
	ulawPath := filepath.Join(work, "audio.ulaw")
	if out, err := exec.Command(soxBin, speech, "-t", "raw", "-r", "8000", "-c", "1", "-e", "mu-law", "-b", "8", ulawPath).CombinedOutput(); err != nil {
		t.Fatalf("sox %s to u-law: %v: %s", speech, err, out)
	}
	ulaw, err := os.ReadFile(ulawPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := sipptest.WriteRTPPcap(filepath.Join(work, "audio.pcap"), ulaw, 150); err != nil {
		t.Fatal(err)
	}
	dtmf, err := os.ReadFile(dtmfPcap)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "dtmf.pcap"), dtmf, 0o644); err != nil {
		t.Fatal(err)
	}

	statFile := filepath.Join(work, "stat.csv")
	errFile := filepath.Join(work, "errors.log")
	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Second)
	defer cancel()
	n := strconv.Itoa(sippCalls)
	args := []string{
		"-sf", scenario,
		"-s", "ivr",
		"-i", "127.0.0.1", "-p", strconv.Itoa(freePort(t)),
		"-mi", "127.0.0.1", "-mp", strconv.Itoa(freePort(t)),
		"-t", "u1",
		"-l", n, "-m", n, "-r", n,
		"-nostdin",
		"-trace_stat", "-stf", statFile, "-fd", "1",
		"-trace_err", "-error_file", errFile,
		"-timeout", "60s", "-timeout_error",
		l.addr,
	}
	cmd := exec.CommandContext(ctx, sippBin, args...)
	cmd.Dir = work
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start)
	t.Logf("sipp ran %s: %s", elapsed.Round(time.Millisecond), strings.Join(args, " "))
	errLog, _ := os.ReadFile(errFile)
	if runErr != nil {
		t.Fatalf("sipp failed (%v) after %s\nerrors log:\n%s\noutput (tail):\n%s", runErr, elapsed.Round(time.Millisecond), tail(string(errLog), 4000), tail(out.String(), 4000))
	}

	st, err := sipptest.ReadStats(statFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.N("SuccessfulCall(C)"); got != sippCalls {
		t.Errorf("sipp: %d successful calls, want %d", got, sippCalls)
	}
	for _, col := range []string{"FailedCall(C)", "FailedUnexpectedMessage(C)", "FailedMaxUDPRetrans(C)", "FailedCallRejected(C)", "FailedCmdNotSent(C)", "FailedRegexpDoesntMatch(C)", "FailedRegexpHdrNotFound(C)", "OutOfCallMsgs(C)", "DeadCallMsgs(C)"} {
		if v := st.N(col); v != 0 {
			t.Errorf("sipp %s = %q, want 0", col, st[col])
		}
	}
	if bad := sipptest.Errors(errLog, true); len(bad) > 0 {
		t.Errorf("sipp logged %d unexpected messages or errors:\n%s", len(bad), tail(strings.Join(bad, "\n"), 4000))
	}

	// The engine's side: one closed record per call.
	var calls []tickets.CallRecord
	ended := func() int {
		var err error
		calls, err = l.store.ListCalls(context.Background(), tickets.CallQuery{})
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, c := range calls {
			if c.End != nil {
				k++
			}
		}
		return k
	}
	if !waitFor(10*time.Second, func() bool { return ended() >= sippCalls }) {
		t.Fatalf("%d call records closed of %d (%d records)", ended(), sippCalls, len(calls))
	}
	if len(calls) != sippCalls {
		t.Errorf("%d call records, want %d", len(calls), sippCalls)
	}
	var in, out2 uint64
	for _, c := range calls {
		if !strings.Contains(c.DTMF, "0") {
			t.Errorf("call %s: dtmf %q, want the 0 that SIPp pressed", c.ID, c.DTMF)
		}
		if c.EndReason != tickets.EndEngineHangup {
			t.Errorf("call %s: end reason %q, want %q", c.ID, c.EndReason, tickets.EndEngineHangup)
		}
		if c.Stats.In == 0 {
			t.Errorf("call %s: no RTP packets received from SIPp", c.ID)
		}
		if c.Codec != "" && !strings.EqualFold(c.Codec, "PCMU") {
			t.Errorf("call %s: codec %q, want PCMU", c.ID, c.Codec)
		}
		in += c.Stats.In
		out2 += c.Stats.Out
	}
	t.Logf("%d calls: %d RTP packets in (%.0f per call), %d out; call setup p99 <= %s",
		len(calls), in, float64(in)/float64(max(len(calls), 1)), out2, fmtSeconds(l.eng.Metrics.CallSetup.Quantile(0.99)))
}

// needTool returns the path of a required program, or fails the test
// saying which Debian package `make test` installs for it.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	return testenv.Tool(t, pkg, name)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func fmtSeconds(s float64) string {
	return fmt.Sprintf("%gms", s*1000)
}
