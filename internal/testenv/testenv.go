// Package testenv is the one rule for a test that needs something outside
// Go: an engine (espeak-ng, pocketsphinx, the silero VAD model) or a tool
// (sipp, sox, chromium). Where it is missing the test cannot say anything,
// and what it does then depends on who runs it:
//
//   - under CI (the environment variable CI=true, which .ci/run sets) and
//     under make (MAKELEVEL set: `make test` installs everything first), it
//     FAILS, so a broken `make deps` cannot turn a suite into passes;
//   - elsewhere (a developer's `go test` on a machine without it) it skips,
//     with a message that names what to install: the Debian package or the
//     make target.
//
// Tests that need a resource only an operator can supply (a real Asterisk,
// a sherpa-onnx model folder) keep their own opt-in variables and skip
// without them everywhere: nothing can install those.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// T is the part of testing.TB the helpers use (a *testing.T, *testing.B
// or testing.TB).
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Strict reports whether a missing engine or tool fails the test: under
// CI=true, or when make runs the tests.
func Strict() bool {
	return isTrue(os.Getenv("CI")) || os.Getenv("MAKELEVEL") != ""
}

func isTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// Missing stops the test because what (e.g. "espeak-ng") is not usable,
// err saying why; install names how to get it (e.g. "Debian package
// espeak-ng (make deps)"). It fails the test when Strict, else skips it.
func Missing(t T, what, install string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is missing: install the %s", what, install)
	if err != nil {
		msg += fmt.Sprintf(" (%v)", err)
	}
	if Strict() {
		t.Fatalf("%s; it must be there under CI and make", msg)
		return
	}
	t.Skipf("%s; test skipped", msg)
}

// Need stops the test (see Missing) when err is not nil: the engine what
// failed to start.
func Need(t T, what, install string, err error) {
	t.Helper()
	if err != nil {
		Missing(t, what, install, err)
	}
}

// Tool returns the path of the first of names found on PATH, or stops the
// test (see Missing) naming the Debian package pkg.
func Tool(t T, pkg string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	Missing(t, strings.Join(names, " or "), "Debian package "+pkg+" (make deps)", nil)
	return ""
}
