// Command kbeval measures the knowledge base against its evaluation set:
// it imports flows/kb into a temporary database, runs every query and
// prints top-1, top-3 and correct-none rates (make eval).
//
//	go run ./flows/kb/cmd/kbeval [-dir flows/kb] [-queries flows/kb/eval/queries.txt] [-v]
//
// Exit status 1 when a rate is below its target.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/govline/ivr/flows/kb"
)

func main() {
	dir := flag.String("dir", "flows/kb", "knowledge base `DIR` (ro/, en/, synonyms.txt)")
	queries := flag.String("queries", "", "evaluation `FILE` (default DIR/eval/queries.txt)")
	verbose := flag.Bool("v", false, "list every query that missed")
	flag.Parse()
	if *queries == "" {
		*queries = filepath.Join(*dir, "eval", "queries.txt")
	}
	if err := run(*dir, *queries, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "kbeval:", err)
		os.Exit(1)
	}
}

func run(dir, queries string, verbose bool) error {
	tmp, err := os.MkdirTemp("", "kbeval")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ix, err := kb.Open(kb.IndexPath(tmp), nil)
	if err != nil {
		return err
	}
	defer ix.Close()
	ctx := context.Background()
	n, err := ix.ImportDir(ctx, dir)
	if err != nil {
		return err
	}
	qs, err := kb.LoadEval(queries)
	if err != nil {
		return err
	}
	r, err := kb.Evaluate(ctx, ix, qs)
	if err != nil {
		return err
	}
	fmt.Printf("knowledge base: %d articles; evaluation: %s\n", n, queries)
	r.Print(os.Stdout, verbose)
	if held := filepath.Join(filepath.Dir(queries), "heldout.txt"); fileExists(held) {
		hq, err := kb.LoadEval(held)
		if err != nil {
			return err
		}
		hr, err := kb.Evaluate(ctx, ix, hq)
		if err != nil {
			return err
		}
		fmt.Printf("\nheld-out set (never tuned on, no target): %s\n", held)
		hr.Print(os.Stdout, verbose)
	}
	if !r.Meets() {
		return fmt.Errorf("below target")
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
