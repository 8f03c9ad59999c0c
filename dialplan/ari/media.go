package ari

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/pion/rtp"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/ivr"
)

// mediaFormat is the ExternalMedia format: Asterisk's name, the codec name
// of the call record, the PCM rate and the RTP payload type Asterisk uses
// (its static table in main/rtp_engine.c: 0 for ulaw, 118 for slin16).
type mediaFormat struct {
	name  string
	codec string
	rate  int
	pt    uint8
}

func formatByName(name string) (mediaFormat, error) {
	switch name {
	case "ulaw":
		return mediaFormat{name: "ulaw", codec: "PCMU", rate: 8000, pt: 0}, nil
	case "slin16":
		return mediaFormat{name: "slin16", codec: "L16/16000", rate: 16000, pt: 118}, nil
	}
	return mediaFormat{}, fmt.Errorf("ari: format %q: want ulaw or slin16", name)
}

// encoder and decoder for the format. slin16 travels big-endian (network
// order): Asterisk byte-swaps signed linear frames to and from RTP.
func (f mediaFormat) encoder() (audio.Encoder, error) {
	if f.name == "slin16" {
		return slinCodec{}, nil
	}
	return audio.NewEncoder(f.codec)
}

func (f mediaFormat) decoder() (audio.Decoder, error) {
	if f.name == "slin16" {
		return slinCodec{}, nil
	}
	return audio.NewDecoder(f.codec)
}

// slinCodec is 16 kHz big-endian signed linear.
type slinCodec struct{}

func (slinCodec) Rate() int      { return 16000 }
func (slinCodec) String() string { return "slin16 codec" }

func (slinCodec) Encode(dst []byte, pcm []int16) (int, error) {
	if len(dst) < 2*len(pcm) {
		return 0, errors.New("slin16: payload buffer too small")
	}
	for i, s := range pcm {
		binary.BigEndian.PutUint16(dst[2*i:], uint16(s))
	}
	return 2 * len(pcm), nil
}

func (slinCodec) Decode(dst []int16, payload []byte) (int, error) {
	if len(payload) == 0 { // a lost packet: 20 ms of silence
		n := min(len(dst), 320)
		clear(dst[:n])
		return n, nil
	}
	n := min(len(dst), len(payload)/2)
	for i := range n {
		dst[i] = int16(binary.BigEndian.Uint16(payload[2*i:]))
	}
	return n, nil
}

// openRTP opens the call's UDP port on the RTP address, in the configured
// range when there is one.
func (s *Server) openRTP() (*net.UDPConn, int, error) {
	ip := net.ParseIP(s.cfg.RTPAddress)
	if s.cfg.RTPPortMin == 0 {
		sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
		if err != nil {
			return nil, 0, fmt.Errorf("rtp port: %w", err)
		}
		return sock, sock.LocalAddr().(*net.UDPAddr).Port, nil
	}
	span := s.cfg.RTPPortMax - s.cfg.RTPPortMin + 1
	start := rand.IntN(span)
	for i := range span {
		port := s.cfg.RTPPortMin + (start+i)%span
		s.mu.Lock()
		taken := s.ports[port]
		if !taken {
			s.ports[port] = true
		}
		s.mu.Unlock()
		if taken {
			continue
		}
		sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err == nil {
			return sock, port, nil
		}
		s.releasePort(port)
	}
	return nil, 0, fmt.Errorf("rtp port: no free port in %d-%d", s.cfg.RTPPortMin, s.cfg.RTPPortMax)
}

func (s *Server) releasePort(port int) {
	s.mu.Lock()
	delete(s.ports, port)
	s.mu.Unlock()
}

// startMedia starts the RTP reader and puts the call on the sender.
func (c *call) startMedia() error {
	st, err := newSendState(c.fmt)
	if err != nil {
		return err
	}
	c.send = st
	// A cancelled call interrupts a blocked read at once.
	stop := context.AfterFunc(c.ctx, func() { _ = c.sock.SetReadDeadline(time.Now()) })
	c.mediaWG.Add(1)
	go func() {
		defer c.mediaWG.Done()
		defer ivr.Recover(c.s.eng.Metrics, c.tr.Log(), "ari rtp reader", c.endOnPanic)
		defer stop()
		c.readLoop()
	}()
	c.slot = c.s.sender.Add(c)
	c.mediaUp = true
	return nil
}

// stopMedia ends the call's context (if not yet), takes the call off the
// sender and joins the reader.
func (c *call) stopMedia() {
	c.end(ivr.EndEngineHangup, nil) // no-op when already ended
	if c.mediaUp {
		c.s.sender.Remove(c.slot)
	}
	c.mediaWG.Wait()
}

