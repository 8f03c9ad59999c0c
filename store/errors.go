package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// IsUnique reports whether err is a write refused because a primary key or
// unique column already holds the value (on either backend).
func IsUnique(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey || se.ExtendedCode == sqlite3.ErrConstraintUnique
	}
	return pgCode(err) == "23505"
}

// IsForeignKey reports whether err is a write refused because a row it
// references does not exist.
func IsForeignKey(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintForeignKey
	}
	return pgCode(err) == "23503"
}

// IsRefused reports whether err is a write the database's own rules
// refused: a CHECK, a NOT NULL, a foreign key, or a trigger that guards a
// table (the append-only history, transcripts and audit log).
func IsRefused(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrConstraint
	}
	c := pgCode(err)
	return strings.HasPrefix(c, "23") || c == "P0001"
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func isServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// Transient reports whether err is a PostgreSQL failure after which the
// same transaction may succeed if tried again: a serialization failure, a
// deadlock, the server shutting down or starting up, a connection that
// could not be made or was lost. Context errors are not transient.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch c := pgCode(err); {
	case c == "40001", c == "40P01": // serialization failure, deadlock
		return true
	case c == "57P01", c == "57P02", c == "57P03": // admin or crash shutdown, cannot connect now
		return true
	case strings.HasPrefix(c, "08"): // connection exception
		return true
	case c != "":
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "conn closed")
}
