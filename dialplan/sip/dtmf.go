package sip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RFC 4733 event codes 0-15 as keys.
const dtmfKeys = "0123456789*#ABCD"

// telephoneEvent is one RFC 4733 payload.
type telephoneEvent struct {
	Event    uint8
	End      bool
	Volume   uint8
	Duration uint16
}

var errShortEvent = errors.New("telephone-event payload shorter than 4 bytes")

// parseTelephoneEvent decodes an RFC 4733 payload (event, E/R/volume,
// duration). Extra bytes (redundant events) are ignored.
func parseTelephoneEvent(p []byte) (telephoneEvent, error) {
	if len(p) < 4 {
		return telephoneEvent{}, errShortEvent
	}
	return telephoneEvent{
		Event:    p[0],
		End:      p[1]&0x80 != 0,
		Volume:   p[1] & 0x3f,
		Duration: binary.BigEndian.Uint16(p[2:4]),
	}, nil
}

// Key returns the DTMF key of the event, false for non-DTMF events
// (flash, tones).
func (e telephoneEvent) Key() (rune, bool) {
	if int(e.Event) < len(dtmfKeys) {
		return rune(dtmfKeys[e.Event]), true
	}
	return 0, false
}

// eventDeduper turns the stream of RFC 4733 packets into one key press
// per digit. A digit is several packets (its end packet usually three
// times); a conformant sender keeps one RTP timestamp for all of them and
// sets the marker bit on the first, but some phones advance the timestamp
// on every packet. So a packet continues the current event when it has the
// same event code and either the same timestamp, or no marker bit and a
// sequence number close to the previous one. The digit is reported on the
// first packet seen, so a lost end packet cannot lose it.
type eventDeduper struct {
	seen    bool
	code    uint8
	ts      uint32
	ssrc    uint32
	lastSeq uint16
}

func (d *eventDeduper) accept(ev telephoneEvent, ssrc, ts uint32, seq uint16, marker bool) bool {
	near := d.seen && seq-d.lastSeq <= 4
	same := d.seen && ssrc == d.ssrc && ev.Event == d.code && (ts == d.ts || (near && !marker))
	d.lastSeq = seq
	if same {
		d.ts = ts
		return false
	}
	d.seen, d.code, d.ts, d.ssrc = true, ev.Event, ts, ssrc
	return true
}

// parseInfoDTMF reads the key from a SIP INFO body. It accepts
// application/dtmf-relay ("Signal=5\r\nDuration=160") and application/dtmf
// (the key alone).
func parseInfoDTMF(contentType string, body []byte) (rune, error) {
	ct := strings.ToLower(strings.TrimSpace(contentType))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = strings.TrimSpace(ct[:i])
	}
	var sig string
	switch ct {
	case "application/dtmf-relay":
		for _, line := range strings.Split(string(body), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "signal") {
				sig = strings.TrimSpace(v)
				break
			}
		}
		if sig == "" {
			return 0, fmt.Errorf("dtmf-relay body has no Signal= line")
		}
	case "application/dtmf":
		sig = strings.TrimSpace(string(body))
	default:
		return 0, fmt.Errorf("unsupported INFO content type %q", contentType)
	}
	if len(sig) == 1 {
		k := rune(strings.ToUpper(sig)[0])
		if strings.ContainsRune(dtmfKeys, k) {
			return k, nil
		}
	}
	// Some phones send the event number (10 for '*', 11 for '#').
	if n, err := strconv.Atoi(sig); err == nil && n >= 0 && n < len(dtmfKeys) {
		return rune(dtmfKeys[n]), nil
	}
	return 0, fmt.Errorf("INFO signal %q is not a DTMF key", truncate(sig, 16))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
