package ivr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

func TestEndReasonClassifies(t *testing.T) {
	cases := map[EndReason]int{EndNoCommonCodec: 488, EndRejected: 503, EndShutdown: 503, EndCancelled: 487, EndError: 500, EndCallerHangup: 0, EndEngineHangup: 0}
	for r, want := range cases {
		if got := r.SIPStatus(); got != want {
			t.Errorf("%s: SIP %d, want %d", r, got, want)
		}
	}
	err := fmt.Errorf("session: %w", End(EndRTPTimeout, errors.New("no RTP for 30s")))
	if ReasonOf(err) != EndRTPTimeout {
		t.Errorf("ReasonOf(%v) = %s", err, ReasonOf(err))
	}
	if !errors.Is(err, &EndCause{Reason: EndRTPTimeout}) || errors.Is(err, &EndCause{Reason: EndCallerHangup}) {
		t.Error("errors.Is does not match on the reason")
	}
	if ReasonOf(errors.New("boom")) != EndError || ReasonOf(context.Canceled) != EndEngineHangup {
		t.Error("fallback reasons wrong")
	}
	if !strings.Contains(err.Error(), "rtp_timeout") || !strings.Contains(err.Error(), "no RTP for 30s") {
		t.Errorf("message %q lacks the facts", err)
	}
}

func TestSafeFileName(t *testing.T) {
	cases := map[string]string{
		"abc-123@host.example": "abc-123_host.example",
		"../../etc/passwd":     ".._.._etc_passwd",
		"":                     "call",
		"..":                   "call",
		"a/b\\c d":             "a_b_c_d",
	}
	for in, want := range cases {
		if got := SafeFileName(in); got != want {
			t.Errorf("SafeFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.ActiveCalls.Add(2)
	m.CallEnded(EndCallerHangup)
	m.CallEnded(EndCallerHangup)
	m.CallEnded(EndRTPTimeout)
	m.DTMF("rfc4733")
	m.RTPPacketsIn.Add(500)
	m.PacingDeviation.Observe(300 * time.Microsecond)
	m.PacingDeviation.Observe(3 * time.Millisecond)
	var b strings.Builder
	if err := m.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# TYPE ivr_active_calls gauge\nivr_active_calls 2\n",
		`ivr_calls_total{outcome="caller_hangup"} 2`,
		`ivr_calls_total{outcome="rtp_timeout"} 1`,
		`ivr_dtmf_digits_total{source="rfc4733"} 1`,
		"ivr_rtp_packets_in_total 500",
		`ivr_rtp_send_interval_deviation_seconds_bucket{le="0.0005"} 1`,
		`ivr_rtp_send_interval_deviation_seconds_bucket{le="0.005"} 2`,
		`ivr_rtp_send_interval_deviation_seconds_bucket{le="+Inf"} 2`,
		"ivr_rtp_send_interval_deviation_seconds_count 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if q := m.PacingDeviation.Quantile(0.5); q != 0.0005 {
		t.Errorf("median bucket %v", q)
	}
	if q := m.PacingDeviation.Quantile(0.99); q != 0.003 {
		t.Errorf("p99 bucket %v", q)
	}
}

func TestPromptsMissingAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.MkdirAll(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPrompts(PromptConfig{Dir: dir, Cache: t.TempDir(), Lang: "ro", Names: []string{"greeting"}})
	if err == nil || !strings.Contains(err.Error(), "greeting") {
		t.Fatalf("missing prompt: %v", err)
	}
	bad := filepath.Join(ro, "greeting.wav")
	if err := os.WriteFile(bad, []byte("not a wav at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadPrompts(PromptConfig{Dir: dir, Cache: t.TempDir(), Lang: "ro", Names: []string{"greeting"}})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("corrupt prompt: %v, want an error naming %s", err, bad)
	}
}

// Text prompts are rendered by espeak-ng, cached, and re-rendered when the
// text changes.
func TestPromptsRenderedAndCached(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.MkdirAll(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	txt := filepath.Join(ro, "hello.txt")
	if err := os.WriteFile(txt, []byte("Bună ziua."), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := PromptConfig{Dir: dir, Cache: cache, Lang: "ro", Names: []string{"hello"}, Rates: []int{8000, 16000}}
	p, err := LoadPrompts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	short, _ := p.Get("hello", 8000)
	wide, _ := p.Get("hello", 16000)
	if len(short) < 4000 || len(wide) < 2*len(short)-400 || len(wide) > 2*len(short)+400 {
		t.Fatalf("lengths 8k %d, 16k %d", len(short), len(wide))
	}
	cached := filepath.Join(cache, "ro", "hello.wav")
	st1, err := os.Stat(cached)
	if err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	if err := os.WriteFile(txt, []byte("Bună ziua. Vă mulțumim pentru răbdare și vă rugăm să așteptați."), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(txt, future, future); err != nil {
		t.Fatal(err)
	}
	p2, err := LoadPrompts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	longer, _ := p2.Get("hello", 8000)
	st2, _ := os.Stat(cached)
	if len(longer) <= len(short) || !st2.ModTime().After(st1.ModTime()) {
		t.Errorf("changed text not re-rendered: %d -> %d samples", len(short), len(longer))
	}
}

func TestEngineRefusesWhileDrainingAndEndsOnce(t *testing.T) {
	store, err := tickets.Open(tickets.DBPath(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	calls := store.NewCallLog(0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	e := &Engine{Calls: calls, Metrics: NewMetrics(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tr, err := e.Begin(CallInfo{ID: "c1", Telephony: "sip", Caller: "0722000111", Called: "1919"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Begin(CallInfo{ID: "c1"}); err == nil {
		t.Error("a second call with the same id was admitted")
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		drained <- e.Drain(ctx)
	}()
	for !e.Draining() {
		time.Sleep(time.Millisecond)
	}
	if _, err := e.Begin(CallInfo{ID: "c2"}); ReasonOf(err) != EndRejected {
		t.Errorf("admitted while draining: %v", err)
	}
	tr.End(EndCallerHangup)
	tr.End(EndError) // ignored
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	calls.Close()
	rec, err := store.Call(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.EndReason != string(EndCallerHangup) || e.Metrics.ActiveCalls.Load() != 0 || e.Metrics.Outcome(EndError) != 0 {
		t.Errorf("record %+v, active %d", rec, e.Metrics.ActiveCalls.Load())
	}
}

// Keys pressed are personal data (a PIN, a national ID number): they are in
// the call record, never in a log line, even at debug level.
func TestDigitsStayOutOfLogs(t *testing.T) {
	store, err := tickets.Open(tickets.DBPath(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	calls := store.NewCallLog(0, log)
	e := &Engine{Calls: calls, Metrics: NewMetrics(), Log: log}
	tr, err := e.Begin(CallInfo{ID: "c1", Telephony: "sip", Caller: "0722123456", Called: "1919"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range "1850101221144" {
		tr.Event("dtmf", "rfc4733 "+string(k))
		tr.Digit(Digit{Key: k, Source: "rfc4733"})
	}
	tr.End(EndCallerHangup)
	calls.Close()
	rec, err := store.Call(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.DTMF != "1850101221144" {
		t.Errorf("record DTMF %q", rec.DTMF)
	}
	if out := logs.String(); strings.Contains(out, "1850101221144") || strings.Contains(out, "rfc4733 8") || strings.Contains(out, "0722123456") {
		t.Errorf("personal data in the logs:\n%s", out)
	}
}
