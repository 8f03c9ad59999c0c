package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/govline/ivr/dialplan/sip/sipptest"
)

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
	Extra    []string      // more arguments

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
	args = append(args, r.Extra...)
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
	if st, err := sipptest.ReadStats(r.statFile()); err == nil {
		res.Successful = st.N("SuccessfulCall(C)")
		res.Failed = st.N("FailedCall(C)")
		res.FailedUnexpected = st.N("FailedUnexpectedMessage(C)")
		res.FailedRetrans = st.N("FailedMaxUDPRetrans(C)")
		res.Retransmissions = st.N("Retransmissions(C)")
		res.DeadCallMsgs = st.N("DeadCallMsgs(C)")
	} else {
		res.Errors = append(res.Errors, "statistics: "+err.Error())
	}
	if b, err := os.ReadFile(r.errorFile()); err == nil {
		bad := sipptest.Errors(b, false)
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
