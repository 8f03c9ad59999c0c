// Command ivrbench measures the engine under load with real processes and
// real packets: it builds ivrd, starts it on free loopback ports, has SIPp
// place N simultaneous calls that stream G.711 RTP and press a key, and
// measures ivrd's CPU and memory per call, the outbound RTP pacing, and the
// call setup time; it also runs the Go micro-benchmarks. Results go to a
// JSON file and a summary to stdout.
//
//	go run ./bench/cmd/ivrbench [-calls 100,500,1000] [-hold 30s]
//	    [-rate 100] [-setup-rate 200] [-setup-time 5s] [-soak 10m -soak-calls 100]
//	    [-skip-micro] [-out bench/results.json]
//
// It runs from the repository root (make bench does) and needs sipp, sox
// and getconf; play_pcap_audio in sipp needs root (raw sockets).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ivrbench:", err)
		os.Exit(1)
	}
}

type options struct {
	calls     []int
	hold      time.Duration
	rate      int
	setupRate int
	setupTime time.Duration
	soak      time.Duration
	soakCalls int
	skipMicro bool
	out       string
	keep      bool
	media     string
	speech    bool
	speaking  int   // with speech: % of the callers speaking at any moment (100: all the time, one looped prompt)
	speechMax int   // with speech: IVR_SPEECH_MAX_CALLS (0: ivrd\'s default)
	cluster   []int // call rates of the cluster run; none: the load run
	clusterT  time.Duration
	profile   string   // folder for CPU and heap profiles of ivrd in each level's window; "": none
	bins      []string // prebuilt ivrd binaries, each run at every level in turn; none: build ./cmd/ivrd
}

// Results is the JSON written to -out.
type Results struct {
	Date    string        `json:"date"`
	Machine Machine       `json:"machine"`
	Method  Method        `json:"method"`
	Load    []LoadResult  `json:"load"`
	Setup   *SetupResult  `json:"setup,omitempty"`
	Soak    *SoakResult   `json:"soak,omitempty"`
	Micro   []MicroResult `json:"micro"`
	Notes   []string      `json:"notes"`
}

