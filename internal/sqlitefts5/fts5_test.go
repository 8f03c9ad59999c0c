//go:build cgo && !sqlite_fts5 && !fts5 && !libsqlite3

package sqlitefts5

import (
	"database/sql"
	"testing"
)

func open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file::memory:")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// Built without any tag, a connection has the fts5 module: a table is
// created, matched and ranked with bm25, as the knowledge base does.
func TestFTS5WithoutTag(t *testing.T) {
	db := open(t)
	if _, err := db.Exec(`CREATE VIRTUAL TABLE art USING fts5(title, body, tokenize = 'unicode61 remove_diacritics 2')`); err != nil {
		t.Fatalf("no fts5 without the build tag: %v", err)
	}
	if _, err := db.Exec(`INSERT INTO art VALUES ('Buletin pierdut', 'Ce faceți dacă ați pierdut cartea de identitate'),
		('Pașaport', 'Cum cereți un pașaport nou'), ('Cont', 'Parola contului de pe portal')`); err != nil {
		t.Fatal(err)
	}
	var title string
	var score float64
	err := db.QueryRow(`SELECT title, bm25(art) FROM art WHERE art MATCH 'pierdut' ORDER BY bm25(art) LIMIT 1`).Scan(&title, &score)
	if err != nil || title != "Buletin pierdut" || score >= 0 {
		t.Fatalf("MATCH 'pierdut' = %q, %v, %v", title, score, err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM art WHERE art MATCH 'pasaport'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("diacritics folded: %d rows, %v", n, err)
	}
}

// fts5.c comes from the driver's own amalgamation: after an upgrade of
// github.com/mattn/go-sqlite3 in go.mod, go generate must run again.
func TestVersionMatchesDriver(t *testing.T) {
	var v string
	if err := open(t).QueryRow(`SELECT sqlite_version()`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != builtFor() {
		t.Fatalf("the driver runs SQLite %s, fts5.c was generated from %s: run go generate ./internal/sqlitefts5/", v, builtFor())
	}
}
