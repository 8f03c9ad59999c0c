package sip_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/pion/rtp"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/tickets"
)

// rawPhone writes SIP requests by hand over UDP (what an attacker or an
// odd phone sends), with a socket of its own for the media the line sends.
type rawPhone struct {
	t     *testing.T
	conn  net.PacketConn
	ip    string
	port  int
	media net.PacketConn
	line  *net.UDPAddr

	mu   sync.Mutex
	resp map[string][]*gosip.Response // by Call-ID, final responses
	seen chan struct{}
}

// newRawPhone binds a UDP socket (and a media socket) on ip ("" =
// 127.0.0.1) and reads the line's answers.
func newRawPhone(t *testing.T, l *line, ip string) *rawPhone {
	t.Helper()
	if ip == "" {
		ip = "127.0.0.1"
	}
	conn, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	media, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPhone{t: t, conn: conn, ip: ip, port: conn.LocalAddr().(*net.UDPAddr).Port, media: media,
		line: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.port}, resp: map[string][]*gosip.Response{}, seen: make(chan struct{}, 1000)}
	t.Cleanup(func() { conn.Close(); media.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if m, err := gosip.NewParser().ParseSIP(buf[:n]); err == nil {
				if req, ok := m.(*gosip.Request); ok && req.Method == gosip.BYE {
					// The line hangs up: answer as a phone does.
					res := gosip.NewResponseFromRequest(req, 200, "OK", nil)
					_, _ = conn.WriteTo([]byte(res.String()), p.line)
					continue
				}
			}
			res, ok := parseResponse(buf[:n])
			if !ok || res.StatusCode < 200 || res.CallID() == nil {
				continue
			}
			if res.StatusCode >= 300 && res.CSeq().MethodName == gosip.INVITE {
				// RFC 3261 17.1.1.3: a failure is acknowledged in its transaction.
				ack := fmt.Sprintf("ACK sip:1919@127.0.0.1 SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d ACK\r\nContent-Length: 0\r\n\r\n",
					res.Via().Value(), res.From().Value(), res.To().Value(), res.CallID().Value(), res.CSeq().SeqNo)
				_, _ = conn.WriteTo([]byte(ack), p.line)
			}
			p.mu.Lock()
			id := res.CallID().Value()
			p.resp[id] = append(p.resp[id], res)
			p.mu.Unlock()
			select {
			case p.seen <- struct{}{}:
			default:
			}
		}
	}()
	return p
}

// offerSDP is a one-line PCMU offer on the phone's media socket.
func (p *rawPhone) offerSDP() string {
	port := p.media.LocalAddr().(*net.UDPAddr).Port
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0 101\r\n"+
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n", p.ip, p.ip, port)
}

// invite sends an INVITE with body sdp and returns its Call-ID.
func (p *rawPhone) invite(sdp string) string {
	return p.inviteAs(fmt.Sprintf("raw-%d@%s", rand.Int64(), p.ip), sdp)
}

// inviteAs sends an INVITE with Call-ID id.
func (p *rawPhone) inviteAs(id, sdp string) string {
	p.send("INVITE", "sip:1919@127.0.0.1", id, 1, "tag="+fmt.Sprint(rand.Int32()), "", "Content-Type: application/sdp\r\n", sdp)
	return id
}

// send writes one request from the phone.
func (p *rawPhone) send(method, uri, callID string, seq uint32, fromTag, to, extra, body string) {
	if to == "" {
		to = "<sip:1919@127.0.0.1>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%d;rport\r\nMax-Forwards: 70\r\n", method, uri, p.ip, p.port, rand.Int64())
	fmt.Fprintf(&b, "From: <sip:%s@%s>;%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n", testCaller, p.ip, fromTag, to, callID, seq, method)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s:%d>\r\n%sContent-Length: %d\r\n\r\n%s", testCaller, p.ip, p.port, extra, len(body), body)
	if _, err := p.conn.WriteTo([]byte(b.String()), p.line); err != nil {
		p.t.Fatal(err)
	}
}

// final waits for the final response to the INVITE callID.
func (p *rawPhone) final(callID string, limit time.Duration) *gosip.Response {
	p.t.Helper()
	return p.finalTo(callID, gosip.INVITE, limit)
}

