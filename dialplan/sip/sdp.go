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
