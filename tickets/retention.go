package tickets

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/store"
)

// Legal hold, archive, retention and erasure (docs/retention.md).
//
// A closed ticket goes to the archive after its provider's ArchiveAfter:
// out of the working lists (ListTickets without Archive), still read by
// number and found with TicketQuery.Archive. After their own periods,
// counted from the closing, its call's recordings are deleted, its
// transcript's texts replaced by ErasedText and its personal data blanked
// (tickets.caller and tickets.personal, the caller of its call record, and
// data.caller and data.personal of its history's events). A ticket under
// legal hold is never touched; Erase does the same removals at once for a
// citizen's request.

// ErasedText replaces the text of a transcript turn whose retention period
// has passed or that a citizen had erased (the database allows no other
// change of a turn).
const ErasedText = "[șters]"

// Values of EventData.Hold.
const (
	HoldOn  = "on"
	HoldOff = "off"
)

// Hold places the ticket under legal hold, with the reason (required): a
// note event (data.hold "on") in its history and a "legal_hold" line in
// the audit, in one transaction. The retention job and erasures leave a
// held ticket untouched until Unhold.
func (s *Store) Hold(ctx context.Context, number, actor, reason string) error {
	return s.hold(ctx, number, actor, reason, true)
}

// Unhold lifts a legal hold (reason required; "legal_unhold" in the audit).
func (s *Store) Unhold(ctx context.Context, number, actor, reason string) error {
	return s.hold(ctx, number, actor, reason, false)
}

func (s *Store) hold(ctx context.Context, number, actor, reason string, on bool) error {
	verb, mark, action := "hold", HoldOn, "legal_hold"
	if !on {
		verb, mark, action = "unhold", HoldOff, "legal_unhold"
	}
	return s.act(ctx, verb, number, actor, func(ctx context.Context, tx *store.Tx, cur *Ticket, now time.Time) (*TicketEvent, error) {
		if strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%w: %s: say why (reason)", ErrTransition, verb)
		}
		if cur.Hold == on {
			if on {
				return nil, fmt.Errorf("%w: ticket %s is already under legal hold", ErrTransition, number)
			}
			return nil, fmt.Errorf("%w: ticket %s is not under legal hold", ErrTransition, number)
		}
		if err := insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: action, Target: number, Detail: reason, OK: true}); err != nil {
			return nil, err
		}
		return event(EventNote, EventData{Text: reason, Hold: mark}), nil
	})
}

// RetentionPeriods are how long after a ticket closes each thing is kept.
// Zero keeps it (the archive: the ticket stays among the working ones).
type RetentionPeriods struct {
	ArchiveAfter time.Duration `json:"archive_after"`
	Recordings   time.Duration `json:"recordings"`
	Transcripts  time.Duration `json:"transcripts"`
	Personal     time.Duration `json:"personal"`
}

// Default retention periods (docs/retention.md): the service owner
// confirms or changes them against the regulation.
const (
	DefaultArchiveAfter = 90 * 24 * time.Hour
	DefaultRecordings   = 180 * 24 * time.Hour
	DefaultTranscripts  = 365 * 24 * time.Hour
	DefaultPersonal     = 3 * 365 * 24 * time.Hour
)

// DefaultRetentionPeriods are the defaults above.
var DefaultRetentionPeriods = RetentionPeriods{ArchiveAfter: DefaultArchiveAfter, Recordings: DefaultRecordings,
	Transcripts: DefaultTranscripts, Personal: DefaultPersonal}

// RetentionPolicy is the line's periods and the providers' own.
type RetentionPolicy struct {
	Default RetentionPeriods
	// Providers holds whole sets of periods by provider id (a
	// configuration fills the ones a provider leaves out from Default).
	Providers map[string]RetentionPeriods
}

// For returns provider p's periods.
func (rp RetentionPolicy) For(p string) RetentionPeriods {
	if v, ok := rp.Providers[p]; ok {
		return v
	}
	return rp.Default
}