// finalTo waits for the final response to the request method of callID.
func (p *rawPhone) finalTo(callID string, method gosip.RequestMethod, limit time.Duration) *gosip.Response {
	p.t.Helper()
	deadline := time.After(limit)
	for {
		p.mu.Lock()
		for _, r := range p.resp[callID] {
			if r.CSeq().MethodName == method {
				p.mu.Unlock()
				return r
			}
		}
		p.mu.Unlock()
		select {
		case <-p.seen:
		case <-deadline:
			p.t.Fatalf("no final response to INVITE %s within %s", callID, limit)
		}
	}
}

// ack acknowledges a 2xx; bye ends its call.
func (p *rawPhone) ack(res *gosip.Response) { p.inDialog("ACK", res, 1) }
func (p *rawPhone) bye(res *gosip.Response) { p.inDialog("BYE", res, 2) }

func (p *rawPhone) inDialog(method string, res *gosip.Response, seq uint32) {
	from := res.From()
	tag, _ := from.Params.Get("tag")
	p.send(method, res.Contact().Address.String(), res.CallID().Value(), seq, "tag="+tag, res.To().Value(), "", "")
}

// A flood of requests without From, To and Call-ID (RFC 4475 insuf): each
// is answered 400 with a Warning, nothing panics, and the log holds a line
// or two, not one per datagram.
func TestMalformedRequestFlood(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	before, _ := l.logs.size()
	const n = 200
	sent := 0
	for i := range n {
		msg := fmt.Sprintf("INVITE sip:user@example.com SIP/2.0\r\nCSeq: %d INVITE\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKinsuf%d;rport\r\n"+
			"Content-Type: application/sdp\r\nl: 152\r\n\r\nv=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.95\r\ns=-\r\nc=IN IP4 192.0.2.95\r\nt=0 0\r\n"+
			"m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n", 193942+i, port, i)
		sent += len(msg)
		if i%20 == 19 {
			time.Sleep(10 * time.Millisecond) // a socket buffer's worth at a time: none lost on the way
		}
		if _, err := conn.WriteTo([]byte(msg), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.port}); err != nil {
			t.Fatal(err)
		}
	}
	answered, warned := map[uint32]bool{}, 0
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(answered) < n {
		k, _, err := conn.ReadFrom(buf)
		if err != nil {
			break
		}
		// A 400 is sent again until acknowledged: count each request once.
		if res, ok := parseResponse(buf[:k]); ok && res.StatusCode == 400 && !answered[res.CSeq().SeqNo] {
			answered[res.CSeq().SeqNo] = true
			if w := res.GetHeader("Warning"); w != nil && strings.Contains(w.Value(), "missing header From, To, Call-ID") {
				warned++
			}
		}
	}
	if len(answered) != n || warned != n {
		t.Errorf("%d of %d answered 400, %d with the Warning naming the missing headers", len(answered), n, warned)
	}
	if p := l.eng.Metrics.Panics.Load(); p != 0 {
		t.Errorf("ivr_panics_total = %d", p)
	}
	if got := l.eng.Metrics.SIPRefused.Get("missing_header"); got != n {
		t.Errorf("ivr_sip_refused_total{reason=missing_header} = %d, want %d", got, n)
	}
	after, _ := l.logs.size()
	logged := after - before
	t.Logf("%d datagrams (%d bytes) made %d bytes of log (%.1f per datagram)", n, sent, logged, float64(logged)/n)
	if logged > 1000 {
		t.Errorf("%d bytes of log for %d refused datagrams, want a line or two", logged, n)
	}
}

