package tickets

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/store"
)

// CallLog writes call records and their events in the background, in the
// order they were given, for the code on a call's hot path (the RTP reader,
// the SIP request handler) that must never wait for the disk.
//
// One goroutine owns the writes. It takes the first queued write and every
// write queued behind it (up to maxBatch) and commits them in one
// transaction (group commit): on a quiet line each write is committed
// about a millisecond after it was given, under load hundreds share one
// commit. So a crash loses at most the writes of the batch in flight.
//
// A database that cannot be reached (PostgreSQL restarting) holds the
// writer, not the callers: it tries the batch again until the database is
// back, while new writes wait in the queue.
//
// The methods never block: when the queue is full (the disk stalled for
// seconds, the database away for minutes) a write is dropped, counted in
// Dropped and logged. All methods
// are safe for concurrent use. Close flushes and stops the writer.
type CallLog struct {
	s       *Store
	log     *slog.Logger
	ch      chan logOp
	flushes chan chan struct{}
	quit    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
	failed  atomic.Uint64
	closing sync.Once

	// started are the call ids queued to start and not committed yet
	// (FreeID must not hand them out).
	mu      sync.Mutex
	started map[string]int
}

// maxBatch is the most writes one transaction commits.
const maxBatch = 512

type opKind uint8

const (
	opStart opKind = iota
	opAnswer
	opDTMF
	opEvent
	opEnd
	opProgress
)

type logOp struct {
	kind   opKind
	id     string
	rec    CallRecord // opStart
	at     time.Time
	codec  string // opAnswer
	path   string // opAnswer
	digit  rune   // opDTMF
	event  CallEvent
	reason string // opEnd
	stats  PacketStats
}

// DefaultCallLogQueue is the number of writes a call log holds while the
// disk is busy: at 1000 calls a line writes a few hundred a second, so this
// rides out a stall of many seconds.
const DefaultCallLogQueue = 4096

// NewCallLog starts the writer of a call log with room for queue writes
// (DefaultCallLogQueue when queue <= 0).
func (s *Store) NewCallLog(queue int, log *slog.Logger) *CallLog {
	if queue <= 0 {
		queue = DefaultCallLogQueue
	}
	l := &CallLog{
		s: s, log: log,
		ch:      make(chan logOp, queue),
		flushes: make(chan chan struct{}),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		started: map[string]int{},
	}
	go l.run()
	return l
}

func (l *CallLog) put(op logOp) {
	select {
	case l.ch <- op:
	default:
		if op.kind == opStart {
			l.mu.Lock()
			if l.started[op.id]--; l.started[op.id] <= 0 {
				delete(l.started, op.id)
			}
			l.mu.Unlock()
		}
		if n := l.dropped.Add(1); n == 1 || n%1000 == 0 {
			l.log.Error("call log queue full: writes dropped", "dropped_total", n, "call_id", op.id)
		}
	}
}

// Start queues a new call record (ID, Telephony, Caller, Called, Start).
// The ID must not be taken: see FreeID.
func (l *CallLog) Start(r CallRecord) {
	l.mu.Lock()
	l.started[r.ID]++
	l.mu.Unlock()
	l.put(logOp{kind: opStart, id: r.ID, rec: r})
}

// FreeID returns id if no call record has it, else the first of "id~2",
// "id~3"... that none has: a caller that reuses a Call-ID (a phone
// restarting its counter, an attacker) still gets a record of its own,
// and the first call's record and recording are kept. It reads the
// database: call it once per call, not on a hot path.
func (l *CallLog) FreeID(ctx context.Context, id string) string {
	for n := 1; n < 1000; n++ {
		cand := id
		if n > 1 {
			cand = fmt.Sprintf("%s~%d", id, n)
		}
		l.mu.Lock()
		queued := l.started[cand] > 0
		l.mu.Unlock()
		if queued {
			continue
		}
		var x int
		err := l.s.db.QueryRowContext(ctx, `SELECT 1 FROM calls WHERE id = ?`, cand).Scan(&x)
		if errors.Is(err, sql.ErrNoRows) {
			return cand
		}
		if err != nil {
			l.log.Warn("call log: looking up a call id failed", "call_id", cand, "err", err)
			return cand
		}
	}
	return fmt.Sprintf("%s~%d", id, time.Now().UnixNano())
}

