package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/govline/ivr/flows/kb"
)

const kbUsage = `Usage: ivrctl kb SUBCOMMAND [FLAGS]

Subcommands:
  search   search the knowledge base as a caller would ("ivrctl kb search 'am pierdut buletinul'")
  import   check the articles and replace the base in the index (the engine sees it on its next search)
  lint     check the articles and synonyms without importing
  misses   what callers asked that the base did not answer confidently
`

// envFlowsDir is the engine's flows directory; the articles are in its kb/.
const envFlowsDir = "IVR_FLOWS_DIR"

// runKB dispatches "ivrctl kb SUBCOMMAND".
func runKB(args []string, stdout, stderr io.Writer) int {
	return group{name: "kb", usage: kbUsage, missing: " (search, import, lint or misses)", subs: map[string]command{
		"search": runKBSearch,
		"import": runKBImport,
		"lint":   runKBLint,
		"misses": runKBMisses,
	}}.run(args, stdout, stderr)
}

// kbDirFlag adds --dir: the articles' directory.
func kbDirFlag(fs interface {
	String(name, value, usage string) *string
}) *string {
	def := filepath.Join("flows", "kb")
	if d := os.Getenv(envFlowsDir); d != "" {
		def = filepath.Join(d, "kb")
	}
	return fs.String("dir", def, "knowledge base `DIR` holding ro/, en/ and synonyms.txt (default $"+envFlowsDir+"/kb, else flows/kb)")
}

func runKBSearch(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("kb search", `ivrctl kb search [--lang ro|en] [--json] [--limit N] [--data DIR] "QUERY"`, `print {"results":[...]} as JSON`, stderr)
	lang := fs.String("lang", "ro", "language of the query: ro or en")
	limit := fs.Int("limit", 5, "show at most `N` results (1-100)")
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if *lang != "ro" && *lang != "en" {
		return usageError(fs, stderr, "--lang %q: want ro or en", *lang)
	}
	if *limit < 1 || *limit > kb.MaxLimit {
		return usageError(fs, stderr, "--limit %d: want 1 to %d", *limit, kb.MaxLimit)
	}
	query := strings.TrimSpace(strings.Join(pos, " "))
	if query == "" {
		return usageError(fs, stderr, "missing QUERY")
	}
	ix, err := openIndex(data, false)
	if err != nil {
		return fail(stderr, err)
	}
	defer ix.Close()
	return searchKB(context.Background(), ix, *lang, query, *limit, *asJSON, stdout, stderr)
}

// openIndex opens the knowledge base index of the data folder (each
// engine's own file, kb.IndexPath); create makes it when there is none.
func openIndex(f *dataFlags, create bool) (*kb.Index, error) {
	path := kb.IndexPath(f.dir())
	if _, err := os.Stat(path); err != nil && !create {
		return nil, fmt.Errorf("no knowledge base index at %s: run ivrd (it imports the articles at start) or ivrctl kb import, or pass --data DIR (or set %s) to the engine's data folder", path, envDataDir)
	}
	return kb.Open(path, nil)
}

func searchKB(ctx context.Context, ix *kb.Index, lang, query string, limit int, asJSON bool, stdout, stderr io.Writer) int {
	// No RecordMiss here: only calls count as misses.
	res, err := ix.Search(ctx, lang, query, limit)
	if err != nil {
		return fail(stderr, err)
	}
	if asJSON {
		if res == nil {
			res = []kb.Result{}
		}
		return writeJSON(stdout, stderr, struct {
			Results []kb.Result `json:"results"`
		}{res})
	}
	if len(res) == 0 {
		fmt.Fprintln(stdout, "no article matches (a call would hand off; run ivrctl kb import if the base is empty)")
		return exitOK
	}
	for i, r := range res {
		verdict := "ask back"
		switch {
		case r.Confident:
			verdict = "answer"
		case r.Score < kb.HandoffScore:
			verdict = "hand off"
		}
		if i > 0 {
			verdict = ""
		} else {
			verdict = "  -> " + verdict
		}
		fmt.Fprintf(stdout, "%d. %s  %.2f%s\n   %s\n   %s\n", i+1, r.ID, r.Score, verdict, r.Title, r.Spoken)
	}
	return exitOK
}

func runKBImport(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("kb import", "ivrctl kb import [--dir DIR] [--data DIR]", stderr)
	data := dataFlag(fs)
	dir := kbDirFlag(fs)
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if len(pos) > 0 {
		return usageError(fs, stderr, "unexpected argument %q", pos[0])
	}
	arts, syn, code := lintDir(*dir, stderr)
	if code != exitOK {
		fmt.Fprintln(stderr, "ivrctl: nothing imported")
		return code
	}
	path := kb.IndexPath(data.dir())
	ix, err := openIndex(data, true)
	if err != nil {
		return fail(stderr, err)
	}
	defer ix.Close()
	start := time.Now()
	if err := ix.Import(context.Background(), arts, kb.WithSynonyms(syn)); err != nil {
		return fail(stderr, err)
	}
	n := map[string]int{}
	for _, a := range arts {
		n[a.Lang]++
	}
	fmt.Fprintf(stdout, "imported %d articles (ro %d, en %d) from %s into %s in %s\n",
		len(arts), n["ro"], n["en"], *dir, path, time.Since(start).Round(time.Millisecond))
	return exitOK
}

