package sip_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/tickets"
)

// Expected answers to the 49 messages of RFC 4475, sent as bytes (the
// RFC's own archive, testdata/rfc4475) to a line with an agent queue (so
// that REGISTER meets the registrar). A set of final statuses: none means
// no answer at all (a message that does not parse, or a response); 2
// means any 2xx (a call answered). Over TCP a message that breaks the
// framing closes the connection, which also counts as none.
var rfc4475 = map[string]struct{ udp, tcp []int }{
	// 3.1.1 valid messages
	"wsinv":      {[]int{481, 2}, []int{481, 2}}, // a To tag: an in-dialog INVITE for a dialog the line does not know (RFC 3261 12.2.2)
	"intmeth":    {[]int{405, 501}, []int{405, 501}},
	"esc01":      {[]int{2}, []int{2}},
	"escnull":    {[]int{401}, []int{401}},
	"esc02":      {[]int{405, 501}, []int{405, 501}},
	"lwsdisp":    {[]int{200}, []int{200}},
	"longreq":    {[]int{2}, []int{2}},
	"dblreq":     {[]int{401}, []int{0, 400, 401}}, // over TCP the second request breaks the framing (answered 400, or first the first one 401)
	"semiuri":    {[]int{200}, []int{200}},
	"transports": {[]int{200}, []int{200}},
	"mpart01":    {[]int{405}, []int{405}},
	"unreason":   {none, none},
	"noreason":   {none, none},
	// 3.1.2 invalid messages: what parses is refused, the rest dropped
	"badinv01":   {noneOr400, noneOr400},
	"clerr":      {noneOr400, noneOr400},
	"scalar02":   {noneOr400, noneOr400},
	"scalarlg":   {none, none},
	"quotbal":    {noneOr400, noneOr400},
	"ltgtruri":   {noneOr400, noneOr400},
	"lwsruri":    {noneOr400, noneOr400},
	"lwsstart":   {noneOr400, noneOr400},
	"trws":       {noneOr400, noneOr400},
	"escruri":    {[]int{400}, []int{400}},
	"baddate":    {[]int{2}, []int{2}}, // the Date is not used: accepted
	"regbadct":   {[]int{400, 401}, []int{400, 401}},
	"badaspec":   {noneOr400, noneOr400},
	"baddn":      {noneOr400, noneOr400},
	"badvers":    {[]int{505}, []int{505}},
	"mismatch01": {[]int{400}, []int{400}},
	"mismatch02": {[]int{400, 405, 501}, []int{400, 405, 501}},
	"bigcode":    {none, none},
	"ncl":        {noneOr400, noneOr400},
	// 3.2 transaction layer
	"badbranch": {[]int{200, 400}, []int{200, 400}},
	// 3.3 application layer
	"insuf":    {[]int{400}, []int{400}},
	"unkscm":   {[]int{416}, []int{416}},
	"novelsc":  {[]int{0, 400, 416}, []int{0, 400, 416}},
	"unksm2":   {[]int{400, 401}, []int{400, 401}},
	"bext01":   {[]int{420}, []int{420}},
	"invut":    {[]int{415}, []int{415}},
	"regaut01": {[]int{401}, []int{401}},
	"multi01":  {[]int{400}, []int{400}},
	"mcl01":    {[]int{400}, noneOr400}, // over TCP the framing is lost: the connection closes
	"bcast":    {none, none},
	"zeromf":   {[]int{200}, []int{200}},
	"cparam01": {[]int{401}, []int{401}},
	"cparam02": {[]int{401}, []int{401}},
	"regescrt": {[]int{401}, []int{401}},
	"sdp01":    {[]int{406}, []int{406}},
	// 3.4 backward compatibility: RFC 2543 syntax (no branch, no tag, no
	// Content-Length, which a stream cannot frame)
	"inv2543": {[]int{2}, noneOr400},
}

var (
	none      = []int{0}
	noneOr400 = []int{0, 400}
)

