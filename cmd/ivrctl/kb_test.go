package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// kbDir is the shipped knowledge base.
var kbDir = filepath.Join("..", "..", "flows", "kb")

// importShipped imports the shipped articles into the index of a new data
// folder whose line's database ivrd created.
func importShipped(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	db, err := store.Open(context.Background(), store.SQLiteURL(tickets.DBPath(data)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, errs := runCLI("--data", data, "kb", "import", "--dir", kbDir)
	if code != exitOK {
		t.Fatalf("import: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "imported 100 articles (ro 50, en 50)") {
		t.Errorf("import said %q", out)
	}
	return data
}

func TestKBSearchJSON(t *testing.T) {
	data := importShipped(t)
	code, out, errs := runCLI("kb", "search", "--data", data, "--json", "--limit", "3", "am pierdut buletinul și mâine plec din țară")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got.Results) == 0 || got.Results[0]["id"] != "cei-lost-stolen" || got.Results[0]["confident"] != true {
		t.Fatalf("results %v", got.Results)
	}
	for _, k := range []string{"id", "title", "score", "confident", "spoken", "service", "lang"} {
		if _, ok := got.Results[0][k]; !ok {
			t.Errorf("result lacks %q: %v", k, got.Results[0])
		}
	}
	if len(got.Results) > 3 {
		t.Errorf("%d results, want at most 3", len(got.Results))
	}

	// English, text output: id, title, score and spoken answer.
	code, out, _ = runCLI("kb", "search", "--data", data, "--lang", "en", "I forgot my password")
	if code != exitOK || !strings.Contains(out, "portal-password-reset") || !strings.Contains(out, "Forgot password") ||
		!strings.Contains(out, "-> answer") {
		t.Errorf("exit %d, text output:\n%s", code, out)
	}

	// Nothing found: an empty list, not null.
	code, out, _ = runCLI("kb", "search", "--data", data, "--json", "vreau să aș dori")
	if code != exitOK || !strings.Contains(out, `"results": []`) {
		t.Errorf("exit %d, %s", code, out)
	}
}

// ivrctl kb search is a tool: it never records misses (only calls do).
func TestKBSearchRecordsNoMiss(t *testing.T) {
	data := importShipped(t)
	for range 3 {
		if code, _, errs := runCLI("kb", "search", "--data", data, "care e scorul la meci"); code != exitOK {
			t.Fatal(errs)
		}
	}
	code, out, _ := runCLI("kb", "misses", "--data", data, "--json")
	if code != exitOK || !strings.Contains(out, `"misses": []`) {
		t.Errorf("misses after searches: exit %d %s", code, out)
	}
}

func TestKBMisses(t *testing.T) {
	data := importShipped(t)
	ctx := context.Background()
	db, err := store.Open(ctx, store.SQLiteURL(tickets.DBPath(data)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := kb.Open(kb.IndexPath(data), kb.NewMissTable(db))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"vreau rovinietă pentru 0722123456", "vreau rovinietă pentru 0733999456", "cum votez"} {
		if err := ix.RecordMiss(ctx, "ro", q); err != nil {
			t.Fatal(err)
		}
	}
	ix.Close()
	db.Close()
	code, out, errs := runCLI("kb", "misses", "--data", data, "--since", "1h")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "2 ") || !strings.Contains(lines[1], "vreau rovinietă pentru *******456") {
		t.Errorf("misses:\n%s", out)
	}
	if strings.Contains(out, "0722") {
		t.Error("a phone number reached the misses")
	}
	code, out, _ = runCLI("kb", "misses", "--data", data, "--json", "--since", "0")
	var got struct {
		Misses []kb.Miss `json:"misses"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || len(got.Misses) != 2 || got.Misses[0].Count != 2 {
		t.Errorf("json misses: exit %d %s", code, out)
	}
	if code, _, _ := runCLI("kb", "misses", "--data", data, "--since", "yesterday"); code != exitUsage {
		t.Errorf("bad --since: exit %d, want %d", code, exitUsage)
	}
}

func TestKBLint(t *testing.T) {
	code, out, errs := runCLI("kb", "lint", "--dir", kbDir)
	if code != exitOK || !strings.Contains(out, "100 articles, no problems") {
		t.Fatalf("shipped base: exit %d %s %s", code, out, errs)
	}
	// The pairs of articles that answer an evaluation question alike are
	// warnings, with the file and line of the question.
	if !strings.Contains(out, "eval/queries.txt:44: warning: ro/portal-create-account and ro/portal-delete-account answer \"cum îmi fac cont pe portal\"") {
		t.Errorf("no rival warning:\n%s", out)
	}
	dir := t.TempDir()
	for _, lang := range []string{"ro", "en"} {
		if err := os.MkdirAll(filepath.Join(dir, lang), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	art := "---\nid: a\nlang: ro\ntitle: T\nservice: pensions\nkeywords: k\nreviewed: 2026-01-01\n---\n\n## Full\n\nF.\n"
	if err := os.WriteFile(filepath.Join(dir, "ro", "a.md"), []byte(art), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI("kb", "lint", "--dir", dir)
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	for _, want := range []string{
		filepath.Join(dir, "ro", "a.md") + `:5: unknown service "pensions"`,
		"missing spoken answer",
		"no articles",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("lint output lacks %q:\n%s", want, errs)
		}
	}
	// import refuses a broken base and leaves the database alone.
	data := importShipped(t)
	if code, _, errs := runCLI("kb", "import", "--data", data, "--dir", dir); code != exitError || !strings.Contains(errs, "nothing imported") {
		t.Errorf("import of a broken base: exit %d %s", code, errs)
	}
	if _, out, _ := runCLI("kb", "search", "--data", data, "--json", "buletin pierdut"); !strings.Contains(out, "cei-lost-stolen") {
		t.Errorf("base damaged by a refused import: %s", out)
	}
}

func TestKBUsage(t *testing.T) {
	data := importShipped(t)
	for _, args := range [][]string{
		{"kb"},
		{"kb", "find"},
		{"kb", "search", "--data", data},
		{"kb", "search", "--data", data, "--lang", "fr", "x"},
		{"kb", "search", "--data", data, "--limit", "0", "x"},
		{"kb", "import", "--data", data, "extra"},
	} {
		if code, _, _ := runCLI(args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, errs := runCLI("kb", "search", "--data", t.TempDir(), "x"); code != exitError || !strings.Contains(errs, "no knowledge base index") {
		t.Errorf("missing database: exit %d %s", code, errs)
	}
}