// readLoop reads the ExternalMedia RTP until the call ends: only from
// Asterisk's address and only the format's payload type (DTMF comes as
// ARI events), through the call's audio.Receiver (jitter buffer, decoder,
// 20 ms frames).
func (c *call) readLoop() {
	cfg := c.s.cfg
	m := c.s.eng.Metrics
	dec, err := c.fmt.decoder()
	if err != nil {
		c.end(ivr.EndError, err)
		return
	}
	rx, err := audio.NewReceiver(audio.ReceiverConfig{
		Rate: c.fmt.rate, JitterDepth: cfg.JitterDepth, Sink: c.In.Offer,
		Counted: func(lost, late uint64) {
			if lost > 0 {
				c.tr.PacketsLost.Add(lost)
				m.RTPPacketsLost.Add(lost)
			}
			if late > 0 {
				c.tr.PacketsLate.Add(late)
				m.RTPPacketsLate.Add(late)
			}
		},
	}, dec)
	if err != nil {
		c.end(ivr.EndError, err)
		return
	}
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	lastPacket := time.Now()
	for {
		if c.ctx.Err() != nil {
			return
		}
		if err := c.sock.SetReadDeadline(time.Now().Add(cfg.RTPTimeout / 4)); err != nil {
			return
		}
		if c.ctx.Err() != nil {
			return // ended while the deadline was set: do not wait for it
		}
		n, from, err := c.sock.ReadFromUDP(buf)
		if err != nil {
			if isTimeout(err) {
				rx.Flush()
				if time.Since(lastPacket) >= cfg.RTPTimeout {
					c.tr.Event("rtp.timeout", fmt.Sprintf("no RTP from Asterisk for %s", cfg.RTPTimeout))
					c.end(ivr.EndRTPTimeout, fmt.Errorf("no RTP from Asterisk for %s", cfg.RTPTimeout))
					return
				}
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		remote := c.remote.Load()
		switch {
		case remote == nil:
			c.remote.Store(from) // symmetric RTP: answer where it comes from
		case !remote.IP.Equal(from.IP):
			continue // not Asterisk
		case remote.Port != from.Port:
			c.remote.Store(from)
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil || len(pkt.Payload) == 0 {
			continue
		}
		if pkt.PayloadType != c.fmt.pt {
			continue
		}
		lastPacket = time.Now()
		c.tr.PacketsIn.Add(1)
		m.RTPPacketsIn.Add(1)
		if hook := c.s.testHook.Load(); hook != nil {
			(*hook)("rtp", c.id)
		}
		rx.Push(pkt.SequenceNumber, pkt.Timestamp, pkt.SSRC, pkt.Payload)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sendState is a call's outbound stream; only the sender's goroutine
// touches it.
type sendState struct {
	enc     audio.Encoder
	silence []int16
	payload []byte
	out     []byte
	pkt     rtp.Packet
	step    uint32
	last    time.Time
}

func newSendState(f mediaFormat) (sendState, error) {
	enc, err := f.encoder()
	if err != nil {
		return sendState{}, err
	}
	return sendState{
		enc:     enc,
		silence: make([]int16, f.rate/50),
		payload: make([]byte, audio.MaxPayloadSize),
		out:     make([]byte, 1500),
		step:    uint32(f.rate / 50),
		pkt: rtp.Packet{Header: rtp.Header{
			Version: 2, PayloadType: f.pt, Marker: true,
			SSRC: rand.Uint32(), SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32(),
		}},
	}, nil
}

// sendFrame sends the call's next RTP packet: the engine's queued frame,
// or silence, so the bridge always has audio from the engine. The sender
// calls it every 20 ms (audio.FrameSender).
func (c *call) SendFrame(now time.Time) {
	st := &c.send
	m := c.s.eng.Metrics
	if hook := c.s.testHook.Load(); hook != nil {
		(*hook)("send", c.id)
	}
	frame := st.silence
	owned := c.Out.Take()
	if owned != nil {
		frame = owned
	}
	n, err := st.enc.Encode(st.payload, frame)
	if owned != nil {
		c.Out.Return(owned)
	}
	if remote := c.remote.Load(); err == nil && remote != nil {
		st.pkt.Payload = st.payload[:n]
		if b, err := st.pkt.MarshalTo(st.out); err == nil {
			if _, err := c.sock.WriteToUDP(st.out[:b], remote); err == nil {
				if !st.last.IsZero() {
					d := now.Sub(st.last) - audio.FrameDuration
					m.PacingDeviation.Observe(max(d, -d))
				}
				st.last = now
				c.tr.PacketsOut.Add(1)
				m.RTPPacketsOut.Add(1)
			}
		}
		st.pkt.Marker = false
	}
	// Time goes on for Asterisk even when a packet could not be sent.
	st.pkt.SequenceNumber++
	st.pkt.Timestamp += st.step
}

// SendPanicked implements audio.SendPanicHandler: the sender took the
// call off its round after a panic in SendFrame; the call ends.
func (c *call) SendPanicked(v any, stack []byte) {
	ivr.Panicked(c.s.eng.Metrics, c.tr.Log(), "ari rtp sender", v, stack)
	c.endOnPanic(v)
}

// endOnPanic ends the call after a panic on one of its goroutines.
func (c *call) endOnPanic(v any) { c.end(ivr.EndError, ivr.PanicError(v)) }