// Answer queues the answer of a call.
func (l *CallLog) Answer(id string, at time.Time, codec, recording string) {
	l.put(logOp{kind: opAnswer, id: id, at: at, codec: codec, path: recording})
}

// DTMF queues one digit for the call's DTMF string.
func (l *CallLog) DTMF(id string, digit rune) { l.put(logOp{kind: opDTMF, id: id, digit: digit}) }

// Event queues one event of the call's log.
func (l *CallLog) Event(id string, e CallEvent) { l.put(logOp{kind: opEvent, id: id, event: e}) }

// End queues the end of a call.
func (l *CallLog) End(id string, at time.Time, reason string, st PacketStats) {
	l.put(logOp{kind: opEnd, id: id, at: at, reason: reason, stats: st})
}

// Progress queues a checkpoint of a call in progress: the engine knew it
// alive at at, with these packet counts. A call a crash leaves open ends
// at its last checkpoint (Store.CloseOrphans), with its counts.
func (l *CallLog) Progress(id string, at time.Time, st PacketStats) {
	l.put(logOp{kind: opProgress, id: id, at: at, stats: st})
}

// Dropped is the number of writes dropped because the queue was full.
func (l *CallLog) Dropped() uint64 { return l.dropped.Load() }

// Failed is the number of writes the database refused.
func (l *CallLog) Failed() uint64 { return l.failed.Load() }

