package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// MicroResult is one Go benchmark.
type MicroResult struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	Iterations  int64   `json:"iterations"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	MBPerS      float64 `json:"mb_per_s,omitempty"`
}

// microBenchmarks runs the audio and tickets benchmarks and parses them.
func microBenchmarks(root string) ([]MicroResult, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchmem", "./audio/", "./tickets/")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	res := parseBench(bytes.NewReader(out))
	if err != nil {
		return res, fmt.Errorf("go test -bench: %v\n%s", err, tailString(string(out), 2000))
	}
	return res, nil
}

// parseBench reads `go test -bench -benchmem` output.
func parseBench(r io.Reader) []MicroResult {
	var res []MicroResult
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(rest)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		it, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		m := MicroResult{Package: pkg, Name: f[0], Iterations: it}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				m.NsPerOp = v
			case "B/op":
				m.BytesPerOp = v
			case "allocs/op":
				m.AllocsPerOp = v
			case "MB/s":
				m.MBPerS = v
			}
		}
		res = append(res, m)
	}
	return res
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// printLoad prints one level as it finishes.
func printLoad(w io.Writer, lr LoadResult) {
	status := "ok"
	if !lr.OK {
		status = "FAILED: " + lr.Error
	}
	fmt.Fprintf(w, "  %d calls: %s\n", lr.Calls, status)
	if lr.Degraded != "" {
		fmt.Fprintf(w, "    degraded: %s\n", lr.Degraded)
	}
	fmt.Fprintf(w, "    ivrd CPU %.1f%% of a core (%.3f%% per call), sipp CPU %.1f%%; RSS %.1f -> %.1f MB (%.3f MB per call); Go heap %.1f -> %.1f MB (%.3f MB per call); load %s; ivrd waiting for a core %.1f%%\n",
		lr.CPUPctTotal, lr.CPUPctPerCall, lr.SIPpCPUPctTotal, lr.RSSIdleMB, lr.RSSLoadMB, lr.RSSMBPerCall, lr.HeapIdleMB, lr.HeapLoadMB, lr.HeapMBPerCall, lr.LoadAvg, lr.RunQueueWaitPct)
	fmt.Fprintf(w, "    pacing deviation p99 <= %s, p99.9 <= %s (%.0f intervals); packets out %.1f/s/call, in %.1f/s/call; lost %.0f, late %.0f, pacer skips %.0f\n",
		fmtMs(lr.PacingP99Ms), fmtMs(lr.PacingP999Ms), lr.PacingSamples, lr.OutPerCallPerS, lr.InPerCallPerS, lr.Lost, lr.Late, lr.PacerSkips)
	fmt.Fprintf(w, "    sipp: %d successful, %d failed, %d retransmissions, %d error-log entries\n",
		lr.SIPp.Successful, lr.SIPp.Failed, lr.SIPp.Retransmissions, lr.SIPp.ErrorCount)
	if lr.Records != nil {
		fmt.Fprintf(w, "    records: %d, with key 9: %d, recordings: %d, end reasons %v\n",
			lr.Records.Total, lr.Records.WithDigit9, lr.Records.Recordings, lr.Records.EndReasons)
	}
	if s := lr.Speech; s != nil {
		fmt.Fprintf(w, "    speech: %d calls by voice, %d with keys (speech.max_calls)\n", s.VoiceCalls, s.KeysCalls)
		fmt.Fprintf(w, "    speech: %.1f callers speaking (%.1f%%): %.3f%% of a core and %.2f MB per speaking caller; VAD %.1f us a window (%.1f a batch), %.4f%% per speaking caller; recognizer %.1f us a frame, %.3f%% per speaking caller\n",
			s.Speakers, s.SpeakingSharePct, s.CPUPctPerSpeaker, s.RSSMBPerSpeaker, s.VADUsPerWindow, s.VADWindowsPerInfer, s.VADPctPerSpeaker, s.RecogUsPerFrame, s.RecogPctPerSpeaker)
		fmt.Fprintf(w, "    speech: %.0f frames dropped; %.0f barge-ins, p50 <= %s, p95 <= %s; %d of %d utterances heard right (%.2f%%, %.2f points under the first level), %d answers, %d unanswered\n",
			s.FramesDropped, s.BargeIns, fmtMs(s.BargeInP50Ms), fmtMs(s.BargeInP95Ms), s.Right, s.Said, s.AccuracyPct, s.AccuracyDropPts, s.Heard, s.Unanswered)
	}
}

func fmtMs(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'g', -1, 64) + " ms"
}

// summary prints the whole run.
func summary(w io.Writer, r *Results) {
	fmt.Fprintf(w, "\n== ivrbench %s on %d cores (%s), %s\n", r.Date, r.Machine.Cores, r.Machine.CPUModel, r.Machine.SIPp)
	fmt.Fprintf(w, "%-6s %-4s %10s %10s %10s %10s %9s %9s %9s %8s %8s\n", "calls", "ok", "cpu%/call", "cpu%tot", "RSS MB/c", "heap MB/c", "p99 ms", "p99.9 ms", "out/s/c", "lost", "sipp%")
	for _, l := range r.Load {
		ok := "yes"
		if !l.OK {
			ok = "NO"
		} else if l.Degraded != "" {
			ok = "deg"
		}
		fmt.Fprintf(w, "%-6d %-4s %10.4f %10.1f %10.4f %10.4f %9s %9s %9.2f %8.0f %8.1f\n", l.Calls, ok, l.CPUPctPerCall, l.CPUPctTotal, l.RSSMBPerCall, l.HeapMBPerCall,
			fmtMs(l.PacingP99Ms), fmtMs(l.PacingP999Ms), l.OutPerCallPerS, l.Lost, l.SIPpCPUPctTotal)
	}
	if s := r.Setup; s != nil {
		fmt.Fprintf(w, "setup: %d calls at %d/s: INVITE->200 p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d samples); engine ivr_call_setup_seconds p50 <= %s, p99 <= %s; sipp %d ok / %d failed\n",
			s.Calls, s.Rate, s.InviteTo200P50, s.InviteTo200P99, s.InviteTo200Max, s.Samples, fmtMs(s.EngineP50Ms), fmtMs(s.EngineP99Ms), s.SIPp.Successful, s.SIPp.Failed)
		if s.Error != "" {
			fmt.Fprintln(w, "  setup error:", s.Error)
		}
	}
	if s := r.Soak; s != nil {
		fmt.Fprintf(w, "soak: %d calls for %s: RSS slope %.2f MB/hour, Go heap slope %.2f MB/hour over %d samples\n", s.Calls, s.Duration, s.SlopeMBPerHour, s.HeapSlope, len(s.Samples))
		if s.Error != "" {
			fmt.Fprintln(w, "  soak error:", s.Error)
		}
	}
	for _, m := range r.Micro {
		fmt.Fprintf(w, "micro %-40s %12.1f ns/op %8.0f B/op %6.0f allocs/op\n", strings.TrimPrefix(m.Package, "github.com/govline/ivr/")+"."+m.Name, m.NsPerOp, m.BytesPerOp, m.AllocsPerOp)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}
