package main

// The cluster run (-cluster): call setup through Kamailio in front of one
// and two engines sharing one PostgreSQL, against one engine called
// directly, at the same call rates.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
)

// ClusterResults is the JSON of the cluster run.
type ClusterResults struct {
	Date    string       `json:"date"`
	Machine Machine      `json:"machine"`
	Method  []string     `json:"method"`
	Runs    []ClusterRun `json:"runs"`
	Best    []ClusterMax `json:"max_rate_setup_p99_le_5ms"`
	Notes   []string     `json:"notes"`
}

// ClusterRun is one call rate through one configuration.
type ClusterRun struct {
	Config          string     `json:"config"` // "direct" or "kamailio"
	Engines         int        `json:"engines"`
	Rate            int        `json:"calls_per_s"`
	Calls           int        `json:"calls"`
	Samples         int        `json:"rtt_samples"`
	InviteTo200P50  float64    `json:"invite_to_200_p50_ms"`
	InviteTo200P99  float64    `json:"invite_to_200_p99_ms"`
	InviteTo200Max  float64    `json:"invite_to_200_max_ms"`
	EngineSetupP99  float64    `json:"engine_call_setup_p99_ms"` // bucket upper bound, all engines
	CallsPerEngine  []float64  `json:"calls_per_engine"`
	WallSeconds     float64    `json:"wall_s"`
	EngineCPUPct    float64    `json:"engines_cpu_pct"` // sum over the engines, 100% = one core
	EngineCPUMsCall float64    `json:"engines_cpu_ms_per_call"`
	KamCPUPct       float64    `json:"kamailio_cpu_pct"` // every kamailio process
	KamCPUMsCall    float64    `json:"kamailio_cpu_ms_per_call"`
	PGCPUPct        float64    `json:"postgres_cpu_pct"` // postmaster and backends
	PGCPUMsCall     float64    `json:"postgres_cpu_ms_per_call"`
	SIPpCPUPct      float64    `json:"sipp_cpu_pct"`
	Late180         int        `json:"late_180"` // 180 Ringing forwarded after the 200 (sipp went on)
	Error           string     `json:"error,omitempty"`
	SIPp            sippResult `json:"sipp"`
}

// ClusterMax is the highest rate of a configuration whose setup p99 held.
type ClusterMax struct {
	Config  string `json:"config"`
	Engines int    `json:"engines"`
	Rate    int    `json:"calls_per_s"` // 0: none of the rates
}

// cleanups stop the processes of the cluster run, newest first; also on
// SIGINT/SIGTERM.
type cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanups) add(f func()) {
	c.mu.Lock()
	c.fns = append(c.fns, f)
	c.mu.Unlock()
}

func (c *cleanups) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

