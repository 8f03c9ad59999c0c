package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// writeRTPPcap writes a pcap file (link type Ethernet) of count G.711 u-law
// RTP packets of 20 ms (160 bytes), one every 20 ms, cycling through ulaw,
// as sipp's play_pcap_audio wants it: Ethernet, IPv4, UDP, RTP. sipp
// rewrites the addresses and ports when it replays the file and keeps the
// RTP header as written here (payload type 0, one SSRC, consecutive
// sequence numbers and timestamps).
func writeRTPPcap(path string, ulaw []byte, count int) error {
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

// sippStats is the last row of a sipp -trace_stat file: cumulative
// counters by column name ("SuccessfulCall(C)", "FailedCall(C)", ...).
type sippStats map[string]string

func readSIPpStats(path string) (sippStats, error) {
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
	st := sippStats{}
	for i, h := range head {
		if i < len(row) && h != "" {
			st[h] = row[i]
		}
	}
	return st, nil
}

// n returns a counter, -1 when the column is missing or not a number.
func (s sippStats) n(name string) int {
	v, err := strconv.Atoi(strings.TrimSpace(s[name]))
	if err != nil {
		return -1
	}
	return v
}

// sippRun is one sipp process placing calls to ivrd.
type sippRun struct {
	Scenario string        // absolute path of the scenario XML
	Dir      string        // working directory: audio.pcap, dtmf.pcap, traces
	Target   string        // ivrd's SIP host:port
	Calls    int           // -m and -l
	Rate     int           // calls per second (-r)
	Duration time.Duration // -d: the scenario's <pause/>
	Timeout  time.Duration // -timeout
	RTT      bool          // -trace_rtt

	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

func (r *sippRun) statFile() string  { return filepath.Join(r.Dir, "stat.csv") }
func (r *sippRun) errorFile() string { return filepath.Join(r.Dir, "errors.log") }

// start launches sipp in the background.
func (r *sippRun) start() error {
	sipPort, err := freePort()
	if err != nil {
		return err
	}
	mediaPort, err := freePort()
	if err != nil {
		return err
	}
	args := []string{
		"-sf", r.Scenario,
		"-s", "ivr",
		"-i", "127.0.0.1", "-p", strconv.Itoa(sipPort),
		"-mi", "127.0.0.1", "-mp", strconv.Itoa(mediaPort),
		"-t", "u1",
		"-l", strconv.Itoa(r.Calls), "-m", strconv.Itoa(r.Calls), "-r", strconv.Itoa(r.Rate),
		"-d", strconv.FormatInt(r.Duration.Milliseconds(), 10),
		"-nostdin",
		"-trace_stat", "-stf", r.statFile(), "-fd", "1",
		"-trace_err", "-error_file", r.errorFile(),
		"-timeout", fmt.Sprintf("%ds", int(r.Timeout.Seconds())), "-timeout_error",
		"-max_recv_loops", "10000", "-max_sched_loops", "10000",
	}
	if r.RTT {
		args = append(args, "-trace_rtt", "-rtt_freq", "1")
	}
	args = append(args, r.Target)
	r.cmd = exec.CommandContext(context.Background(), "sipp", args...)
	r.cmd.Dir = r.Dir
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start sipp: %w", err)
	}
	r.done = make(chan error, 1)
	go func() { r.done <- r.cmd.Wait() }()
	return nil
}

func (r *sippRun) pid() int { return r.cmd.Process.Pid }

// wait waits for sipp to exit, killing it after limit.
func (r *sippRun) wait(limit time.Duration) error {
	select {
	case err := <-r.done:
		return err
	case <-time.After(limit):
		_ = r.cmd.Process.Kill()
		<-r.done
		return fmt.Errorf("sipp still running after %s: killed", limit)
	}
}

// sippResult is what sipp says about its run.
type sippResult struct {
	ExitCode         int      `json:"exit_code"`
	Successful       int      `json:"successful_calls"`
	Failed           int      `json:"failed_calls"`
	FailedUnexpected int      `json:"failed_unexpected_msg"`
	FailedRetrans    int      `json:"failed_max_udp_retrans"`
	Retransmissions  int      `json:"retransmissions"`
	DeadCallMsgs     int      `json:"dead_call_msgs"`
	Errors           []string `json:"errors,omitempty"` // error log entries other than notices (first 10)
	ErrorCount       int      `json:"error_count"`
}

func (r *sippRun) result(runErr error) sippResult {
	res := sippResult{ExitCode: r.cmd.ProcessState.ExitCode()}
	_ = runErr
	if st, err := readSIPpStats(r.statFile()); err == nil {
		res.Successful = st.n("SuccessfulCall(C)")
		res.Failed = st.n("FailedCall(C)")
		res.FailedUnexpected = st.n("FailedUnexpectedMessage(C)")
		res.FailedRetrans = st.n("FailedMaxUDPRetrans(C)")
		res.Retransmissions = st.n("Retransmissions(C)")
		res.DeadCallMsgs = st.n("DeadCallMsgs(C)")
	} else {
		res.Errors = append(res.Errors, "statistics: "+err.Error())
	}
	if b, err := os.ReadFile(r.errorFile()); err == nil {
		bad := sippErrors(b)
		res.ErrorCount = len(bad)
		if len(bad) > 10 {
			bad = bad[:10]
		}
		res.Errors = append(res.Errors, bad...)
	}
	return res
}

// outputTail is the end of sipp's screen output.
func (r *sippRun) outputTail(n int) string {
	s := r.out.String()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// rtts returns the response times (ms) that -trace_rtt wrote.
func (r *sippRun) rtts() ([]float64, error) {
	files, _ := filepath.Glob(filepath.Join(r.Dir, "*_rtt.csv"))
	if d := filepath.Dir(r.Scenario); len(files) == 0 {
		files, _ = filepath.Glob(filepath.Join(d, "*_rtt.csv"))
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *_rtt.csv from sipp -trace_rtt in %s", r.Dir)
	}
	var v []float64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			// Date_ms;response_time_ms;rtd_no
			p := strings.Split(strings.TrimSpace(line), ";")
			if len(p) < 3 || p[2] != "1" {
				continue
			}
			ms, err := strconv.ParseFloat(p[1], 64)
			if err == nil {
				v = append(v, ms)
			}
		}
		if filepath.Dir(f) != r.Dir {
			os.Remove(f) // written next to the scenario: do not leave it in the tree
		}
	}
	sort.Float64s(v)
	return v, nil
}

// percentile of sorted values (nearest rank).
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

// sippEvent starts each entry of sipp's error file (entries are not
// always separated by a newline).
var sippEvent = regexp.MustCompile(`\d{4}-\d{2}-\d{2}\t\d{2}:\d{2}:\d{2}\.\d+\t[\d.]+: `)

// sippErrors returns the entries of sipp's error file other than its
// notices (where it found the pcap files; its watchdog's overload warnings
// are kept: they say the load generator itself ran late).
func sippErrors(log []byte) []string {
	var bad []string
	idx := sippEvent.FindAllIndex(log, -1)
	for i, m := range idx {
		end := len(log)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		e := strings.TrimSpace(string(log[m[1]:end]))
		if strings.Contains(e, "prefers looking for pcap files next to the scenario") {
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