// Validate refuses negative periods, naming the key.
func (rp RetentionPolicy) Validate() error {
	check := func(prefix string, v RetentionPeriods) error {
		var err error
		for _, f := range []struct {
			k string
			d time.Duration
		}{{"archive_after", v.ArchiveAfter}, {"recordings", v.Recordings}, {"transcripts", v.Transcripts}, {"personal", v.Personal}} {
			if f.d < 0 {
				err = errors.Join(err, invalid(prefix+f.k, "%s: negative", f.d))
			}
		}
		return err
	}
	err := check("retention.", rp.Default)
	for p, v := range rp.Providers {
		err = errors.Join(err, check("retention.providers."+p+".", v))
	}
	return err
}

// RetentionOptions says how the retention job (RunRetention) or an
// erasure (Erase) runs.
type RetentionOptions struct {
	Actor string // who runs it, in the audit ("retention" for ivrd's schedule)
	// DryRun lists what would be removed and changes nothing.
	DryRun bool
	// RecordingsDir is the folder the recordings are kept in: a recording
	// path outside it is never deleted (it is reported in Skipped). ""
	// deletes no file at all.
	RecordingsDir string
	// Engine is this engine's name (Store.Engine): the recordings of calls
	// another engine took are on that engine's disk, and are left to its
	// own job (they stay pending, not marked removed).
	Engine string
}

// RetentionItem is what was (or would be) done to one ticket.
type RetentionItem struct {
	Ticket     string   `json:"ticket"`
	Provider   string   `json:"provider"`
	Archived   bool     `json:"archived,omitempty"`   // moved to the archive
	Recordings []string `json:"recordings,omitempty"` // files deleted
	Turns      int      `json:"turns,omitempty"`      // transcript texts erased
	Personal   bool     `json:"personal,omitempty"`   // personal data blanked
	Skipped    []string `json:"skipped,omitempty"`    // what was left, and why
}

func (it RetentionItem) empty() bool {
	return !it.Archived && len(it.Recordings) == 0 && it.Turns == 0 && !it.Personal
}

// detail is the item for the audit: counts, never a path or a number.
func (it RetentionItem) detail() string {
	var parts []string
	if it.Archived {
		parts = append(parts, "archived")
	}
	if n := len(it.Recordings); n > 0 {
		parts = append(parts, fmt.Sprintf("recordings %d", n))
	}
	if it.Turns > 0 {
		parts = append(parts, fmt.Sprintf("transcript turns %d", it.Turns))
	}
	if it.Personal {
		parts = append(parts, "personal data")
	}
	return strings.Join(parts, ", ")
}

// RetentionReport is the result of a run: the tickets with something
// removed, in the order of their closing, and the totals.
type RetentionReport struct {
	At         time.Time       `json:"at"`
	DryRun     bool            `json:"dry_run"`
	Items      []RetentionItem `json:"items"`
	Archived   int             `json:"archived"`
	Recordings int             `json:"recordings"` // files
	Turns      int             `json:"turns"`      // transcript turns
	Personal   int             `json:"personal"`   // tickets
	// Held counts the closed tickets under legal hold that were left.
	Held int `json:"held"`
	// Errors are the tickets that failed (the others went on).
	Errors []string `json:"errors,omitempty"`
}

func (r *RetentionReport) add(it RetentionItem) {
	r.Items = append(r.Items, it)
	r.Archived += b2i(it.Archived)
	r.Recordings += len(it.Recordings)
	r.Turns += it.Turns
	r.Personal += b2i(it.Personal)
}

// Summary is the report in one line (the audit's "retention_run" detail).
func (r RetentionReport) Summary() string {
	s := fmt.Sprintf("tickets %d: archived %d, recordings %d, transcript turns %d, personal data %d; under legal hold %d",
		len(r.Items), r.Archived, r.Recordings, r.Turns, r.Personal, r.Held)
	if len(r.Errors) > 0 {
		s += fmt.Sprintf("; failed %d", len(r.Errors))
	}
	return s
}

// what a purge of one ticket covers.
type purgeWhat struct {
	archive, recordings, transcript, personal bool
	// erasure: what an earlier run removed is looked for again, and a
	// call shared with another ticket is erased unless that one is held.
	erasure bool
	// closedNS (retention) is the closing the periods were counted from:
	// a ticket reopened (and perhaps closed again) since is left.
	closedNS int64
}