// Limits: beyond the calls not yet acknowledged from one address, an
// INVITE gets 503 with Retry-After (and counts as rejected); a 200 OK
// whose ACK never comes ends the call after the ACK timeout (counted);
// beyond the calls from one address, and in total, new calls get 503.
func TestCallLimits(t *testing.T) {
	t.Parallel()
	l := startLine(t, func(c *sip.Config, _ *ivr.Engine) {
		c.MaxPendingPerSource, c.MaxPending = 3, 100
		c.MaxCallsPerSource, c.MaxCalls = 4, 5
		c.AckTimeout = 1500 * time.Millisecond
	})
	p := newRawPhone(t, l, "")
	var ids []string
	for range 4 {
		ids = append(ids, p.invite(p.offerSDP()))
		time.Sleep(20 * time.Millisecond)
	}
	codes := map[int]int{}
	var refused *gosip.Response
	for _, id := range ids {
		r := p.final(id, 5*time.Second)
		codes[r.StatusCode]++
		if r.StatusCode == 503 {
			refused = r
		}
	}
	if codes[200] != 3 || codes[503] != 1 {
		t.Fatalf("4 INVITEs never acknowledged, at most 3 pending per address: answers %v", codes)
	}
	if h := refused.GetHeader("Retry-After"); h == nil || h.Value() != "10" {
		t.Errorf("503 without Retry-After: 10 (%v)", h)
	}
	if got := l.eng.Metrics.Outcome(ivr.EndRejected); got != 1 {
		t.Errorf("ivr_calls_total{outcome=rejected} = %d, want 1", got)
	}
	// The three 200 OK are never acknowledged: cleaned up and counted.
	if !waitFor(5*time.Second, func() bool { return l.eng.Metrics.ActiveCalls.Load() == 0 }) {
		t.Fatalf("%d calls still up after the ACK timeout", l.eng.Metrics.ActiveCalls.Load())
	}
	if got := l.eng.Metrics.SIPUnacked.Load(); got != 3 {
		t.Errorf("ivr_sip_unacked_invites_total = %d, want 3", got)
	}
	for _, id := range ids {
		if codes := p.final(id, time.Second); codes.StatusCode != 200 {
			continue
		}
		if !hasEventKind(t, l, id, "sip.ack.timeout") {
			t.Errorf("call %s: no sip.ack.timeout event", id)
		}
	}

	// Answered calls: four from this address, the fifth refused; one from
	// another address (five in all), then the line is full.
	var up []*gosip.Response
	for i := range 5 {
		id := p.invite(p.offerSDP())
		r := p.final(id, 5*time.Second)
		if i < 4 {
			if r.StatusCode != 200 {
				t.Fatalf("call %d from one address: %d, want 200", i+1, r.StatusCode)
			}
			p.ack(r)
			up = append(up, r)
		} else if r.StatusCode != 503 {
			t.Fatalf("fifth call from one address: %d, want 503", r.StatusCode)
		}
	}
	_, ip2 := peerUDP(t)
	q := newRawPhone(t, l, ip2)
	r := q.final(q.invite(q.offerSDP()), 5*time.Second)
	if r.StatusCode != 200 {
		t.Fatalf("a call from another address: %d, want 200", r.StatusCode)
	}
	q.ack(r)
	if r := q.final(q.invite(q.offerSDP()), 5*time.Second); r.StatusCode != 503 {
		t.Fatalf("a sixth call: %d, want 503 (5 in all)", r.StatusCode)
	}
	if got := l.eng.Metrics.SIPRefused.Get("max_calls"); got != 1 {
		t.Errorf("refused max_calls = %d, want 1", got)
	}
	for _, r := range up {
		p.bye(r)
	}
	q.bye(r)
	if !waitFor(5*time.Second, func() bool { return l.eng.Metrics.ActiveCalls.Load() == 0 }) {
		t.Errorf("%d calls up after the BYEs", l.eng.Metrics.ActiveCalls.Load())
	}
}

func hasEventKind(t *testing.T, l *line, id, kind string) bool {
	t.Helper()
	var found bool
	waitFor(3*time.Second, func() bool {
		evs, err := l.store.Events(context.Background(), id)
		if err != nil {
			return false
		}
		for _, e := range evs {
			if e.Kind == kind {
				found = true
			}
		}
		return found
	})
	return found
}

