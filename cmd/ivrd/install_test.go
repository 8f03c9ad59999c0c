package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govline/ivr/internal/testenv"
)

// `make install` into a staging folder (DESTDIR) lays the engine out as a
// Debian service: binaries, flows, the VAD model, docs, the configuration
// and a sandboxed systemd unit that `systemd-analyze verify` accepts (and
// whose `systemd-analyze security` exposure stays low); the installed
// daemon started from another folder finds its VAD model through the
// configuration (speech on), and IVR_CONSOLE_LISTEN= turns its console off.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs the binaries")
	}
	makeBin := testenv.Tool(t, "make", "make")
	analyze := testenv.Tool(t, "systemd", "systemd-analyze")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	cmd := exec.Command(makeBin, "-C", root, "install", "DESTDIR="+dest, "PREFIX=/usr/local", "BIN="+filepath.Join(t.TempDir(), "bin"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, p := range []string{
		"usr/local/bin/ivrd", "usr/local/bin/ivrctl", "usr/local/lib/ivr/libonnxruntime.so", "usr/local/lib/ivr/libsherpa-onnx-c-api.so",
		"usr/local/share/ivr/flows/main.lua", "usr/local/share/ivr/flows/kb/synonyms.txt",
		"usr/local/share/ivr/models/silero_vad_v5.onnx", "usr/local/share/doc/ivr/operations.md",
		"usr/local/lib/systemd/system/ivrd.service", "etc/ivr/ivrd.toml", "var/lib/ivr",
	} {
		if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system/ivrd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"User=ivr", "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
		"ExecStart=/usr/local/bin/ivrd -config /etc/ivr/ivrd.toml", "StateDirectory=ivr", "Environment=LD_LIBRARY_PATH=/usr/local/lib/ivr"} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
	if strings.Contains(string(unit), "@") {
		t.Error("a placeholder is left in the unit")
	}
	// systemd-analyze reads the staged tree as the root: it needs the
	// targets the unit's default dependencies name and the commands it
	// runs, which the staged tree lacks.
	if err := os.CopyFS(filepath.Join(dest, "lib/systemd/system"), os.DirFS("/lib/systemd/system")); err != nil {
		t.Fatal(err)
	}
	kill, err := os.ReadFile("/bin/kill")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dest, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, "bin/kill"), kill, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--root="+dest, "/usr/local/lib/systemd/system/ivrd.service").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=40", "--root="+dest, "/usr/local/lib/systemd/system/ivrd.service").CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 4.0 (%v)\n%s", err, out)
	}

	// The installed daemon, started from an unrelated folder with the
	// installed configuration (its folders moved into the staging tree)
	// and the unit's library path: the speech libraries come from there,
	// not from the build user's Go module cache, which the service's user
	// cannot read.
	ivrd := filepath.Join(dest, "usr/local/bin/ivrd")
	libs := "LD_LIBRARY_PATH=" + filepath.Join(dest, "usr/local/lib/ivr")
	ldd := exec.Command("ldd", ivrd)
	ldd.Env = append(os.Environ(), libs)
	if out, err := ldd.CombinedOutput(); err != nil {
		t.Errorf("ldd: %v\n%s", err, out)
	} else if want := "libonnxruntime.so => " + filepath.Join(dest, "usr/local/lib/ivr/libonnxruntime.so"); !strings.Contains(string(out), want) {
		t.Errorf("the installed ivrd does not load onnxruntime from the installed folder:\n%s", out)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := exec.Command(ivrd, "-config", filepath.Join(dest, "etc/ivr/ivrd.toml"))
	d.Dir = t.TempDir()
	d.Env = append(os.Environ(), libs,
		fmt.Sprintf("IVR_SIP_LISTEN=127.0.0.1:%d", freePort(t)),
		"IVR_HTTP_LISTEN="+httpAddr,
		"IVR_CONSOLE_LISTEN=",
		"IVR_CHAT_LISTEN=",
		"IVR_DATA_DIR="+filepath.Join(dest, "var/lib/ivr"),
		"IVR_FLOWS_DIR="+filepath.Join(dest, "usr/local/share/ivr/flows"),
		"IVR_MODELS_DIR="+filepath.Join(dest, "usr/local/share/ivr/models"),
		"IVR_LOG_FORMAT=json",
	)
	logs := &syncBuffer{}
	d.Stdout, d.Stderr = logs, logs
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }()
	defer func() {
		_ = d.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = d.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("ivrd output:\n%s", logs.String())
		}
	}()
	ok := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !ok; {
		select {
		case err := <-exited:
			t.Fatalf("the installed ivrd exited at start: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		ok = strings.Contains(logs.String(), `"msg":"speech on`) || strings.Contains(logs.String(), `"msg":"speech off`)
	}
	l := logs.String()
	if strings.Contains(l, `"msg":"speech off`) {
		testenv.Missing(t, "the embedded speech engines", "Debian packages espeak-ng libespeak-ng-dev libpocketsphinx-dev pocketsphinx-en-us (make deps)", fmt.Errorf("%s", l))
	}
	if !ok {
		t.Fatal("the installed ivrd said nothing about speech within 60 s")
	}
	// Once it serves, the console would have started: it did not.
	healthy := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !healthy; time.Sleep(100 * time.Millisecond) {
		if res, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + httpAddr + "/healthz"); err == nil {
			healthy = res.StatusCode == http.StatusOK
			res.Body.Close()
		}
	}
	if !healthy {
		t.Fatal("the installed ivrd is not healthy")
	}
	if l := logs.String(); strings.Contains(l, "console listening") || strings.Contains(l, `"component":"console"`) {
		t.Errorf("IVR_CONSOLE_LISTEN= did not turn the console off")
	}
}