func (w purgeWhat) any() bool { return w.archive || w.recordings || w.transcript || w.personal }

// RunRetention runs the retention job at the store's clock: it archives
// the closed tickets past their provider's ArchiveAfter, and removes the
// recordings, transcript texts and personal data past their periods, for
// every closed ticket not under legal hold. Each ticket is one
// transaction with its audit line ("retention", the ticket, the counts);
// a summary line ("retention_run") ends a real run. A dry run changes
// nothing and reports the same items. Running it again removes nothing
// more: what was removed is marked and not looked for again.
func (s *Store) RunRetention(ctx context.Context, pol RetentionPolicy, o RetentionOptions) (RetentionReport, error) {
	const op = "retention"
	if err := errors.Join(pol.Validate(), checkActor(o.Actor)); err != nil {
		return RetentionReport{}, fmt.Errorf("tickets: %s: %w", op, err)
	}
	now := s.now()
	rep := RetentionReport{At: now, DryRun: o.DryRun, Items: []RetentionItem{}}
	// The shortest period anywhere bounds the closing times to look at.
	shortest := time.Duration(0)
	for _, v := range append([]RetentionPeriods{pol.Default}, mapValues(pol.Providers)...) {
		for _, d := range []time.Duration{v.ArchiveAfter, v.Recordings, v.Transcripts, v.Personal} {
			if d > 0 && (shortest == 0 || d < shortest) {
				shortest = d
			}
		}
	}
	if shortest == 0 {
		return rep, nil // everything is kept
	}
	cutoff := now.Add(-shortest).UnixNano()
	type cand struct {
		number, provider string
		closed           time.Time
		w                purgeWhat
	}
	var cands []cand
	err := func() error {
		rows, err := s.db.QueryContext(ctx, `SELECT number, provider, closed_ns, archived_ns IS NULL,
			purged_recording_ns IS NULL, purged_transcript_ns IS NULL, purged_personal_ns IS NULL
			FROM tickets WHERE closed_ns IS NOT NULL AND legal_hold = 0 AND status = 'closed' AND closed_ns <= ?
			AND (archived_ns IS NULL OR purged_recording_ns IS NULL OR purged_transcript_ns IS NULL OR purged_personal_ns IS NULL)
			ORDER BY closed_ns, number`, cutoff)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c cand
			var closed int64
			var a, r, t, p bool
			if err := rows.Scan(&c.number, &c.provider, &closed, &a, &r, &t, &p); err != nil {
				return err
			}
			c.closed = fromNanos(closed)
			per := pol.For(c.provider)
			due := func(d time.Duration) bool { return d > 0 && !c.closed.Add(d).After(now) }
			c.w = purgeWhat{archive: a && due(per.ArchiveAfter), recordings: r && due(per.Recordings),
				transcript: t && due(per.Transcripts), personal: p && due(per.Personal), closedNS: closed}
			if c.w.any() {
				cands = append(cands, c)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return s.db.QueryRowContext(ctx, `SELECT count(*) FROM tickets WHERE legal_hold = 1 AND status = 'closed' AND closed_ns <= ?`, cutoff).Scan(&rep.Held)
	}()
	if err != nil {
		return RetentionReport{}, fmt.Errorf("tickets: %s: %w", op, err)
	}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("tickets: %s: %w", op, context.Cause(ctx))
		}
		it, err := s.purge(ctx, c.number, c.w, o, "retention", "")
		switch {
		case errors.Is(err, ErrHeld):
			rep.Held++
			continue
		case err != nil:
			rep.Errors = append(rep.Errors, c.number+": "+err.Error())
			continue
		}
		if !it.empty() || len(it.Skipped) > 0 {
			rep.add(it)
		}
	}
	if !o.DryRun {
		ok := len(rep.Errors) == 0
		if err := s.Audit(ctx, AuditEntry{At: now, User: o.Actor, Action: "retention_run", Detail: rep.Summary(), OK: ok}); err != nil {
			return rep, err
		}
	}
	if len(rep.Errors) > 0 {
		return rep, fmt.Errorf("tickets: %s: %d tickets failed, the first: %s", op, len(rep.Errors), rep.Errors[0])
	}
	return rep, nil
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// purge removes what w says of ticket number in one transaction (a dry
// run only reads): action names the audit line ("retention", "erasure"),
// note is added to its detail.
func (s *Store) purge(ctx context.Context, number string, w purgeWhat, o RetentionOptions, action, note string) (RetentionItem, error) {
	var it RetentionItem
	work := func(q reader, tx *store.Tx) error {
		write := tx != nil
		it = RetentionItem{Ticket: number}
		now := s.now()
		var (
			provider, callID, caller, personal string
			hold                               bool
			archived, pRec, pTr, pPers         sql.NullInt64
			closed                             sql.NullInt64
		)
		lock := ""
		if write {
			lock = s.db.ForUpdate()
		}
		err := q.QueryRowContext(ctx, `SELECT provider, call_id, caller, personal, legal_hold, closed_ns, archived_ns,
			purged_recording_ns, purged_transcript_ns, purged_personal_ns FROM tickets WHERE number = ?`+lock, number).
			Scan(&provider, &callID, &caller, &personal, &hold, &closed, &archived, &pRec, &pTr, &pPers)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("ticket %s %w", number, ErrNotFound)
		}
		if err != nil {
			return err
		}
		it.Provider = provider
		if hold {
			return ErrHeld
		}
		if !w.erasure && (!closed.Valid || closed.Int64 != w.closedNS) {
			return nil // reopened since the candidates were read
		}
		// Done already (another engine's run, an erasure): skip.
		w.archive = w.archive && !archived.Valid && closed.Valid
		if !w.erasure {
			w.recordings = w.recordings && !pRec.Valid
			w.transcript = w.transcript && !pTr.Valid
			w.personal = w.personal && !pPers.Valid
		}
		// A call shared with another ticket that is held or still being
		// worked on keeps its recording and transcript.
		if callID != "" && (w.recordings || w.transcript) {
			var others int
			busy := `legal_hold = 1 OR status <> 'closed'`
			if w.erasure {
				busy = `legal_hold = 1`
			}
			// (call_id <> '' lets SQLite use the partial index tickets_call.)
			if err := q.QueryRowContext(ctx, `SELECT count(*) FROM tickets WHERE call_id = ? AND call_id <> '' AND number <> ?
				AND (`+busy+`)`, callID, number).Scan(&others); err != nil {
				return err
			}
			if others > 0 {
				it.Skipped = append(it.Skipped, "call "+callID+": shared with a ticket under hold or still open")
				w.recordings, w.transcript = false, false
			}
		}
		var sets []string
		var setArgs []any
		if w.archive {
			it.Archived = true
			sets, setArgs = append(sets, "archived_ns = ?"), append(setArgs, now.UnixNano())
		}
		var files []string
		if w.recordings {
			paths, engineOK, err := s.recordingPaths(ctx, q, number, callID, o.Engine)
			if err != nil {
				return err
			}
			outside := false
			for _, p := range paths {
				if !inside(o.RecordingsDir, p) {
					// Reported at every run until someone moves it.
					it.Skipped = append(it.Skipped, p+": outside the recordings folder, not deleted")
					outside = true
					continue
				}
				if _, err := os.Lstat(p); err == nil {
					files = append(files, p)
				} else if !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			it.Recordings = files
			switch {
			case outside:
			case engineOK:
				sets, setArgs = append(sets, "purged_recording_ns = ?"), append(setArgs, now.UnixNano())
			case w.erasure:
				it.Skipped = append(it.Skipped, "call "+callID+": recording on another engine, not deleted (erase there too)")
			}
		}
		if w.transcript {
			if callID != "" {
				if err := q.QueryRowContext(ctx, `SELECT count(*) FROM transcript_turns WHERE call_id = ? AND text <> ?`,
					callID, ErasedText).Scan(&it.Turns); err != nil {
					return err
				}
			}
			sets, setArgs = append(sets, "purged_transcript_ns = ?"), append(setArgs, now.UnixNano())
		}
		var events []rawEvent
		if w.personal {
			evs, err := personalEvents(ctx, q, number)
			if err != nil {
				return err
			}
			events = evs
			it.Personal = caller != "" || personal != "{}" || len(events) > 0
			sets, setArgs = append(sets, "purged_personal_ns = ?", "caller = ''", "personal = '{}'"), append(setArgs, now.UnixNano())
		}
		if !write || len(sets) == 0 {
			return nil
		}
		if it.Turns > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE transcript_turns SET text = ? WHERE call_id = ? AND text <> ?`,
				ErasedText, callID, ErasedText); err != nil {
				return err
			}
		}
		for _, e := range events {
			if _, err := tx.ExecContext(ctx, `UPDATE ticket_events SET data = ? WHERE id = ?`, e.data, e.id); err != nil {
				return fmt.Errorf("anonymize event %d: %w", e.id, err)
			}
		}
		if w.personal && callID != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE calls SET caller = '' WHERE id = ? AND caller <> ''`, callID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tickets SET `+strings.Join(sets, ", ")+` WHERE number = ?`,
			append(setArgs, number)...); err != nil {
			return err
		}
		if !it.empty() || w.erasure {
			d := it.detail()
			if d == "" {
				d = "nothing left to erase"
			}
			if note != "" {
				d += "; " + note
			}
			if err := insertAudit(ctx, tx, AuditEntry{At: now, User: o.Actor, Action: action, Target: number, Detail: d, OK: true}); err != nil {
				return err
			}
		}
		// The files last, inside the transaction: the row lock keeps a
		// hold out meanwhile; a file deleted before a failed commit is
		// found gone by the next run.
		for _, p := range files {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("delete recording: %w", err)
			}
		}
		return nil
	}
	if o.DryRun {
		err := work(s.db, nil)
		return it, err
	}
	err := s.inTx(ctx, action+" "+number, func(tx *store.Tx) error { return work(tx, tx) })
	return it, err
}

// reader is what purge reads through: the database (a dry run) or the
// write transaction.
type reader interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// inside reports whether path is within dir ("" allows nothing). A
// relative path is taken from the working directory, as the engine that
// wrote it took it.
func inside(dir, path string) bool {
	if dir == "" || path == "" {
		return false
	}
	dir, err1 := filepath.Abs(dir)
	path, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel) && rel != "."
}

// recordingPaths are the ticket's recording files: its call's, and every
// path its history named (created, recording events, their corrections).
// engineOK is false when its call was taken by another engine than
// engine (its files are on that engine's disk).
func (s *Store) recordingPaths(ctx context.Context, q reader, number, callID, engine string) (paths []string, engineOK bool, err error) {
	engineOK = true
	if callID != "" {
		var rec, eng string
		err := q.QueryRowContext(ctx, `SELECT recording, engine FROM calls WHERE id = ?`, callID).Scan(&rec, &eng)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, false, err
		default:
			if eng != "" && eng != engine {
				return nil, false, nil
			}
			paths = append(paths, rec)
		}
	}
	evs, err := loadEvents(ctx, q, number)
	if err != nil {
		return nil, false, err
	}
	for _, e := range evs {
		paths = append(paths, e.Data.Recording)
	}
	var out []string
	for _, p := range paths {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, engineOK, nil
}

type rawEvent struct {
	id   int64
	data string // the anonymized data
}

// personalEvents returns the ticket's events that hold a caller or
// personal answers, with their data anonymized.
func personalEvents(ctx context.Context, q reader, number string) ([]rawEvent, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, data FROM ticket_events WHERE ticket = ? ORDER BY id`, number)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []rawEvent
	for rows.Next() {
		var e rawEvent
		var raw string
		if err := rows.Scan(&e.id, &raw); err != nil {
			return nil, err
		}
		blank, changed, err := BlankPersonal(raw)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", e.id, err)
		}
		if changed {
			e.data = blank
			out = append(out, e)
		}
	}
	return out, rows.Err()
}

