package tickets

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/govline/ivr/store"
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
	Speaker string    `json:"speaker"` // SpeakerIVR, SpeakerCaller, SpeakerAgent
	Text    string    `json:"text"`    // personal data: never logged
	At      time.Time `json:"at"`      // when the turn was written; zero means now
	// Began is when the turn began: the prompt started playing, the
	// caller started speaking or pressed the first key (zero: unknown).
	Began       time.Time `json:"began,omitzero"`
	Mode        string    `json:"mode"` // ModeSpeech, ModeDTMF, ModeNone ("" is none)
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
	if t.Began.After(t.At) {
		return fmt.Errorf("tickets: %s: %w", op, invalid("began", "%s, after the turn's end %s", t.Began.Format(time.RFC3339Nano), t.At.Format(time.RFC3339Nano)))
	}
	if err := s.turns.commit(ctx, s, op, &pendingTurn{callID: callID, t: t, done: make(chan error, 1)}); err != nil {
		return wrapOp(op, err)
	}
	return nil
}

// turnQueue is the group commit of transcript turns. A caller queues its
// turn and takes the queue's one committer slot; whoever holds it commits
// every turn queued so far in one transaction (one WAL write on SQLite,
// one commit and one fsync on PostgreSQL) and tells each waiting caller. A
// caller whose turn was committed while it waited for the slot returns at
// once. No goroutine is involved: the callers themselves take turns as the
// committer.
type turnQueue struct {
	committer chan struct{} // one slot
	mu        sync.Mutex
	pending   []*pendingTurn
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
		var err error
		select {
		case q.committer <- struct{}{}:
		case <-ctx.Done():
			err = fmt.Errorf("tickets: %s: waiting for the write lock: %w", op, context.Cause(ctx))
		}
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
		unlock := func() { <-q.committer }
		select {
		case err := <-p.done: // committed by the previous committer
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

// insertTurns writes a batch in one transaction, one statement; the caller
// holds the committer slot. It does not use a caller's context: a turn
// others wait for must not fail because one caller gave up. On PostgreSQL
// a batch that failed without being committed (the server restarting) is
// tried again for up to the store's retry time (store.Options.RetryFor).
func (s *Store) insertTurns(batch []*pendingTurn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var q strings.Builder
	q.WriteString(`INSERT INTO transcript_turns (call_id, at_ns, began_ns, speaker, text, mode, confidence, interrupted, cut) VALUES `)
	args := make([]any, 0, 9*len(batch))
	for i, p := range batch {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
		t := p.t
		args = append(args, p.callID, nanos(t.At), beganNanos(t.Began), t.Speaker, t.Text, t.Mode, t.Confidence, b2i(t.Interrupted), t.Cut)
	}
	return s.inTx(ctx, "append turns", func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, q.String(), args...)
		return err
	})
}

// Transcript returns the call's turns in the order they were written (an
// empty slice for a call without turns).
func (s *Store) Transcript(ctx context.Context, callID string) ([]Turn, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT at_ns, began_ns, speaker, text, mode, confidence, interrupted, cut FROM transcript_turns WHERE call_id = ? ORDER BY seq`, callID)
	if err != nil {
		return nil, fmt.Errorf("tickets: transcript of call %q: %w", callID, err)
	}
	defer rows.Close()
	out := []Turn{}
	for rows.Next() {
		var t Turn
		var at, began int64
		if err := rows.Scan(&at, &began, &t.Speaker, &t.Text, &t.Mode, &t.Confidence, &t.Interrupted, &t.Cut); err != nil {
			return nil, fmt.Errorf("tickets: transcript of call %q: %w", callID, err)
		}
		t.At, t.Began = fromNanos(at), fromBeganNanos(began)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tickets: transcript of call %q: %w", callID, err)
	}
	return out, nil
}

// Start is when the turn began, or when it was written where that is
// unknown: the moment a transcript line shows and the recording plays it
// from.
func (t Turn) Start() time.Time {
	if t.Began.IsZero() {
		return t.At
	}
	return t.Began
}

// beganNanos stores a turn's Began: 0 when unknown.
func beganNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromBeganNanos reads began_ns: 0 is unknown (the zero time).
func fromBeganNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return fromNanos(ns)
}
