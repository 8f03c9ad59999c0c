package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/govline/ivr/dialplan/sip/siptest"
)

// ivrd is one running daemon under test.
type ivrd struct {
	cmd     *exec.Cmd
	dataDir string
	sipAddr string
	http    string
	logPath string
	done    chan error
}

// ivrdOptions are the environment overrides of one run.
type ivrdOptions struct {
	bin        string
	flowsDir   string
	dataDir    string
	firstDigit time.Duration
	rtpTimeout time.Duration
	speech     bool     // IVR_SPEECH
	extra      []string // more environment, after (and so over) the above
}

// startIVRD starts the daemon on free loopback ports and waits for /healthz.
func startIVRD(o ivrdOptions) (*ivrd, error) {
	sipPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	// The console and the chat on free ports too: their defaults (8081,
	// 8082) may be taken by another ivrd on the machine.
	consolePort, err := freePort()
	if err != nil {
		return nil, err
	}
	chatPort, err := freePort()
	if err != nil {
		return nil, err
	}
	d := &ivrd{
		dataDir: o.dataDir,
		sipAddr: fmt.Sprintf("127.0.0.1:%d", sipPort),
		http:    fmt.Sprintf("127.0.0.1:%d", httpPort),
		logPath: filepath.Join(o.dataDir, "ivrd.log"),
		done:    make(chan error, 1),
	}
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command(o.bin)
	d.cmd.Env = append(os.Environ(),
		"IVR_SIP_LISTEN="+d.sipAddr,
		"IVR_HTTP_LISTEN="+d.http,
		fmt.Sprintf("IVR_CONSOLE_LISTEN=127.0.0.1:%d", consolePort),
		fmt.Sprintf("IVR_CHAT_LISTEN=127.0.0.1:%d", chatPort),
		"IVR_DATA_DIR="+o.dataDir,
		"IVR_FLOWS_DIR="+o.flowsDir,
		"IVR_RECORD_CALLS=true",
		"IVR_FIRST_DIGIT_TIMEOUT="+o.firstDigit.String(),
		"IVR_RTP_TIMEOUT="+o.rtpTimeout.String(),
		"IVR_ANSWER_DELAY=0s",
		"IVR_SHUTDOWN_GRACE=5s",
		"IVR_LOG_LEVEL=warn",
		"IVR_SPEECH="+strconv.FormatBool(o.speech),
	)
	d.cmd.Env = append(d.cmd.Env, o.extra...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start ivrd: %w", err)
	}
	go func() {
		d.done <- d.cmd.Wait()
		logf.Close()
	}()
	deadline := time.Now().Add(60 * time.Second) // the first start renders prompts
	for {
		select {
		case err := <-d.done:
			d.done <- err
			return nil, fmt.Errorf("ivrd exited at start (%v); log %s:\n%s", err, d.logPath, tailFile(d.logPath, 2000))
		default:
		}
		res, err := http.Get("http://" + d.http + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("ivrd not healthy on %s after 60 s; log %s:\n%s", d.http, d.logPath, tailFile(d.logPath, 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *ivrd) pid() int { return d.cmd.Process.Pid }

// stop drains the daemon with SIGTERM, then kills it after 20 s.
func (d *ivrd) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		return err
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return errors.New("ivrd did not stop within 20 s of SIGTERM: killed")
	}
}

// metrics scrapes /metrics into name{labels} -> value.
func (d *ivrd) metrics() (promSample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.http+"/metrics", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer res.Body.Close()
	return parseProm(res.Body)
}

// promSample maps a series ("name" or `name{le="0.001"}`) to its value.
type promSample map[string]float64

func parseProm(r io.Reader) (promSample, error) {
	s := promSample{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		s[line[:i]] = v
	}
	return s, sc.Err()
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	le    float64
	count float64
}

// histogram returns the cumulative buckets of a histogram, ascending,
// +Inf last.
func (s promSample) histogram(name string) []bucket {
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, v := range s {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(rest, `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v})
	}
	sortBuckets(bs)
	return bs
}

func sortBuckets(bs []bucket) {
	for i := 1; i < len(bs); i++ {
		for j := i; j > 0 && bs[j].le < bs[j-1].le; j-- {
			bs[j], bs[j-1] = bs[j-1], bs[j]
		}
	}
}

// histDelta is the histogram of the observations between two scrapes.
func histDelta(before, after []bucket) []bucket {
	out := make([]bucket, len(after))
	for i, b := range after {
		out[i] = b
		for _, a := range before {
			if a.le == b.le {
				out[i].count = b.count - a.count
			}
		}
	}
	return out
}

// quantile returns the upper bound of the bucket holding the q-quantile
// (+Inf when it is past the last finite bound), and the total count.
func quantile(bs []bucket, q float64) (float64, float64) {
	if len(bs) == 0 {
		return math.NaN(), 0
	}
	total := bs[len(bs)-1].count
	if total <= 0 {
		return math.NaN(), 0
	}
	want := math.Ceil(q * total)
	for _, b := range bs {
		if b.count >= want {
			return b.le, total
		}
	}
	return math.Inf(1), total
}

// procCPU returns utime+stime of a process in seconds.
func procCPU(pid int, clkTck float64) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields start after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return (ut + st) / clkTck, nil
}

// procWait returns the time the threads of a process have spent runnable
// but waiting for a core (the second field of /proc/PID/task/*/schedstat),
// in seconds, and their number of time slices. Threads that ended are not
// counted.
func procWait(pid int) (wait float64, slices float64, err error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/task/*/schedstat: none (%v)", pid, err)
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue
		}
		w, _ := strconv.ParseFloat(f[1], 64)
		n, _ := strconv.ParseFloat(f[2], 64)
		wait += w / 1e9
		slices += n
	}
	return wait, slices, nil
}

// procRSS returns VmRSS of a process in MiB.
func procRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseFloat(f[0], 64)
				if err != nil {
					return 0, err
				}
				return kb / 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// clockTicks is sysconf(_SC_CLK_TCK), from getconf; 100 on Linux when
// getconf is missing.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}

// freePort is a port free for UDP and TCP on loopback.
var freePort = siptest.FreePort

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		return "…" + string(b[len(b)-n:])
	}
	return string(b)
}
