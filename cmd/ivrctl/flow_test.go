package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, src string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFlowLint(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.lua")
	bad := filepath.Join(dir, "bad.lua")
	writeFile(t, good, "say('salut')\nhangup('gata')\n")
	writeFile(t, bad, "say('salut')\nsay_digts('123')\nif x then\n")
	if code, out, errOut := runCLI("flow", "lint", good); code != exitOK || out != "" {
		t.Errorf("lint good: %d %q %q", code, out, errOut)
	}
	code, out, _ := runCLI("flow", "lint", bad)
	if code != exitError || !strings.Contains(out, bad+":0: syntax error at end of file") {
		t.Errorf("lint bad: %d %q", code, out)
	}
	writeFile(t, bad, "say('salut')\nsay_digts('123')\n")
	code, out, _ = runCLI("flow", "lint", dir)
	if code != exitError || out != bad+":2: call to unknown function say_digts() (did you mean say_digits?)\n" {
		t.Errorf("lint folder: %d %q", code, out)
	}
	writeFile(t, bad, "local menu = require('lib.menu')\nmenu.go()\n")
	code, out, _ = runCLI("flow", "lint", bad)
	if code != exitError || !strings.Contains(out, bad+`:1: require("lib.menu"): no lib/menu.lua in the flows folder`) {
		t.Errorf("lint of a missing module: %d %q", code, out)
	}
	writeFile(t, filepath.Join(dir, "lib", "menu.lua"), "return {go = function() end}\n")
	if code, out, _ = runCLI("flow", "lint", bad); code != exitOK {
		t.Errorf("lint with the module: %d %q", code, out)
	}
	if code, _, errOut := runCLI("flow", "lint", filepath.Join(dir, "missing.lua")); code != exitError || !strings.Contains(errOut, "no such file") {
		t.Errorf("lint missing: %d %q", code, errOut)
	}
	if code, _, _ := runCLI("flow", "lint"); code != exitUsage {
		t.Errorf("lint without a path: %d", code)
	}
	// The sentence catalog next to the flows: an unknown id, a sentence
	// missing in a language.
	writeFile(t, good, "say(text('survey.thanks'))\nsay(text('mine.hello'))\n")
	writeFile(t, filepath.Join(dir, "catalog", "ro.toml"), "[mine]\nhello = \"Salut!\"\n")
	code, out, _ = runCLI("flow", "lint", dir)
	if code != exitError || !strings.Contains(out, "catalog/en.toml") || !strings.Contains(out, "no en sentence for mine.hello") {
		t.Errorf("lint of a catalog without an English sentence: %d %q", code, out)
	}
	writeFile(t, filepath.Join(dir, "catalog", "en.toml"), "[mine]\nhello = \"Hello!\"\n")
	if code, out, _ = runCLI("flow", "lint", good); code != exitOK {
		t.Errorf("lint with the catalog complete: %d %q", code, out)
	}
	writeFile(t, good, "say(text('mine.helo'))\n")
	code, out, _ = runCLI("flow", "lint", good)
	if code != exitError || out != good+`:1: text("mine.helo"): no such sentence in the catalog (catalog/*.toml) (did you mean mine.hello?)`+"\n" {
		t.Errorf("lint of an unknown sentence: %d %q", code, out)
	}
}