// A softphone's default offer has video next to audio (linphone's,
// below): the line answers the audio line and declines the others with
// port 0, keeping the offer's order (RFC 3264 6), and its audio flows.
func TestOfferWithVideo(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	p := newRawPhone(t, l, "")
	port := p.media.LocalAddr().(*net.UDPAddr).Port
	linphone := fmt.Sprintf("v=0\r\no=%s 3617 2413 IN IP4 127.0.0.1\r\ns=Talk\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n"+
		"m=audio %d RTP/AVP 96 97 98 0 8 101 99 100\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n"+
		"a=rtpmap:97 speex/16000\r\na=fmtp:97 vbr=on\r\na=rtpmap:98 speex/8000\r\na=fmtp:98 vbr=on\r\n"+
		"a=rtpmap:101 telephone-event/48000\r\na=rtpmap:99 telephone-event/16000\r\na=rtpmap:100 telephone-event/8000\r\n"+
		"a=rtcp-fb:* trr-int 1000\r\na=rtcp-fb:* ccm tmmbr\r\n"+
		"m=video 9078 RTP/AVP 102 103\r\na=rtpmap:102 VP8/90000\r\na=rtpmap:103 H264/90000\r\na=fmtp:103 profile-level-id=42801F\r\n"+
		"a=rtcp-fb:* trr-int 1000\r\na=rtcp-fb:* ccm tmmbr\r\na=rtcp-fb:102 nack pli\r\na=rtcp-fb:102 ccm fir\r\n", testCaller, port)
	// Video first, a second audio line after the first: declined too.
	videoFirst := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"+
		"m=video 9080 RTP/AVP 96\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:96 VP8/90000\r\n"+
		"m=audio %d RTP/AVP 8 101\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"+
		"m=audio 9082 RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\n", port)
	for _, tc := range []struct {
		name, offer string
		want        []string // the answer's m= lines, "audio" for the one answered
		pt          uint8
	}{
		{"linphone", linphone, []string{"audio", "m=video 0 RTP/AVP 102 103"}, 96},
		{"video first", videoFirst, []string{"m=video 0 RTP/AVP 96", "audio", "m=audio 0 RTP/AVP 0"}, 8},
	} {
		id := p.invite(tc.offer)
		res := p.final(id, 5*time.Second)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d, want 200", tc.name, res.StatusCode)
		}
		var lines []string
		for _, ln := range strings.Split(string(res.Body()), "\r\n") {
			if strings.HasPrefix(ln, "m=") {
				lines = append(lines, ln)
			}
		}
		ok := len(lines) == len(tc.want)
		for i := 0; ok && i < len(lines); i++ {
			if tc.want[i] == "audio" {
				ok = strings.HasPrefix(lines[i], "m=audio ") && !strings.HasPrefix(lines[i], "m=audio 0 ")
			} else {
				ok = lines[i] == tc.want[i]
			}
		}
		if !ok {
			t.Fatalf("%s: answer's media lines %q, want %q", tc.name, lines, tc.want)
		}
		p.ack(res)
		// The line's audio arrives at the offered audio port, in the codec answered.
		_ = p.media.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		n, _, err := p.media.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%s: no RTP from the line: %v", tc.name, err)
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(buf[:n]); err != nil || pkt.PayloadType != tc.pt {
			t.Errorf("%s: RTP payload type %d (%v), want %d", tc.name, pkt.PayloadType, err, tc.pt)
		}
		p.bye(res)
		rec := record(t, l, id)
		if rec.EndReason != string(ivr.EndCallerHangup) {
			t.Errorf("%s: call ended %s", tc.name, rec.EndReason)
		}
	}
	if got := l.eng.Metrics.Outcome(ivr.EndError) + l.eng.Metrics.Outcome(ivr.EndRejected); got != 0 {
		t.Errorf("%d offers refused", got)
	}
}

