// Package sipptest holds what the SIPp interop test and the load benchmark
// (bench/cmd/ivrbench) share to drive SIPp (Debian's sip-tester): a pcap
// writer for play_pcap_audio, and readers of SIPp's statistics and error
// files.
package sipptest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// WriteRTPPcap writes a pcap file (link type Ethernet) of count G.711 u-law
// RTP packets of 20 ms (160 bytes), one every 20 ms, cycling through ulaw,
// as sipp's play_pcap_audio wants it: Ethernet, IPv4, UDP, RTP. sipp
// rewrites the addresses and ports when it replays the file and keeps the
// RTP header as written here (payload type 0, one SSRC, consecutive
// sequence numbers and timestamps).
func WriteRTPPcap(path string, ulaw []byte, count int) error {
	const (
		frame   = 160
		rtpLen  = 12 + frame
		udpLen  = 8 + rtpLen
		ipLen   = 20 + udpLen
		wireLen = 14 + ipLen
	)
	if len(ulaw) < frame {
		return fmt.Errorf("pcap %s: %d bytes of audio, need at least one frame of %d", path, len(ulaw), frame)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	le := binary.LittleEndian
	be := binary.BigEndian
	var hdr [24]byte
	le.PutUint32(hdr[0:], 0xa1b2c3d4) // microsecond timestamps
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535) // snaplen
	le.PutUint32(hdr[20:], 1)     // LINKTYPE_ETHERNET
	w.Write(hdr[:])

	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	const ssrc, seq0, ts0 = 0x5eed1234, 1000, 16000
	pkt := make([]byte, 16+wireLen)
	off := 0
	for i := range count {
		at := start.Add(time.Duration(i) * 20 * time.Millisecond)
		le.PutUint32(pkt[0:], uint32(at.Unix()))
		le.PutUint32(pkt[4:], uint32(at.Nanosecond()/1000))
		le.PutUint32(pkt[8:], wireLen)
		le.PutUint32(pkt[12:], wireLen)
		eth := pkt[16:]
		copy(eth[0:6], []byte{0x02, 0, 0, 0, 0, 2})  // destination MAC
		copy(eth[6:12], []byte{0x02, 0, 0, 0, 0, 1}) // source MAC
		be.PutUint16(eth[12:], 0x0800)               // IPv4
		ip := eth[14:]
		ip[0] = 0x45
		ip[1] = 0
		be.PutUint16(ip[2:], ipLen)
		be.PutUint16(ip[4:], uint16(i))
		be.PutUint16(ip[6:], 0)
		ip[8] = 64
		ip[9] = 17 // UDP
		be.PutUint16(ip[10:], 0)
		copy(ip[12:16], []byte{127, 0, 0, 1})
		copy(ip[16:20], []byte{127, 0, 0, 1})
		be.PutUint16(ip[10:], ipChecksum(ip[:20]))
		udp := ip[20:]
		be.PutUint16(udp[0:], 6000) // sipp rewrites both ports
		be.PutUint16(udp[2:], 6000)
		be.PutUint16(udp[4:], udpLen)
		be.PutUint16(udp[6:], 0) // no checksum; sipp computes its own
		rtp := udp[8:]
		rtp[0] = 0x80
		rtp[1] = 0 // PCMU
		if i == 0 {
			rtp[1] |= 0x80 // marker on the first packet of the talk spurt
		}
		be.PutUint16(rtp[2:], uint16(seq0+i))
		be.PutUint32(rtp[4:], uint32(ts0+i*frame))
		be.PutUint32(rtp[8:], ssrc)
		payload := rtp[12:]
		for j := range payload {
			if off >= len(ulaw) {
				off = 0
			}
			payload[j] = ulaw[off]
			off++
		}
		w.Write(pkt)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// Stats is the last row of a sipp -trace_stat file: cumulative
// counters by column name ("SuccessfulCall(C)", "FailedCall(C)", ...).
type Stats map[string]string

func ReadStats(path string) (Stats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 {
		return nil, fmt.Errorf("sipp statistics %s: %d lines, want a header and a row", path, len(lines))
	}
	head := strings.Split(lines[0], ";")
	row := strings.Split(lines[len(lines)-1], ";")
	st := Stats{}
	for i, h := range head {
		if i < len(row) && h != "" {
			st[h] = row[i]
		}
	}
	return st, nil
}

// n returns a counter, -1 when the column is missing or not a number.
func (s Stats) N(name string) int {
	v, err := strconv.Atoi(strings.TrimSpace(s[name]))
	if err != nil {
		return -1
	}
	return v
}

// errorEntry starts each entry of sipp's error file (entries are not
// always separated by a newline).
var errorEntry = regexp.MustCompile(`\d{4}-\d{2}-\d{2}\t\d{2}:\d{2}:\d{2}\.\d+\t[\d.]+: `)

// Errors returns the entries of sipp's error file other than its notice of
// where it found the pcap files, and, with ignoreWatchdog, its watchdog's
// overload warnings (the load generator itself running late on a loaded
// machine; calls that suffer from it fail and are counted anyway).
func Errors(log []byte, ignoreWatchdog bool) []string {
	var bad []string
	idx := errorEntry.FindAllIndex(log, -1)
	for i, m := range idx {
		end := len(log)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		e := strings.TrimSpace(string(log[m[1]:end]))
		if strings.Contains(e, "prefers looking for pcap files next to the scenario") ||
			ignoreWatchdog && strings.HasPrefix(e, "Overload warning: the minor watchdog timer") {
			continue
		}
		bad = append(bad, e)
	}
	if len(idx) == 0 {
		if s := strings.TrimSpace(strings.TrimPrefix(string(log), "The following events occurred:")); s != "" {
			bad = append(bad, s)
		}
	}
	return bad
}
