package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emiago/diago"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip/siptest"
)

// testTrunk is a SIP trunk on loopback (a second diago stack) answering
// every call (or 486 when busy), keeping what it heard.
func testTrunk(t *testing.T, busy bool) (port int, heard func() []int16) {
	t.Helper()
	var mu sync.Mutex
	var pcmHeard []int16
	handler := func(d *diago.DialogServerSession) {
		if busy {
			_ = d.Respond(486, "Busy Here", nil)
			return
		}
		if err := d.Answer(); err != nil {
			return
		}
		r, err := d.AudioReader()
		if err != nil {
			return
		}
		w, _ := d.AudioWriter()
		go func() {
			silence := bytes.Repeat([]byte{0xff}, 160)
			for d.Context().Err() == nil {
				if _, err := w.Write(silence); err != nil {
					return
				}
			}
		}()
		dec, _ := audio.NewDecoder("PCMU")
		buf := make([]byte, 1500)
		pcm := make([]int16, 800)
		for {
			n, err := r.Read(buf)
			if err != nil {
				return
			}
			m, _ := dec.Decode(pcm, buf[:n])
			mu.Lock()
			pcmHeard = append(pcmHeard, pcm[:m]...)
			mu.Unlock()
		}
	}
	_, port = siptest.NewAnsweringPhone(t, "test-trunk", handler)
	return port, func() []int16 {
		mu.Lock()
		defer mu.Unlock()
		return append([]int16(nil), pcmHeard...)
	}
}

// `ivrctl calls originate` calls a number through the trunk and runs the
// flow given: the phone behind the trunk hears it; a busy number is
// reported with its SIP status.
func TestCallsOriginate(t *testing.T) {
	port, heard := testTrunk(t, false)
	dir := t.TempDir()
	flow := filepath.Join(dir, "trunk-test.lua")
	if err := os.WriteFile(flow, []byte(`say("Acesta este un apel de test al liniei.")`+"\n"+`hangup("test")`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	var out, errb bytes.Buffer
	trunk := fmt.Sprintf("sip:127.0.0.1:%d", port)
	code := run([]string{"calls", "originate", "--data", data, "--trunk", trunk, "--flow", flow, "0722123456"}, &out, &errb)
	if code != exitOK || !strings.Contains(out.String(), "answered; ended engine_hangup") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	if pcm := heard(); audio.RMS(pcm) < 300 || len(pcm) < 8000 {
		t.Errorf("the phone behind the trunk heard %d samples at RMS %.0f: want the flow's sentence", len(pcm), audio.RMS(pcm))
	}

	busyPort, _ := testTrunk(t, true)
	out.Reset()
	code = run([]string{"calls", "originate", "--data", data, "--trunk", fmt.Sprintf("sip:127.0.0.1:%d", busyPort), "--flow", flow, "0722123456"}, &out, &errb)
	if code != exitError || !strings.Contains(out.String(), "not answered: busy (SIP 486)") {
		t.Errorf("busy: exit %d, stdout %q", code, out.String())
	}
}

// A TLS trunk's CA file that cannot be read stops the test call before
// anything is sent, and says which file.
func TestCallsOriginateTrunkCA(t *testing.T) {
	dir := t.TempDir()
	flow := filepath.Join(dir, "trunk-test.lua")
	if err := os.WriteFile(flow, []byte(`hangup("test")`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"calls", "originate", "--data", t.TempDir(), "--trunk", "sips:127.0.0.1:5061", "--trunk-ca", filepath.Join(dir, "missing-ca.pem"),
		"--flow", flow, "0722123456"}, &out, &errb)
	if code != exitError || !strings.Contains(errb.String(), "missing-ca.pem") {
		t.Errorf("exit %d, stderr %q: want an error naming the CA file", code, errb.String())
	}
}
