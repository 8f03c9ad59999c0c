// Package pgtest runs a real PostgreSQL server for the tests of one test
// binary: Debian's package (postgresql, its binaries under
// /usr/lib/postgresql/VERSION/bin), a cluster made by initdb in a temporary
// folder, the server on a free loopback port (and a Unix socket in that
// folder). The server starts at the first Start of the binary and stops,
// its folder removed, when the package's TestMain returns:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Each test takes a database of its own (Server.NewDatabase), so tests of a
// package share one server and never each other's rows.
//
// Without PostgreSQL installed a test follows internal/testenv's rule: it
// fails under CI=true and under make (make deps installs the Debian
// package), and skips elsewhere with a message naming the package.
// As root, the server runs as the postgres user (PostgreSQL refuses root).
//
// A test sees what happens while the server goes away with Stop and Start,
// Restart (an administrator's), Crash (an immediate shutdown: the next
// Start replays the write-ahead log) and Freeze and Thaw (a server that
// keeps its connections and answers nothing).
//
// The server runs with fsync off (the tests' process-level restarts lose
// nothing the server acknowledged: the operating system holds its writes);
// a benchmark that measures durable commits calls Server.SetFsync(true).
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/govline/ivr/internal/testenv"
)

// Package is the Debian package that brings the server.
const Package = "postgresql"

// superuser is the cluster's superuser; authentication is trust on
// loopback and the socket (a test cluster only).
const superuser = "ivrtest"

// Server is the test binary's PostgreSQL server.
type Server struct {
	bin  string // folder of initdb and postgres
	dir  string // temporary folder: data/, the socket, the log
	port int
	cred *syscall.Credential // nil unless run as root

	mu      sync.Mutex
	proc    *exec.Cmd
	exited  chan struct{}
	dbCount atomic.Int64
}

var (
	mainRunning atomic.Bool
	once        sync.Once
	shared      *Server
	startErr    error
	// spawn carries process starts to the goroutine that owns the
	// locked OS thread (see spawner).
	spawn = make(chan spawnReq)
)

// Main runs the package's tests and then stops the server, if a test
// started it, and removes its folder. Call it from TestMain.
func Main(m *testing.M) int {
	mainRunning.Store(true)
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
		os.RemoveAll(shared.dir)
	}
	return code
}

// Start returns the binary's server, starting it on first use. It skips
// the test when PostgreSQL is not installed (fails under CI=true).
func Start(t testing.TB) *Server {
	t.Helper()
	if !mainRunning.Load() {
		t.Fatal("pgtest: the package's TestMain must call pgtest.Main (it stops the server)")
	}
	once.Do(func() { shared, startErr = start() })
	var missing missingError
	switch {
	case errors.As(startErr, &missing):
		// internal/testenv's rule: fails under CI=true and make, skips elsewhere.
		testenv.Missing(t, "PostgreSQL", "Debian package "+Package+" (make deps)", startErr)
		return nil
	case startErr != nil:
		t.Fatalf("pgtest: %v", startErr)
	}
	return shared
}

type missingError struct{ what string }

func (e missingError) Error() string { return e.what }

// binDir finds the newest installed server's binaries.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				ok = append(ok, d)
			}
		}
	}
	if len(ok) == 0 {
		return "", missingError{"PostgreSQL server not found (no /usr/lib/postgresql/*/bin/postgres)"}
	}
	sort.Slice(ok, func(i, j int) bool { return version(ok[i]) > version(ok[j]) })
	return ok[0], nil
}

func version(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return v
}

