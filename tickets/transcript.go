package tickets

import (
	"context"
	"fmt"
	"log/slog"
	"math"
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
	Interrupted bool      `json:"interrupted,omitempty"` // an ivr turn the caller cut off
}

// LogValue logs the turn without its text.
func (t Turn) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("speaker", t.Speaker),
		slog.String("mode", t.Mode),
		slog.Int("text_len", len(t.Text)),
		slog.Float64("confidence", t.Confidence),
		slog.Bool("interrupted", t.Interrupted),
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
	if math.IsNaN(t.Confidence) || t.Confidence < 0 || t.Confidence > 1 {
		return fmt.Errorf("tickets: %s: %w", op, invalid("confidence", "%v, want 0..1", t.Confidence))
	}
	unlock, err := s.lockWrite(ctx, op)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO transcript_turns (call_id, at_ns, speaker, text, mode, confidence, interrupted) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		callID, nanos(t.At), t.Speaker, t.Text, t.Mode, t.Confidence, t.Interrupted); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	return nil
}

// Transcript returns the call's turns in the order they were written (an
// empty slice for a call without turns).
func (s *Store) Transcript(ctx context.Context, callID string) ([]Turn, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT at_ns, speaker, text, mode, confidence, interrupted FROM transcript_turns WHERE call_id = ? ORDER BY seq`, callID)
	if err != nil {
		return nil, fmt.Errorf("tickets: transcript of call %q: %w", callID, err)
	}
	defer rows.Close()
	out := []Turn{}
	for rows.Next() {
		var t Turn
		var at int64
		if err := rows.Scan(&at, &t.Speaker, &t.Text, &t.Mode, &t.Confidence, &t.Interrupted); err != nil {
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
