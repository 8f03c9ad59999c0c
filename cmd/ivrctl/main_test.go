package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/tickets"
)

// seed writes a database in a new data directory: "old" (ended, 2 h ago,
// with events) and "new" (in progress, 1 min ago). It returns the directory.
func seed(t *testing.T) (dir string, old, cur time.Time) {
	t.Helper()
	dir = t.TempDir()
	s, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	old, cur = now.Add(-2*time.Hour), now.Add(-time.Minute)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.StartCall(ctx, tickets.CallRecord{ID: "old", Telephony: "sip", Caller: "+33612345678", Called: "100", Start: old}))
	must(s.AddEvent(ctx, "old", tickets.CallEvent{At: old.Add(1250 * time.Millisecond), Kind: "sip.200", Detail: "answered"}))
	must(s.AddEvent(ctx, "old", tickets.CallEvent{At: old, Kind: "sip.invite", Detail: "INVITE sip:100@ivr"}))
	must(s.AnswerCall(ctx, "old", old.Add(1250*time.Millisecond), "PCMU", "/var/rec/old.wav"))
	for _, d := range "12#" {
		must(s.AppendDTMF(ctx, "old", d))
		must(s.AddEvent(ctx, "old", tickets.CallEvent{At: old.Add(5 * time.Second), Kind: "dtmf", Detail: string(d)}))
	}
	must(s.EndCall(ctx, "old", old.Add(42*time.Second), tickets.EndCallerHangup, tickets.PacketStats{In: 2100, Out: 2095, Lost: 3, Late: 1}))
	must(s.StartCall(ctx, tickets.CallRecord{ID: "new", Telephony: "ari", Caller: "+4915112345678", Called: "200", Start: cur}))
	return dir, old, cur
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCallsListJSON(t *testing.T) {
	dir, old, _ := seed(t)
	code, out, errs := runCLI("calls", "list", "--json", "--data", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Calls []tickets.CallRecord `json:"calls"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got.Calls) != 2 || got.Calls[0].ID != "new" || got.Calls[1].ID != "old" {
		t.Fatalf("calls %+v, want new then old", got.Calls)
	}
	c := got.Calls[1]
	if c.DTMF != "12#" || c.Caller != "+33612345678" || !c.Start.Equal(old) || c.Stats.Lost != 3 || c.EndReason != tickets.EndCallerHangup {
		t.Errorf("old call %+v", c)
	}
	// The wire names, including an empty dtmf on the call in progress.
	var raw struct {
		Calls []map[string]any `json:"calls"`
	}
	json.Unmarshal([]byte(out), &raw)
	for _, key := range []string{"id", "telephony", "caller", "called", "start", "dtmf", "stats"} {
		if _, ok := raw.Calls[0][key]; !ok {
			t.Errorf("JSON of a call lacks %q: %v", key, raw.Calls[0])
		}
	}
	if _, ok := raw.Calls[0]["end"]; ok {
		t.Errorf("call in progress has an end: %v", raw.Calls[0])
	}
	stats, _ := raw.Calls[1]["stats"].(map[string]any)
	if stats["packets_in"] != 2100.0 || stats["packets_late"] != 1.0 {
		t.Errorf("stats %v", stats)
	}
}

func TestCallsListEmptyJSON(t *testing.T) {
	dir := t.TempDir()
	s, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, out, _ := runCLI("calls", "list", "--json", "--data", dir)
	if code != 0 || strings.Join(strings.Fields(out), "") != `{"calls":[]}` {
		t.Fatalf("exit %d, out %q; want {\"calls\":[]}", code, out)
	}
	code, out, _ = runCLI("calls", "list", "--data", dir)
	if code != 0 || out != "no calls\n" {
		t.Fatalf("exit %d, out %q", code, out)
	}
}

func TestCallsListTable(t *testing.T) {
	dir, old, cur := seed(t)
	code, out, errs := runCLI("calls", "list", "--data", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want header and 2 rows:\n%s", out)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "ID START DURATION CALLER CALLED DTMF END" {
		t.Errorf("header %q", lines[0])
	}
	wantNew := []string{"new", cur.Local().Format(localTime), "-", "+4915112345678", "200", "-", "in progress"}
	wantOld := []string{"old", old.Local().Format(localTime), "42s", "+33612345678", "100", "12#", "caller_hangup"}
	for i, want := range [][]string{wantNew, wantOld} {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != strings.Join(want, " ") {
			t.Errorf("row %d\n got %s\nwant %s", i+1, got, strings.Join(want, " "))
		}
	}
}

func TestCallsListLimitSince(t *testing.T) {
	dir, old, _ := seed(t)
	ids := func(args ...string) string {
		t.Helper()
		code, out, errs := runCLI(append([]string{"calls", "list", "--json", "--data", dir}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var got struct{ Calls []tickets.CallRecord }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, c := range got.Calls {
			s = append(s, c.ID)
		}
		return fmt.Sprint(s)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--limit", "1"}, "[new]"},
		{[]string{"--limit", "0"}, "[new old]"},
		{[]string{"--since", "1h"}, "[new]"},
		{[]string{"--since", "3h"}, "[new old]"},
		{[]string{"--since", old.Add(time.Second).UTC().Format(time.RFC3339)}, "[new]"},
		{[]string{"--since", old.Format(time.RFC3339Nano)}, "[new old]"},
		{[]string{"--since", "2000-01-01"}, "[new old]"},
	} {
		if got := ids(tc.args...); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.args, got, tc.want)
		}
	}
}

func TestCallsShowJSON(t *testing.T) {
	dir, _, _ := seed(t)
	// Flags after the positional argument work too.
	code, out, errs := runCLI("calls", "show", "old", "--json", "--data", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Call   tickets.CallRecord  `json:"call"`
		Events []tickets.CallEvent `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Call.ID != "old" || got.Call.DTMF != "12#" || got.Call.Recording != "/var/rec/old.wav" {
		t.Errorf("call %+v", got.Call)
	}
	var kinds []string
	for i, e := range got.Events {
		kinds = append(kinds, e.Kind+":"+e.Detail)
		if i > 0 && e.At.Before(got.Events[i-1].At) {
			t.Errorf("events not chronological: %v", got.Events)
		}
	}
	if want := "[sip.invite:INVITE sip:100@ivr sip.200:answered dtmf:1 dtmf:2 dtmf:#]"; fmt.Sprint(kinds) != want {
		t.Errorf("events %v, want %s", kinds, want)
	}

	// A call without events has "events": [], not null.
	code, out, _ = runCLI("calls", "show", "--json", "--data", dir, "new")
	if code != 0 || !strings.Contains(out, `"events": []`) {
		t.Errorf("exit %d, out:\n%s", code, out)
	}
}

func TestCallsShowTable(t *testing.T) {
	dir, old, _ := seed(t)
	code, out, errs := runCLI("--data", dir, "calls", "show", "old")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"Call       old",
		"Caller     +33612345678",
		"Start      " + old.Local().Format(localTime),
		"Answer     " + old.Add(1250*time.Millisecond).Local().Format(localTime) + " (+1.250s)",
		"caller_hangup",
		"Duration   42s",
		"Codec      PCMU",
		"DTMF       12#",
		"Packets    in 2100, out 2095, lost 3, late 1",
		"Events (5)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	i1, i2, i3 := strings.Index(out, "sip.invite"), strings.Index(out, "sip.200"), strings.Index(out, "dtmf")
	if i1 < 0 || i1 > i2 || i2 > i3 {
		t.Errorf("events not in order:\n%s", out)
	}
	if !strings.Contains(out, "+0.000s  sip.invite") || !strings.Contains(out, "+5.000s  dtmf") {
		t.Errorf("event offsets missing:\n%s", out)
	}
}

func TestCallsShowUnknownID(t *testing.T) {
	dir, _, _ := seed(t)
	code, out, errs := runCLI("calls", "show", "nope", "--data", dir)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	if !strings.Contains(errs, `no call with id "nope"`) || !strings.Contains(errs, tickets.DBPath(dir)) {
		t.Errorf("stderr %q does not name the id and the database", errs)
	}
}

func TestMissingDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nowhere")
	for _, args := range [][]string{{"calls", "list"}, {"calls", "show", "x"}} {
		code, _, errs := runCLI(append(args, "--data", dir)...)
		path := tickets.DBPath(dir)
		if code != 1 || !strings.Contains(errs, "no database at "+path) || !strings.Contains(errs, "run ivrd first") || !strings.Contains(errs, "--data") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v created %s", args, dir)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir, _, _ := seed(t)
	for _, tc := range []struct {
		args []string
		code int
		msg  string // in stderr
	}{
		{nil, 2, "missing command"},
		{[]string{"frob"}, 2, `unknown command "frob"`},
		{[]string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"calls"}, 2, "missing subcommand"},
		{[]string{"calls", "frob"}, 2, `unknown subcommand "frob"`},
		{[]string{"calls", "list", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"calls", "list", "--limit", "x"}, 2, `invalid value "x" for flag -limit`},
		{[]string{"calls", "list", "--limit", "-1"}, 2, "--limit -1"},
		{[]string{"calls", "list", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"calls", "list", "--since", "yesterday"}, 2, `--since "yesterday"`},
		{[]string{"calls", "list", "--since", "-5h"}, 2, "must not be negative"},
		{[]string{"calls", "show"}, 2, "missing CALL_ID"},
		{[]string{"calls", "show", "a", "b"}, 2, "want one CALL_ID"},
		{[]string{"calls", "show", "--json"}, 2, "missing CALL_ID"},
		{[]string{"-h"}, 0, "Usage: ivrctl"},
		{[]string{"calls", "list", "-h"}, 0, "Usage: ivrctl calls list"},
		{[]string{"calls", "show", "--help"}, 0, "Usage: ivrctl calls show"},
	} {
		code, _, errs := runCLI(append(tc.args, "--data="+dir)...)
		if tc.args == nil || tc.args[0] == "frob" || tc.args[0] == "--bogus" || tc.args[0] == "-h" {
			code, _, errs = runCLI(tc.args...) // no trailing --data: it would be the command
		}
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
	code, out, _ := runCLI("help")
	if code != 0 || !strings.Contains(out, "calls list") {
		t.Errorf("help: exit %d, out %q", code, out)
	}
}

func TestDataDirResolution(t *testing.T) {
	dir, _, _ := seed(t)
	other := t.TempDir() // no database here

	t.Setenv(envDataDir, dir)
	if code, _, errs := runCLI("calls", "list"); code != 0 {
		t.Errorf("$%s: exit %d: %s", envDataDir, code, errs)
	}
	if code, _, errs := runCLI("calls", "list", "--data", other); code != 1 || !strings.Contains(errs, other) {
		t.Errorf("--data must win over $%s: exit %d: %s", envDataDir, code, errs)
	}
	if code, _, errs := runCLI("--data", other, "calls", "list"); code != 1 || !strings.Contains(errs, other) {
		t.Errorf("global --data must win over $%s: exit %d: %s", envDataDir, code, errs)
	}

	t.Setenv(envDataDir, "")
	t.Chdir(other)
	code, _, errs := runCLI("calls", "list")
	if want := filepath.Join("var", tickets.DBFile); code != 1 || !strings.Contains(errs, "no database at "+want) {
		t.Errorf("default: exit %d, stderr %q; want the default %s", code, errs, want)
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  string
		json bool
	}{
		{[]string{"id", "--json"}, "[id]", true},
		{[]string{"--json", "id"}, "[id]", true},
		{[]string{"a", "b"}, "[a b]", false},
		{[]string{"--", "--json"}, "[--json]", false},
		{[]string{"a", "--", "-b", "--json"}, "[a -b --json]", false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		j := fs.Bool("json", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || fmt.Sprint(pos) != tc.pos || *j != tc.json {
			t.Errorf("%q: pos %v json %v err %v; want %s %v", tc.args, pos, *j, err, tc.pos, tc.json)
		}
	}
}

func TestCommandsCalledDirectly(t *testing.T) {
	dir, _, _ := seed(t)
	var out, errb bytes.Buffer
	if code := commands["calls"]([]string{"list", "--json", "--data", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), `{`) || !strings.Contains(out.String(), `"dtmf": "12#"`) {
		t.Errorf("out %s", out.String())
	}
}

// TestBinary builds ivrctl and runs it as an administrator would.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goBin := testenv.Tool(t, "golang (or Go from go.dev)", "go")
	bin := filepath.Join(t.TempDir(), "ivrctl")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir, _, _ := seed(t)
	exe := func(args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), envDataDir+"="+dir)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String(), errb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	}
	if code, out, errs := exe("calls", "list", "--json"); code != 0 || !strings.Contains(out, `"id": "old"`) {
		t.Errorf("calls list: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := exe("calls", "show", "nope"); code != 1 || !strings.Contains(errs, `no call with id "nope"`) {
		t.Errorf("unknown id: exit %d, %s", code, errs)
	}
	if code, _, _ := exe("calls", "list", "--bogus"); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if code, _, errs := exe("--data", t.TempDir(), "calls", "list"); code != 1 || !strings.Contains(errs, "no database at") {
		t.Errorf("missing database: exit %d, %s", code, errs)
	}
}
