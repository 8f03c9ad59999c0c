package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/govline/ivr/tickets"
)

// docCommands returns the ivrctl command lines of the first ```sh block of
// docs/providers.md that configures providers, as argument lists, and
// whether each reads a password from stdin (printf ... | ivrctl).
func docCommands(t *testing.T) (cmds [][]string, piped []bool) {
	t.Helper()
	f, err := os.Open("../../docs/providers.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "```sh":
			in = true
			continue
		case line == "```":
			if in && len(cmds) > 0 {
				return cmds, piped
			}
			in = false
			continue
		}
		if !in {
			continue
		}
		p := false
		if i := strings.Index(line, "| ivrctl "); i >= 0 {
			line, p = line[i+2:], true
		}
		if !strings.HasPrefix(line, "ivrctl ") {
			continue
		}
		cmds, piped = append(cmds, shellWords(t, strings.TrimPrefix(line, "ivrctl "))), append(piped, p)
	}
	t.Fatal("docs/providers.md has no ```sh block of ivrctl commands")
	return nil, nil
}

// shellWords splits s as the shell would, for the double-quoted words the
// docs use.
func shellWords(t *testing.T, s string) []string {
	var out []string
	var w strings.Builder
	quoted, any := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, any = !quoted, true
		case r == ' ' && !quoted:
			if any {
				out = append(out, w.String())
			}
			w.Reset()
			any = false
		default:
			w.WriteRune(r)
			any = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quotes in %q", s)
	}
	if any {
		out = append(out, w.String())
	}
	return out
}

// An administrator configures two providers with the commands of
// docs/providers.md, as written there.
func TestProvidersAsDocumented(t *testing.T) {
	dir := t.TempDir()
	cmds, piped := docCommands(t)
	if len(cmds) < 8 {
		t.Fatalf("only %d commands in docs/providers.md", len(cmds))
	}
	var listed string
	for i, args := range cmds {
		in := ""
		if piped[i] {
			in = "a password long enough\n"
		}
		code, out, errs := ctl(t, in, append([]string{"--data", dir}, args...)...)
		if code != exitOK {
			t.Fatalf("ivrctl %s: %d %s", strings.Join(args, " "), code, errs)
		}
		if args[0] == "providers" && args[1] == "list" {
			listed = out
		}
	}
	doc, err := os.ReadFile("../../docs/providers.md")
	if err != nil {
		t.Fatal(err)
	}
	// The listing the docs show is the one the commands print.
	for _, line := range strings.Split(strings.TrimSpace(listed), "\n") {
		if !strings.Contains(string(doc), strings.TrimRight(line, " ")) {
			t.Errorf("docs/providers.md does not show the line\n%s", line)
		}
	}
	code, out, _ := ctl(t, "", "--data", dir, "providers", "list", "--json")
	var l struct{ Providers []tickets.Provider }
	if code != exitOK || json.Unmarshal([]byte(out), &l) != nil || len(l.Providers) != 3 || l.Providers[1].ID != "asp" ||
		len(l.Providers[1].Services) != 3 || l.Providers[2].Numbers[0] != "080020202" {
		t.Fatalf("providers list --json: %d %s", code, out)
	}
	s, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for name, want := range map[string]string{"ana": "asp", "ion": "cnas", "agentia": "default"} {
		u, err := s.User(ctx, name)
		if err != nil || u.Provider != want {
			t.Errorf("user %s: %+v %v, want provider %s", name, u, err, want)
		}
	}
	if p, err := s.ProviderOf(ctx, "080020202", tickets.ServicePassport); err != nil || p != "cnas" {
		t.Errorf("cnas's number: %q %v", p, err)
	}
	if p, err := s.ProviderOf(ctx, "1919", tickets.ServicePassport); err != nil || p != "asp" {
		t.Errorf("asp's service: %q %v", p, err)
	}
	// The tickets of a provider.
	tk, err := s.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Service: tickets.ServicePassport})
	if err != nil || tk.Provider != "asp" {
		t.Fatalf("a passport ticket: %+v %v", tk, err)
	}
	if code, out, _ := ctl(t, "", "--data", dir, "tickets", "list", "--provider", "asp"); code != exitOK || !strings.Contains(out, tk.Number) {
		t.Errorf("asp's tickets: %d %s", code, out)
	}
	if code, out, _ := ctl(t, "", "--data", dir, "tickets", "list", "--provider", "cnas"); code != exitOK || strings.Contains(out, tk.Number) {
		t.Errorf("cnas's tickets: %d %s", code, out)
	}
	if code, out, _ := ctl(t, "", "--data", dir, "tickets", "show", tk.Number); code != exitOK || !strings.Contains(out, "Provider") || !strings.Contains(out, "asp") {
		t.Errorf("tickets show: %d %s", code, out)
	}
	// Mistakes are refused with the reason.
	if code, _, errs := ctl(t, "", "--data", dir, "providers", "add", "asp", "--name", "again"); code != exitError || !strings.Contains(errs, "already exists") {
		t.Errorf("a provider added twice: %d %s", code, errs)
	}
	if code, _, errs := ctl(t, "", "--data", dir, "providers", "set", "asp", "--services", "visa"); code != exitUsage || !strings.Contains(errs, "visa") {
		t.Errorf("an unknown service: %d %s", code, errs)
	}
	if code, _, errs := ctl(t, "a password long enough\n", "--data", dir, "users", "add", "--role", "operator", "--provider", "nobody", "x"); code != exitError || !strings.Contains(errs, "nobody") {
		t.Errorf("a user of an unknown provider: %d %s", code, errs)
	}
}