func start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, missingError{"running as root and there is no postgres user to run the server as"}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, err
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(s.dir)
		return nil, err
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.data(), "-U", superuser, "--auth=trust",
		"--no-locale", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v: %s", err, lastLines(out, 10)))
	}
	if s.port, err = freePort(); err != nil {
		return fail(err)
	}
	if err := s.Start(); err != nil {
		return fail(err)
	}
	return s, nil
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }
func (s *Server) log() string  { return filepath.Join(s.dir, "server.log") }

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// URL is the address of database db, as the engine's store.url takes it.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(superuser), Host: "127.0.0.1:" + strconv.Itoa(s.port), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDatabase creates an empty database for the test and returns its URL;
// the database is dropped when the test ends (after the cleanups the test
// registered later, such as closing its stores).
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbCount.Add(1))
	if err := s.exec(context.Background(), `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := s.exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.URL(name)
}

// SetFsync turns the server's fsync on or off (a reload, no restart).
func (s *Server) SetFsync(on bool) error {
	v := "off"
	if on {
		v = "on"
	}
	ctx := context.Background()
	if err := s.exec(ctx, `ALTER SYSTEM SET fsync = `+v); err != nil {
		return err
	}
	return s.exec(ctx, `SELECT pg_reload_conf()`)
}

// exec runs one statement as the superuser in the postgres database.
func (s *Server) exec(ctx context.Context, q string) error {
	db, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, q)
	return err
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

// spawner starts the server's processes from one goroutine locked to its
// OS thread for the life of the test binary: the server gets
// SIGINT (a fast shutdown) when that thread ends, which happens only when
// the binary exits, so a test binary killed by its timeout leaves no
// server behind.
var spawnerOnce sync.Once

func spawner() {
	runtime.LockOSThread() // never unlocked: the thread lives until the process exits
	for r := range spawn {
		r.err <- r.cmd.Start()
	}
}

// Start starts the server (after Stop) and waits until it accepts
// connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("pgtest: server already running")
	}
	logf, err := os.OpenFile(s.log(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.data(), "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB",
		"-c", "log_min_messages=warning", "-c", "log_min_error_statement=panic")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	spawnerOnce.Do(func() { go spawner() })
	req := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawn <- req
	if err := <-req.err; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.proc, s.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.exec(context.Background(), `SELECT 1`)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			s.proc = nil
			return fmt.Errorf("pgtest: postgres exited at start: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres not ready after 60 s: %v: %s", err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: open sessions are ended,
// what was committed stays) and waits for it.
func (s *Server) Stop() error { return s.stop(syscall.SIGINT) }

// Crash ends the server as a crash would (immediate shutdown: no
// checkpoint; the next Start replays the write-ahead log).
func (s *Server) Crash() error { return s.stop(syscall.SIGQUIT) }

func (s *Server) stop(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	_ = s.proc.Process.Signal(sig)
	// A frozen server must see the signal, and its backends must end.
	_ = syscall.Kill(s.proc.Process.Pid, syscall.SIGCONT)
	for _, child := range children(s.proc.Process.Pid) {
		_ = syscall.Kill(child, syscall.SIGCONT)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.proc.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	s.proc = nil
	return nil
}

// Freeze stops every process of the server (SIGSTOP to the postmaster,
// then to each of its children: each backend is a process group of its
// own) without closing a connection: the server keeps its port and its
// sessions but answers nothing, as a host that hangs or a network that
// drops packets would. Thaw lets it go on.
func (s *Server) Freeze() error { return s.signalAll(syscall.SIGSTOP) }

// Thaw resumes a server stopped by Freeze.
func (s *Server) Thaw() error { return s.signalAll(syscall.SIGCONT) }

func (s *Server) signalAll(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return errors.New("pgtest: server not running")
	}
	pid := s.proc.Process.Pid
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("pgtest: %v to the server: %w", sig, err)
	}
	// The postmaster stopped forks no more: its children are all there.
	for _, child := range children(pid) {
		_ = syscall.Kill(child, sig) // one that just ended is no matter
	}
	return nil
}

// children lists the processes whose parent is pid (from /proc).
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// Restart stops the server and starts it again on the same port, as an
// administrator's restart does.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log())
	return lastLines(b, 15)
}

func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(string(bytes.Join(lines, []byte("\n"))))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
