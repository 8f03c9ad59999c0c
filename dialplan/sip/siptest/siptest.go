// Package siptest is the test kit for anything that answers SIP calls on
// loopback: free ports, and a real SIP phone (diago) that survives the
// port races of a busy test machine. The SIP endpoint's own tests, the
// daemon's tests and, later, the PBX adapters' tests use it.
package siptest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// FreePort returns a port that was free for both UDP and TCP on 127.0.0.1
// when it returned. Another process may take it before you bind: callers
// try again on "address already in use".
func FreePort() (int, error) {
	for range 50 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no port free for both UDP and TCP on 127.0.0.1")
}

// Port is FreePort for tests.
func Port(t testing.TB) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// NewPhone starts a SIP phone (a diago user agent listening on UDP
// 127.0.0.1) that offers codecs (PCMU and telephone-event when none are
// given). It is stopped when the test ends.
func NewPhone(t testing.TB, name string, codecs ...media.Codec) (*diago.Diago, *sipgo.UserAgent) {
	t.Helper()
	dg, ua, _ := newPhone(t, name, func(*diago.DialogServerSession) {}, codecs...)
	return dg, ua
}

// NewAnsweringPhone is NewPhone with handler taking the calls it receives
// (an agent's softphone, a trunk's far end); it returns the phone and its
// SIP port.
func NewAnsweringPhone(t testing.TB, name string, handler diago.ServeDialogFunc, codecs ...media.Codec) (*diago.Diago, int) {
	t.Helper()
	dg, _, port := newPhone(t, name, handler, codecs...)
	return dg, port
}

// NewAnsweringPhoneOver is NewAnsweringPhone listening on transports
// instead of UDP alone: each on 127.0.0.1 and the one free port it returns
// (their BindHost and BindPort are set here). "tls" needs its TLSConf;
// TCP and TLS cannot share the port.
func NewAnsweringPhoneOver(t testing.TB, name string, handler diago.ServeDialogFunc, transports []diago.Transport, codecs ...media.Codec) (*diago.Diago, int) {
	t.Helper()
	dg, _, port := newPhoneOver(t, name, handler, transports, codecs...)
	return dg, port
}

func newPhone(t testing.TB, name string, handler diago.ServeDialogFunc, codecs ...media.Codec) (*diago.Diago, *sipgo.UserAgent, int) {
	t.Helper()
	return newPhoneOver(t, name, handler, nil, codecs...)
}

func newPhoneOver(t testing.TB, name string, handler diago.ServeDialogFunc, transports []diago.Transport, codecs ...media.Codec) (*diago.Diago, *sipgo.UserAgent, int) {
	t.Helper()
	if len(transports) == 0 {
		transports = []diago.Transport{{Transport: "udp"}}
	}
	if len(codecs) == 0 {
		codecs = []media.Codec{media.CodecAudioUlaw, media.CodecTelephoneEvent8000}
	}
	// A port taken between the check and the bind makes it try another.
	// (Port 0 is no way out: sipgo then races its listener against the
	// client's own bind.)
	for attempt := 0; ; attempt++ {
		ua, err := sipgo.NewUA(sipgo.WithUserAgent(name))
		if err != nil {
			t.Fatal(err)
		}
		port := Port(t)
		opts := []diago.DiagoOption{
			diago.WithMediaConfig(diago.MediaConfig{Codecs: codecs}),
			diago.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		}
		for _, tr := range transports {
			tr.BindHost, tr.BindPort = "127.0.0.1", port
			opts = append(opts, diago.WithTransport(tr))
		}
		dg := diago.NewDiago(ua, opts...)
		ctx, cancel := context.WithCancel(context.Background())
		if err := dg.ServeBackground(ctx, handler); err != nil {
			cancel()
			ua.Close()
			if attempt < 5 {
				continue
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); ua.Close() })
		return dg, ua, port
	}
}

// Invite places a call. sipgo v1.7.2 may announce a UDP listener ready a
// moment before its client side can use it; the first request then fails
// with "bind: address already in use" (the client tries to bind the port
// itself). That request never left the phone, so it is sent again.
func Invite(ctx context.Context, dg *diago.Diago, to sip.Uri, opts diago.InviteOptions) (*diago.DialogClientSession, error) {
	for attempt := 0; ; attempt++ {
		d, err := dg.Invite(ctx, to, opts)
		if err != nil && attempt < 5 && strings.Contains(err.Error(), "address already in use") {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		return d, err
	}
}