// Over TCP, a response whose connection is gone goes back only to the
// address the request came from (RFC 3261 18.2.2: the sent-by port at the
// source address), never to another host a Via names, and no name in a
// Via is looked up.
func TestTCPResponsesStayWithTheSource(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	_, attacker := peerUDP(t)
	_, victim := peerUDP(t)
	listen := func(ip string) (net.Listener, chan string) {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		got := make(chan string, 4)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				got <- strings.TrimSpace(line)
				c.Close()
			}
		}()
		return ln, got
	}
	victimLn, victimGot := listen(victim)
	ownLn, ownGot := listen(attacker)
	send := func(via string) {
		c, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP(attacker)}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.port})
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("OPTIONS sip:1919@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK%d\r\nMax-Forwards: 70\r\n"+
			"From: <sip:%s@127.0.0.1>;tag=1\r\nTo: <sip:1919@127.0.0.1>\r\nCall-ID: tcp-%d@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
			via, rand.Int64(), testCaller, rand.Int64())
		_, _ = c.Write([]byte(msg))
		c.Close() // gone before the answer
	}
	// A Via naming another host (by address, then by name): no
	// connection, no lookup. (Whether the line finds the connection gone
	// when it answers is a race: the requests are sent until it did.)
	m := l.eng.Metrics
	for i := 0; i < 50 && (m.SIPDialsRefused.Load() == 0 || m.SIPDNSRefused.Load() == 0); i++ {
		send(victimLn.Addr().String())
		send("victim.example.com:5060")
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case line := <-victimGot:
		t.Fatalf("the line connected to the host a Via named and sent %q", line)
	case <-time.After(time.Second):
	}
	if m.SIPDialsRefused.Load() == 0 {
		t.Error("no refused connection counted")
	}
	if m.SIPDNSRefused.Load() == 0 {
		t.Error("the name in the Via was not refused by the line's resolver")
	}
	// A Via naming the source address itself: the answer comes back
	// there, on a new connection.
	for i := 0; ; i++ {
		send(ownLn.Addr().String())
		select {
		case line := <-ownGot:
			if line != "SIP/2.0 200 OK" {
				t.Errorf("the answer at the source address: %q", line)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if i == 50 {
			t.Fatal("no answer at the source address")
		}
	}
}

// challenge asks the line for a digest challenge (a REGISTER without
// credentials).
func (p *rawPhone) challenge(name string) *digest.Challenge {
	p.t.Helper()
	id := fmt.Sprintf("reg-%d@%s", rand.Int64(), p.ip)
	to := fmt.Sprintf("<sip:%s@127.0.0.1>", name)
	p.send("REGISTER", "sip:127.0.0.1", id, 1, "tag=r", to, "Expires: 60\r\n", "")
	res := p.finalTo(id, gosip.REGISTER, 3*time.Second)
	h := res.GetHeader("WWW-Authenticate")
	if res.StatusCode != 401 || h == nil {
		p.t.Fatalf("REGISTER without credentials: %d, want 401 with a challenge", res.StatusCode)
	}
	ch, err := digest.ParseChallenge(h.Value())
	if err != nil {
		p.t.Fatal(err)
	}
	return ch
}

// nonceCount numbers the digests of the test phones, so that no count is
// used twice with a nonce.
var nonceCount atomic.Int64

// register sends one REGISTER of name with password, answering ch, and
// returns the line's final response.
func (p *rawPhone) register(ch *digest.Challenge, name, password string) *gosip.Response {
	p.t.Helper()
	cred, err := digest.Digest(ch, digest.Options{Method: "REGISTER", URI: "sip:127.0.0.1", Username: name, Password: password, Count: int(nonceCount.Add(1))})
	if err != nil {
		p.t.Fatal(err)
	}
	id := fmt.Sprintf("reg-%d@%s", rand.Int64(), p.ip)
	to := fmt.Sprintf("<sip:%s@127.0.0.1>", name)
	p.send("REGISTER", "sip:127.0.0.1", id, 2, "tag=r", to, "Expires: 60\r\nAuthorization: "+cred.String()+"\r\n", "")
	return p.finalTo(id, gosip.REGISTER, 3*time.Second)
}

// Guessing an agent's password: after three failures each attempt waits
// a doubling back-off (503 with Retry-After, not even checked), the
// fifth failure locks the agent out (403, even for the right password)
// except at the address its phone registered from, every failure and
// lockout is audited with the source address and counted; an
// administrator's unlock lets the right password in again, and a
// registration from a new address while the old one is active is audited.
// Guessing names from one address locks that address out.
func TestRegisterGuessingIsThrottledAndLockedOut(t *testing.T) {
	t.Parallel()
	var store *tickets.Store
	var qs *queue.Queues
	l := startLineStore(t, func(c *sip.Config, _ *ivr.Engine, st *tickets.Store) {
		store = st
		var err error
		if qs, err = queue.New(queue.Config{Queues: map[string]queue.QueueConfig{"level1": {}}}); err != nil {
			t.Fatal(err)
		}
		dir := agentDirectory(t, st)
		if err := dir.Add(context.Background(), "alice", sip.DefaultRealm, agentPass, []string{"level1"}); err != nil {
			t.Fatal(err)
		}
		c.Queue = sip.QueueConfig{Queues: qs, Agents: dir, Locks: dir, Audit: st, MinExpires: time.Second,
			MaxFailures: 5, AddressMaxFailures: 8, Backoff: 50 * time.Millisecond, Lockout: time.Minute}
	})
	ctx := context.Background()
	dir := agentDirectory(t, store)
	alice := newRawPhone(t, l, "")
	if r := alice.register(alice.challenge("alice"), "alice", agentPass); r.StatusCode != 200 {
		t.Fatalf("alice's phone: %d, want 200", r.StatusCode)
	}

	// The attacker guesses for a second, as fast as the line answers.
	_, ipX := peerUDP(t)
	x := newRawPhone(t, l, ipX)
	ch := x.challenge("alice")
	codes := map[string]int{}
	start := time.Now()
	for i := 0; time.Since(start) < time.Second; i++ {
		r := x.register(ch, "alice", fmt.Sprintf("guess-%d", i))
		switch {
		case r.StatusCode == 403 && r.GetHeader("Warning") != nil:
			codes["locked"]++
		case r.StatusCode == 403:
			codes["checked"]++
		case r.StatusCode == 503 && r.GetHeader("Retry-After") != nil:
			codes["backoff"]++
		default:
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
	}
	attempts := codes["checked"] + codes["backoff"] + codes["locked"]
	t.Logf("%d attempts in 1 s: %d checked, %d throttled, %d refused as locked", attempts, codes["checked"], codes["backoff"], codes["locked"])
	if codes["checked"] != 5 || codes["backoff"] == 0 || codes["locked"] == 0 {
		t.Fatalf("answers to the guesses %v, want 5 checked, then back-off and lockout", codes)
	}
	if r := x.register(ch, "alice", agentPass); r.StatusCode != 403 {
		t.Fatalf("the right password from the attacker's address while alice is locked out: %d, want 403", r.StatusCode)
	}
	// Alice's own phone is not knocked off.
	if r := alice.register(alice.challenge("alice"), "alice", agentPass); r.StatusCode != 200 {
		t.Fatalf("alice's phone while alice is locked out elsewhere: %d, want 200", r.StatusCode)
	}
	m := l.eng.Metrics
	if m.SIPRegisterFailures.Get("bad_credentials") != 5 || m.SIPRegisterFailures.Get("backoff") == 0 || m.SIPLockouts.Get("agent") != 1 {
		t.Errorf("metrics: failures %d backoff %d agent lockouts %d", m.SIPRegisterFailures.Get("bad_credentials"), m.SIPRegisterFailures.Get("backoff"), m.SIPLockouts.Get("agent"))
	}
	audit := func(action string) []tickets.AuditEntry {
		es, err := store.AuditLog(ctx, tickets.AuditQuery{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	failed := audit("sip_register_failed")
	if len(failed) != 5 || failed[0].Address != ipX || failed[0].User != "alice" {
		t.Errorf("audited failures %+v, want 5 from %s", failed, ipX)
	}
	if n := len(audit("sip_register_lockout")); n != 1 {
		t.Errorf("%d lockouts audited, want 1", n)
	}
	if len(audit("sip_register_locked")) == 0 || len(audit("sip_register_throttled")) == 0 {
		t.Error("refusals while locked out or throttled are not audited")
	}
	if _, locked, _ := dir.Locked(ctx, "alice", ""); !locked {
		t.Error("alice's lockout is not in the store")
	}

	// The administrator lifts the lockout (ivrctl agents unlock alice):
	// the right password works from the new address, which is audited.
	if err := dir.Unlock(ctx, queue.LockAgent, "alice"); err != nil {
		t.Fatal(err)
	}
	if r := x.register(x.challenge("alice"), "alice", agentPass); r.StatusCode != 200 {
		t.Fatalf("the right password after the unlock: %d, want 200", r.StatusCode)
	}
	if es := audit(tickets.AuditRegisterNewAddress); len(es) != 1 || es[0].Address != ipX || !strings.Contains(es[0].Detail, "127.0.0.1") {
		t.Errorf("new-address registration audited as %+v", es)
	}
	if m.SIPNewAddress.Load() != 1 {
		t.Errorf("ivr_sip_register_new_address_total = %d", m.SIPNewAddress.Load())
	}

	// Names guessed from one address lock the address out.
	_, ipY := peerUDP(t)
	y := newRawPhone(t, l, ipY)
	ch = y.challenge("alice")
	for i := 0; m.SIPLockouts.Get("address") == 0; i++ {
		if time.Since(start) > 20*time.Second {
			t.Fatal("the guessing address was never locked out")
		}
		if r := y.register(ch, fmt.Sprintf("agent%d", i), "password"); r.StatusCode == 200 {
			t.Fatal("an unknown agent registered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l, locked, _ := dir.Locked(ctx, "", ipY); !locked || l.Kind != queue.LockAddress {
		t.Errorf("address %s not locked in the store: %+v", ipY, l)
	}
	if r := y.register(y.challenge("alice"), "alice", agentPass); r.StatusCode != 403 {
		t.Errorf("alice's password from a locked-out address: %d, want 403", r.StatusCode)
	}
}

// The bookkeeping of refused and repeated calls: an offer refused before
// the answer counts as rejected (not error), and a Call-ID used again by a
// new call gets a record (and a recording) of its own.
func TestRefusedAndReusedCallIDs(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	p := newRawPhone(t, l, "")
	videoOnly := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 9000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
	id := p.invite(videoOnly)
	if r := p.final(id, 5*time.Second); r.StatusCode != 488 {
		t.Fatalf("an offer without audio: %d, want 488", r.StatusCode)
	}
	if rec := record(t, l, id); rec.EndReason != string(ivr.EndRejected) {
		t.Errorf("refused call recorded as %q, want rejected", rec.EndReason)
	}
	m := l.eng.Metrics
	if m.Outcome(ivr.EndRejected) != 1 || m.Outcome(ivr.EndError) != 0 {
		t.Errorf("ivr_calls_total: rejected %d error %d, want 1 and 0", m.Outcome(ivr.EndRejected), m.Outcome(ivr.EndError))
	}

	const reused = "same-call-id@test"
	var recs []tickets.CallRecord
	for i, want := range []string{reused, reused + "~2"} {
		p.inviteAs(reused, p.offerSDP())
		r := p.final(reused, 5*time.Second)
		p.mu.Lock()
		delete(p.resp, reused) // the next INVITE's answer is the next one read
		p.mu.Unlock()
		if r.StatusCode != 200 {
			t.Fatalf("call %d with Call-ID %s: %d", i+1, reused, r.StatusCode)
		}
		p.ack(r)
		time.Sleep(300 * time.Millisecond)
		p.bye(r)
		rec := record(t, l, want)
		if rec.EndReason != string(ivr.EndCallerHangup) {
			t.Errorf("record %s: ended %q", want, rec.EndReason)
		}
		recs = append(recs, rec)
	}
	if recs[0].Recording == "" || recs[0].Recording == recs[1].Recording {
		t.Errorf("the two calls share the recording %q", recs[0].Recording)
	}
}

// Nothing personal reaches a log line: not the caller's number (From),
// not the digits the caller types (a national ID number, by RFC 4733 and
// by SIP INFO), not the numbers that malformed requests put where the SIP
// library quotes them in its errors. (TestMain greps the whole run's
// logs for the same strings.)
func TestNoPersonalDataInLogs(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	c := l.answered(t)
	const cnp = "1900101456781"
	for i, k := range cnp {
		if i%2 == 0 {
			c.dtmf(k)
		} else if code := c.info("application/dtmf-relay", "Signal="+string(k)+"\r\nDuration=160\r\n"); code != 200 {
			t.Fatalf("INFO %c: %d", k, code)
		}
	}
	c.hangup()
	if rec := record(t, l, callID(c)); rec.DTMF == "" {
		t.Fatal("no key reached the call record")
	}
	conn, err := net.Dial("udp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, m := range []string{
		// Start lines the parser refuses and quotes in its error.
		"INVITE  sip:" + testCaller + "@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKpd1\r\n\r\n",
		"INVITE sip:" + testCaller + "@127.0.0.1 SIP/2.0 \r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKpd2\r\n\r\n",
		// A number where the parser wants a small one.
		"OPTIONS sip:1919@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKpd3\r\nCSeq: " + cnp + cnp + " OPTIONS\r\n\r\n",
		// An RFC 2543 request without Call-ID, from the caller's number.
		"INVITE sip:1919@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9\r\nFrom: <sip:" + testCaller + "@127.0.0.1>\r\nCSeq: 1 INVITE\r\n\r\n",
	} {
		if _, err := conn.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if leaks := l.logs.leaks([]string{testCaller, cnp, cnp[:7], cnp[6:]}); len(leaks) > 0 {
		t.Errorf("personal data in the line's log:\n%s", strings.Join(leaks, "\n"))
	}
	if _, lines := l.logs.size(); lines == 0 {
		t.Error("the line logged nothing: the test proves nothing")
	}
}
