package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// procKB reads a field of /proc/PID/status (VmRSS, VmHWM), in KiB.
func procKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// 500 sign-ins with wrong names at once, each from an address of its own
// (so that the per-address rate does not stop them): the daemon hashes
// one at a time and tells the rest to come back (503 with Retry-After),
// and its memory stays under 150 MB (it reached 1.18 GB with 60 such
// sign-ins when every one was hashed at once, 19 MiB each).
func TestSignInFloodKeepsMemoryBounded(t *testing.T) {
	d := startDaemon(t)
	pid := d.cmd.Process.Pid
	// Once the daemon is idle (its prompts rendered), its peak is reset:
	// the peak below is the flood's.
	if !waitFor(60*time.Second, func() bool { return strings.Contains(d.logs.String(), `"msg":"prompts ready"`) }) {
		t.Fatal("the daemon did not finish rendering its prompts")
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}
	base := procKB(t, pid, "VmRSS")
	const n = 500
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	url := fmt.Sprintf("http://127.0.0.1:%d/api/login", d.consolePort)
	for i := range n {
		ip := net.IPv4(127, byte(100+i/250), byte(1+i%250), 7)
		cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}).DialContext}}
		wg.Go(func() {
			body := fmt.Sprintf(`{"name":"nobody%d","password":"a wrong password %d"}`, i, i)
			req, _ := http.NewRequestWithContext(context.Background(), "POST", url, bytes.NewReader([]byte(body)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := cl.Do(req)
			code := 0
			if err == nil {
				code = resp.StatusCode
				if code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					code = -503
				}
				resp.Body.Close()
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	took := time.Since(start)
	peak := procKB(t, pid, "VmHWM")
	t.Logf("%d concurrent bad sign-ins in %s: %v; RSS %d MB before, peak %d MB", n, took.Round(time.Millisecond), codes, base/1024, peak/1024)
	if codes[http.StatusUnauthorized]+codes[http.StatusServiceUnavailable] != n || codes[http.StatusUnauthorized] == 0 {
		t.Errorf("answers %v: want 401 (checked) or 503 with Retry-After (no hashing slot in time) for every one", codes)
	}
	if peak > 150*1024 {
		t.Errorf("peak RSS %d MB under %d concurrent sign-ins, want under 150 MB", peak/1024, n)
	}
	if _, body := d.get(t, "/metrics"); !strings.Contains(body, `ivr_console_signins_total{outcome="busy"}`) {
		t.Error("busy sign-ins are not in /metrics")
	}
}