// BlankPersonal returns an event's data (a JSON object) with its "caller"
// member blanked to "" and its "personal" member to {}, every other byte
// as it was (members absent stay absent); changed says whether anything
// was blanked. It is the only change of the history the database allows.
func BlankPersonal(raw string) (out string, changed bool, err error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return "", false, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return "", false, errors.New("event data is not a JSON object")
	}
	var b strings.Builder
	b.WriteByte('{')
	for first := true; dec.More(); first = false {
		kt, err := dec.Token()
		if err != nil {
			return "", false, err
		}
		key, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", false, err
		}
		switch key {
		case "caller":
			if string(v) != `""` {
				v, changed = json.RawMessage(`""`), true
			}
		case "personal":
			var c bytes.Buffer
			if json.Compact(&c, v) != nil || c.String() != "{}" {
				v, changed = json.RawMessage(`{}`), true
			}
		}
		if !first {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	if _, err := dec.Token(); err != nil {
		return "", false, err
	}
	b.WriteByte('}')
	if !changed {
		return raw, false, nil
	}
	return b.String(), true, nil
}

// ErasureRequest is a citizen's request to erase their data: by their
// phone number (every ticket and call of it) or by one ticket number.
type ErasureRequest struct {
	Caller string
	Ticket string
}

// ErasureReport is what an erasure removed (or, in a dry run, would).
type ErasureReport struct {
	DryRun bool            `json:"dry_run"`
	Items  []RetentionItem `json:"items"`
	// Calls are the calls without a ticket of the caller whose recordings
	// and transcripts were erased.
	Calls []RetentionItem `json:"calls,omitempty"`
	// Held are the tickets under legal hold: nothing of them was erased.
	Held []string `json:"held,omitempty"`
	// Surveys is how many satisfaction surveys of the caller had their
	// number erased (the tickets under hold keep theirs).
	Surveys int `json:"surveys,omitempty"`
}