// Flush waits until every write queued before it is committed, or ctx ends.
func (l *CallLog) Flush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case l.flushes <- ack:
	case <-l.done:
		return errors.New("tickets: call log is closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close commits what is queued and stops the writer. Writes given after
// Close are dropped.
func (l *CallLog) Close() error {
	l.closing.Do(func() { close(l.quit) })
	<-l.done
	return nil
}

func (l *CallLog) run() {
	defer close(l.done)
	batch := make([]logOp, 0, maxBatch)
	for {
		select {
		case op := <-l.ch:
			l.commit(l.fill(append(batch[:0], op)))
		case ack := <-l.flushes:
			// Everything queued before the flush request is in l.ch.
			l.drain(batch)
			close(ack)
		case <-l.quit:
			l.drain(batch)
			return
		}
	}
}

// fill adds to batch what is queued now, up to maxBatch writes.
func (l *CallLog) fill(batch []logOp) []logOp {
	for len(batch) < maxBatch {
		select {
		case op := <-l.ch:
			batch = append(batch, op)
		default:
			return batch
		}
	}
	return batch
}

// drain commits everything queued now.
func (l *CallLog) drain(batch []logOp) {
	for {
		batch = l.fill(batch[:0])
		if len(batch) == 0 {
			return
		}
		l.commit(batch)
	}
}

// unreachableRetry is how long the writer waits before it tries again a
// batch that failed because the database could not be reached.
const unreachableRetry = time.Second

// commit commits a batch. When the database cannot be reached for longer
// than the store's own retry time (a PostgreSQL restart with a long
// recovery, a network cut), the writer keeps the batch and tries it again
// every unreachableRetry until it is committed or the log is closed; the
// writes given meanwhile wait in the queue (and past its size are dropped
// and counted). A batch whose commit's answer was lost is not tried again
// (it may have been committed): it is counted as failed.
func (l *CallLog) commit(batch []logOp) {
	defer func() {
		l.mu.Lock()
		for i := range batch {
			if batch[i].kind == opStart {
				if l.started[batch[i].id]--; l.started[batch[i].id] <= 0 {
					delete(l.started, batch[i].id)
				}
			}
		}
		l.mu.Unlock()
	}()
	var held time.Time
	for {
		err := l.commitOnce(batch)
		if err == nil {
			if !held.IsZero() {
				l.log.Info("call log: database reachable again, held writes committed", "held", time.Since(held).Round(time.Millisecond))
			}
			return
		}
		if held.IsZero() {
			held = time.Now()
			l.log.Warn("call log: database unreachable, writes held and tried again", "writes", len(batch), "queued", len(l.ch), "err", err)
		}
		select {
		case <-l.quit:
			l.failed.Add(uint64(len(batch)))
			l.log.Error("call log batch not committed: closing while the database is unreachable", "writes", len(batch), "err", err)
			return
		case <-time.After(unreachableRetry):
		}
	}
}

// commitOnce commits a batch in one transaction (with the store's retries)
// and counts what failed, except a failure to reach the database while the
// log is open, the one error it returns, for commit to try again.
func (l *CallLog) commitOnce(batch []logOp) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type refusal struct {
		i   int
		err error
	}
	var refused []refusal
	// One refused write (an unknown call id, say) must not lose the
	// others. SQLite undoes the refused statement only; a PostgreSQL
	// transaction is lost with it, so there the batch runs again with a
	// savepoint around each write.
	guard := false
	apply := func(tx *store.Tx) error {
		refused = refused[:0]
		for i := range batch {
			if guard {
				if _, err := tx.ExecContext(ctx, `SAVEPOINT op`); err != nil {
					return err
				}
			}
			err := l.applyOp(ctx, tx, &batch[i])
			switch {
			case err != nil && tx.Backend() == store.Postgres && !guard:
				return errGuard
			case err != nil && guard:
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT op`); err != nil {
					return err
				}
			case guard:
				if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT op`); err != nil {
					return err
				}
			}
			if err != nil {
				refused = append(refused, refusal{i, err})
			}
		}
		return nil
	}
	err := l.s.inTx(ctx, "call log batch", apply)
	if errors.Is(err, errGuard) {
		guard = true
		err = l.s.inTx(ctx, "call log batch", apply)
	}
	if err != nil && store.Transient(err) && !errors.Is(err, store.ErrCommitUnknown) {
		select {
		case <-l.quit:
		default:
			return err // commit tries again
		}
	}
	if err != nil {
		l.failed.Add(uint64(len(batch)))
		l.log.Error("call log batch not committed", "writes", len(batch), "err", err)
		return nil
	}
	for _, r := range refused {
		l.failed.Add(1)
		l.log.Warn("call log write refused", "call_id", batch[r.i].id, "err", r.err)
	}
	return nil
}

// errGuard asks for a batch to run again with a savepoint around each write.
var errGuard = errors.New("a write of the batch was refused")

func (l *CallLog) applyOp(ctx context.Context, tx *store.Tx, op *logOp) error {
	switch op.kind {
	case opStart:
		return l.s.insertCall(ctx, tx, op.rec)
	case opAnswer:
		return updated(tx.ExecContext(ctx, sqlAnswer, nanos(op.at), op.codec, op.codec, op.path, op.path, op.id))
	case opDTMF:
		d, err := normDigit(op.id, op.digit)
		if err != nil {
			return err
		}
		return updated(tx.ExecContext(ctx, sqlDTMF, string(d), op.id))
	case opEvent:
		if op.event.Kind == "" {
			return errors.New("empty event kind")
		}
		_, err := tx.ExecContext(ctx, sqlEvent, op.id, nanos(op.event.At), op.event.Kind, op.event.Detail)
		return err
	case opEnd:
		st := op.stats
		_, err := tx.ExecContext(ctx, sqlEnd, nanos(op.at), op.reason,
			count(st.In), count(st.Out), count(st.Lost), count(st.Late), op.id)
		return err
	case opProgress:
		st := op.stats
		_, err := tx.ExecContext(ctx, sqlProgress, nanos(op.at),
			count(st.In), count(st.Out), count(st.Lost), count(st.Late), op.id)
		return err
	}
	return fmt.Errorf("unknown call log write %d", op.kind)
}

func updated(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return ErrNotFound
	}
	return nil
}
