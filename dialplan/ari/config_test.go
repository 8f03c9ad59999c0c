package ari

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/govline/ivr/ivr"
)

func TestConfigValidation(t *testing.T) {
	srv := ServerConfig{URL: "http://127.0.0.1:8088", User: "ivr", Password: "pw-secret-1"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // part of the error; "" means valid
	}{
		{"no server", Config{}, "no Asterisk server"},
		{"bad url", Config{Servers: []ServerConfig{{URL: "127.0.0.1:8088", User: "u", Password: "p"}}}, "want http://host:port"},
		{"no password", Config{Servers: []ServerConfig{{URL: "http://h:8088", User: "u"}}}, "user and password are required"},
		{"bad app", Config{Servers: []ServerConfig{{URL: "http://h:8088", User: "u", Password: "p", App: "ivr app"}}}, "application name"},
		{"bad format", Config{Servers: []ServerConfig{srv}, Format: "opus"}, "want ulaw or slin16"},
		{"unspecified rtp", Config{Servers: []ServerConfig{srv}, RTPAddress: "0.0.0.0"}, "rtp address"},
		{"bad range", Config{Servers: []ServerConfig{srv}, RTPPortMin: 20000, RTPPortMax: 10000}, "port range"},
		{"redirect without endpoint", Config{Servers: []ServerConfig{srv}, Handoff: HandoffConfig{Mode: "redirect"}}, "needs an endpoint"},
		{"bad mode", Config{Servers: []ServerConfig{srv}, Handoff: HandoffConfig{Mode: "transfer"}}, "want continue or redirect"},
		{"valid", Config{Servers: []ServerConfig{srv}}, ""},
	} {
		_, err := tc.cfg.withDefaults()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// Credentials written into the URL are moved out of it, and an error
	// about a URL never shows them.
	c, err := Config{Servers: []ServerConfig{{URL: "http://ivr:url-secret-2@127.0.0.1:8088/"}}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Servers[0]; s.URL != "http://127.0.0.1:8088/ari" || s.User != "ivr" || s.Password != "url-secret-2" || s.App != "ivr" {
		t.Errorf("normalized: %+v", s)
	}
	_, err = Config{Servers: []ServerConfig{{URL: "ftp://ivr:url-secret-3@h/", User: "u", Password: "p"}}}.withDefaults()
	if err == nil || strings.Contains(err.Error(), "url-secret-3") {
		t.Errorf("error shows the password: %v", err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "server", srv)
	if strings.Contains(buf.String(), "pw-secret-1") {
		t.Errorf("ServerConfig logs its password: %s", buf.String())
	}
	d, _ := Config{Servers: []ServerConfig{srv}}.withDefaults()
	if d.Format != "ulaw" || d.RTPAddress != "127.0.0.1" || d.Handoff.Context != "ivr-handoff" || d.Handoff.Priority != 1 || d.RequestTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", d)
	}
}

// RTP from an address that is not Asterisk's is dropped: someone who
// finds the engine's port cannot speak into a call.
func TestRTPFromElsewhereIgnored(t *testing.T) {
	l := startLine(t, nil)
	caller := l.ast.Call("0721000160", "1919")
	bridged(t, caller)
	c := l.callOf(caller.ID)
	c.mu.Lock()
	port := c.port
	c.mu.Unlock()
	rogue, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	defer rogue.Close()
	before := c.tr.PacketsIn.Load()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 1}, Payload: make([]byte, 160)}
	for i := range 100 {
		pkt.SequenceNumber, pkt.Timestamp = uint16(i), uint32(160*i)
		b, _ := pkt.Marshal()
		_, _ = rogue.WriteToUDP(b, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	}
	time.Sleep(300 * time.Millisecond)
	// Asterisk's own stream goes on at 50 packets a second; 100 more
	// would show.
	if got := c.tr.PacketsIn.Load() - before; got > 30 {
		t.Errorf("%d packets counted in 300 ms: the rogue stream was accepted", got)
	}
	if r := c.remote.Load(); r == nil || !r.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("remote moved to %v", r)
	}
	caller.Hangup()
	if r := l.record(caller.ID); r.EndReason != string(ivr.EndCallerHangup) {
		t.Errorf("end reason %s", r.EndReason)
	}
	l.clean()
}