func runKBLint(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("kb lint", "ivrctl kb lint [--dir DIR]", stderr)
	dir := kbDirFlag(fs)
	_ = dataFlag(fs) // accepted (ivrctl --data ... kb lint) but unused
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if len(pos) > 0 {
		return usageError(fs, stderr, "unexpected argument %q", pos[0])
	}
	arts, syn, code := lintDir(*dir, stderr)
	if code != exitOK {
		return code
	}
	warnings, err := lintRivals(*dir, arts, syn, stdout)
	if err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: %d articles, no problems", *dir, len(arts))
	if warnings > 0 {
		fmt.Fprintf(stdout, ", %d warning(s)", warnings)
	}
	fmt.Fprintln(stdout)
	return exitOK
}

// lintRivals imports the articles into a temporary database, runs the
// evaluation questions of DIR/eval (queries.txt, heldout.txt) and warns of
// the pairs of articles that answer the same questions within
// kb.RivalMargin of each other. It returns the number of warnings.
func lintRivals(dir string, arts []kb.Article, syn *kb.Synonyms, stdout io.Writer) (int, error) {
	var evals []string
	for _, f := range []string{"queries.txt", "heldout.txt"} {
		if p := filepath.Join(dir, "eval", f); fileExists(p) {
			evals = append(evals, p)
		}
	}
	if len(evals) == 0 {
		return 0, nil
	}
	tmp, err := os.MkdirTemp("", "kblint-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	ix, err := kb.Open(kb.IndexPath(tmp), nil)
	if err != nil {
		return 0, err
	}
	defer ix.Close()
	ctx := context.Background()
	if err := ix.Import(ctx, arts, kb.WithSynonyms(syn)); err != nil {
		return 0, err
	}
	n := 0
	for _, path := range evals {
		qs, err := kb.LoadEval(path)
		if err != nil {
			return n, err
		}
		rs, err := kb.Rivals(ctx, ix, qs, kb.RivalMargin)
		if err != nil {
			return n, err
		}
		for _, r := range rs {
			for i, q := range r.Queries {
				n++
				fmt.Fprintf(stdout, "%s:%d: warning: %s/%s and %s/%s answer %q within %.2f (%.2f, %.2f): a flow cannot tell which one the caller means (it asks back, or answers with either by a hair); tell them apart with keywords, or merge them\n",
					path, q.Line, r.Lang, r.A, r.Lang, r.B, q.Query, kb.RivalMargin, r.Scores[i][0], r.Scores[i][1])
			}
		}
	}
	return n, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// lintDir loads and checks the articles and synonyms of dir, printing every
// problem (file:line: what) to stderr.
func lintDir(dir string, stderr io.Writer) ([]kb.Article, *kb.Synonyms, int) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "ivrctl: %s is not a directory (pass --dir to the knowledge base, e.g. flows/kb)\n", dir)
		return nil, nil, exitError
	}
	arts, err := kb.LoadDir(dir)
	var syn *kb.Synonyms
	synPath := filepath.Join(dir, "synonyms.txt")
	if _, statErr := os.Stat(synPath); statErr == nil {
		var serr error
		syn, serr = kb.LoadSynonyms(synPath)
		err = errors.Join(err, serr)
	} else {
		syn = kb.DefaultSynonyms()
	}
	if err != nil {
		msgs := strings.Split(err.Error(), "\n")
		for _, m := range msgs {
			fmt.Fprintln(stderr, m)
		}
		fmt.Fprintf(stderr, "ivrctl: %d problem(s) in %s\n", len(msgs), dir)
		return nil, nil, exitError
	}
	return arts, syn, exitOK
}

func runKBMisses(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("kb misses", "ivrctl kb misses [--since DURATION|TIME] [--json] [--data DIR]", `print {"misses":[...]} as JSON`, stderr)
	since := fs.String("since", "24h", "misses last asked in the last `DURATION` (24h, 168h) or since a TIME (RFC 3339, or 2006-01-02); 0 for all")
	if status, ok := parseNoArgs(fs, args, stderr); !ok {
		return status
	}
	var from time.Time
	if *since != "0" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return usageError(fs, stderr, "%v", err)
		}
		from = t
	}
	return missesListing.list(stdout, stderr, data, *asJSON, func(ctx context.Context, s conn) ([]kb.Miss, error) {
		return kb.NewMissTable(s.db).Misses(ctx, from)
	})
}

var missesListing = listing[kb.Miss]{
	key:       "misses",
	emptyJSON: true,
	empty:     "no misses",
	header:    "COUNT\tLANG\tLAST\tQUERY",
	row: func(w io.Writer, m kb.Miss) {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", m.Count, m.Lang, m.Last.Local().Format(localTime), m.Query)
	},
}
