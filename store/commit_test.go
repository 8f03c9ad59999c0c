package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govline/ivr/internal/pgtest"
)

// The answer to a COMMIT lost with its connection: Write asks the server
// what became of the transaction. One that committed is not run again
// (its insert would be refused as a duplicate) and Write returns nil; one
// the server never saw committed is run again and Write returns nil.
func TestWriteCommitAnswerLost(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	u := srv.NewDatabase(t)
	cut := newCommitCutter(t, fmt.Sprint("127.0.0.1:", srv.Port()))
	db := open(t, strings.Replace(u, fmt.Sprint("127.0.0.1:", srv.Port()), cut.ln.Addr().String(), 1), Options{RetryFor: 5 * time.Second})
	exec(t, db, `CREATE TABLE w (i integer PRIMARY KEY)`)
	for i, c := range []struct {
		mode int32
		runs int
	}{
		{cutAfterCommit, 1},  // committed: not run again
		{cutBeforeCommit, 2}, // never committed: run again
	} {
		cut.mode.Store(c.mode)
		runs := 0
		err := db.Write(ctx, func(tx *Tx) error {
			runs++
			_, err := tx.ExecContext(ctx, `INSERT INTO w VALUES (?)`, i)
			return err
		})
		if n := cut.cuts.Load(); n != int32(i+1) {
			t.Fatalf("write %d: the proxy cut %d commits, want %d", i, n, i+1)
		}
		if err != nil {
			t.Fatalf("write %d, commit's answer lost (mode %d): %v", i, c.mode, err)
		}
		if runs != c.runs {
			t.Errorf("write %d (mode %d): transaction run %d times, want %d", i, c.mode, runs, c.runs)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM w`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows (%v), want the 2 writes once each", n, err)
	}
	if st := db.WriteStats(); st.Failures != 0 {
		t.Errorf("write stats %+v: no write failed", st)
	}
}

// What a commitCutter does with the next COMMIT it sees.
const (
	cutOff          int32 = iota
	cutAfterCommit        // pass it to the server, then cut the connection: the answer is lost
	cutBeforeCommit       // cut the connection instead of passing it on
)

// commitCutter is a TCP proxy to a PostgreSQL server that cuts the
// connection of the next COMMIT it sees (mode), once.
type commitCutter struct {
	ln     net.Listener
	target string
	mode   atomic.Int32
	cuts   atomic.Int32
	wg     sync.WaitGroup
}

func newCommitCutter(t *testing.T, target string) *commitCutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &commitCutter{ln: ln, target: target}
	c.wg.Go(c.accept)
	t.Cleanup(func() { ln.Close(); c.wg.Wait() })
	return c
}

func (c *commitCutter) accept() {
	for {
		client, err := c.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", c.target)
		if err != nil {
			client.Close()
			continue
		}
		c.wg.Go(func() { _, _ = io.Copy(client, server); client.Close() })
		c.wg.Go(func() { c.forward(client, server) })
	}
}

// forward passes what the client sends to the server, and cuts the
// connection at a COMMIT when armed.
func (c *commitCutter) forward(client, server net.Conn) {
	defer server.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if err != nil {
			return
		}
		chunk := buf[:n]
		mode := c.mode.Load()
		if mode != cutOff && bytes.Contains(bytes.ToLower(chunk), []byte("commit")) && c.mode.CompareAndSwap(mode, cutOff) {
			c.cuts.Add(1)
			client.Close() // the client hears nothing more
			if mode == cutAfterCommit {
				_, _ = server.Write(chunk)
				time.Sleep(200 * time.Millisecond) // the server commits before it sees the connection end
			}
			return
		}
		if _, err := server.Write(chunk); err != nil {
			return
		}
	}
}
