package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/govline/ivr/tickets"
)

// Legal hold, the retention job and erasure (docs/retention.md).

func runTicketsHold(args []string, stdout, stderr io.Writer) int {
	return holdCmd(true, args, stdout, stderr)
}
func runTicketsUnhold(args []string, stdout, stderr io.Writer) int {
	return holdCmd(false, args, stdout, stderr)
}

func holdCmd(on bool, args []string, stdout, stderr io.Writer) int {
	verb := map[bool]string{true: "hold", false: "unhold"}[on]
	fs := newFlagSet("tickets "+verb, "ivrctl tickets "+verb+" NUMBER --reason TEXT [--data DIR]", stderr)
	data := dataFlag(fs)
	reason := fs.String("reason", "", "why (required; kept in the ticket's history and the audit log)")
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	switch {
	case len(pos) != 1:
		return usageError(fs, stderr, "want one NUMBER")
	case strings.TrimSpace(*reason) == "":
		return usageError(fs, stderr, "missing --reason")
	}
	number := strings.ReplaceAll(pos[0], " ", "")
	if !tickets.ValidNumber(number) {
		return usageError(fs, stderr, "%q is not a ticket number (8 digits with a check digit; a digit may be mistyped)", pos[0])
	}
	return update(data, stderr, func(ctx context.Context, s conn) error {
		var err error
		if on {
			err = s.Hold(ctx, number, actor(), *reason)
		} else {
			err = s.Unhold(ctx, number, actor(), *reason)
		}
		if err == nil {
			if on {
				fmt.Fprintf(stdout, "ticket %s is under legal hold: retention and erasure leave it untouched\n", number)
			} else {
				fmt.Fprintf(stdout, "ticket %s is no longer under legal hold\n", number)
			}
		}
		return err
	})
}

const retentionUsage = `Usage: ivrctl retention SUBCOMMAND [FLAGS]

Subcommands:
  run    run the retention job now (ivrd runs it daily): archive the closed
         tickets past retention.archive_after, delete the recordings and erase
         the transcript texts and personal data past their periods; --dry-run
         lists what it would remove
`

func runRetention(args []string, stdout, stderr io.Writer) int {
	return group{name: "retention", usage: retentionUsage, missing: " (run)", subs: map[string]command{
		"run": runRetentionRun,
	}}.run(args, stdout, stderr)
}

// retentionFlags are the flags retention run and erase share.
type retentionFlags struct {
	data   *dataFlags
	dryRun *bool
	asJSON *bool
	engine *string
	recs   *string
}

func addRetentionFlags(name, synopsis string, stderr io.Writer) (*retentionFlags, *flag.FlagSet) {
	fs := newFlagSet(name, synopsis, stderr)
	f := &retentionFlags{data: dataFlag(fs)}
	f.dryRun = fs.Bool("dry-run", false, "list what would be removed; change nothing")
	f.asJSON = fs.Bool("json", false, "print the report as JSON")
	f.engine = fs.String("engine", "", "this engine's `NAME` (engine.name): only the recordings of its calls are on this disk")
	f.recs = fs.String("recordings", "", "the recordings `DIR` (default DIR/recordings of --data); files outside it are never deleted")
	return f, fs
}

