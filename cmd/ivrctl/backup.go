package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/govline/ivr/tickets"
)

// runBackup is "ivrctl backup FILE": a consistent copy of the SQLite
// database, taken while ivrd runs (VACUUM INTO, from a read-only
// connection: the engine keeps writing). A PostgreSQL store is backed up
// with pg_dump (docs/operations.md).
func runBackup(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("backup", "ivrctl backup FILE [--data DIR]", stderr)
	data := dataFlag(fs)
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, stderr, "missing FILE (where to write the copy)")
	case len(pos) > 1:
		return usageError(fs, stderr, "unexpected argument %q", pos[1])
	}
	dst := pos[0]
	if _, err := os.Stat(dst); err == nil {
		return fail(stderr, fmt.Errorf("backup: %s exists; choose a new file name", dst))
	}
	s, err := openConn(data, true)
	if err != nil {
		return fail(stderr, err)
	}
	defer s.db.Close()
	if err := s.Backup(context.Background(), dst); err != nil {
		return fail(stderr, err)
	}
	// Check the copy before saying it is good.
	c, err := tickets.OpenReadOnly(dst)
	if err != nil {
		return fail(stderr, fmt.Errorf("backup written to %s but it does not open: %w", dst, err))
	}
	defer c.Close()
	if err := c.IntegrityCheck(context.Background()); err != nil {
		return fail(stderr, fmt.Errorf("backup written to %s but %w", dst, err))
	}
	fi, _ := os.Stat(dst)
	fmt.Fprintf(stdout, "backup written to %s (%d bytes, integrity ok)\n", dst, fi.Size())
	return exitOK
}
