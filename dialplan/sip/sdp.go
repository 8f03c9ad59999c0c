package sip

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/diago/media"
	"github.com/emiago/diago/media/sdp"
)

// ErrNoCommonCodec means the offer has no audio codec the engine speaks.
var ErrNoCommonCodec = errors.New("no common audio codec")

// supported lists the codecs the engine speaks, in its order of
// preference, keyed by lower-case "name/clock".
var supported = map[string]media.Codec{
	"pcmu/8000":            media.CodecAudioUlaw,
	"pcma/8000":            media.CodecAudioAlaw,
	"opus/48000":           media.CodecAudioOpus,
	"telephone-event/8000": media.CodecTelephoneEvent8000,
}

// offer is what the engine needs to know of an SDP offer.
type offer struct {
	Codecs    []media.Codec // the offered codecs we speak, with the offer's payload types, in the offer's order
	Audio     media.Codec   // the first common audio codec
	DTMF      uint8         // telephone-event payload type, 0 when not offered
	Direction string        // sendrecv, sendonly, recvonly, inactive
}

// Hold reports whether the offer puts the call on hold (the remote side
// will not send audio).
func (o offer) Hold() bool {
	return o.Direction == sdp.ModeSendonly || o.Direction == sdp.ModeInactive
}

// parseOffer reads an SDP offer and matches its audio formats against the
// codecs the engine speaks, allowed is the configured subset (by name, case
// insensitive; empty means all). It keeps the offer's payload type numbers
// (dynamic types differ between phones) so that the answer matches the offer.
func parseOffer(body []byte, allowed []string) (offer, error) {
	var o offer
	if len(body) == 0 {
		return o, fmt.Errorf("INVITE has no SDP offer")
	}
	if err := checkSDPLines(body); err != nil {
		return o, err
	}
	sd := sdp.SessionDescription{}
	if err := sdp.Unmarshal(body, &sd); err != nil {
		return o, fmt.Errorf("bad SDP: %w", err)
	}
	md, err := sd.MediaDescription("audio")
	if err != nil {
		return o, fmt.Errorf("bad SDP: no usable m=audio line: %w", err)
	}
	o.Direction = sd.MediaDirection()
	rtpmap := map[string]string{} // pt -> "name/clock[/ch]"
	for _, a := range sd.Values("a") {
		rest, ok := strings.CutPrefix(a, "rtpmap:")
		if !ok {
			continue
		}
		pt, enc, ok := strings.Cut(rest, " ")
		if ok {
			rtpmap[pt] = strings.TrimSpace(enc)
		}
	}
	for _, f := range md.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil || pt > 127 {
			continue
		}
		enc, ok := rtpmap[f]
		if !ok {
			// Static payload types may come without rtpmap (RFC 3551).
			switch pt {
			case 0:
				enc = "PCMU/8000"
			case 8:
				enc = "PCMA/8000"
			default:
				continue
			}
		}
		parts := strings.Split(enc, "/")
		if len(parts) < 2 {
			continue
		}
		key := strings.ToLower(parts[0] + "/" + parts[1])
		c, ok := supported[key]
		if !ok || !codecAllowed(c.Name, allowed) {
			continue
		}
		c.PayloadType = uint8(pt)
		c.SampleDur = 20 * time.Millisecond
		if len(parts) == 3 {
			if ch, err := strconv.Atoi(parts[2]); err == nil && ch > 0 && ch <= 8 {
				c.NumChannels = ch
			}
		}
		if c.Name == "telephone-event" {
			if o.DTMF != 0 {
				continue // only one telephone-event (the 8 kHz one)
			}
			o.DTMF = c.PayloadType
		} else if o.Audio.Name == "" {
			o.Audio = c
		}
		o.Codecs = append(o.Codecs, c)
	}
	if o.Audio.Name == "" {
		return o, fmt.Errorf("%w: offered formats %v", ErrNoCommonCodec, md.Formats)
	}
	return o, nil
}

