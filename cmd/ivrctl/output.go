package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// group is a command with subcommands: "ivrctl calls list ...".
type group struct {
	name    string             // "calls"
	usage   string             // printed for -h, and after a usage error
	missing string             // the subcommands, as the "missing subcommand" message lists them: " (list or show)"
	subs    map[string]command // by name
}

// run dispatches to the subcommand args[0], with the arguments after it.
func (g group) run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !isHelp(args[0])) {
		fmt.Fprintf(stderr, "ivrctl %s: missing subcommand%s, before its flags\n", g.name, g.missing)
		fmt.Fprint(stderr, g.usage)
		return exitUsage
	}
	if sub, ok := g.subs[args[0]]; ok {
		return sub(args[1:], stdout, stderr)
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, g.usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "ivrctl %s: unknown subcommand %q\n", g.name, args[0])
	fmt.Fprint(stderr, g.usage)
	return exitUsage
}

// What the commands that read the database share: their --data and --json
// flags, the read-only store, and printing as JSON or as a table.

// readFlags returns the flag set of a command that reads the database,
// with --data and --json (jsonHelp says what --json prints).
func readFlags(name, synopsis, jsonHelp string, stderr io.Writer) (fs *flag.FlagSet, data *dataFlags, asJSON *bool) {
	fs = newFlagSet(name, synopsis, stderr)
	data = dataFlag(fs)
	asJSON = fs.Bool("json", false, jsonHelp)
	return fs, data, asJSON
}

// parseNoArgs parses the flags of a command that takes no positional
// argument; when ok is false the command returns status.
func parseNoArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (status int, ok bool) {
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status, false
	}
	if len(pos) > 0 {
		return usageError(fs, stderr, "unexpected argument %q", pos[0]), false
	}
	return 0, true
}

// conn is what a command works on: the line's database and its ticket
// store (the Store's methods are conn's).
type conn struct {
	*tickets.Store
	db *store.DB
}

// where names the database in messages (the file, or the URL without its
// password).
func (c conn) where() string { return c.db.String() }

// openConn opens the database f names, read-only or not.
func openConn(f *dataFlags, readOnly bool) (conn, error) {
	db, err := store.Open(context.Background(), f.url(), store.Options{ReadOnly: readOnly})
	if errors.Is(err, store.ErrNoDatabase) {
		return conn{}, fmt.Errorf("%w: run ivrd first, or pass --data DIR (or set %s) to the directory that holds %s, or --store URL", err, envDataDir, tickets.DBFile)
	}
	if err != nil {
		return conn{}, err
	}
	return conn{Store: tickets.New(db), db: db}, nil
}

// withStore opens the database read-only, runs fn on it and closes it;
// fn's result is the exit status.
func withStore(f *dataFlags, stderr io.Writer, fn func(ctx context.Context, c conn) int) int {
	c, err := openConn(f, true)
	if err != nil {
		return fail(stderr, err)
	}
	defer c.db.Close()
	return fn(context.Background(), c)
}

// update opens the database read-write, runs fn on it and closes it:
// exitOK, or fn's error reported.
func update(f *dataFlags, stderr io.Writer, fn func(ctx context.Context, c conn) error) int {
	c, err := openConn(f, false)
	if err != nil {
		return fail(stderr, err)
	}
	defer c.db.Close()
	if err := fn(context.Background(), c); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// newTable returns the tabwriter every table of ivrctl is aligned with.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// listing is how a list command prints its rows: {"KEY":[...]} as JSON, or
// a table under a header line.
type listing[T any] struct {
	key       string             // the JSON object's one key
	emptyJSON bool               // no rows print as [] in JSON (else as the query returned them)
	empty     string             // printed instead of a table without rows; "" prints the header alone
	header    string             // the column names, tab-separated
	row       func(io.Writer, T) // writes one row, tab-separated, ending in a newline
}

// list runs query on the read-only database and prints its rows.
func (l listing[T]) list(stdout, stderr io.Writer, data *dataFlags, asJSON bool, query func(context.Context, conn) ([]T, error)) int {
	return withStore(data, stderr, func(ctx context.Context, s conn) int {
		rows, err := query(ctx, s)
		if err != nil {
			return fail(stderr, err)
		}
		return l.write(stdout, stderr, asJSON, rows)
	})
}

// write prints rows as JSON or as a table.
func (l listing[T]) write(stdout, stderr io.Writer, asJSON bool, rows []T) int {
	if asJSON {
		if rows == nil && l.emptyJSON {
			rows = []T{}
		}
		return writeJSON(stdout, stderr, map[string][]T{l.key: rows})
	}
	if len(rows) == 0 && l.empty != "" {
		fmt.Fprintln(stdout, l.empty)
		return exitOK
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, l.header)
	for _, r := range rows {
		l.row(tw, r)
	}
	if err := tw.Flush(); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(stderr, fmt.Errorf("write JSON: %w", err))
	}
	return exitOK
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(stdout, stderr io.Writer, v any) int {
	if err := json.NewEncoder(stdout).Encode(v); err != nil {
		return fail(stderr, fmt.Errorf("write JSON: %w", err))
	}
	return exitOK
}
