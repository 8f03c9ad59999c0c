package tickets

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"
)

// Speakers of a transcript.
const (
	SpeakerIVR    = "ivr"
	SpeakerCaller = "caller"
	SpeakerAgent  = "agent"
)

// Input modes of a turn.
const (
	ModeSpeech = "speech"
	ModeDTMF   = "dtmf"
	ModeNone   = "none"
)

// Turn is one line of a call's transcript.
type Turn struct {
	Speaker     string    `json:"speaker"` // SpeakerIVR, SpeakerCaller, SpeakerAgent
	Text        string    `json:"text"`    // personal data: never logged
	At          time.Time `json:"at"`      // zero means now
	Mode        string    `json:"mode"`    // ModeSpeech, ModeDTMF, ModeNone ("" is none)
	Confidence  float64   `json:"confidence"`
	Interrupted bool      `json:"interrupted,omitempty"` // an ivr turn cut short: Text is what was heard
	// Cut says what cut an interrupted turn: CutKey, CutSpeech, CutHangup
	// ("" for a turn that played whole, and for turns stored before it).
	Cut string `json:"cut,omitempty"`
}

// What cuts an ivr turn short.
const (
	CutKey    = "key"
	CutSpeech = "speech"
	CutHangup = "hangup"
)

// LogValue logs the turn without its text.
func (t Turn) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("speaker", t.Speaker),
		slog.String("mode", t.Mode),
		slog.Int("text_len", len(t.Text)),
		slog.Float64("confidence", t.Confidence),
		slog.Bool("interrupted", t.Interrupted),
		slog.String("cut", t.Cut),
	)
}

// AppendTurn writes one turn of the call's transcript. It is committed
// when AppendTurn returns: a process killed right after keeps it (see
// docs/tickets.md for power loss). The call needs no record or ticket yet.
func (s *Store) AppendTurn(ctx context.Context, callID string, t Turn) error {
	op := "append turn to call " + callID
	if callID == "" {
		return fmt.Errorf("tickets: append turn: %w", invalid("call_id", "empty"))
	}
	if t.Mode == "" {
		t.Mode = ModeNone
	}
	if err := checkEnum("speaker", t.Speaker, []string{SpeakerIVR, SpeakerCaller, SpeakerAgent}); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	if err := checkEnum("mode", t.Mode, []string{ModeSpeech, ModeDTMF, ModeNone}); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	if t.Cut != "" {
		if err := checkEnum("cut", t.Cut, []string{CutKey, CutSpeech, CutHangup}); err != nil {
			return fmt.Errorf("tickets: %s: %w", op, err)
		}
		t.Interrupted = true
	}
	if math.IsNaN(t.Confidence) || t.Confidence < 0 || t.Confidence > 1 {
		return fmt.Errorf("tickets: %s: %w", op, invalid("confidence", "%v, want 0..1", t.Confidence))
	}
	if t.At.IsZero() {
		t.At = time.Now()
	}
	if err := s.turns.commit(ctx, s, op, &pendingTurn{callID: callID, t: t, done: make(chan error, 1)}); err != nil {
		return wrapOp(op, err)
	}
	return nil
}

// turnQueue is the group commit of transcript turns. A caller queues its
// turn and takes the store's write lock; whoever holds the lock commits
// every turn queued so far in one transaction (one WAL write, one fsync
// with synchronous=FULL) and tells each waiting caller. A caller whose turn
// was committed while it waited for the lock returns at once. No goroutine
// is involved: the callers themselves take turns as the committer.
type turnQueue struct {
	mu      sync.Mutex
	pending []*pendingTurn
}

type pendingTurn struct {
	callID string
	t      Turn
	done   chan error // buffered (1): the committer never blocks
}

// maxTurnBatch bounds the turns one transaction commits.
const maxTurnBatch = 512

func (q *turnQueue) commit(ctx context.Context, s *Store, op string, p *pendingTurn) error {
	q.mu.Lock()
	q.pending = append(q.pending, p)
	q.mu.Unlock()
	for {
		unlock, err := s.lockWrite(ctx, op)
		if err != nil {
			// Cancelled while waiting: withdraw the turn, unless a
			// committer has taken it already; then its result is coming.
			q.mu.Lock()
			i := slices.Index(q.pending, p)
			if i >= 0 {
				q.pending = slices.Delete(q.pending, i, i+1)
			}
			q.mu.Unlock()
			if i >= 0 {
				return err
			}
			return <-p.done
		}
		select {
		case err := <-p.done: // committed by the previous lock holder
			unlock()
			return err
		default:
		}
		q.mu.Lock()
		n := min(len(q.pending), maxTurnBatch)
		batch := slices.Clone(q.pending[:n])
		q.pending = slices.Delete(q.pending, 0, n)
		q.mu.Unlock()
		err = s.insertTurns(batch)
		for _, b := range batch {
			b.done <- err
		}
		unlock()
		select {
		case err := <-p.done:
			return err
		default: // our turn is beyond this batch: commit the next one
		}
	}
}

const sqlTurn = `INSERT INTO transcript_turns (call_id, at_ns, speaker, text, mode, confidence, interrupted, cut) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

// insertTurns writes a batch in one transaction; the caller holds the
// write lock. It does not use a caller's context: a turn others wait for
// must not fail because one caller gave up.
func (s *Store) insertTurns(batch []*pendingTurn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(batch) == 1 { // the quiet line: one statement, its own transaction
		p := batch[0]
		_, err := s.db.ExecContext(ctx, sqlTurn, p.callID, nanos(p.t.At), p.t.Speaker, p.t.Text, p.t.Mode, p.t.Confidence, p.t.Interrupted, p.t.Cut)
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, sqlTurn)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, p := range batch {
		t := p.t
		if _, err := st.ExecContext(ctx, p.callID, nanos(t.At), t.Speaker, t.Text, t.Mode, t.Confidence, t.Interrupted, t.Cut); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Transcript returns the call's turns in the order they were written (an
// empty slice for a call without turns).
func (s *Store) Transcript(ctx context.Context, callID string) ([]Turn, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT at_ns, speaker, text, mode, confidence, interrupted, cut FROM transcript_turns WHERE call_id = ? ORDER BY seq`, callID)
	if err != nil {
		return nil, fmt.Errorf("tickets: transcript of call %q: %w", callID, err)
	}
	defer rows.Close()
	out := []Turn{}
	for rows.Next() {
		var t Turn
		var at int64
		if err := rows.Scan(&at, &t.Speaker, &t.Text, &t.Mode, &t.Confidence, &t.Interrupted, &t.Cut); err != nil {
			return nil, fmt.Errorf("tickets: transcript of call %q: %w", callID, err)
		}
		t.At = fromNanos(at)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tickets: transcript of call %q: %w", callID, err)
	}
	return out, nil
}
