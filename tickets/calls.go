package tickets

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/store"
)

// End reasons recorded by EndCall. The store accepts any string; these are
// the ones the engine uses.
const (
	EndCallerHangup  = "caller_hangup"
	EndEngineHangup  = "engine_hangup"
	EndCancelled     = "cancelled"
	EndRTPTimeout    = "rtp_timeout"
	EndNoCommonCodec = "no_common_codec"
	EndShutdown      = "shutdown"
	EndError         = "error"
	// EndEngineRestart is set by CloseOrphans on calls a crash left open.
	EndEngineRestart = "engine_restart"
)

// CallRecord is one call, from INVITE (or its equivalent) to hangup.
type CallRecord struct {
	ID        string      `json:"id"`
	Telephony string      `json:"telephony"` // "sip", "ari", "esl"
	Caller    string      `json:"caller"`    // personal data: log it as redact.Phone(Caller)
	Called    string      `json:"called"`
	Start     time.Time   `json:"start"`
	Answer    *time.Time  `json:"answer,omitempty"`
	End       *time.Time  `json:"end,omitempty"`
	EndReason string      `json:"end_reason,omitempty"` // one of the End* constants
	Codec     string      `json:"codec,omitempty"`
	DTMF      string      `json:"dtmf"`                // digits received, in order, e.g. "12#"
	Recording string      `json:"recording,omitempty"` // path of the WAV
	Stats     PacketStats `json:"stats"`
	// Service and QueueOutcome are what SetCallQueue recorded (the
	// abandoned-call indicators); QueueOutcome is "none" until then.
	Service      Service      `json:"service,omitempty"`
	QueueOutcome QueueOutcome `json:"queue_outcome,omitempty"`
	// Engine names the engine that took the call (Store.SetEngine; "" for
	// a line of one engine and calls written before engines had names).
	Engine string `json:"engine,omitempty"`
}

// Duration is End-Start, or 0 while the call has not ended.
func (r CallRecord) Duration() time.Duration {
	if r.End == nil {
		return 0
	}
	return r.End.Sub(r.Start)
}

// LogValue logs the record without personal data: the caller number is
// masked and the DTMF digits (which may be a PIN or an account number) are
// reduced to their count.
func (r CallRecord) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("call_id", r.ID),
		slog.String("telephony", r.Telephony),
		slog.Any("caller", redact.Phone(r.Caller)),
		slog.String("called", r.Called),
		slog.Time("start", r.Start),
		slog.Int("dtmf_digits", len(r.DTMF)),
	}
	if r.End != nil {
		attrs = append(attrs, slog.Duration("duration", r.Duration()), slog.String("end_reason", r.EndReason))
	}
	return slog.GroupValue(attrs...)
}

// PacketStats counts the RTP packets of a call.
type PacketStats struct {
	In   uint64 `json:"packets_in"`
	Out  uint64 `json:"packets_out"`
	Lost uint64 `json:"packets_lost"`
	Late uint64 `json:"packets_late"`
}

// CallEvent is one entry of a call's event log (protocol events, digits,
// timeouts). Detail is free text for administrators; do not put raw
// personal data in it.
type CallEvent struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // e.g. "sip.invite", "sip.180", "dtmf", "rtp.timeout"
	Detail string    `json:"detail"`
}

// CallQuery selects calls for ListCalls.
type CallQuery struct {
	Limit int       // at most this many calls; 0 or less means no limit
	Since time.Time // calls that started at or after Since; zero means all
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UnixNano()
}