// erasedNumber replaces an erased caller's number in the surveys (whose
// number may not be empty): it matches no real number, so the citizen is
// no longer known as surveyed.
const erasedNumber = "erased"

// eraseSurveys erases the caller's number from the surveys of tickets not
// under legal hold, and returns how many (in a dry run, how many would
// be). An audit line says how many, without the number.
func (s *Store) eraseSurveys(ctx context.Context, caller string, o RetentionOptions, note string) (int, error) {
	const which = ` FROM surveys WHERE number = ? AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.number = surveys.ticket AND t.legal_hold <> 0)`
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*)`+which, caller).Scan(&n); err != nil || n == 0 || o.DryRun {
		return n, err
	}
	err := s.inTx(ctx, "erase surveys", func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE surveys SET number = ? WHERE ticket IN (SELECT ticket`+which+`)`, erasedNumber, caller); err != nil {
			return err
		}
		return insertAudit(ctx, tx, AuditEntry{At: s.now(), User: o.Actor, Action: "erasure", Target: "surveys",
			Detail: fmt.Sprintf("the number of %d satisfaction surveys; %s", n, note), OK: true})
	})
	return n, err
}

// ErrHeld says a ticket is under legal hold. Erase returns it (wrapped)
// when a ticket of the request is: those tickets are left as they are
// (the others of the request were erased, see the report).
var ErrHeld = errors.New("under legal hold")

