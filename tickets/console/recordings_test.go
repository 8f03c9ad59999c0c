package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

// Two engines' consoles on one store: a call recorded by engine A is
// played through engine B's console (fetched from A, signed), with the
// role check and the audit entry of a local recording; a wrong secret is
// refused by A; A down is a clear 502 naming it.
func TestRecordingFromAnotherEngine(t *testing.T) {
	secret := []byte("a shared secret of the engines, 32+")
	dirA := t.TempDir()
	wav := []byte("RIFF....WAVEfmt the recording's bytes")
	recA := filepath.Join(dirA, "call-a.wav")
	if err := os.WriteFile(recA, wav, 0o600); err != nil {
		t.Fatal(err)
	}
	var a *httptest.Server
	dirB := t.TempDir()
	e := newEnv(t, func(c *Config) {
		c.Engine, c.RecordingsDir, c.PeerSecret = "engine-b", dirB, secret
		c.Peers = map[string]string{"engine-a": "http://127.0.0.1:1"} // replaced below
	})
	ctx := context.Background()
	e.st.SetEngine("engine-a")
	if err := e.st.StartCall(ctx, tickets.CallRecord{ID: "call-a", Telephony: "sip", Caller: "+40721555666", Called: "1919"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AnswerCall(ctx, "call-a", time.Now(), "PCMU", recA); err != nil {
		t.Fatal(err)
	}
	e.st.SetEngine("")
	conA, err := New(Config{Store: e.st, Engine: "engine-a", RecordingsDir: dirA, PeerSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	a = httptest.NewServer(conA)
	defer a.Close()
	e.console.cfg.Peers["engine-a"] = a.URL

	ana := e.client()
	if code := ana.login("ana", pw); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	code, body, hdr := ana.do("GET", "/calls/call-a/recording", nil, nil)
	if code != http.StatusOK || body != string(wav) || hdr.Get("Content-Type") != "audio/wav" {
		t.Fatalf("recording through engine B: %d %q %v", code, body, hdr)
	}
	code, body, _ = ana.do("GET", "/calls/call-a/recording", nil, map[string]string{"Range": "bytes=0-3"})
	if code != http.StatusPartialContent || body != "RIFF" {
		t.Errorf("a range of the recording: %d %q", code, body)
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "recording_play", Target: "call-a"}); len(got) != 2 || !got[0].OK || got[0].User != "ana" || !strings.Contains(got[0].Detail, "engine-a") {
		t.Errorf("audit of the plays: %+v", got)
	}

	// The ticket screen plays it for the agent roles only.
	tk, err := e.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "+40721555666", CallID: "call-a", Recording: recA, Description: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, body := ana.get("/tickets/" + tk.Number); !strings.Contains(body, `src="/calls/call-a/recording"`) {
		t.Errorf("no player on the operator's ticket screen:\n%s", body)
	}

	// A call that names no engine (a line of one engine) is read from
	// this engine's disk.
	recB := filepath.Join(dirB, "call-local.wav")
	if err := os.WriteFile(recB, []byte("RIFF local"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.st.StartCall(ctx, tickets.CallRecord{ID: "call-local", Telephony: "sip", Caller: "+40721555666", Called: "1919"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AnswerCall(ctx, "call-local", time.Now(), "PCMU", recB); err != nil {
		t.Fatal(err)
	}
	if code, body := ana.get("/calls/call-local/recording"); code != http.StatusOK || body != "RIFF local" {
		t.Errorf("a local recording: %d %q", code, body)
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "recording_play", Target: "call-local"}); len(got) != 1 || got[0].Detail != "local" {
		t.Errorf("audit of the local play: %+v", got)
	}

	sue := e.client()
	sue.login("sue", pw)
	if code, _ := sue.get("/calls/call-a/recording"); code != http.StatusForbidden {
		t.Errorf("a supervisor plays a recording: %d, want 403", code)
	}
	if _, body := sue.get("/tickets/" + tk.Number); strings.Contains(body, "/recording") {
		t.Error("the supervisor's ticket screen has a player")
	}

	// Engine A refuses anyone without the secret.
	for _, hdr := range []map[string]string{nil, {peerEngineHeader: "engine-b", peerExpiresHeader: "9999999999", peerSigHeader: "00"}} {
		req, _ := http.NewRequest("GET", a.URL+"/internal/recordings/call-a", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("unsigned fetch from engine A: %d, want 403", res.StatusCode)
		}
	}
	// A path outside A's recordings folder is never served.
	if _, err := conA.openLocal(filepath.Join(dirA, "..", "x.wav")); err == nil {
		t.Error("a path outside the recordings folder was opened")
	}

	a.Close()
	code, body, _ = ana.do("GET", "/api/calls/call-a/recording", nil, nil)
	if code != http.StatusBadGateway || !strings.Contains(body, `engine \"engine-a\"`) || !strings.Contains(body, "does not answer") {
		t.Errorf("engine A down: %d %s", code, body)
	}
	if code, body := ana.get("/calls/call-a/recording"); code != http.StatusBadGateway || !strings.Contains(body, "motorul „engine-a”, care nu răspunde") {
		t.Errorf("engine A down, page: %d %s", code, body)
	}
	if code, _ := ana.get("/calls/call-1/recording"); code != http.StatusNotFound {
		t.Errorf("a call without a recording: %d, want 404", code)
	}
}
