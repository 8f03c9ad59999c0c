package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/govline/ivr/dialplan/sip/sipptest"
)

const dtmf9Pcap = "/usr/share/sip-tester/dtmf_2833_9.pcap"

// benchEnv holds what every run shares.
type benchEnv struct {
	root, work, bin, ctl string
	clk                  float64
	out                  io.Writer
	prompts              string // rendered prompt cache, copied into each data dir
	ulaw                 []byte // the caller's speech, G.711 u-law 8 kHz
	runs                 int
	media                string     // "rtpstream" or "pcap": how sipp sends the caller's audio
	speech               bool       // speech turn-taking on in ivrd (the callers speak all the time)
	profile              string     // folder for the window's CPU and heap profiles; "": none
	flowsDir             string     // what ivrd runs
	vad                  string     // IVR_SPEECH_VAD; "": ivrd's default
	speechMax            int        // IVR_SPEECH_MAX_CALLS; 0: ivrd\'s default
	mix                  *speechMix // the realistic speech run's audio; nil: a key press and one looped prompt
	idleAccuracy         float64    // the speech run's accuracy at its first level (-1: none yet)
}

// prepare renders the prompts once and makes the caller's audio from one
// of them.
func (e *benchEnv) prepare() error {
	base := filepath.Join(e.work, "base")
	cmd := exec.Command(e.bin, "-render-prompts")
	cmd.Env = append(os.Environ(), "IVR_DATA_DIR="+base, "IVR_FLOWS_DIR="+filepath.Join(e.root, "flows"), "IVR_LOG_LEVEL=warn")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ivrd -render-prompts: %v\n%s", err, out)
	}
	e.prompts = filepath.Join(base, "prompts")
	speech := filepath.Join(e.root, "flows", "prompts", "ro", "info_identity.wav") // a recorded prompt wins
	if _, err := os.Stat(speech); err != nil {
		speech = filepath.Join(e.prompts, "ro", "info_identity.wav")
	}
	raw := filepath.Join(e.work, "speech.ulaw")
	if out, err := exec.Command("sox", speech, "-t", "raw", "-r", "8000", "-c", "1", "-e", "mu-law", "-b", "8", raw).CombinedOutput(); err != nil {
		return fmt.Errorf("sox %s to u-law: %v: %s", speech, err, out)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		return err
	}
	e.ulaw = b
	if _, err := os.Stat(dtmf9Pcap); err != nil {
		return fmt.Errorf("%s (Debian package sip-tester) is missing: %w", dtmf9Pcap, err)
	}
	return nil
}

// newRun makes a fresh data dir (with the rendered prompts) and a sipp
// folder with audio.pcap of the given length and dtmf.pcap.
func (e *benchEnv) newRun(name string, audio time.Duration) (dataDir, sippDir string, err error) {
	e.runs++
	dir := filepath.Join(e.work, fmt.Sprintf("%02d-%s", e.runs, name))
	dataDir = filepath.Join(dir, "data")
	sippDir = filepath.Join(dir, "sipp")
	if err := os.MkdirAll(sippDir, 0o755); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", "", err
	}
	if out, err := exec.Command("cp", "-r", e.prompts, filepath.Join(dataDir, "prompts")).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("copy prompts: %v: %s", err, out)
	}
	if audio > 0 && e.media == "pcap" {
		if err := sipptest.WriteRTPPcap(filepath.Join(sippDir, "audio.pcap"), e.ulaw, int(audio/(20*time.Millisecond))+1); err != nil {
			return "", "", err
		}
	}
	if err := os.WriteFile(filepath.Join(sippDir, "speech.ulaw"), e.ulaw, 0o644); err != nil {
		return "", "", err
	}
	b, err := os.ReadFile(dtmf9Pcap)
	if err != nil {
		return "", "", err
	}
	return dataDir, sippDir, os.WriteFile(filepath.Join(sippDir, "dtmf.pcap"), b, 0o644)
}

func (e *benchEnv) startIVRD(dataDir string) (*ivrd, error) {
	o := ivrdOptions{
		bin: e.bin, flowsDir: e.flowsDir, dataDir: dataDir,
		firstDigit: time.Hour, rtpTimeout: 30 * time.Second, speech: e.speech,
	}
	if e.profile != "" {
		o.extra = append(o.extra, "IVR_HTTP_PPROF=true")
	}
	if e.vad != "" {
		o.extra = append(o.extra, "IVR_SPEECH_VAD="+e.vad)
	}
	if e.speechMax != 0 {
		o.extra = append(o.extra, fmt.Sprintf("IVR_SPEECH_MAX_CALLS=%d", e.speechMax))
	}
	return startIVRD(o)
}