func runCluster(e *benchEnv, rates []int, dur time.Duration, out string, keep bool) error {
	var cl cleanups
	defer cl.run()
	if !keep {
		cl.add(func() { os.RemoveAll(e.work) }) // run's defer does not run after os.Exit
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; ok {
			fmt.Fprintln(e.out, "interrupted: stopping every process")
			cl.run()
			os.Exit(1)
		}
	}()

	kam, err := exec.LookPath("kamailio")
	if err != nil {
		return fmt.Errorf("kamailio is not installed (Debian package kamailio, make deps)")
	}
	pg, err := startPostgres(&cl)
	if err != nil {
		return err
	}
	res := &ClusterResults{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Notes: []string{}}
	res.Method = []string{
		fmt.Sprintf("each rate places calls for %s (sipp scenarios/uac_setup.xml, through Kamailio uac_setup_proxy.xml: the same with the recorded route on ACK and BYE; 1 s calls without media, -t u1); INVITE sent to 200 OK received from sipp -trace_rtt, whole milliseconds (0 = under 1 ms)", dur),
		"engines: ivrd with IVR_STORE_URL on one PostgreSQL (fsync off, a database per configuration), IVR_ENGINE_NAME engine-N, console off, recording on, first digit timeout 1h",
		"kamailio: dialplan/kamailio/kamailio.cfg as shipped, -A LISTEN=udp:127.0.0.1:PORT -A DSLIST=..., dispatcher set 1 = the engines",
		"CPU: utime+stime from /proc over sipp's whole run (first INVITE to last BYE); engines summed; kamailio and postgres summed over their process trees (workers, backends); ms per call = CPU seconds / successful calls",
		"direct: sipp calls the one engine itself (same PostgreSQL store), no Kamailio",
		"everything (sipp, kamailio, postgres, the engines) shares this machine's cores",
	}
	configs := []struct {
		kam     bool
		engines int
	}{{false, 1}, {true, 1}, {true, 2}}
	for ci, c := range configs {
		name := "direct"
		if c.kam {
			name = "kamailio"
		}
		fmt.Fprintf(e.out, "cluster: %s, %d engine(s) ...\n", name, c.engines)
		var stopCfg cleanups
		runs, err := func() ([]ClusterRun, error) {
			defer stopCfg.run()
			db := fmt.Sprintf("bench%d", ci)
			if err := pg.exec(`CREATE DATABASE ` + db); err != nil {
				return nil, fmt.Errorf("create database: %w", err)
			}
			var engines []*ivrd
			for i := 0; i < c.engines; i++ {
				dataDir, _, err := e.newRun(fmt.Sprintf("%s%d-engine-%d", name, c.engines, i+1), 0)
				if err != nil {
					return nil, err
				}
				d, err := startIVRD(ivrdOptions{
					bin: e.bin, flowsDir: filepath.Join(e.root, "flows"), dataDir: dataDir,
					firstDigit: time.Hour, rtpTimeout: 30 * time.Second,
					extra: []string{"IVR_STORE_URL=" + pg.url(db), fmt.Sprintf("IVR_ENGINE_NAME=engine-%d", i+1), "IVR_CONSOLE_LISTEN=", "IVR_CHAT_LISTEN="},
				})
				if err != nil {
					return nil, err
				}
				stopCfg.add(func() { _ = d.stop() })
				cl.add(func() { _ = d.cmd.Process.Kill() }) // on a signal
				engines = append(engines, d)
			}
			target := engines[0].sipAddr
			var kamPID int
			if c.kam {
				var addrs []string
				for _, d := range engines {
					addrs = append(addrs, d.sipAddr)
				}
				k, err := startKamailio(kam, e.root, e.work, addrs)
				if err != nil {
					return nil, err
				}
				stopCfg.add(k.stop)
				cl.add(k.stop)
				target, kamPID = k.addr, k.pid
				time.Sleep(3 * time.Second) // a probing round: every engine in the set
			}
			var runs []ClusterRun
			for _, rate := range rates {
				r := clusterRate(e, &cl, name, engines, kamPID, pg.pid, target, rate, dur)
				printClusterRun(e.out, r)
				runs = append(runs, r)
			}
			return runs, nil
		}()
		res.Runs = append(res.Runs, runs...)
		best := ClusterMax{Config: name, Engines: c.engines}
		for _, r := range runs {
			if r.Error == "" && r.InviteTo200P99 <= 5 && r.Rate > best.Rate {
				best.Rate = r.Rate
			}
		}
		res.Best = append(res.Best, best)
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("%s %d engine(s): %v", name, c.engines, err))
			fmt.Fprintf(e.out, "  error: %v\n", err)
		}
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(e.out, "highest rate with INVITE→200 p99 ≤ 5 ms:")
	for _, b := range res.Best {
		fmt.Fprintf(e.out, "  %-8s %d engine(s): %d calls/s\n", b.Config, b.Engines, b.Rate)
	}
	fmt.Fprintln(e.out, "results written to", out)
	return nil
}