func fromNanos(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// count converts a packet counter to SQLite's signed INTEGER, saturating.
func count(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

// StartCall inserts a new call record when the call arrives. It stores ID,
// Telephony, Caller, Called and Start (zero means now); the other fields are
// filled by AnswerCall, AppendDTMF and EndCall. An ID already used fails
// with ErrExists.
func (s *Store) StartCall(ctx context.Context, r CallRecord) error {
	if r.ID == "" {
		return errors.New("tickets: start call: empty call ID")
	}
	op := fmt.Sprintf("start call %q", r.ID)
	err := s.inTx(ctx, op, func(tx *store.Tx) error { return s.insertCall(ctx, tx, r) })
	if store.IsUnique(err) {
		return fmt.Errorf("tickets: %s: %w", op, ErrExists)
	}
	return opErr(op, err)
}

func (s *Store) insertCall(ctx context.Context, tx *store.Tx, r CallRecord) error {
	engine := r.Engine
	if engine == "" {
		engine = s.Engine()
	}
	_, err := tx.ExecContext(ctx, sqlStart, r.ID, r.Telephony, r.Caller, r.Called, nanos(r.Start), engine)
	return err
}

// AnswerCall records the answer. The first answer time is kept if it is
// called again; codec and recording are replaced when not empty.
func (s *Store) AnswerCall(ctx context.Context, id string, at time.Time, codec, recording string) error {
	return s.update(ctx, "answer call", id, sqlAnswer, nanos(at), codec, codec, recording, recording, id)
}

// The statements shared by the Store methods and the CallLog.
const (
	sqlStart  = `INSERT INTO calls (id, telephony, caller, called, start_ns, engine) VALUES (?, ?, ?, ?, ?, ?)`
	sqlAnswer = `UPDATE calls SET answer_ns = coalesce(answer_ns, ?),
		    codec = CASE WHEN ? = '' THEN codec ELSE ? END,
		    recording = CASE WHEN ? = '' THEN recording ELSE ? END
		 WHERE id = ?`
	sqlDTMF  = `UPDATE calls SET dtmf = dtmf || ? WHERE id = ?`
	sqlEvent = `INSERT INTO call_events (call_id, at_ns, kind, detail) VALUES (?, ?, ?, ?)`
	sqlEnd   = `UPDATE calls SET end_ns = ?, end_reason = ?,
		    packets_in = ?, packets_out = ?, packets_lost = ?, packets_late = ?
		 WHERE id = ? AND end_ns IS NULL`
	sqlProgress = `UPDATE calls SET active_ns = ?,
		    packets_in = ?, packets_out = ?, packets_lost = ?, packets_late = ?
		 WHERE id = ? AND end_ns IS NULL`
)

// normDigit checks a DTMF digit and upper-cases a-d.
func normDigit(id string, digit rune) (rune, error) {
	switch {
	case digit >= '0' && digit <= '9', digit == '*', digit == '#', digit >= 'A' && digit <= 'D':
		return digit, nil
	case digit >= 'a' && digit <= 'd':
		return digit - ('a' - 'A'), nil
	}
	return 0, fmt.Errorf("tickets: append dtmf to call %q: invalid digit %q (want 0-9, *, #, A-D)", id, digit)
}

// AppendDTMF appends one digit (0-9, *, #, A-D; a-d are upper-cased) to the
// call's DTMF string. Call it as each digit arrives: it is committed before
// it returns, so a crash loses no digit already received.
func (s *Store) AppendDTMF(ctx context.Context, id string, digit rune) error {
	digit, err := normDigit(id, digit)
	if err != nil {
		return err
	}
	return s.update(ctx, "append dtmf to call", id, sqlDTMF, string(digit), id)
}

// EndCall records the end of a call with its reason and packet counters.
// It is idempotent: once a call has ended, later EndCalls change nothing and
// return nil, so the first (most accurate) reason wins.
func (s *Store) EndCall(ctx context.Context, id string, at time.Time, reason string, st PacketStats) error {
	op := fmt.Sprintf("end call %q", id)
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, sqlEnd, nanos(at), reason, count(st.In), count(st.Out), count(st.Lost), count(st.Late), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		return callExists(ctx, tx, id) // already ended: nil; missing: ErrNotFound
	}))
}

// AddEvent appends e to the call's event log. A zero e.At means now.
func (s *Store) AddEvent(ctx context.Context, id string, e CallEvent) error {
	op := fmt.Sprintf("add event to call %q", id)
	if e.Kind == "" {
		return fmt.Errorf("tickets: %s: empty event kind", op)
	}
	err := s.inTx(ctx, op, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, sqlEvent, id, nanos(e.At), e.Kind, e.Detail)
		return err
	})
	if store.IsForeignKey(err) {
		return fmt.Errorf("tickets: %s: call %w", op, ErrNotFound)
	}
	return opErr(op, err)
}

// OpenCalls returns the calls that have no end, oldest first: at start,
// before CloseOrphans, the calls a crash left open (their recordings need
// RepairWAV).
func (s *Store) OpenCalls(ctx context.Context) ([]CallRecord, error) {
	calls, err := s.listCalls(ctx, `SELECT `+callColumns+` FROM calls WHERE end_ns IS NULL AND engine IN (?, '') ORDER BY start_ns`, s.Engine())
	if err != nil {
		return nil, fmt.Errorf("tickets: open calls: %w", err)
	}
	return calls, nil
}