// simulate reads the caller's lines from a pipe and prints the
// conversation with its end.
func TestFlowSimulate(t *testing.T) {
	saved := stdin
	defer func() { stdin = saved }()
	stdin = strings.NewReader("#2\nda\nnu\n")
	code, out, errOut := runCLI("flow", "simulate", "../../flows/main.lua", "--time", "2026-11-24 10:00")
	if code != exitOK {
		t.Fatalf("simulate: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"caller: #2", "ivr: Pașaportul simplu electronic", "ivr: V-a ajutat", "caller: da", "ivr: Mă bucur", "caller: nu", "ivr: Vă mulțumim", "hangup: resolved"}
	at := 0
	for _, l := range lines {
		if at < len(want) && strings.HasPrefix(l, want[at]) {
			at++
		}
	}
	if at != len(want) || lines[len(lines)-1] != "hangup: resolved" {
		t.Errorf("simulate printed:\n%s\nmissing %q", out, want[min(at, len(want)-1)])
	}

	stdin = strings.NewReader("operator\n")
	_, out, _ = runCLI("flow", "simulate", "../../flows/main.lua", "--time", "2026-11-24 10:00")
	if !strings.HasSuffix(out, "ticket: 10000004 service=other priority=normal level=1\ntransfer: level1\n") {
		t.Errorf("operator:\n%s", out)
	}
	if code, _, _ := runCLI("flow", "simulate"); code != exitUsage {
		t.Errorf("simulate without a flow: %d", code)
	}
	if code, _, _ := runCLI("flow", "simulate", "../../flows/main.lua", "--time", "tomorrow"); code != exitUsage {
		t.Errorf("simulate --time tomorrow: %d", code)
	}
}

// simulate exits 1 when the flow fails; a broken file next to the flow
// does not stop it; --keys-only hears no words; --data must hold a store.
func TestFlowSimulateTools(t *testing.T) {
	saved := stdin
	defer func() { stdin = saved }()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "crash.lua"), "say('x')\nlocal n = nil + 1\n")
	writeFile(t, filepath.Join(dir, "broken.lua"), "if then\n")
	writeFile(t, filepath.Join(dir, "hello.lua"), `say("speech " .. tostring(call.speech))
local r = ask{prompt = "Alegeți.", options = {{id = "p", key = "2", say = "pașaport"}}}
hangup(r and r.option or "none")`)
	stdin = strings.NewReader("")
	code, out, errOut := runCLI("flow", "simulate", filepath.Join(dir, "crash.lua"))
	if code != exitError || !strings.Contains(errOut, "the flow failed: crash.lua:2:") || !strings.Contains(out, "ivr: Ne pare rău") {
		t.Errorf("a crashing flow: %d\n%s\n%s", code, out, errOut)
	}
	stdin = strings.NewReader("pașaport\n#2\n")
	code, out, errOut = runCLI("flow", "simulate", "--keys-only", filepath.Join(dir, "hello.lua"))
	if code != exitOK || !strings.Contains(out, "ivr: speech false\n") || !strings.Contains(out, "caller: (not heard: pașaport)") ||
		!strings.Contains(errOut, "keys only") || !strings.HasSuffix(out, "hangup: p\n") {
		t.Errorf("keys only: %d\n%s\n%s", code, out, errOut)
	}
	empty := t.TempDir()
	stdin = strings.NewReader("")
	code, _, errOut = runCLI("flow", "simulate", "--data", filepath.Join(empty, "typo"), filepath.Join(dir, "hello.lua"))
	if code != exitError || !strings.Contains(errOut, "no store there") {
		t.Errorf("--data without a store: %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(empty, "typo")); err == nil {
		t.Error("--data created a folder")
	}
}

func TestFlowTest(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hello.lua"), `
say{ro = "Bună ziua!", en = "Hello!"}
if ask_yes_no("Vreți un operator?") then transfer("level1") end
hangup("bye")
`)
	writeFile(t, filepath.Join(dir, "tests", "hello.conv"), `
flow: hello.lua

test: yes leads to an operator
ivr: bună ziua
caller: da
transfer: level1

test: a wrong expectation
caller: nu
ivr: la revedere
hangup: bye
`)
	code, out, _ := runCLI("flow", "test", filepath.Join(dir, "tests"))
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	for _, want := range []string{
		"ok   " + filepath.Join(dir, "tests", "hello.conv") + ":4: yes leads to an operator",
		"FAIL " + filepath.Join(dir, "tests", "hello.conv") + ":9: a wrong expectation",
		`line 11: expected the line to say the words "la revedere" in one prompt after the caller said "nu" (line 10); it said:`,
		"  > hangup: bye",
		"1 passed, 1 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	code, out, _ = runCLI("flow", "test", "../../flows/tests")
	if code != exitOK || !strings.Contains(out, " passed, 0 failed") {
		t.Errorf("the shipped tests: %d\n%s", code, out)
	}
}
