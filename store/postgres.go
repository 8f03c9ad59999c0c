package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgConns is PostgreSQL's default pool size: each engine's writers and
// readers (the transcript's group commit needs one).
const pgConns = 16

func openPostgres(ctx context.Context, u string, o Options) (*DB, error) {
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return nil, fmt.Errorf("store url %s: %w", Redact(u), err)
	}
	if o.ReadOnly {
		// Every transaction of the pool is read-only: the server refuses
		// a write, whatever the code.
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "ivr"
	}
	sdb := stdlib.OpenDB(*cfg)
	n := o.MaxConns
	if n <= 0 {
		n = pgConns
	}
	sdb.SetMaxOpenConns(n)
	sdb.SetMaxIdleConns(n)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	where := Redact(u)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := sdb.PingContext(pctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", where, err)
	}
	retry := o.RetryFor
	if retry <= 0 {
		retry = 10 * time.Second
	}
	return &DB{sql: sdb, backend: Postgres, where: where, readOnly: o.ReadOnly, retryFor: retry, pgcfg: cfg}, nil
}

// Listener delivers PostgreSQL notifications of one channel (LISTEN) as
// wake-ups: C receives a value after one or more NOTIFYs on the channel,
// and after the listening connection was lost and made again (a
// notification may have been missed meanwhile, so the reader looks again).
// Its goroutine is owned by the Listener: Close stops and joins it.
type Listener struct {
	C      <-chan struct{}
	c      chan struct{}
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// Listen starts listening on channel (PostgreSQL only: on SQLite, where
// one process holds the queue, it fails with ErrUnsupported). It returns
// once the first LISTEN is in place, so a NOTIFY sent after Listen
// returns is delivered.
func (db *DB) Listen(ctx context.Context, channel string) (*Listener, error) {
	if db.backend != Postgres {
		return nil, fmt.Errorf("store: listen on %s: %w", db.where, ErrUnsupported)
	}
	c := make(chan struct{}, 1)
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &Listener{C: c, c: c, cancel: cancel}
	conn, err := db.listenConn(ctx, channel)
	if err != nil {
		cancel()
		return nil, err
	}
	l.done.Go(func() { l.run(lctx, db, channel, conn) })
	return l, nil
}

func (db *DB) listenConn(ctx context.Context, channel string) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, db.pgcfg)
	if err != nil {
		return nil, fmt.Errorf("store: listen on %s: %w", db.where, err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("store: listen on %s: %w", db.where, err)
	}
	return conn, nil
}

func (l *Listener) run(ctx context.Context, db *DB, channel string, conn *pgx.Conn) {
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	wait := 50 * time.Millisecond
	for ctx.Err() == nil {
		if conn == nil {
			var err error
			if conn, err = db.listenConn(ctx, channel); err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
				wait = min(2*wait, 2*time.Second)
				continue
			}
			wait = 50 * time.Millisecond
			l.signal() // what happened while not listening
		}
		if _, err := conn.WaitForNotification(ctx); err != nil {
			conn.Close(context.Background())
			conn = nil
			continue
		}
		l.signal()
	}
}

func (l *Listener) signal() {
	select {
	case l.c <- struct{}{}:
	default:
	}
}

// Close stops listening and waits for the listener's goroutine.
func (l *Listener) Close() {
	l.cancel()
	l.done.Wait()
}