// peerAddr is a loopback address of its own for a test peer (Linux routes
// all of 127/8 to lo): the line answers UDP requests whose top Via has no
// port at the source address on port 5060, as RFC 3261 18.2.2 says.
func peerUDP(t *testing.T) (net.PacketConn, string) {
	t.Helper()
	for range 50 {
		ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), 1+rand.IntN(250), 2+rand.IntN(250))
		pc, err := net.ListenPacket("udp", ip+":5060")
		if err == nil {
			t.Cleanup(func() { pc.Close() })
			return pc, ip
		}
	}
	t.Fatal("no loopback address free on port 5060")
	return nil, ""
}

// tortureLine is a line with the agent queue on.
func tortureLine(t *testing.T) *line {
	return startLineStore(t, func(c *sip.Config, e *ivr.Engine, store *tickets.Store) {
		qs, err := queue.New(queue.Config{Queues: map[string]queue.QueueConfig{"level1": {}}})
		if err != nil {
			t.Fatal(err)
		}
		c.Queue = sip.QueueConfig{Queues: qs, Agents: agentDirectory(t, store), Locks: agentDirectory(t, store), Audit: store}
	})
}

// The 49 messages go to the line as bytes, over UDP and over TCP, each
// transport to a line of its own (sipgo's transaction key ignores the
// transport: the same message over TCP would be taken for a
// retransmission of the UDP one), and the three messages whose
// transaction key repeats another's (RFC 4475 reuses branch
// "z9hG4bKkdjuw") to a third and fourth line: each message meets the
// endpoint as a message of its own, as the RFC means it.
func TestRFC4475TortureMessages(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/rfc4475/*.dat")
	if err != nil || len(files) != 49 {
		t.Fatalf("testdata/rfc4475 holds %d messages, want the 49 of RFC 4475 (%v)", len(files), err)
	}
	batches := [2]map[string][]byte{{}, {}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".dat")
		if _, ok := rfc4475[name]; !ok {
			t.Fatalf("no expectation for %s", name)
		}
		batch := 0
		if name == "mismatch01" || name == "cparam02" || name == "regescrt" {
			batch = 1
		}
		batches[batch][name] = b
	}
	for _, transport := range []string{"UDP", "TCP"} {
		for i, msgs := range batches {
			t.Run(fmt.Sprintf("%s/%d", transport, i), func(t *testing.T) {
				t.Parallel()
				l := tortureLine(t)
				var got map[string]int
				if transport == "UDP" {
					got = tortureUDP(t, l, msgs)
				} else {
					got = tortureTCP(t, l, msgs)
				}
				for name := range msgs {
					want := rfc4475[name].udp
					if transport == "TCP" {
						want = rfc4475[name].tcp
					}
					if !answerIn(got[name], want) {
						t.Errorf("%s over %s: answered %d, want one of %v (0: none)", name, transport, got[name], want)
					}
				}
				if n := l.eng.Metrics.Panics.Load(); n != 0 {
					t.Errorf("ivr_panics_total = %d after the RFC 4475 messages, want 0", n)
				}
			})
		}
	}
}

// txKey is what ties a response to the request it answers here: the top
// Via's branch, the Call-ID (insuf has none) and the CSeq number.
func txKey(m gosip.Message) string {
	k := ""
	if v := m.Via(); v != nil {
		b, _ := v.Params.Get("branch")
		k = b
	}
	if c := m.CallID(); c != nil {
		k += "|" + c.Value()
	}
	if c := m.CSeq(); c != nil {
		k += "|" + strconv.Itoa(int(c.SeqNo))
	}
	return k
}

// tortureUDP sends every message from one socket and returns the first
// final status answered to each.
func tortureUDP(t *testing.T, l *line, msgs map[string][]byte) map[string]int {
	pc, ip := peerUDP(t)
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.port}
	names := map[string]string{}
	byCall := map[string]string{} // Call-ID|CSeq: the RFC 2543 requests get a branch
	for name, b := range msgs {
		if m, err := gosip.NewParser().ParseSIP(b); err == nil {
			names[txKey(m)] = name
			if m.CallID() != nil && m.CSeq() != nil {
				byCall[m.CallID().Value()+"|"+strconv.Itoa(int(m.CSeq().SeqNo))] = name
			}
		}
		if _, err := pc.WriteTo(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 65536)
	for time.Now().Before(deadline) {
		_ = pc.SetReadDeadline(deadline)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		res, ok := parseResponse(buf[:n])
		if !ok || res.StatusCode < 200 {
			continue
		}
		name := names[txKey(res)]
		if name == "" && res.CallID() != nil {
			name = byCall[res.CallID().Value()+"|"+strconv.Itoa(int(res.CSeq().SeqNo))]
		}
		if name == "" || got[name] != 0 {
			continue
		}
		got[name] = res.StatusCode
		if res.IsSuccess() && res.CSeq().MethodName == gosip.INVITE {
			endCall(t, res, func(b []byte) { _, _ = pc.WriteTo(b, dst) }, ip)
		}
	}
	return got
}

// tortureTCP sends every message on a connection of its own.
func tortureTCP(t *testing.T, l *line, msgs map[string][]byte) map[string]int {
	_, ip := peerUDP(t) // an address of its own
	got := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, b := range msgs {
		wg.Go(func() {
			code := tcpExchange(t, ip, l.port, b)
			mu.Lock()
			got[name] = code
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

func answerIn(code int, want []int) bool {
	if code >= 200 && code < 300 && slices.Contains(want, 2) {
		return true
	}
	return slices.Contains(want, code)
}

func parseResponse(b []byte) (*gosip.Response, bool) {
	m, err := gosip.NewParser().ParseSIP(b)
	if err != nil {
		return nil, false
	}
	res, ok := m.(*gosip.Response)
	if !ok || res.CSeq() == nil {
		return nil, false
	}
	return res, true
}

// endCall acknowledges a 2xx and hangs up at once (ACK and BYE written
// with send).
func endCall(t *testing.T, res *gosip.Response, send func([]byte), ip string) {
	t.Helper()
	target := res.Contact()
	if target == nil {
		t.Errorf("2xx without Contact: %s", res.StartLine())
		return
	}
	seq := res.CSeq().SeqNo
	for i, m := range []string{"ACK", "BYE"} {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", m, target.Address.String())
		fmt.Fprintf(&b, "Via: SIP/2.0/%s %s:5060;branch=z9hG4bK%d%d\r\n", res.Transport(), ip, rand.Int64(), i)
		fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\n", res.From().Value(), res.To().Value(), res.CallID().Value())
		fmt.Fprintf(&b, "CSeq: %d %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", seq+uint32(i), m)
		send([]byte(b.String()))
	}
}

// tcpExchange sends b on a new TCP connection from ip and returns the
// first final status answered (0: none, or the connection closed). A 2xx
// is acknowledged and the call hung up on the same connection.
func tcpExchange(t *testing.T, ip string, port int, b []byte) int {
	conn, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.ParseIP(ip)}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Error(err)
		return -1
	}
	defer conn.Close()
	if _, err := conn.Write(b); err != nil {
		return 0
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(conn)
	for {
		msg, err := readStreamMessage(r)
		if err != nil {
			return 0
		}
		res, ok := parseResponse(msg)
		if !ok || res.StatusCode < 200 {
			continue
		}
		if res.IsSuccess() && res.CSeq().MethodName == gosip.INVITE {
			res.SetTransport("TCP")
			endCall(t, res, func(b []byte) { _, _ = conn.Write(b) }, ip)
			// Wait for the BYE's answer before closing.
			for {
				m, err := readStreamMessage(r)
				if err != nil {
					break
				}
				if rr, ok := parseResponse(m); ok && rr.CSeq().MethodName == gosip.BYE {
					break
				}
			}
		}
		return res.StatusCode
	}
}

// readStreamMessage reads one SIP message from a stream (headers, then
// Content-Length bytes of body).
func readStreamMessage(r *bufio.Reader) ([]byte, error) {
	var msg bytes.Buffer
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		msg.WriteString(line)
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			if msg.Len() <= 2 {
				msg.Reset() // a keep-alive CRLF
				continue
			}
			break
		}
		if k, v, ok := strings.Cut(trimmed, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "Content-Length") || strings.TrimSpace(k) == "l") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	msg.Write(body)
	return msg.Bytes(), nil
}