// Erase executes a citizen's erasure request now, whatever the periods:
// the recordings, transcript texts and personal data of the tickets (and,
// by caller, of the calls without a ticket) are removed as retention
// removes them; the tickets stay, with their history anonymized. Each
// ticket is audited as "erasure" (target the ticket number; the caller's
// number only masked). A ticket under legal hold is left and audited as a
// refused erasure; Erase then fails with ErrHeld after erasing the
// others.
func (s *Store) Erase(ctx context.Context, req ErasureRequest, o RetentionOptions) (ErasureReport, error) {
	const op = "erasure"
	if err := checkActor(o.Actor); err != nil {
		return ErasureReport{}, fmt.Errorf("tickets: %s: %w", op, err)
	}
	if (req.Caller == "") == (req.Ticket == "") {
		return ErasureReport{}, fmt.Errorf("tickets: %s: %w", op, invalid("request", "give a caller number or a ticket number"))
	}
	rep := ErasureReport{DryRun: o.DryRun, Items: []RetentionItem{}}
	var numbers, calls []string
	note := "request by ticket"
	if req.Ticket != "" {
		numbers = []string{req.Ticket}
	} else {
		note = "request by caller " + redact.Mask(req.Caller)
		var err error
		if numbers, err = s.strings(ctx, `SELECT number FROM tickets WHERE caller = ? ORDER BY created_ns, number`, req.Caller); err != nil {
			return rep, fmt.Errorf("tickets: %s: %w", op, err)
		}
		if calls, err = s.strings(ctx, `SELECT id FROM calls c WHERE caller = ?
			AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.call_id = c.id) ORDER BY start_ns, id`, req.Caller); err != nil {
			return rep, fmt.Errorf("tickets: %s: %w", op, err)
		}
	}
	all := purgeWhat{recordings: true, transcript: true, personal: true, erasure: true}
	for _, n := range numbers {
		it, err := s.purge(ctx, n, all, o, "erasure", note)
		switch {
		case errors.Is(err, ErrHeld):
			rep.Held = append(rep.Held, n)
			if !o.DryRun {
				if err := s.Audit(ctx, AuditEntry{User: o.Actor, Action: op, Target: n, Detail: "refused: under legal hold; " + note}); err != nil {
					return rep, err
				}
			}
			continue
		case err != nil:
			return rep, wrapOp(op, err)
		}
		rep.Items = append(rep.Items, it)
	}
	for _, id := range calls {
		it, err := s.eraseCall(ctx, id, o, note)
		if err != nil {
			return rep, wrapOp(op, err)
		}
		rep.Calls = append(rep.Calls, it)
	}
	if req.Caller != "" {
		n, err := s.eraseSurveys(ctx, req.Caller, o, note)
		if err != nil {
			return rep, wrapOp(op, err)
		}
		rep.Surveys = n
	}
	if len(rep.Items) == 0 && len(rep.Calls) == 0 && len(rep.Held) == 0 {
		what := "ticket " + req.Ticket
		if req.Caller != "" {
			what = "no ticket or call of caller " + redact.Mask(req.Caller)
		}
		return rep, fmt.Errorf("tickets: %s: %s %w", op, what, ErrNotFound)
	}
	if len(rep.Held) > 0 {
		return rep, fmt.Errorf("tickets: %s: tickets %s are %w: nothing of them was erased (lift the hold first: ivrctl tickets unhold)",
			op, strings.Join(rep.Held, ", "), ErrHeld)
	}
	return rep, nil
}

