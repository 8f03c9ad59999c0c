package aritest

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/govline/ivr/audio"
)

// Caller is a caller's channel in the fake Asterisk: what it says goes to
// the engine as ExternalMedia RTP, what the engine sends is decoded and kept.
type Caller struct {
	a  *Asterisk
	ID string

	send     chan []int16
	mu       sync.Mutex
	heard    []int16
	rate     int
	peer     *rtpPeer
	gone     chan struct{}
	goneOnce sync.Once
	greeting func(rate int) []int16 // said once bridged (SetGreeting); nil: silence
}

// Gone is closed when the channel no longer exists (hung up by either side
// or redirected) or was continued out of the application into the dialplan.
func (c *Caller) Gone() <-chan struct{} { return c.gone }

func (c *Caller) markGone() { c.goneOnce.Do(func() { close(c.gone) }) }

// Rate is the sample rate of the media leg (0 before it is bridged).
func (c *Caller) Rate() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rate
}

// Bridged reports whether the caller is bridged with an ExternalMedia leg.
func (c *Caller) Bridged() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peer != nil
}

func (c *Caller) attach(p *rtpPeer) {
	c.mu.Lock()
	first := c.peer == nil
	c.peer = p
	c.rate = p.rate
	c.mu.Unlock()
	if first && c.greeting != nil {
		c.Say(c.greeting(p.rate)) // queued before the peer sends: from its first packet
	}
	p.attach(c)
}

// Say queues PCM (at Rate) to send, 20 ms per packet.
func (c *Caller) Say(pcm []int16) {
	n := c.Rate() / 50
	for off := 0; off+n <= len(pcm); off += n {
		c.send <- append([]int16(nil), pcm[off:off+n]...)
	}
}

// Heard returns a copy of the engine's audio received so far.
func (c *Caller) Heard() []int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int16(nil), c.heard...)
}

// HeardLen is the number of samples heard.
func (c *Caller) HeardLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.heard)
}

// Press sends a ChannelDtmfReceived event for key.
func (c *Caller) Press(key string) {
	ch := c.a.lookup(c.ID)
	if ch == nil {
		return
	}
	c.a.mu.Lock()
	j := channelJSON(ch)
	c.a.mu.Unlock()
	c.a.event("ChannelDtmfReceived", map[string]any{"channel": j, "digit": key, "duration_ms": 120})
}

// Hangup is the caller hanging up: ChannelHangupRequest, then the channel
// leaves its bridge, StasisEnd and ChannelDestroyed (cause 16).
func (c *Caller) Hangup() {
	ch := c.a.lookup(c.ID)
	if ch == nil {
		return
	}
	c.a.mu.Lock()
	j := channelJSON(ch)
	c.a.mu.Unlock()
	c.a.event("ChannelHangupRequest", map[string]any{"channel": j, "cause": 16})
	c.a.destroy(ch, 16, "Normal Clearing")
}

// Vanish removes the channel without a single event, as a hangup while
// the application's WebSocket was down looks to the application.
func (c *Caller) Vanish() {
	c.a.mu.Lock()
	ch := c.a.channels[c.ID]
	delete(c.a.channels, c.ID)
	c.a.mu.Unlock()
	if ch != nil {
		c.a.leaveBridgeQuiet(ch)
	}
	c.markGone()
}

func (a *Asterisk) leaveBridgeQuiet(ch *Chan) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b := a.bridges[ch.Bridge]; b != nil {
		for i, id := range b.Channels {
			if id == ch.ID {
				b.Channels = append(b.Channels[:i], b.Channels[i+1:]...)
				break
			}
		}
	}
	ch.Bridge = ""
}

// rtpPeer is the Asterisk end of an ExternalMedia channel: an RTP socket
// that sends to the engine's external_host and receives its RTP.
type rtpPeer struct {
	sock   *net.UDPConn
	dst    *net.UDPAddr
	format string
	rate   int
	pt     uint8
	open   *atomic.Int64

	mu     sync.Mutex
	caller *Caller
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func newRTPPeer(dst *net.UDPAddr, format string, open *atomic.Int64) (*rtpPeer, error) {
	sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	p := &rtpPeer{sock: sock, dst: dst, format: format, rate: 8000, pt: 0, open: open}
	if format == "slin16" {
		p.rate, p.pt = 16000, 118
	}
	open.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.read()
	}()
	go func() {
		defer p.wg.Done()
		p.write(ctx)
	}()
	return p, nil
}

func (p *rtpPeer) port() int { return p.sock.LocalAddr().(*net.UDPAddr).Port }

func (p *rtpPeer) attach(c *Caller) {
	p.mu.Lock()
	p.caller = c
	p.mu.Unlock()
}

func (p *rtpPeer) close() {
	p.once.Do(func() {
		p.cancel()
		_ = p.sock.Close()
		p.wg.Wait()
		p.open.Add(-1)
	})
}

func (p *rtpPeer) decode(payload []byte) []int16 {
	if p.format == "slin16" {
		out := make([]int16, len(payload)/2)
		for i := range out {
			out[i] = int16(binary.BigEndian.Uint16(payload[2*i:]))
		}
		return out
	}
	out := make([]int16, len(payload))
	for i, b := range payload {
		out[i] = audio.UlawToLinear(b)
	}
	return out
}

func (p *rtpPeer) encode(pcm []int16) []byte {
	if p.format == "slin16" {
		out := make([]byte, 2*len(pcm))
		for i, s := range pcm {
			binary.BigEndian.PutUint16(out[2*i:], uint16(s))
		}
		return out
	}
	out := make([]byte, len(pcm))
	for i, s := range pcm {
		out[i] = audio.LinearToUlaw(s)
	}
	return out
}

// read decodes the engine's RTP for the bridged caller.
func (p *rtpPeer) read() {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := p.sock.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil || pkt.PayloadType != p.pt {
			continue
		}
		pcm := p.decode(pkt.Payload)
		p.mu.Lock()
		c := p.caller
		p.mu.Unlock()
		if c != nil {
			c.mu.Lock()
			c.heard = append(c.heard, pcm...)
			c.mu.Unlock()
		}
	}
}

// write sends the caller's audio (or silence) every 20 ms while bridged,
// as the bridge's mixer does.
func (p *rtpPeer) write(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	silence := make([]int16, p.rate/50)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: p.pt, SSRC: 0x5eed, SequenceNumber: 1000, Timestamp: 160000}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		c := p.caller
		p.mu.Unlock()
		if c == nil {
			continue
		}
		frame := silence
		select {
		case frame = <-c.send:
		default:
		}
		pkt.Payload = p.encode(frame)
		b, err := pkt.Marshal()
		if err == nil {
			_, _ = p.sock.WriteToUDP(b, p.dst)
		}
		pkt.SequenceNumber++
		pkt.Timestamp += uint32(p.rate / 50)
	}
}