// Machine describes where the figures were taken.
type Machine struct {
	Cores     int    `json:"cores"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	SIPp      string `json:"sipp"`
	ClkTck    int    `json:"clk_tck"`
}

// Method records the parameters of the run.
type Method struct {
	Hold       string `json:"hold"`
	RampRate   int    `json:"ramp_calls_per_s"`
	Window     string `json:"window"`
	Codec      string `json:"codec"`
	Recording  bool   `json:"recording"`
	DTMF       string `json:"dtmf"`
	Pacing     string `json:"pacing"`
	HeapNote   string `json:"heap"`
	SetupNote  string `json:"setup"`
	Generator  string `json:"generator"`
	FirstDigit string `json:"first_digit_timeout"`
}

// LoadResult is one level of simultaneous calls.
type LoadResult struct {
	Calls           int           `json:"calls"`
	Binary          string        `json:"ivrd,omitempty"`     // with -ivrd: which binary ran
	VAD             string        `json:"vad,omitempty"`      // with -vad: IVR_SPEECH_VAD
	Profiled        bool          `json:"profiled,omitempty"` // CPU profile taken in the window (its cost is in the CPU figure)
	LoadAvg         string        `json:"loadavg,omitempty"`  // /proc/loadavg at the window's end
	RunQueueWaitPct float64       `json:"run_queue_wait_pct"` // ivrd's threads runnable but waiting for a core, % of one core (schedstat)
	OK              bool          `json:"ok"`
	Error           string        `json:"error,omitempty"`
	Degraded        string        `json:"degraded,omitempty"` // calls worked but the media timing did not hold
	PeakActive      int           `json:"peak_active_calls"`
	WindowSeconds   float64       `json:"window_s"`
	CPUPctTotal     float64       `json:"cpu_pct_total"` // of one core
	CPUPctPerCall   float64       `json:"cpu_pct_per_call"`
	SIPpCPUPctTotal float64       `json:"sipp_cpu_pct_total"`
	RSSIdleMB       float64       `json:"rss_idle_mb"`
	RSSLoadMB       float64       `json:"rss_load_mb"`
	RSSMBPerCall    float64       `json:"rss_mb_per_call"`
	HeapIdleMB      float64       `json:"heap_idle_mb"`     // ivr_go_heap_objects_bytes before the calls
	HeapLoadMB      float64       `json:"heap_load_mb"`     // its highest sample in the window
	HeapMBPerCall   float64       `json:"heap_mb_per_call"` // (load - idle) / calls
	PacingP99Ms     float64       `json:"pacing_dev_p99_ms"`
	PacingP999Ms    float64       `json:"pacing_dev_p999_ms"`
	PacingSamples   float64       `json:"pacing_samples"`
	PacingNote      string        `json:"pacing_note,omitempty"`
	PacketsOut      float64       `json:"packets_out"` // in the window
	PacketsIn       float64       `json:"packets_in"`  // in the window
	OutPerCallPerS  float64       `json:"packets_out_per_call_per_s"`
	InPerCallPerS   float64       `json:"packets_in_per_call_per_s"`
	Lost            float64       `json:"lost"`              // inbound, in the window
	Late            float64       `json:"late"`              // inbound, in the window
	PacerSkips      float64       `json:"pacer_skips"`       // in the window
	DTMFDigits      float64       `json:"dtmf_digits_total"` // whole run
	Records         *Records      `json:"records,omitempty"`
	Speech          *SpeechResult `json:"speech,omitempty"` // the realistic speech run
	SIPp            sippResult    `json:"sipp"`
}

// Records summarizes the call records ivrd kept (ivrctl calls list --json).
type Records struct {
	Total      int            `json:"total"`
	WithDigit9 int            `json:"with_digit_9"`
	EndReasons map[string]int `json:"end_reasons"`
	Recordings int            `json:"with_recording"`
}

// SetupResult is the call setup run.
type SetupResult struct {
	Rate           int        `json:"calls_per_s"`
	Calls          int        `json:"calls"`
	Samples        int        `json:"rtt_samples"`
	InviteTo200P50 float64    `json:"invite_to_200_p50_ms"`
	InviteTo200P99 float64    `json:"invite_to_200_p99_ms"`
	InviteTo200Max float64    `json:"invite_to_200_max_ms"`
	EngineP50Ms    float64    `json:"engine_call_setup_p50_ms"` // bucket upper bound
	EngineP99Ms    float64    `json:"engine_call_setup_p99_ms"` // bucket upper bound
	Error          string     `json:"error,omitempty"`
	SIPp           sippResult `json:"sipp"`
}

// SoakResult is the leak check.
type SoakResult struct {
	Calls          int         `json:"calls"`
	Duration       string      `json:"duration"`
	Samples        []RSSSample `json:"rss_samples"`
	SlopeMBPerHour float64     `json:"rss_slope_mb_per_hour"`
	HeapSlope      float64     `json:"heap_slope_mb_per_hour"`
	Error          string      `json:"error,omitempty"`
	Load           *LoadResult `json:"load,omitempty"`
}

// RSSSample is one RSS reading of the soak.
type RSSSample struct {
	T      float64 `json:"t_s"`
	RSSMB  float64 `json:"rss_mb"`
	HeapMB float64 `json:"heap_mb"`
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ivrbench", flag.ContinueOnError)
	callsFlag := fs.String("calls", "100,500,1000", "simultaneous call levels, comma-separated")
	var o options
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "how long the calls stay up at full load")
	fs.IntVar(&o.rate, "rate", 100, "calls per second while ramping up to a level")
	fs.IntVar(&o.setupRate, "setup-rate", 200, "calls per second of the call setup run (0 skips it)")
	fs.DurationVar(&o.setupTime, "setup-time", 5*time.Second, "how long the call setup run places calls")
	fs.DurationVar(&o.soak, "soak", 0, "if set, also hold -soak-calls calls this long and sample RSS every 10 s")
	fs.IntVar(&o.soakCalls, "soak-calls", 100, "calls of the soak run")
	fs.BoolVar(&o.skipMicro, "skip-micro", false, "do not run the Go micro-benchmarks")
	fs.StringVar(&o.out, "out", "bench/results.json", "JSON results file")
	fs.StringVar(&o.media, "media", "rtpstream", "how sipp streams the callers' audio: rtpstream (sipp rtp_stream, a thread per 20 calls) or pcap (play_pcap_audio, a thread per call)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder (ivrd logs, sipp traces, databases)")
	fs.BoolVar(&o.speech, "speech", false, "turn speech recognition on in ivrd; the callers answer the shipped menu with utterances of the speech test set, -speaking of them at any moment, and the run reports the cost per speaking caller, the VAD's and the recognizer's time, barge-in latency and accuracy")
	fs.IntVar(&o.speaking, "speaking", 30, "with -speech: percent of the callers speaking at any moment (1 to 99); 100: every caller speaks all the time (one prompt looped, the worst case, no accuracy)")
	clusterFlag := fs.String("cluster", "", "instead of the load run: call rates (calls/s, comma-separated) of the cluster run, one engine direct and one and two engines behind Kamailio on one PostgreSQL; -out defaults to bench/cluster-results.json")
	fs.DurationVar(&o.clusterT, "cluster-time", 20*time.Second, "how long each rate of the cluster run places calls")
	chatFlag := fs.String("chat", "", "instead of the load run: IDLE,ACTIVE web chat sessions held by one engine with -chat-calls phone calls up; -out defaults to bench/chat-results.json")
	chatCalls := fs.Int("chat-calls", 100, "phone calls up during the chat run")
	chatTime := fs.Duration("chat-time", 20*time.Second, "how long the active chat sessions talk")
	fs.StringVar(&o.profile, "profile", "", "folder: serve pprof in ivrd (IVR_HTTP_PPROF) and write a CPU profile of each level's window and a heap profile at its end (the profiler's cost is in that level's CPU figure)")
	fs.IntVar(&o.speechMax, "speech-max-calls", 0, "with -speech: ivrd's speech.max_calls (IVR_SPEECH_MAX_CALLS; -1: no limit, to find what the machine holds); 0: ivrd's default")
	vadFlag := fs.String("vad", "", "with -speech: voice activity detectors to compare, comma-separated (shared, per-call: IVR_SPEECH_VAD); every level runs each in turn; none: ivrd's default")
	binsFlag := fs.String("ivrd", "", "prebuilt ivrd binaries, comma-separated, instead of building ./cmd/ivrd; with several, every level runs each in turn (before/after comparisons in one run)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	outSet := false
	fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	for _, f := range strings.Split(*clusterFlag, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return fmt.Errorf("-cluster: %q is not a positive number", f)
		}
		o.cluster = append(o.cluster, n)
	}
	if len(o.cluster) > 0 && !outSet {
		o.out = "bench/cluster-results.json"
	}
	var chatIdle, chatActive int
	if *chatFlag != "" {
		if _, err := fmt.Sscanf(*chatFlag, "%d,%d", &chatIdle, &chatActive); err != nil || chatIdle < 0 || chatActive < 0 {
			return fmt.Errorf("-chat %q: want IDLE,ACTIVE (two numbers)", *chatFlag)
		}
		if !outSet {
			o.out = "bench/chat-results.json"
		}
	}
	for _, f := range strings.Split(*binsFlag, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("-ivrd: %w", err)
		}
		o.bins = append(o.bins, abs)
	}
	for _, f := range strings.Split(*callsFlag, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return fmt.Errorf("-calls: %q is not a positive number", f)
		}
		o.calls = append(o.calls, n)
	}
	if o.hold < 5*time.Second {
		return errors.New("-hold must be at least 5s (the CPU window is its middle 60%)")
	}
	if o.media != "rtpstream" && o.media != "pcap" {
		return fmt.Errorf("-media %q: want rtpstream or pcap", o.media)
	}
	if o.rate <= 0 {
		return errors.New("-rate must be positive")
	}
	if o.speaking < 1 || o.speaking > 100 {
		return fmt.Errorf("-speaking %d: want 1 to 100", o.speaking)
	}
	if o.speech && o.speaking < 100 && o.media != "rtpstream" {
		return errors.New("-speech with -speaking below 100 streams with -media rtpstream")
	}

	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "flows", "prompts")); err != nil {
		return fmt.Errorf("run ivrbench from the repository root (flows/prompts not found in %s)", root)
	}
	for _, tool := range []string{"sipp", "sox"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed: `make deps` installs it (Debian packages sip-tester, sox)", tool)
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stdout, "warning: not root; sipp's play_pcap_audio needs raw sockets (CAP_NET_RAW)")
	}
	raiseNoFile(stdout)

	work, err := os.MkdirTemp("", "ivrbench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stdout, "work folder:", work)
	} else {
		defer os.RemoveAll(work)
	}

	res := &Results{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine()}
	res.Method = Method{
		Hold:       o.hold.String(),
		RampRate:   o.rate,
		Window:     "the middle 60% of the hold, after every call of the level is up (ivr_active_calls = N)",
		Codec:      "PCMU, 20 ms; caller audio is a rendered prompt (espeak-ng speech) converted by sox to u-law, streamed by sipp (-media " + o.media + ": rtp_stream looping the raw u-law, or play_pcap_audio of a pcap written by ivrbench)",
		Recording:  true,
		DTMF:       "one RFC 4733 key 9 (repeat menu) per call from /usr/share/sip-tester/dtmf_2833_9.pcap; the call stays in the menu",
		Pacing:     "ivr_rtp_send_interval_deviation_seconds, window delta; quantiles are bucket upper bounds (an upper-bound estimate; buckets 0.25, 0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 20, 50 ms)",
		HeapNote:   "ivr_go_heap_objects_bytes from /metrics (runtime/metrics: live and not yet swept objects), idle and highest sample in the window",
		SetupNote:  "INVITE sent to 200 OK received, per call, from sipp -trace_rtt (start_rtd/rtd around INVITE/200), which sipp records in whole milliseconds (0 means under 1 ms); ivr_call_setup_seconds (INVITE received to 200 OK sent) as bucket upper bounds",
		Generator:  "sipp on the same 2 cores: its CPU competes with ivrd and is reported as sipp_cpu_pct_total",
		FirstDigit: "1h",
	}

	bin := filepath.Join(work, "ivrd")
	if len(o.bins) > 0 {
		bin = o.bins[0]
	} else {
		fmt.Fprintln(stdout, "building ivrd ...")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ivrd").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/ivrd: %v\n%s", err, out)
		}
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	ctl := filepath.Join(work, "ivrctl")
	if out, err := exec.Command("go", "build", "-o", ctl, "./cmd/ivrctl").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/ivrctl: %v\n%s", err, out)
	}
	env := &benchEnv{root: root, work: work, bin: bin, ctl: ctl, clk: clockTicks(), out: stdout, media: o.media, speech: o.speech, profile: o.profile, idleAccuracy: -1,
		flowsDir: filepath.Join(root, "flows"), speechMax: o.speechMax}
	if err := env.prepare(); err != nil {
		return err
	}
	if o.speech && o.speaking < 100 && len(o.cluster) == 0 && *chatFlag == "" {
		fmt.Fprintln(stdout, "rendering the callers' speech ...")
		if env.mix, err = makeSpeechMix(float64(o.speaking) / 100); err != nil {
			return err
		}
		if err := env.writeSpeechFlows(); err != nil {
			return err
		}
		env.ulaw = env.mix.ulaw
		res.Method.Codec = "PCMU, 20 ms; " + env.mix.describe()
		res.Method.DTMF = "none (speech run)"
	}
	if len(o.cluster) > 0 {
		return runCluster(env, o.cluster, o.clusterT, o.out, o.keep)
	}
	if *chatFlag != "" {
		_, err := chatRun(env, chatIdle, chatActive, *chatCalls, *chatTime, o.out)
		return err
	}

	// Longest first would be kinder to the machine's page cache, but the
	// smaller levels first give figures even if a big one breaks.
	vads := []string{""}
	if *vadFlag != "" {
		vads = strings.Split(*vadFlag, ",")
	}
	for _, n := range o.calls {
		for i, b := range append([]string{bin}, o.bins[min(1, len(o.bins)):]...) {
			for _, vad := range vads {
				env.bin, env.vad = b, strings.TrimSpace(vad)
				fmt.Fprintf(stdout, "load: %d calls, hold %s ...\n", n, o.hold)
				lr := env.load(n, o.hold, o.rate, nil)
				lr.VAD = env.vad
				if len(o.bins) > 1 {
					lr.Binary = fmt.Sprintf("%d:%s", i, b)
					fmt.Fprintln(stdout, "ivrd:", lr.Binary)
				}
				if env.vad != "" {
					fmt.Fprintln(stdout, "VAD:", env.vad)
				}
				res.Load = append(res.Load, lr)
				printLoad(stdout, lr)
			}
		}
	}
	env.bin = bin
	if o.setupRate > 0 {
		fmt.Fprintf(stdout, "setup: %d calls/s for %s ...\n", o.setupRate, o.setupTime)
		res.Setup = env.setup(o.setupRate, o.setupTime)
	}
	if o.soak > 0 {
		fmt.Fprintf(stdout, "soak: %d calls for %s ...\n", o.soakCalls, o.soak)
		res.Soak = env.soakRun(o.soakCalls, o.soak, o.rate)
	}
	if !o.skipMicro {
		fmt.Fprintln(stdout, "micro-benchmarks ...")
		m, err := microBenchmarks(root)
		if err != nil {
			res.Notes = append(res.Notes, "micro-benchmarks: "+err.Error())
		}
		res.Micro = m
	}
	if res.Micro == nil {
		res.Micro = []MicroResult{}
	}
	for _, lr := range res.Load {
		if !lr.OK {
			res.Notes = append(res.Notes, fmt.Sprintf("%d calls: %s", lr.Calls, lr.Error))
		}
	}
	if res.Notes == nil {
		res.Notes = []string{}
	}

	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	summary(stdout, res)
	fmt.Fprintln(stdout, "results written to", o.out)
	return nil
}

// raiseNoFile raises the open-file limit to its hard limit; ivrd and sipp
// inherit it (1000 calls take over 2000 sockets in ivrd and 1000 raw
// sockets in sipp).
func raiseNoFile(w io.Writer) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintln(w, "warning: getrlimit:", err)
		return
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			fmt.Fprintln(w, "warning: setrlimit NOFILE:", err)
		}
	}
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), ClkTck: int(clockTicks())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	// sipp -v exits non-zero after printing its version.
	if out, _ := exec.Command("sipp", "-v").CombinedOutput(); len(out) > 0 {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "SIPp v") {
				m.SIPp = strings.TrimSpace(line)
				break
			}
		}
	}
	return m
}

func ms(s float64) float64 {
	if math.IsNaN(s) {
		return -1
	}
	if math.IsInf(s, 1) {
		return -1 // past the last bucket; see the result's note
	}
	return round(s*1000, 3)
}

func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