func (f *retentionFlags) options() tickets.RetentionOptions {
	dir := *f.recs
	if dir == "" {
		dir = filepath.Join(f.data.dir(), "recordings")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return tickets.RetentionOptions{Actor: actor(), DryRun: *f.dryRun, RecordingsDir: dir, Engine: *f.engine}
}

// run opens the database (read-only for a dry run) and runs fn on it.
func (f *retentionFlags) run(stderr io.Writer, fn func(ctx context.Context, c conn) int) int {
	c, err := openConn(f.data, *f.dryRun)
	if err != nil {
		return fail(stderr, err)
	}
	defer c.db.Close()
	return fn(context.Background(), c)
}

func runRetentionRun(args []string, stdout, stderr io.Writer) int {
	f, fs := addRetentionFlags("retention run", "ivrctl retention run --config ivrd.toml [--dry-run] [--json] [--engine NAME] [--recordings DIR] [--data DIR]", stderr)
	config := fs.String("config", "", "the ivrd.toml whose [retention] periods ivrd runs with (required: the job must not run with other periods than the daemon's)")
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	if *config == "" {
		return usageError(fs, stderr, "missing --config: give the ivrd.toml whose [retention] table sets the periods")
	}
	var file struct {
		Retention tickets.RetentionConfig `toml:"retention"`
	}
	if _, err := toml.DecodeFile(*config, &file); err != nil {
		return fail(stderr, fmt.Errorf("config %s: %w", *config, err))
	}
	pol, err := file.Retention.Policy()
	if err != nil {
		return fail(stderr, fmt.Errorf("config %s: %w", *config, err))
	}
	return f.run(stderr, func(ctx context.Context, c conn) int {
		rep, err := c.RunRetention(ctx, pol, f.options())
		if *f.asJSON {
			if st := writeJSON(stdout, stderr, rep); st != exitOK {
				return st
			}
		} else {
			printItems(stdout, rep.Items, *f.dryRun)
			what := "removed"
			if *f.dryRun {
				what = "would remove (dry run, nothing changed)"
			}
			fmt.Fprintf(stdout, "%s: %s\n", what, rep.Summary())
		}
		if err != nil {
			return fail(stderr, err)
		}
		return exitOK
	})
}

func printItems(w io.Writer, items []tickets.RetentionItem, dry bool) {
	tw := newTable(w)
	for _, it := range items {
		var parts []string
		if it.Archived {
			parts = append(parts, "archive")
		}
		for _, p := range it.Recordings {
			parts = append(parts, "recording "+p)
		}
		if it.Turns > 0 {
			parts = append(parts, fmt.Sprintf("transcript (%d turns)", it.Turns))
		}
		if it.Personal {
			parts = append(parts, "personal data")
		}
		for _, s := range it.Skipped {
			parts = append(parts, "kept: "+s)
		}
		if len(parts) == 0 {
			parts = append(parts, "nothing left")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Ticket, orDash(it.Provider), strings.Join(parts, "; "))
	}
	tw.Flush()
}

func runErase(args []string, stdout, stderr io.Writer) int {
	f, fs := addRetentionFlags("erase", "ivrctl erase (--caller NUMBER | --ticket NUMBER) [--dry-run] [--json] [--engine NAME] [--recordings DIR] [--data DIR]", stderr)
	caller := fs.String("caller", "", "erase every ticket and call of the caller `NUMBER` (as stored, e.g. +37360123456)")
	ticket := fs.String("ticket", "", "erase the ticket `NUMBER`")
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	req := tickets.ErasureRequest{Caller: strings.ReplaceAll(*caller, " ", ""), Ticket: strings.ReplaceAll(*ticket, " ", "")}
	switch {
	case (req.Caller == "") == (req.Ticket == ""):
		return usageError(fs, stderr, "give --caller NUMBER or --ticket NUMBER")
	case req.Ticket != "" && !tickets.ValidNumber(req.Ticket):
		return usageError(fs, stderr, "--ticket %q is not a ticket number (8 digits with a check digit)", *ticket)
	}
	return f.run(stderr, func(ctx context.Context, c conn) int {
		rep, err := c.Erase(ctx, req, f.options())
		if *f.asJSON {
			if st := writeJSON(stdout, stderr, rep); st != exitOK {
				return st
			}
		} else {
			printItems(stdout, append(rep.Items, rep.Calls...), *f.dryRun)
			for _, n := range rep.Held {
				fmt.Fprintf(stdout, "%s\t-\tREFUSED: under legal hold, nothing erased\n", n)
			}
			if rep.Surveys > 0 {
				fmt.Fprintf(stdout, "surveys\t-\tthe number of %d satisfaction surveys\n", rep.Surveys)
			}
			if *f.dryRun {
				fmt.Fprintln(stdout, "dry run: nothing changed")
			}
		}
		switch {
		case errors.Is(err, tickets.ErrHeld):
			fmt.Fprintf(stderr, "ivrctl: erase: refused for the tickets under legal hold (%s); the others were erased. Lift the hold with ivrctl tickets unhold when the law allows.\n", strings.Join(rep.Held, ", "))
			return exitError
		case err != nil:
			return fail(stderr, err)
		}
		return exitOK
	})
}