// clusterRate places rate calls/s for dur at target and measures.
func clusterRate(e *benchEnv, cl *cleanups, name string, engines []*ivrd, kamPID, pgPID int, target string, rate int, dur time.Duration) (r ClusterRun) {
	n := int(float64(rate) * dur.Seconds())
	r = ClusterRun{Config: name, Engines: len(engines), Rate: rate, Calls: n}
	fail := func(format string, a ...any) ClusterRun {
		msg := fmt.Sprintf(format, a...)
		r.Error = strings.TrimPrefix(r.Error+"; "+msg, "; ")
		return r
	}
	dir := filepath.Join(e.work, fmt.Sprintf("cluster-%s%d-%d", name, len(engines), rate))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail("%v", err)
	}
	const setupHist = "ivr_call_setup_seconds"
	var h0 [][]bucket
	for _, d := range engines {
		m, err := d.metrics()
		if err != nil {
			return fail("%v", err)
		}
		h0 = append(h0, m.histogram(setupHist))
	}
	cpu := func() (eng, kam, pg float64) {
		for _, d := range engines {
			v, _ := procCPU(d.pid(), e.clk)
			eng += v
		}
		if kamPID > 0 {
			kam = treeCPU(kamPID, e.clk)
		}
		return eng, kam, treeCPU(pgPID, e.clk)
	}
	scenario := "uac_setup.xml"
	if kamPID > 0 {
		scenario = "uac_setup_proxy.xml"
	}
	sp := &sippRun{
		Scenario: filepath.Join(e.root, "bench", "scenarios", scenario),
		Dir:      dir, Target: target,
		Calls: n, Rate: rate, Duration: time.Second,
		Timeout: dur + 90*time.Second, RTT: true,
	}
	if kamPID > 0 {
		// Kamailio's workers may forward the engine's 180 after its 200;
		// sipp would abort the call on it.
		sp.Extra = []string{"-default_behaviors", "all,-abortunexp"}
	}
	e0, k0, p0 := cpu()
	t0 := time.Now()
	if err := sp.start(); err != nil {
		return fail("%v", err)
	}
	cl.add(func() { _ = sp.cmd.Process.Kill() }) // on a signal; harmless once it exited
	// sipp's own CPU, read just before it exits is not possible: sample it.
	var sippCPU float64
	stopS := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if v, err := procCPU(sp.pid(), e.clk); err == nil {
				sippCPU = v
			}
			select {
			case <-stopS:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	runErr := sp.wait(dur + 2*time.Minute)
	wall := time.Since(t0).Seconds()
	e1, k1, p1 := cpu()
	close(stopS)
	wg.Wait()
	r.SIPp = sp.result(runErr)
	r.Late180 = late180(&r.SIPp, sp.errorFile())
	if runErr != nil || r.SIPp.Successful != n {
		fail("sipp: %d of %d calls successful (exit %v)", r.SIPp.Successful, n, runErr)
	}
	rtts, err := sp.rtts()
	if err != nil {
		fail("%v", err)
	}
	r.Samples = len(rtts)
	r.InviteTo200P50 = round(percentile(rtts, 0.50), 3)
	r.InviteTo200P99 = round(percentile(rtts, 0.99), 3)
	if len(rtts) > 0 {
		r.InviteTo200Max = round(rtts[len(rtts)-1], 3)
	}
	ok := float64(max(r.SIPp.Successful, 1))
	r.WallSeconds = round(wall, 2)
	r.EngineCPUPct = round((e1-e0)/wall*100, 2)
	r.EngineCPUMsCall = round((e1-e0)/ok*1000, 3)
	r.KamCPUPct = round((k1-k0)/wall*100, 2)
	r.KamCPUMsCall = round((k1-k0)/ok*1000, 3)
	r.PGCPUPct = round((p1-p0)/wall*100, 2)
	r.PGCPUMsCall = round((p1-p0)/ok*1000, 3)
	r.SIPpCPUPct = round(sippCPU/wall*100, 2)
	var sum []bucket
	for i, d := range engines {
		waitIdle(d, 10*time.Second)
		m, err := d.metrics()
		if err != nil {
			fail("%v", err)
			continue
		}
		h := histDelta(h0[i], m.histogram(setupHist))
		if len(h) > 0 {
			r.CallsPerEngine = append(r.CallsPerEngine, h[len(h)-1].count)
		}
		if sum == nil {
			sum = h
			continue
		}
		for j := range sum {
			if j < len(h) && h[j].le == sum[j].le {
				sum[j].count += h[j].count
			}
		}
	}
	p99, _ := quantile(sum, 0.99)
	r.EngineSetupP99 = ms(p99)
	return r
}

// late180 takes sipp's notices of a 180 received after the 200 (the call
// went on: -abortunexp off) out of its errors and counts them.
func late180(res *sippResult, errorFile string) int {
	isLate := func(e string) bool {
		return strings.HasPrefix(e, "Continuing call on unexpected message") && strings.Contains(e, "received 'SIP/2.0 180 Ringing")
	}
	n := 0
	if b, err := os.ReadFile(errorFile); err == nil {
		n = strings.Count(string(b), "received 'SIP/2.0 180 Ringing")
	}
	var keep []string
	for _, e := range res.Errors {
		if !isLate(e) {
			keep = append(keep, e)
		}
	}
	res.Errors = keep
	res.ErrorCount = max(0, res.ErrorCount-n)
	return n
}

