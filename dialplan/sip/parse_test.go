package sip

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/limit"
)

const offerPCMU = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"

func TestParseOffer(t *testing.T) {
	tests := []struct {
		name      string
		sdp       string
		allowed   []string
		codec     string
		pt        uint8
		dtmf      uint8
		hold      bool
		wantErr   error
		errSubstr string
	}{
		{name: "pcmu first", sdp: offerPCMU, codec: "PCMU", pt: 0, dtmf: 101},
		{name: "allowed list skips pcmu", sdp: offerPCMU, allowed: []string{"pcma"}, codec: "PCMA", pt: 8, dtmf: 101},
		{name: "static types without rtpmap", sdp: strings.Replace(strings.Replace(offerPCMU, "a=rtpmap:0 PCMU/8000\r\n", "", 1), "a=rtpmap:8 PCMA/8000\r\n", "", 1), codec: "PCMU", pt: 0, dtmf: 101},
		{name: "dynamic opus and dtmf numbers", sdp: "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 111 100\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:100 telephone-event/8000\r\n", codec: "opus", pt: 111, dtmf: 100},
		{name: "hold sendonly", sdp: strings.Replace(offerPCMU, "a=sendrecv", "a=sendonly", 1), codec: "PCMU", pt: 0, dtmf: 101, hold: true},
		{name: "hold inactive", sdp: strings.Replace(offerPCMU, "a=sendrecv", "a=inactive", 1), codec: "PCMU", pt: 0, dtmf: 101, hold: true},
		{name: "no common codec", sdp: "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 9 18\r\na=rtpmap:9 G722/8000\r\na=rtpmap:18 G729/8000\r\n", wantErr: ErrNoCommonCodec},
		{name: "only telephone-event", sdp: "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n", wantErr: ErrNoCommonCodec},
		{name: "empty body", sdp: "", errSubstr: "no SDP"},
		{name: "no audio line", sdp: "v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n", errSubstr: "m=audio"},
		{name: "junk line", sdp: "v=0\r\nthis is not sdp\r\n", errSubstr: "bad SDP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOffer([]byte(tt.sdp), tt.allowed)
			if tt.wantErr != nil || tt.errSubstr != "" {
				if err == nil {
					t.Fatalf("no error, offer %+v", o)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Audio.Name != tt.codec || o.Audio.PayloadType != tt.pt || o.DTMF != tt.dtmf || o.Hold() != tt.hold {
				t.Fatalf("offer = %+v (hold %v), want %s pt %d dtmf %d hold %v", o, o.Hold(), tt.codec, tt.pt, tt.dtmf, tt.hold)
			}
		})
	}
}

func TestTelephoneEvent(t *testing.T) {
	ev, err := parseTelephoneEvent([]byte{11, 0x8a, 0x03, 0x20})
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := ev.Key(); !ok || k != '#' || !ev.End || ev.Volume != 10 || ev.Duration != 800 {
		t.Fatalf("event = %+v key %c", ev, k)
	}
	if _, ok := (telephoneEvent{Event: 16}).Key(); ok {
		t.Error("event 16 (flash) taken for a key")
	}
	if _, err := parseTelephoneEvent([]byte{1, 2}); err == nil {
		t.Error("short payload accepted")
	}
}

// One key press as real phones send it: a conformant one (one timestamp,
// marker on the first packet, end packet three times) and one that
// advances the timestamp on every packet; then the same key again.
func TestEventDeduper(t *testing.T) {
	type pkt struct {
		ts     uint32
		seq    uint16
		marker bool
		end    bool
	}
	count := func(pkts []pkt) int {
		var d eventDeduper
		n := 0
		for _, p := range pkts {
			if d.accept(telephoneEvent{Event: 5, End: p.end}, 1, p.ts, p.seq, p.marker) {
				n++
			}
		}
		return n
	}
	conformant := []pkt{{100, 1, true, false}, {100, 2, false, false}, {100, 3, false, false}, {100, 4, false, true}, {100, 5, false, true}, {100, 6, false, true},
		{900, 7, true, false}, {900, 8, false, true}, {900, 9, false, true}}
	if n := count(conformant); n != 2 {
		t.Errorf("conformant sender: %d key presses, want 2", n)
	}
	advancing := []pkt{{100, 1, true, false}, {260, 3, false, false}, {420, 5, false, false}, {580, 7, false, true}, {740, 9, false, true}, {900, 11, false, true},
		{1060, 13, true, false}, {1220, 15, false, true}}
	if n := count(advancing); n != 2 {
		t.Errorf("timestamp-advancing sender: %d key presses, want 2", n)
	}
	lostStart := []pkt{{100, 5, false, true}, {100, 6, false, true}}
	if n := count(lostStart); n != 1 {
		t.Errorf("only end packets arrived: %d key presses, want 1", n)
	}
}

func TestParseInfoDTMF(t *testing.T) {
	good := []struct {
		ct, body string
		key      rune
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5'},
		{"application/dtmf-relay; charset=utf-8", "signal= #\nDuration=100", '#'},
		{"Application/DTMF-Relay", "Duration=100\r\nSignal=*\r\n", '*'},
		{"application/dtmf-relay", "Signal=11\r\n", '#'},
		{"application/dtmf", "7", '7'},
		{"application/dtmf", " a ", 'A'},
	}
	for _, g := range good {
		k, err := parseInfoDTMF(g.ct, []byte(g.body))
		if err != nil || k != g.key {
			t.Errorf("%s %q: key %q err %v, want %q", g.ct, g.body, k, err, g.key)
		}
	}
	bad := []struct{ ct, body string }{
		{"text/plain", "Signal=5"},
		{"application/dtmf-relay", "Duration=160"},
		{"application/dtmf-relay", "Signal=E"},
		{"application/dtmf-relay", "Signal=16"},
		{"application/dtmf", ""},
		{"application/dtmf", "55"},
	}
	for _, b := range bad {
		if k, err := parseInfoDTMF(b.ct, []byte(b.body)); err == nil {
			t.Errorf("%s %q accepted as %q", b.ct, b.body, k)
		}
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(offerPCMU))
	f.Add([]byte("v=0\r\nm=audio 1 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"))
	f.Add([]byte("m=audio x y\r\na=rtpmap:\r\na=rtpmap:0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseOffer(b, nil)
		if err == nil && o.Audio.Name == "" {
			t.Fatal("no error but no audio codec")
		}
		if err == nil && len(o.Codecs) == 0 {
			t.Fatal("no error but no codecs")
		}
	})
}

func FuzzTelephoneEvent(f *testing.F) {
	f.Add([]byte{5, 0x8a, 0, 160}, uint32(100), uint16(1), true)
	f.Fuzz(func(t *testing.T, p []byte, ts uint32, seq uint16, marker bool) {
		ev, err := parseTelephoneEvent(p)
		if err != nil {
			if len(p) >= 4 {
				t.Fatal("4-byte payload refused")
			}
			return
		}
		var d eventDeduper
		if !d.accept(ev, 1, ts, seq, marker) {
			t.Fatal("the first event was not accepted")
		}
		if d.accept(ev, 1, ts, seq, marker) {
			t.Fatal("the same packet was accepted twice")
		}
	})
}

func FuzzParseInfoDTMF(f *testing.F) {
	f.Add("application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n"))
	f.Add("application/dtmf", []byte("#"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		k, err := parseInfoDTMF(ct, body)
		if err == nil && !strings.ContainsRune(dtmfKeys, k) {
			t.Fatalf("returned %q, not a DTMF key", k)
		}
	})
}