// eraseCall erases the recording, the transcript texts and the caller of
// a call that opened no ticket.
func (s *Store) eraseCall(ctx context.Context, id string, o RetentionOptions, note string) (RetentionItem, error) {
	var it RetentionItem
	work := func(q reader, tx *store.Tx) error {
		it = RetentionItem{Ticket: "call:" + id}
		var rec, eng, caller string
		if err := q.QueryRowContext(ctx, `SELECT recording, engine, caller FROM calls WHERE id = ?`, id).Scan(&rec, &eng, &caller); err != nil {
			return err
		}
		var files []string
		if rec != "" {
			switch {
			case eng != "" && eng != o.Engine:
				it.Skipped = append(it.Skipped, "recording on engine "+eng)
			case !inside(o.RecordingsDir, rec):
				it.Skipped = append(it.Skipped, rec+": outside the recordings folder")
			default:
				if _, err := os.Lstat(rec); err == nil {
					files = append(files, rec)
				}
			}
		}
		it.Recordings = files
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM transcript_turns WHERE call_id = ? AND text <> ?`, id, ErasedText).Scan(&it.Turns); err != nil {
			return err
		}
		it.Personal = caller != ""
		if tx == nil {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE transcript_turns SET text = ? WHERE call_id = ? AND text <> ?`, ErasedText, id, ErasedText); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE calls SET caller = '' WHERE id = ?`, id); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, AuditEntry{At: s.now(), User: o.Actor, Action: "erasure", Target: "call:" + id,
			Detail: it.detail() + "; " + note, OK: true}); err != nil {
			return err
		}
		for _, p := range files {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("delete recording: %w", err)
			}
		}
		return nil
	}
	if o.DryRun {
		return it, work(s.db, nil)
	}
	return it, s.inTx(ctx, "erase call "+id, func(tx *store.Tx) error { return work(tx, tx) })
}

func (s *Store) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