// fetchProfile writes ivrd's /debug/pprof/<name> to path.
func fetchProfile(d *ivrd, name, path string) error {
	res, err := http.Get("http://" + d.http + "/debug/pprof/" + name)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("/debug/pprof/%s: %s", name, res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// load holds n calls for hold and measures ivrd. With rssEvery > 0 it
// also samples RSS at that period for the whole hold (the soak).
func (e *benchEnv) load(n int, hold time.Duration, rate int, soak *SoakResult) (lr LoadResult) {
	lr = LoadResult{Calls: n}
	fail := func(format string, a ...any) LoadResult {
		msg := fmt.Sprintf(format, a...)
		if lr.Error != "" {
			lr.Error += "; " + msg
		} else {
			lr.Error = msg
		}
		lr.OK = false
		return lr
	}
	if e.mix != nil {
		// The calls start spread out: callers who all began the same
		// audio at once would speak in chorus.
		rate = max(1, int(math.Ceil(float64(n)/mixSpreadFor.Seconds())))
	}
	ramp := time.Duration(math.Ceil(float64(n)/float64(rate)))*time.Second + 2*time.Second
	d := ramp + hold
	dataDir, sippDir, err := e.newRun(fmt.Sprintf("load-%d", n), d+10*time.Second)
	if err != nil {
		return fail("%v", err)
	}
	srv, err := e.startIVRD(dataDir)
	if err != nil {
		return fail("%v", err)
	}
	defer func() {
		if err := srv.stop(); err != nil && lr.Error == "" {
			lr.Error = "ivrd stop: " + err.Error()
		}
	}()
	time.Sleep(2 * time.Second)
	if lr.RSSIdleMB, err = procRSS(srv.pid()); err != nil {
		return fail("idle RSS: %v", err)
	}
	lr.HeapIdleMB = heapMB(srv)

	scenario := "uac_hold_dtmf9_" + e.media + ".xml"
	if e.mix != nil {
		scenario = "uac_hold_speech_rtpstream.xml"
	}
	sp := &sippRun{
		Scenario: filepath.Join(e.root, "bench", "scenarios", scenario),
		Dir:      sippDir, Target: srv.sipAddr,
		Calls: n, Rate: rate, Duration: d,
		Timeout: d + 2*time.Minute,
	}
	if err := sp.start(); err != nil {
		return fail("%v", err)
	}
	sippDone := false
	var sippErr error
	defer func() {
		if !sippDone {
			_ = sp.cmd.Process.Kill()
			<-sp.done
		}
	}()

	// Wait until every call is up.
	upLimit := time.Now().Add(ramp + 30*time.Second)
	active := 0
	for {
		m, err := srv.metrics()
		if err != nil {
			return fail("%v", err)
		}
		active = int(m["ivr_active_calls"])
		lr.PeakActive = max(lr.PeakActive, active)
		if active >= n {
			break
		}
		select {
		case sippErr = <-sp.done:
			sippDone = true
			lr.SIPp = sp.result(sippErr)
			return fail("sipp exited (%v) with %d of %d calls up; sipp output:\n%s", sippErr, active, n, sp.outputTail(1500))
		default:
		}
		if time.Now().After(upLimit) {
			fail("only %d of %d calls up after %s; figures below are for the calls that were up", active, n, ramp+30*time.Second)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	tFull := time.Now()

	// RSS every 10 s for the soak.
	var wg sync.WaitGroup
	stopSoak := make(chan struct{})
	if soak != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(10 * time.Second)
			defer tk.Stop()
			for {
				if rss, err := procRSS(srv.pid()); err == nil {
					soak.Samples = append(soak.Samples, RSSSample{T: round(time.Since(tFull).Seconds(), 1), RSSMB: round(rss, 2), HeapMB: round(heapMB(srv), 2)})
				}
				select {
				case <-tk.C:
				case <-stopSoak:
					return
				}
			}
		}()
	}

	// The window: the middle 60% of the hold.
	time.Sleep(hold / 5)
	m0, err := srv.metrics()
	if err != nil {
		return fail("%v", err)
	}
	activeStart := int(m0["ivr_active_calls"])
	cpu0, err := procCPU(srv.pid(), e.clk)
	if err != nil {
		return fail("cpu: %v", err)
	}
	scpu0, _ := procCPU(sp.pid(), e.clk)
	wait0, _, _ := procWait(srv.pid())
	w0 := time.Now()
	windowEnd := w0.Add(hold * 3 / 5)
	profDone := make(chan error, 1)
	var profBase string
	if e.profile != "" {
		lr.Profiled = true
		profBase = filepath.Join(e.profile, fmt.Sprintf("%02d-%d", e.runs, n))
		secs := max(1, int((hold*3/5).Seconds())-1)
		go func() {
			profDone <- fetchProfile(srv, fmt.Sprintf("profile?seconds=%d", secs), profBase+"-cpu.pprof")
		}()
	}
	for time.Now().Before(windowEnd) {
		if rss, err := procRSS(srv.pid()); err == nil {
			lr.RSSLoadMB = max(lr.RSSLoadMB, rss)
		}
		lr.HeapLoadMB = max(lr.HeapLoadMB, heapMB(srv))
		time.Sleep(min(time.Second, time.Until(windowEnd)+time.Millisecond))
	}
	cpu1, err := procCPU(srv.pid(), e.clk)
	if err != nil {
		return fail("cpu: %v", err)
	}
	scpu1, _ := procCPU(sp.pid(), e.clk)
	wait1, _, _ := procWait(srv.pid())
	wall := time.Since(w0).Seconds()
	lr.LoadAvg = loadAvg()
	lr.RunQueueWaitPct = round((wait1-wait0)/wall*100, 1)
	if profBase != "" {
		if err := <-profDone; err != nil {
			fmt.Fprintln(e.out, "warning: cpu profile:", err)
		}
		if err := fetchProfile(srv, "heap", profBase+"-heap.pprof"); err != nil {
			fmt.Fprintln(e.out, "warning: heap profile:", err)
		}
		fmt.Fprintln(e.out, "profiles:", profBase+"-{cpu,heap}.pprof")
	}
	m1, err := srv.metrics()
	if err != nil {
		return fail("%v", err)
	}
	activeEnd := int(m1["ivr_active_calls"])
	up := min(activeStart, activeEnd)
	if up != n {
		fail("%d calls up at the window start and %d at its end, of %d; per-call figures use %d", activeStart, activeEnd, n, up)
	}
	if up <= 0 {
		return fail("no call up during the window")
	}

	lr.WindowSeconds = round(wall, 2)
	lr.CPUPctTotal = round((cpu1-cpu0)/wall*100, 2)
	lr.CPUPctPerCall = round((cpu1-cpu0)/wall*100/float64(up), 4)
	lr.SIPpCPUPctTotal = round((scpu1-scpu0)/wall*100, 2)
	lr.RSSLoadMB = round(lr.RSSLoadMB, 2)
	lr.RSSIdleMB = round(lr.RSSIdleMB, 2)
	lr.RSSMBPerCall = round((lr.RSSLoadMB-lr.RSSIdleMB)/float64(up), 4)
	lr.HeapMBPerCall = round((lr.HeapLoadMB-lr.HeapIdleMB)/float64(up), 4)
	lr.HeapIdleMB, lr.HeapLoadMB = round(lr.HeapIdleMB, 2), round(lr.HeapLoadMB, 2)
	const pacing = "ivr_rtp_send_interval_deviation_seconds"
	h := histDelta(m0.histogram(pacing), m1.histogram(pacing))
	p99, cnt := quantile(h, 0.99)
	p999, _ := quantile(h, 0.999)
	lr.PacingP99Ms, lr.PacingP999Ms, lr.PacingSamples = ms(p99), ms(p999), cnt
	if math.IsInf(p99, 1) || math.IsInf(p999, 1) {
		lr.PacingNote = "-1 means past the last bucket (> 50 ms)"
	}
	delta := func(name string) float64 { return m1[name] - m0[name] }
	lr.PacketsOut = delta("ivr_rtp_packets_out_total")
	lr.PacketsIn = delta("ivr_rtp_packets_in_total")
	lr.OutPerCallPerS = round(lr.PacketsOut/wall/float64(up), 2)
	lr.InPerCallPerS = round(lr.PacketsIn/wall/float64(up), 2)
	lr.Lost = delta("ivr_rtp_packets_lost_total")
	lr.Late = delta("ivr_rtp_packets_late_total")
	lr.PacerSkips = delta("ivr_pacer_skips_total")
	if e.mix != nil {
		lr.Speech = e.speechWindow(lr, m0, m1, wall, up)
	}
	var why []string
	if p99 > 0.005 {
		why = append(why, fmt.Sprintf("pacing p99 %s > 5 ms", fmtMs(lr.PacingP99Ms)))
	}
	if lr.OutPerCallPerS < 49 {
		why = append(why, fmt.Sprintf("%.1f packets/s per call sent, want 50", lr.OutPerCallPerS))
	}
	if lr.PacerSkips > 0 {
		why = append(why, fmt.Sprintf("%.0f pacer skips", lr.PacerSkips))
	}
	if s := lr.Speech; s != nil {
		if d := m1["ivr_speech_frames_dropped_total"]; d > 0 {
			why = append(why, fmt.Sprintf("%.0f caller frames dropped by the turn-taking", d))
		}
		if s.BargeInP95Ms > 200 || s.BargeInP95Ms < 0 {
			why = append(why, fmt.Sprintf("barge-in p95 %s > 200 ms", fmtMs(s.BargeInP95Ms)))
		}
	}
	if len(why) > 0 {
		lr.Degraded = strings.Join(why, "; ") + fmt.Sprintf(" (ivrd %.0f%% + sipp %.0f%% of the machine's %d00%%)", lr.CPUPctTotal, lr.SIPpCPUPctTotal, runtime.NumCPU())
	}

	if soak != nil {
		// The soak samples RSS until the end of the hold.
		time.Sleep(time.Until(tFull.Add(hold - 2*time.Second)))
		close(stopSoak)
		wg.Wait()
	} else {
		close(stopSoak)
	}

	sippErr = sp.wait(d + 2*time.Minute)
	sippDone = true
	lr.SIPp = sp.result(sippErr)
	if mEnd, err := srv.metrics(); err == nil {
		lr.DTMFDigits = mEnd[`ivr_dtmf_digits_total{source="rfc4733"}`]
		if lr.Speech != nil {
			lr.Speech.FramesDropped = mEnd["ivr_speech_frames_dropped_total"]
		}
	}
	// Let the last BYEs finish, then read the call records.
	waitIdle(srv, 15*time.Second)
	if rec, err := e.records(dataDir); err != nil {
		fail("call records: %v", err)
	} else {
		lr.Records = rec
		keyed := rec.WithDigit9
		if e.mix != nil {
			keyed = n // the speech run presses no key
		}
		if rec.Total != n || keyed != n || rec.EndReasons["caller_hangup"] != n {
			fail("call records: %d of %d, %d with key 9, end reasons %v (want every call with key 9 and caller_hangup)", rec.Total, n, rec.WithDigit9, rec.EndReasons)
		}
	}
	if lr.Speech != nil {
		if err := e.speechOutcome(dataDir, lr.Speech); err != nil {
			lr.Speech.Error = err.Error()
			fail("speech outcome: %v", err)
		} else if e.idleAccuracy < 0 {
			e.idleAccuracy = lr.Speech.AccuracyPct
		} else {
			lr.Speech.AccuracyDropPts = round(e.idleAccuracy-lr.Speech.AccuracyPct, 2)
			if lr.Speech.AccuracyDropPts > 1 {
				msg := fmt.Sprintf("accuracy %.2f %%, %.2f points under the first level's", lr.Speech.AccuracyPct, lr.Speech.AccuracyDropPts)
				if lr.Degraded != "" {
					msg = "; " + msg
				}
				lr.Degraded += msg
			}
		}
	}
	if sippErr != nil || lr.SIPp.Successful != n {
		fail("sipp: %d of %d calls successful, exit %v", lr.SIPp.Successful, n, sippErr)
	}
	if lr.Error == "" {
		lr.OK = true
	}
	return lr
}

func waitIdle(srv *ivrd, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		m, err := srv.metrics()
		if err == nil && m["ivr_active_calls"] == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// records reads the call records with ivrctl.
func (e *benchEnv) records(dataDir string) (*Records, error) {
	out, err := exec.Command(e.ctl, "calls", "list", "--json", "--limit", "0", "--data", dataDir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("ivrctl calls list: %v: %s", err, ee.Stderr)
		}
		return nil, err
	}
	var v struct {
		Calls []struct {
			DTMF      string `json:"dtmf"`
			EndReason string `json:"end_reason"`
			Recording string `json:"recording"`
		} `json:"calls"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("ivrctl calls list --json: %w", err)
	}
	r := &Records{Total: len(v.Calls), EndReasons: map[string]int{}}
	for _, c := range v.Calls {
		if strings.Contains(c.DTMF, "9") {
			r.WithDigit9++
		}
		reason := c.EndReason
		if reason == "" {
			reason = "(open)"
		}
		r.EndReasons[reason]++
		if c.Recording != "" {
			r.Recordings++
		}
	}
	return r, nil
}

// setup places short calls at rate for dur and reads INVITE->200 times.
func (e *benchEnv) setup(rate int, dur time.Duration) *SetupResult {
	n := int(float64(rate) * dur.Seconds())
	sr := &SetupResult{Rate: rate, Calls: n}
	dataDir, sippDir, err := e.newRun("setup", 0)
	if err != nil {
		sr.Error = err.Error()
		return sr
	}
	srv, err := e.startIVRD(dataDir)
	if err != nil {
		sr.Error = err.Error()
		return sr
	}
	defer srv.stop()
	time.Sleep(time.Second)
	sp := &sippRun{
		Scenario: filepath.Join(e.root, "bench", "scenarios", "uac_setup.xml"),
		Dir:      sippDir, Target: srv.sipAddr,
		Calls: n, Rate: rate, Duration: time.Second,
		Timeout: dur + 90*time.Second, RTT: true,
	}
	if err := sp.start(); err != nil {
		sr.Error = err.Error()
		return sr
	}
	runErr := sp.wait(dur + 2*time.Minute)
	sr.SIPp = sp.result(runErr)
	if runErr != nil {
		sr.Error = fmt.Sprintf("sipp: %v; %d of %d calls successful", runErr, sr.SIPp.Successful, n)
	}
	rtts, err := sp.rtts()
	if err != nil {
		sr.Error = strings.TrimPrefix(sr.Error+"; "+err.Error(), "; ")
	}
	sr.Samples = len(rtts)
	sr.InviteTo200P50 = round(percentile(rtts, 0.50), 3)
	sr.InviteTo200P99 = round(percentile(rtts, 0.99), 3)
	if len(rtts) > 0 {
		sr.InviteTo200Max = round(rtts[len(rtts)-1], 3)
	}
	waitIdle(srv, 10*time.Second)
	if m, err := srv.metrics(); err == nil {
		h := m.histogram("ivr_call_setup_seconds")
		p50, _ := quantile(h, 0.5)
		p99, _ := quantile(h, 0.99)
		sr.EngineP50Ms, sr.EngineP99Ms = ms(p50), ms(p99)
	}
	return sr
}

// soakRun holds calls for dur and fits a line to RSS over time.
func (e *benchEnv) soakRun(n int, dur time.Duration, rate int) *SoakResult {
	s := &SoakResult{Calls: n, Duration: dur.String()}
	lr := e.load(n, dur, rate, s)
	s.Load = &lr
	if !lr.OK {
		s.Error = lr.Error
	}
	// Skip the first third of the run (at least a minute) as warm-up: the
	// allocator growing to the working set is not a leak. The heap is a GC
	// sawtooth, so its trend is fitted on the lowest sample of each minute
	// (the live heap after a collection).
	skip := max(60.0, dur.Seconds()/3)
	var xs, ys []float64
	minute := map[int]float64{}
	for _, p := range s.Samples {
		if p.T < skip {
			continue
		}
		xs = append(xs, p.T)
		ys = append(ys, p.RSSMB)
		m := int(p.T / 60)
		if v, ok := minute[m]; !ok || p.HeapMB < v {
			minute[m] = p.HeapMB
		}
	}
	var hx, hy []float64
	for m, v := range minute {
		hx = append(hx, float64(m*60))
		hy = append(hy, v)
	}
	if len(xs) >= 3 {
		s.SlopeMBPerHour = round(slope(xs, ys)*3600, 3)
	} else {
		s.Error = strings.TrimPrefix(s.Error+"; fewer than 3 RSS samples after warm-up: no slope", "; ")
	}
	if len(hx) >= 3 {
		s.HeapSlope = round(slope(hx, hy)*3600, 3)
	}
	return s
}

// slope is the least-squares slope of y over x.
func slope(xs, ys []float64) float64 {
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(ys))
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// heapMB reads the engine's Go heap (ivr_go_heap_objects_bytes) in MB, or 0.
func heapMB(d *ivrd) float64 {
	m, err := d.metrics()
	if err != nil {
		return 0
	}
	return m["ivr_go_heap_objects_bytes"] / (1 << 20)
}