// The SIP libraries log raw messages and headers; what reaches our log
// has them redacted.
func TestLibraryLogsAreRedacted(t *testing.T) {
	var buf strings.Builder
	dropped := 0
	every := limit.NewEvery(time.Hour, 0)
	h := levelFilter{h: slog.NewTextHandler(&buf, nil), min: slog.LevelWarn, allow: func(k string) (bool, int) {
		ok, held := every.Allow(k)
		if !ok {
			dropped++
		}
		return ok, held
	}}
	log := slog.New(h)
	log.Info("dropped below warn", "data", "From: <sip:0722123456@x>")
	log.Error("failed to parse", "data", "INVITE sip:1 SIP/2.0\r\nFrom: <sip:0722123456@x>", "error", "bad")
	log.With("req.from", "sip:0722123456@x").Warn("Failed to handle request", "req.to", "sip:0211234567@x")
	// Error texts quote what did not parse: masked, and cut short.
	log.Error("Server tx failed to handle request", "error", errors.New("'tag' param not found in 'From' header of message 'INVITE sip:+13035551111@example.com' "+strings.Repeat("x", 400)))
	// The same message again, 200 times: one line.
	for range 200 {
		log.Error("failed to parse", "error", "bad")
	}
	out := buf.String()
	for _, leak := range []string{"0722123456", "0211234567", "3035551111", strings.Repeat("x", 200)} {
		if strings.Contains(out, leak) {
			t.Fatalf("%q leaked: %s", leak, out)
		}
	}
	if !strings.Contains(out, "failed to parse") || !strings.Contains(out, "error=bad") || strings.Contains(out, "dropped below warn") {
		t.Fatalf("filter wrong: %s", out)
	}
	if n := strings.Count(out, "failed to parse"); n != 1 || dropped != 200 {
		t.Fatalf("%d lines of a repeated message, %d dropped; want 1 and 200:\n%s", n, dropped, out)
	}
	if len(out) > 800 {
		t.Errorf("%d bytes of log for 203 library lines:\n%s", len(out), out)
	}
}