func codecAllowed(name string, allowed []string) bool {
	if name == "telephone-event" || len(allowed) == 0 {
		return true
	}
	for _, a := range allowed {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// checkSDPLines refuses bodies that diago's SDP parser (v0.31.0) cannot
// take: a line holding only LF makes it index out of range. Every SDP body
// passes here before diago sees it (INVITE and re-INVITE), so a remote
// party cannot crash the engine with one.
func checkSDPLines(body []byte) error {
	if len(body) > 0 && body[0] == '\n' || bytes.Contains(body, []byte("\n\n")) {
		return fmt.Errorf("bad SDP: empty line")
	}
	return nil
}

// sdpLayout is the media lines of an offer that had several (audio and
// video, two audio streams...), for the answer: RFC 3264 6 wants as many
// m= lines in the answer as in the offer, in the same order, the streams
// it declines with port 0.
type sdpLayout struct {
	lines []string // each offered m= line, as offered
	used  int      // the index of the audio line answered
}

// answer rebuilds the SDP answer diago made for the single audio line:
// its session part, then for every offered line either diago's audio
// section or the offered line declined with port 0 (its formats kept, as
// RFC 3264 6 asks).
func (l *sdpLayout) answer(body []byte) []byte {
	session, sections := splitSDP(body)
	if len(sections) != 1 {
		return body // not the one-audio answer expected: leave it
	}
	var b bytes.Buffer
	b.Write(session)
	for i, line := range l.lines {
		if i == l.used {
			b.Write(sections[0])
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "m="))
		if len(f) < 3 {
			continue
		}
		f[1] = "0"
		b.WriteString("m=" + strings.Join(f, " ") + "\r\n")
	}
	return b.Bytes()
}

// splitSDP cuts an SDP body into its session part and its media sections
// (from one m= line to the next), each with its line endings.
func splitSDP(body []byte) (session []byte, sections [][]byte) {
	start := -1
	for i := 0; i < len(body); {
		end := bytes.IndexByte(body[i:], '\n')
		next := len(body)
		if end >= 0 {
			next = i + end + 1
		}
		if bytes.HasPrefix(body[i:], []byte("m=")) {
			if start < 0 {
				session = body[:i]
			} else {
				sections = append(sections, body[start:i])
			}
			start = i
		}
		i = next
	}
	if start < 0 {
		return body, nil
	}
	return session, append(sections, body[start:])
}

// reduceOffer turns an offer of several media lines into the offer of its
// first usable audio line (an RTP/AVP audio stream with a port and a codec
// the line speaks), which is what diago can read, and returns the layout
// the answer must follow. An offer of one media line, or one with no usable
// audio line, comes back unchanged with a nil layout (and is answered, or
// refused with 488, as before).
func reduceOffer(body []byte, allowed []string) ([]byte, *sdpLayout) {
	session, sections := splitSDP(body)
	if len(sections) < 2 {
		return body, nil
	}
	l := &sdpLayout{used: -1}
	var reduced []byte
	for i, sec := range sections {
		line, _, _ := bytes.Cut(sec, []byte("\n"))
		l.lines = append(l.lines, strings.TrimRight(string(line), "\r"))
		if l.used >= 0 {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(l.lines[i], "m="))
		if len(f) < 4 || f[0] != "audio" || f[1] == "0" || f[2] != "RTP/AVP" {
			continue
		}
		cand := append(sessionFor(session, sec), sec...)
		if _, err := parseOffer(cand, allowed); err == nil {
			l.used, reduced = i, cand
		}
	}
	if l.used < 0 {
		return body, nil
	}
	return reduced, l
}

// sessionFor is the session part to keep with one media section: all of
// it, but without its c= line when the section has its own (RFC 4566
// 5.7: the media's connection data wins; diago reads only the first).
func sessionFor(session, section []byte) []byte {
	out := append([]byte(nil), session...)
	if !bytes.Contains(section, []byte("\nc=")) {
		return out
	}
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter(out, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("c=")) {
			b.Write(line)
		}
	}
	return b.Bytes()
}