// CloseOrphans ends, with reason EndEngineRestart, every call of this
// engine (Engine, and the calls written before engines had names) that
// has no end: calls left open by a crash. Call it at start, before
// accepting calls; the calls of other engines sharing the database are
// left alone. A call ends at the last moment the engine knew it alive (its
// latest checkpoint, CallLog.Progress, or event, or its answer or start),
// not at the restart, so its duration leaves out the downtime; its packet
// counts are those of the latest checkpoint. It also appends an
// "engine.restart" event at time at to each, and returns how many calls it
// closed.
func (s *Store) CloseOrphans(ctx context.Context, at time.Time) (int, error) {
	const op = "close orphan calls"
	var ids []string
	err := s.inTx(ctx, op, func(tx *store.Tx) error {
		ids = nil
		rows, err := tx.QueryContext(ctx, `SELECT id FROM calls WHERE end_ns IS NULL AND engine IN (?, '')`+s.db.ForUpdate(), s.Engine())
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE calls SET end_reason = ?, end_ns = `+s.db.Greatest()+`(start_ns,
				     coalesce(answer_ns, 0), coalesce(active_ns, 0),
				     coalesce((SELECT max(at_ns) FROM call_events e WHERE e.call_id = calls.id), 0))
				 WHERE id = ?`, EndEngineRestart, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, sqlEvent, id, nanos(at), "engine.restart", "call left open by a previous run; closed at start"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, opErr(op, err)
	}
	return len(ids), nil
}

const callColumns = `id, telephony, caller, called, start_ns, answer_ns, end_ns, end_reason,
	codec, dtmf, recording, packets_in, packets_out, packets_lost, packets_late, service, queue_outcome, engine`

func scanCall(sc interface{ Scan(...any) error }) (CallRecord, error) {
	var (
		r                   CallRecord
		start               int64
		answer, end         sql.NullInt64
		in, out, lost, late int64
	)
	err := sc.Scan(&r.ID, &r.Telephony, &r.Caller, &r.Called, &start, &answer, &end, &r.EndReason,
		&r.Codec, &r.DTMF, &r.Recording, &in, &out, &lost, &late, &r.Service, &r.QueueOutcome, &r.Engine)
	if err != nil {
		return CallRecord{}, err
	}
	r.Start = fromNanos(start)
	if answer.Valid {
		t := fromNanos(answer.Int64)
		r.Answer = &t
	}
	if end.Valid {
		t := fromNanos(end.Int64)
		r.End = &t
	}
	r.Stats = PacketStats{In: uint64(in), Out: uint64(out), Lost: uint64(lost), Late: uint64(late)}
	return r, nil
}

// Call returns one call record, or an error wrapping ErrNotFound.
func (s *Store) Call(ctx context.Context, id string) (CallRecord, error) {
	r, err := scanCall(s.db.QueryRowContext(ctx, `SELECT `+callColumns+` FROM calls WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return CallRecord{}, fmt.Errorf("tickets: call %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return CallRecord{}, fmt.Errorf("tickets: call %q: %w", id, err)
	}
	return r, nil
}

// Events returns the call's event log in chronological order (events with
// the same time in the order they were added). A call without events gives
// an empty slice; a missing call gives ErrNotFound.
func (s *Store) Events(ctx context.Context, id string) ([]CallEvent, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT at_ns, kind, detail FROM call_events WHERE call_id = ? ORDER BY at_ns, seq`, id)
	if err != nil {
		return nil, fmt.Errorf("tickets: events of call %q: %w", id, err)
	}
	defer rows.Close()
	evs := []CallEvent{}
	for rows.Next() {
		var e CallEvent
		var at int64
		if err := rows.Scan(&at, &e.Kind, &e.Detail); err != nil {
			return nil, fmt.Errorf("tickets: events of call %q: %w", id, err)
		}
		e.At = fromNanos(at)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tickets: events of call %q: %w", id, err)
	}
	if len(evs) == 0 {
		if err := callExists(ctx, s.db, id); err != nil {
			return nil, fmt.Errorf("tickets: events of call %q: %w", id, err)
		}
	}
	return evs, nil
}

// ListCalls returns the calls selected by q, newest first.
func (s *Store) ListCalls(ctx context.Context, q CallQuery) ([]CallRecord, error) {
	var b strings.Builder
	var args []any
	b.WriteString(`SELECT ` + callColumns + ` FROM calls`)
	if !q.Since.IsZero() {
		b.WriteString(` WHERE start_ns >= ?`)
		args = append(args, q.Since.UnixNano())
	}
	b.WriteString(` ORDER BY start_ns DESC, id DESC`)
	if q.Limit > 0 {
		b.WriteString(` LIMIT ?`)
		args = append(args, q.Limit)
	}
	calls, err := s.listCalls(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("tickets: list calls: %w", err)
	}
	return calls, nil
}

func (s *Store) listCalls(ctx context.Context, query string, args ...any) ([]CallRecord, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	calls := []CallRecord{}
	for rows.Next() {
		r, err := scanCall(rows)
		if err != nil {
			return nil, err
		}
		calls = append(calls, r)
	}
	return calls, rows.Err()
}

// update runs one UPDATE of a single call in a write transaction and turns
// "no row changed" into ErrNotFound.
func (s *Store) update(ctx context.Context, op, id, query string, args ...any) error {
	op = fmt.Sprintf("%s %q", op, id)
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		return updated(tx.ExecContext(ctx, query, args...))
	}))
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// callExists returns nil if the call exists, an error wrapping ErrNotFound
// if not.
func callExists(ctx context.Context, q rowQuerier, id string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM calls WHERE id = ?`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("call %w", ErrNotFound)
	}
	return nil
}