func printClusterRun(w io.Writer, r ClusterRun) {
	fmt.Fprintf(w, "  %4d calls/s: INVITE→200 p50 %.0f ms p99 %.0f ms max %.0f ms (%d samples); engines %.1f%% (%.2f ms/call), kamailio %.1f%% (%.2f ms/call), postgres %.1f%% (%.2f ms/call), sipp %.1f%%; calls per engine %v; late 180s %d",
		r.Rate, r.InviteTo200P50, r.InviteTo200P99, r.InviteTo200Max, r.Samples, r.EngineCPUPct, r.EngineCPUMsCall, r.KamCPUPct, r.KamCPUMsCall, r.PGCPUPct, r.PGCPUMsCall, r.SIPpCPUPct, r.CallsPerEngine, r.Late180)
	if r.Error != "" {
		fmt.Fprintf(w, "\n    error: %s", r.Error)
	}
	fmt.Fprintln(w)
}

// treeCPU sums utime+stime (seconds) of a process and its live
// descendants (Kamailio's workers, PostgreSQL's backends). Children that
// exited are not counted (their time goes to the parent's cutime, not read
// here).
func treeCPU(root int, clkTck float64) float64 {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	cpu := map[int]float64{}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// f[1] is field 4 (ppid); f[11], f[12] utime, stime.
		if len(f) < 13 {
			continue
		}
		parent[pid], _ = strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		cpu[pid] = (ut + st) / clkTck
	}
	var total float64
	for pid, v := range cpu {
		for p, n := pid, 0; p > 1 && n < 64; p, n = parent[p], n+1 {
			if p == root {
				total += v
				break
			}
		}
	}
	return total
}

// postgres is the cluster run's PostgreSQL server.
type postgres struct {
	dir  string
	port int
	pid  int
}

const pgUser = "ivrbench"

func (p *postgres) url(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgUser, p.port, db)
}

func (p *postgres) exec(q string) error {
	db, err := sql.Open("pgx", p.url("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, q)
	return err
}

// startPostgres makes a cluster with initdb in a temporary folder and
// starts the server on a free loopback port, as the postgres user when
// run as root (as internal/pgtest does, without a testing.TB).
func startPostgres(cl *cleanups) (*postgres, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(dirs) == 0 {
		return nil, fmt.Errorf("PostgreSQL is not installed (Debian package postgresql, make deps)")
	}
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[j]))))
		return vi > vj
	})
	bin := filepath.Dir(dirs[0])
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres user to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "ivrbench-pg-")
	if err != nil {
		return nil, err
	}
	cl.add(func() { os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", pgUser, "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	cl.add(func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	p := &postgres{dir: dir, port: port, pid: cmd.Process.Pid}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err = p.exec(`SELECT 1`); err == nil {
			return p, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("postgres exited at start: %s", tailFile(filepath.Join(dir, "server.log"), 2000))
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("postgres not ready after 60 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kamailio is the shipped configuration running in front of the engines.
type kamailio struct {
	addr string
	pid  int
	stop func()
}

func startKamailio(bin, root, work string, engines []string) (*kamailio, error) {
	dir, err := os.MkdirTemp(work, "kamailio-")
	if err != nil {
		return nil, err
	}
	var list bytes.Buffer
	for i, e := range engines {
		fmt.Fprintf(&list, "1 sip:%s 0 0 name=engine-%d\n", e, i+1)
	}
	dslist := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(dslist, list.Bytes(), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "kamailio.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-DD", "-E", "-f", filepath.Join(root, "dialplan", "kamailio", "kamailio.cfg"),
		"-Y", dir, "-P", filepath.Join(dir, "kamailio.pid"),
		"-A", fmt.Sprintf("LISTEN=udp:127.0.0.1:%d", port), "-A", `DSLIST="`+dslist+`"`)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start kamailio: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	var once sync.Once
	k := &kamailio{addr: fmt.Sprintf("127.0.0.1:%d", port), pid: cmd.Process.Pid}
	k.stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for !kamOptionsOK(port) {
		if time.Now().After(deadline) {
			k.stop()
			return nil, fmt.Errorf("kamailio did not answer OPTIONS in 10 s:\n%s", tailFile(filepath.Join(dir, "kamailio.log"), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return k, nil
}

// kamOptionsOK sends one OPTIONS to Kamailio and wants its own 200.
func kamOptionsOK(port int) bool {
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr)
	now := time.Now().UnixNano()
	msg := fmt.Sprintf("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKbench%d\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:ivrbench@127.0.0.1>;tag=ib\r\nTo: <sip:127.0.0.1:%d>\r\nCall-ID: ivrbench-%d\r\n"+
		"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", port, local.Port, now, port, now)
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 200")
}
