package ari

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/ivr"
)

// TestRealAsterisk runs one call through a real Asterisk 20+ when
// IVR_TEST_ASTERISK_URL (e.g. http://127.0.0.1:8088), IVR_TEST_ASTERISK_USER
// and IVR_TEST_ASTERISK_PASSWORD are set; it is skipped otherwise (Asterisk
// is not packaged for the CI machines). The Asterisk needs the
// configuration in dialplan/ari/asterisk/ (at least [from-trunk] with
// Stasis(ivr)) and a second ARI application, "ivrtester", is used to play
// the caller: it originates Local/1919@from-trunk, whose other half enters
// the engine's application, plays a 440 Hz tone into the call and presses 0.
//
// It checks what the fake cannot: that the real chan_rtp ExternalMedia
// channel exchanges RTP with the engine in the configured format (the
// caller's tone arrives as a tone, so the byte order of slin16 is right),
// that DTMF arrives as ChannelDtmfReceived and that a real Asterisk accepts
// every request the adapter sends.
func TestRealAsterisk(t *testing.T) {
	base := os.Getenv("IVR_TEST_ASTERISK_URL")
	if base == "" {
		t.Skip("IVR_TEST_ASTERISK_URL not set: no real Asterisk to test against")
	}
	user, pass := os.Getenv("IVR_TEST_ASTERISK_USER"), os.Getenv("IVR_TEST_ASTERISK_PASSWORD")
	for _, format := range []string{"slin16", "ulaw"} {
		t.Run(format, func(t *testing.T) {
			l := startLineAt(t, ServerConfig{URL: base, User: user, Password: pass, App: "ivr"}, func(c *Config) { c.Format = format })
			// The tester: an ARI client of its own with a WebSocket for
			// the "ivrtester" application (Asterisk refuses to originate
			// into an application nobody listens to).
			tcfg, err := Config{Servers: []ServerConfig{{URL: base, User: user, Password: pass, App: "ivrtester"}}}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			tester := &conn{cfg: tcfg.Servers[0]}
			tester.cl = &client{base: tcfg.Servers[0].URL, user: user, pass: pass, http: http.DefaultClient, timeout: 5 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			wsDone := holdWebSocket(ctx, t, tester)
			defer func() { cancel(); <-wsDone }()

			var ch Channel
			if err := tester.cl.do(ctx, "", http.MethodPost, "/channels", url.Values{
				"endpoint": {"Local/1919@from-trunk"}, "app": {"ivrtester"}, "callerId": {"0721000999"},
			}, nil, &ch); err != nil {
				t.Fatalf("originate: %v", err)
			}
			chPath := "/channels/" + url.PathEscape(ch.ID)
			// The engine answers the other half; then the tone plays.
			var callID string
			if !waitFor(15*time.Second, func() bool {
				l.srv.mu.Lock()
				defer l.srv.mu.Unlock()
				for k, c := range l.srv.calls {
					if k.id == c.id && c.tr != nil && c.media() != "" {
						callID = c.id
						return true
					}
				}
				return false
			}) {
				t.Fatal("the engine never got the call with its ExternalMedia channel")
			}
			_ = tester.cl.do(ctx, "", http.MethodPost, chPath+"/answer", nil, nil, nil)
			var pb struct {
				ID string `json:"id"`
			}
			if err := tester.cl.do(ctx, "", http.MethodPost, chPath+"/play", url.Values{"media": {"tone:440"}}, nil, &pb); err != nil {
				t.Fatalf("play tone: %v", err)
			}
			time.Sleep(3 * time.Second)
			// A tone plays until stopped, and the channel's commands
			// wait behind it: stop it before pressing the key.
			if err := tester.cl.do(ctx, "", http.MethodDelete, "/playbacks/"+url.PathEscape(pb.ID), nil, nil, nil); err != nil {
				t.Fatalf("stop tone: %v", err)
			}
			if err := tester.cl.do(ctx, "", http.MethodPost, chPath+"/dtmf", url.Values{"dtmf": {"0"}, "duration": {"200"}}, nil, nil); err != nil {
				t.Fatalf("dtmf: %v", err)
			}
			rec := l.record(callID)
			if rec.EndReason != string(ivr.EndEngineHangup) || rec.DTMF != "0" {
				t.Errorf("record: %+v", rec)
			}
			if rec.Stats.In < 50 || rec.Stats.Out < 50 {
				t.Errorf("packets in %d out %d", rec.Stats.In, rec.Stats.Out)
			}
			stereo, rate := readStereo(t, rec.Recording)
			if f := dominantFrequency(stereo, rate); math.Abs(f-440) > 15 {
				t.Errorf("the caller's 440 Hz tone arrived as %.0f Hz (%s)", f, format)
			}
			for _, e := range l.events(callID) {
				if e.Kind == "ari.request" && strings.Contains(e.Detail, `"status":4`) {
					t.Errorf("Asterisk refused a request: %s", e.Detail)
				}
			}
			_ = tester.cl.do(context.Background(), "", http.MethodDelete, chPath, nil, nil, nil)
			l.cleanReal()
		})
	}
}

// dominantFrequency estimates the caller channel's main frequency (left
// samples of an interleaved stereo recording) over its loudest second by
// counting zero crossings.
func dominantFrequency(stereo []int16, rate int) float64 {
	left := make([]int16, len(stereo)/2)
	for i := range left {
		left[i] = stereo[2*i]
	}
	best, at := 0.0, 0
	for off := 0; off+rate <= len(left); off += rate / 2 {
		var e float64
		for _, s := range left[off : off+rate] {
			e += float64(s) * float64(s)
		}
		if e > best {
			best, at = e, off
		}
	}
	if at+rate > len(left) {
		return 0
	}
	crossings := 0
	for i := at + 1; i < at+rate; i++ {
		if (left[i-1] < 0) != (left[i] < 0) {
			crossings++
		}
	}
	return float64(crossings) / 2
}
