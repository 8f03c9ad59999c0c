package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"time"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/redact"
)

// runCallsOriginate is "ivrctl calls originate NUMBER --flow FILE": an
// administrator's trunk test. ivrctl starts a SIP endpoint of its own (on
// --listen), places one call to NUMBER through the trunk (--trunk, else
// $IVR_SIP_TRUNK) and runs the flow FILE on the answered call, spoken by
// the embedded synthesizer; the call record goes to the line's database.
// It prints how the call ended, or why it was not answered (exit 1).
func runCallsOriginate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("calls originate", "ivrctl calls originate NUMBER --flow FILE [--trunk sip:USER:PASSWORD@HOST:PORT[;transport=tcp|tls]] [--trunk-ca FILE] [--trunk-server-name NAME] [--listen HOST:PORT] [--caller-id N] [--ring-timeout 30s] [--lang ro]", stderr)
	data := dataFlag(fs)
	flowFile := fs.String("flow", "", "the Lua flow `FILE` to run on the answered call (its folder's catalog and prompts are used)")
	trunkURI := fs.String("trunk", os.Getenv("IVR_SIP_TRUNK"), "the trunk, sip:USER:PASSWORD@HOST:PORT[;transport=tcp|tls] or sips:USER:PASSWORD@HOST:PORT (default $IVR_SIP_TRUNK)")
	trunkCA := fs.String("trunk-ca", os.Getenv("IVR_SIP_TRUNK_CA"), "a TLS trunk: PEM `FILE` of CAs trusted besides the system's (default $IVR_SIP_TRUNK_CA)")
	trunkName := fs.String("trunk-server-name", os.Getenv("IVR_SIP_TRUNK_SERVER_NAME"), "a TLS trunk: the name its certificate holds (default $IVR_SIP_TRUNK_SERVER_NAME, else its IP)")
	trunkCert := fs.String("trunk-cert", os.Getenv("IVR_SIP_TRUNK_CERT"), "a TLS trunk: the client certificate `FILE` (PEM), with --trunk-key (default $IVR_SIP_TRUNK_CERT)")
	trunkKey := fs.String("trunk-key", os.Getenv("IVR_SIP_TRUNK_KEY"), "a TLS trunk: the client certificate's key `FILE` (default $IVR_SIP_TRUNK_KEY)")
	listen := fs.String("listen", "127.0.0.1:0", "the `HOST:PORT` this test endpoint listens on (the trunk sends its responses and RTP there; port 0: any free port)")
	callerID := fs.String("caller-id", os.Getenv("IVR_SIP_CALLER_ID"), "the From user of the call (default $IVR_SIP_CALLER_ID, else the trunk's user)")
	ring := fs.Duration("ring-timeout", sip.DefaultRingTimeout, "give up (no_answer) after this")
	lang := fs.String("lang", "ro", "the call's language")
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one NUMBER")
	}
	if *flowFile == "" {
		return usageError(fs, stderr, "missing --flow FILE")
	}
	trunk, err := sip.ParseTrunk(*trunkURI)
	if err != nil {
		return usageError(fs, stderr, "--trunk: %v", err)
	}
	addr, err := freeListen(*listen)
	if err != nil {
		return usageError(fs, stderr, "--listen: %v", err)
	}
	dir, name := filepath.Split(*flowFile)
	if dir == "" {
		dir = "."
	}
	rt, err := flows.Load(dir, flows.Config{Default: name})
	if err != nil {
		return fail(stderr, fmt.Errorf("flow: %w", err))
	}
	c, err := openConn(data, false)
	if err != nil {
		return fail(stderr, err)
	}
	defer c.db.Close()
	log := slog.New(redact.NewHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}), nil))
	calls := c.NewCallLog(0, log)
	defer calls.Close()
	cache, err := os.MkdirTemp("", "ivrctl-tts-")
	if err != nil {
		return fail(stderr, err)
	}
	defer os.RemoveAll(cache)
	eng := &ivr.Engine{Calls: calls, Metrics: ivr.NewMetrics(), Log: log, Flow: rt, Lang: *lang,
		Synth: &ivr.RenderCache{Dir: cache, Log: log}, Timing: ivr.Timing{FirstDigit: 5 * time.Second, Retries: 2}}
	if p, err := ivr.LoadPrompts(ivr.PromptConfig{Dir: filepath.Join(dir, "prompts"), Cache: cache, Lang: *lang, Rates: []int{8000, 16000}}); err == nil {
		eng.Prompts = p
	}
	tlsConf := sip.TrunkTLS{CAFile: *trunkCA, ServerName: *trunkName, CertFile: *trunkCert, KeyFile: *trunkKey}
	srv, err := sip.New(sip.Config{Listen: addr, Outbound: sip.OutboundConfig{Trunk: trunk, TLS: tlsConf, CallerID: *callerID, RingTimeout: *ring, Retries: -1}}, eng)
	if err != nil {
		return fail(stderr, err)
	}
	defer srv.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	sctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); <-errc }()
	go func() { errc <- srv.Serve(sctx) }()
	select {
	case <-srv.Ready():
	case err := <-errc:
		errc <- nil
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "calling %s via %s from %s\n", pos[0], trunk, addr)
	start := time.Now()
	res, err := srv.Originate(ctx, sip.OriginateRequest{Number: pos[0], Flow: rt})
	if err != nil {
		var oe *sip.OutboundError
		if errors.As(err, &oe) {
			if oe.Status != 0 {
				fmt.Fprintf(stdout, "not answered: %s (SIP %d) after %s\n", oe.Reason, oe.Status, time.Since(start).Round(time.Millisecond))
			} else {
				fmt.Fprintf(stdout, "not answered: %s after %s\n", oe.Reason, time.Since(start).Round(time.Millisecond))
			}
			return exitError
		}
		return fail(stderr, err)
	}
	_ = calls.Flush(context.Background())
	fmt.Fprintf(stdout, "answered; ended %s after %s; call %s (ivrctl calls trace %s)\n", res.End, time.Since(start).Round(time.Millisecond), res.CallID, res.CallID)
	return exitOK
}

// freeListen turns HOST:0 into HOST:PORT with a free UDP port.
func freeListen(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port != "0" {
		return addr, nil
	}
	// The endpoint listens on UDP and TCP: a port free for both.
	for range 20 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", err
		}
		p := net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		ln, err := net.Listen("tcp", p)
		pc.Close()
		if err == nil {
			ln.Close()
			return p, nil
		}
	}
	return "", fmt.Errorf("no port of %s free for both UDP and TCP", host)
}
