package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// The history and the transcripts refuse every change but the
// anonymization: blanking data.caller and data.personal of an event, and
// erasing a turn's text to tickets.ErasedText.
func anonymizeOnly(t *testing.T, open Opener) {
	h := engines(t, open(t), 1)[0]
	tk, err := h.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "+37360000001", Description: "d",
		Personal: map[string]string{"cnp": "1960101123456"}})
	must(t, err)
	must(t, h.st.AppendTurn(ctx, "call-1", tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "hello"}))
	var id int64
	var data string
	ev := func() (int64, string) {
		hist, err := h.st.History(ctx, tk.Number)
		must(t, err)
		b, _ := json.Marshal(hist[0].Data)
		return hist[0].ID, string(b)
	}
	id, data = ev()
	blank, changed, err := tickets.BlankPersonal(data)
	if err != nil || !changed || !strings.Contains(blank, `"caller":""`) || !strings.Contains(blank, `"personal":{}`) {
		t.Fatalf("BlankPersonal(%s) = %s, %v, %v", data, blank, changed, err)
	}
	for _, c := range []struct {
		q    string
		args []any
	}{
		{`UPDATE ticket_events SET data = ? WHERE id = ?`, []any{strings.Replace(blank, `"description":"d"`, `"description":"x"`, 1), id}},
		{`UPDATE ticket_events SET data = ? WHERE id = ?`, []any{strings.Replace(blank, `"caller":""`, `"caller":"+37369999999"`, 1), id}},
		{`UPDATE ticket_events SET data = ? WHERE id = ?`, []any{strings.Replace(blank, `"personal":{}`, `"personal":{"cnp":"0"}`, 1), id}},
		{`UPDATE ticket_events SET data = ? WHERE id = ?`, []any{strings.Replace(blank, `"caller":"",`, ``, 1), id}}, // removes the member
		{`UPDATE ticket_events SET data = ?, actor = 'mallory' WHERE id = ?`, []any{blank, id}},
		{`DELETE FROM ticket_events WHERE id = ?`, []any{id}},
		{`UPDATE transcript_turns SET text = 'forged'`, nil},
		{`UPDATE transcript_turns SET text = ?, speaker = 'ivr'`, []any{tickets.ErasedText}},
		{`DELETE FROM transcript_turns`, nil},
	} {
		if err := raw(h.db, c.q, c.args...); err == nil || !store.IsRefused(err) {
			t.Errorf("%s %v: %v, want the database to refuse it", c.q, c.args, err)
		}
	}
	// The anonymization itself is accepted.
	must(t, raw(h.db, `UPDATE ticket_events SET data = ? WHERE id = ?`, blank, id))
	must(t, raw(h.db, `UPDATE transcript_turns SET text = ? WHERE call_id = 'call-1'`, tickets.ErasedText))
	if _, got := ev(); !strings.Contains(got, `"description":"d"`) || strings.Contains(got, "3736") || strings.Contains(got, "196") {
		t.Errorf("after the anonymization: %s", got)
	}
	tr, err := h.st.Transcript(ctx, "call-1")
	if err != nil || len(tr) != 1 || tr[0].Text != tickets.ErasedText || tr[0].Speaker != tickets.SpeakerCaller {
		t.Errorf("transcript after the erasure: %+v %v", tr, err)
	}
}

// Hold and unhold: history events, audit lines, no correction.
func legalHold(t *testing.T, open Opener) {
	h := engines(t, open(t), 1)[0]
	tk, err := h.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "+37360000001"})
	must(t, err)
	if err := h.st.Hold(ctx, tk.Number, "admin", ""); !errors.Is(err, tickets.ErrTransition) {
		t.Errorf("hold without a reason: %v", err)
	}
	must(t, h.st.Hold(ctx, tk.Number, "admin", "court case 12/2026"))
	if err := h.st.Hold(ctx, tk.Number, "admin", "again"); !errors.Is(err, tickets.ErrTransition) {
		t.Errorf("hold twice: %v", err)
	}
	got, err := h.st.Ticket(ctx, tk.Number)
	if err != nil || !got.Hold {
		t.Fatalf("held ticket: %+v %v", got, err)
	}
	hist, err := h.st.History(ctx, tk.Number)
	must(t, err)
	last := hist[len(hist)-1]
	if last.Kind != tickets.EventNote || last.Data.Hold != tickets.HoldOn || last.Data.Text != "court case 12/2026" {
		t.Errorf("hold event: %+v", last)
	}
	if err := h.st.Correct(ctx, tk.Number, "admin", last.ID, tickets.Correction{Retract: true, Reason: "r"}); !errors.Is(err, tickets.ErrTransition) {
		t.Errorf("retracting a hold: %v, want ErrTransition", err)
	}
	must(t, h.st.Unhold(ctx, tk.Number, "admin", "case closed"))
	if r, err := h.st.ReplayTicket(ctx, tk.Number); err != nil || r.Hold {
		t.Errorf("replayed after unhold: hold %v, %v", r.Hold, err)
	}
	for _, a := range []string{"legal_hold", "legal_unhold"} {
		es, err := h.st.AuditLog(ctx, tickets.AuditQuery{Action: a, Target: tk.Number})
		if err != nil || len(es) != 1 || es[0].User != "admin" {
			t.Errorf("audit %s: %+v %v", a, es, err)
		}
	}
}

// genTicket is one generated ticket and what the test knows of it.
type genTicket struct {
	number, provider, call, rec string
	closed                      *time.Time
	held                        bool
}

// The test: tickets spread over three years, three providers with
// their own periods, some under legal hold; the dry run lists exactly what
// the policy says, the run removes exactly that (rows and files), nothing
// held, nothing newer than its period; a second run removes nothing.
func retentionJob(t *testing.T, open Opener) {
	h := engines(t, open(t), 1)[0]
	clk := &clock{}
	h.st.SetClock(clk.now)
	h.st.SetNumbers(tickets.SequentialNumbers())
	recDir := filepath.Join(t.TempDir(), "recordings")
	must(t, os.MkdirAll(recDir, 0o755))
	must(t, h.st.AddProvider(ctx, "admin", "pass", "Passports"))
	must(t, h.st.AddProvider(ctx, "admin", "social", "Social insurance"))
	day := 24 * time.Hour
	pol := tickets.RetentionPolicy{
		Default: tickets.RetentionPeriods{ArchiveAfter: 90 * day, Recordings: 180 * day, Transcripts: 365 * day, Personal: 730 * day},
		Providers: map[string]tickets.RetentionPeriods{
			"pass":   {ArchiveAfter: 30 * day, Recordings: 30 * day, Transcripts: 60 * day, Personal: 365 * day},
			"social": {ArchiveAfter: 0, Recordings: 365 * day, Transcripts: 0, Personal: 3 * 365 * day},
		},
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	start := now.Add(-3 * 365 * day)
	rng := rand.New(rand.NewPCG(7, 14))
	n := 240
	if testing.Short() {
		n = 90
	}
	providers := []string{tickets.DefaultProvider, "pass", "social"}
	var gen []genTicket
	for i := range n {
		created := start.Add(time.Duration(rng.Int64N(int64(now.Sub(start) - 2*day))))
		clk.set(created)
		g := genTicket{provider: providers[i%3], call: fmt.Sprintf("call-%04d", i)}
		g.rec = filepath.Join(recDir, g.call+".wav")
		must(t, os.WriteFile(g.rec, []byte("RIFF....WAVE"), 0o644))
		must(t, h.st.StartCall(ctx, tickets.CallRecord{ID: g.call, Telephony: "sip", Caller: fmt.Sprintf("+3736%07d", i), Called: "1234", Start: created}))
		must(t, h.st.AnswerCall(ctx, g.call, created, "PCMU", g.rec))
		for j := range 3 {
			must(t, h.st.AppendTurn(ctx, g.call, tickets.Turn{Speaker: tickets.SpeakerCaller, Text: fmt.Sprintf("turn %d: CNP 1960101123456", j), At: created.Add(time.Duration(j) * time.Second)}))
		}
		tk, err := h.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", CallID: g.call, Caller: fmt.Sprintf("+3736%07d", i),
			Description: "lost passport", Provider: g.provider, Recording: g.rec, Personal: map[string]string{"cnp": "1960101123456"}})
		must(t, err)
		g.number = tk.Number
		switch rng.IntN(6) {
		case 0: // still open
		case 1: // resolved, never closed
			clk.set(created.Add(day))
			must(t, h.st.Resolve(ctx, g.number, "ana", "done"))
		default:
			at := created.Add(time.Duration(1+rng.IntN(20)) * day)
			if at.After(now) {
				at = now
			}
			clk.set(at.Add(-time.Hour))
			must(t, h.st.Resolve(ctx, g.number, "ana", "done"))
			clk.set(at)
			must(t, h.st.CloseTicket(ctx, g.number, "ana"))
			g.closed = &at
			if rng.IntN(8) == 0 {
				must(t, h.st.Hold(ctx, g.number, "admin", "court case"))
				g.held = true
			}
		}
		gen = append(gen, g)
	}
	clk.set(now)

	// What the policy says, computed here from the generated tickets.
	due := func(g genTicket, d func(tickets.RetentionPeriods) time.Duration) bool {
		p := d(pol.For(g.provider))
		return g.closed != nil && !g.held && p > 0 && !g.closed.Add(p).After(now)
	}
	var want tickets.RetentionReport
	wantItems := map[string]bool{}
	for _, g := range gen {
		a := due(g, func(p tickets.RetentionPeriods) time.Duration { return p.ArchiveAfter })
		r := due(g, func(p tickets.RetentionPeriods) time.Duration { return p.Recordings })
		tr := due(g, func(p tickets.RetentionPeriods) time.Duration { return p.Transcripts })
		pe := due(g, func(p tickets.RetentionPeriods) time.Duration { return p.Personal })
		want.Archived += b2i(a)
		want.Recordings += b2i(r)
		want.Turns += 3 * b2i(tr)
		want.Personal += b2i(pe)
		if a || r || tr || pe {
			wantItems[g.number] = true
		}
	}
	if want.Archived == 0 || want.Recordings == 0 || want.Turns == 0 || want.Personal == 0 {
		t.Fatalf("the generated tickets exercise nothing: %+v", want)
	}
	opts := tickets.RetentionOptions{Actor: "retention", RecordingsDir: recDir}

	dry := opts
	dry.DryRun = true
	dryRep, err := h.st.RunRetention(ctx, pol, dry)
	must(t, err)
	checkCounts := func(name string, r tickets.RetentionReport) {
		t.Helper()
		if r.Archived != want.Archived || r.Recordings != want.Recordings || r.Turns != want.Turns || r.Personal != want.Personal || len(r.Items) != len(wantItems) {
			t.Errorf("%s: archived %d recordings %d turns %d personal %d in %d tickets; the policy says %d %d %d %d in %d",
				name, r.Archived, r.Recordings, r.Turns, r.Personal, len(r.Items),
				want.Archived, want.Recordings, want.Turns, want.Personal, len(wantItems))
		}
		for _, it := range r.Items {
			if !wantItems[it.Ticket] {
				t.Errorf("%s: ticket %s is not due", name, it.Ticket)
			}
		}
	}
	checkCounts("dry run", dryRep)
	// The dry run changed nothing: every file is there, no mark, no audit.
	for _, g := range gen {
		if _, err := os.Stat(g.rec); err != nil {
			t.Fatalf("dry run: %v", err)
		}
	}
	if es, _ := h.st.AuditLog(ctx, tickets.AuditQuery{Action: "retention"}); len(es) != 0 {
		t.Errorf("dry run wrote %d audit lines", len(es))
	}
	if arch, _ := h.st.ListTickets(ctx, tickets.TicketQuery{Archive: true}); len(arch) != 0 {
		t.Errorf("dry run archived %d tickets", len(arch))
	}

	began := time.Now()
	rep, err := h.st.RunRetention(ctx, pol, opts)
	took := time.Since(began)
	must(t, err)
	t.Logf("retention run over %d tickets (3 years, %d due): %s; %s", n, len(rep.Items), took.Round(time.Millisecond), rep.Summary())
	checkCounts("run", rep)
	strip := func(r tickets.RetentionReport) string {
		b, _ := json.Marshal(r.Items)
		return string(b)
	}
	if strip(rep) != strip(dryRep) {
		t.Errorf("the run's items differ from the dry run's:\n run %s\n dry %s", strip(rep), strip(dryRep))
	}

	// Rows and files, ticket by ticket.
	audits, err := h.st.AuditLog(ctx, tickets.AuditQuery{Action: "retention", Limit: 100000})
	must(t, err)
	audited := map[string]bool{}
	for _, e := range audits {
		audited[e.Target] = true
		if strings.Contains(e.Detail, "+3736") || strings.Contains(e.Detail, recDir) {
			t.Errorf("audit detail holds personal data or a path: %q", e.Detail)
		}
	}
	if len(audited) != len(wantItems) {
		t.Errorf("%d tickets audited, want %d", len(audited), len(wantItems))
	}
	if es, _ := h.st.AuditLog(ctx, tickets.AuditQuery{Action: "retention_run"}); len(es) != 1 || es[0].Detail != rep.Summary() {
		t.Errorf("summary audit: %+v", es)
	}
	for _, g := range gen {
		tk, err := h.st.Ticket(ctx, g.number)
		must(t, err)
		tr, err := h.st.Transcript(ctx, g.call)
		must(t, err)
		hist, err := h.st.History(ctx, g.number)
		must(t, err)
		_, ferr := os.Stat(g.rec)
		recGone := errors.Is(ferr, os.ErrNotExist)
		trGone := tr[0].Text == tickets.ErasedText
		persGone := tk.Caller == "" && len(tk.Personal) == 0 && hist[0].Data.Caller == "" && len(hist[0].Data.Personal) == 0
		cr, err := h.st.Call(ctx, g.call)
		must(t, err)
		for _, c := range []struct {
			what      string
			got, want bool
		}{
			{"archived", tk.Archived != nil, due(g, func(p tickets.RetentionPeriods) time.Duration { return p.ArchiveAfter })},
			{"recording deleted", recGone, due(g, func(p tickets.RetentionPeriods) time.Duration { return p.Recordings })},
			{"transcript erased", trGone, due(g, func(p tickets.RetentionPeriods) time.Duration { return p.Transcripts })},
			{"personal data blanked", persGone, due(g, func(p tickets.RetentionPeriods) time.Duration { return p.Personal })},
			{"call's caller blanked", cr.Caller == "", due(g, func(p tickets.RetentionPeriods) time.Duration { return p.Personal })},
		} {
			if c.got != c.want {
				t.Errorf("ticket %s (%s, closed %v, held %v): %s %v, want %v", g.number, g.provider, g.closed, g.held, c.what, c.got, c.want)
			}
		}
		if g.held && (tk.Caller == "" || tr[0].Text == tickets.ErasedText || recGone || tk.Archived != nil || audited[g.number]) {
			t.Errorf("held ticket %s was touched", g.number)
		}
		// The description and the rest of the history stay; the row is
		// still its history replayed.
		if tk.Description != "lost passport" || hist[0].Data.Description != "lost passport" {
			t.Errorf("ticket %s lost its description", g.number)
		}
		rp, err := h.st.ReplayTicket(ctx, g.number)
		must(t, err)
		tk.Archived = nil
		a, _ := json.Marshal(tk)
		b, _ := json.Marshal(rp)
		if string(a) != string(b) {
			t.Errorf("ticket %s: the row is not its history replayed\n row %s\nlog %s", g.number, a, b)
		}
	}

	// The archive: out of the working lists, found by the archive search.
	active, err := h.st.ListTickets(ctx, tickets.TicketQuery{})
	must(t, err)
	arch, err := h.st.ListTickets(ctx, tickets.TicketQuery{Archive: true})
	must(t, err)
	if len(arch) != want.Archived || len(active)+len(arch) != n {
		t.Errorf("%d working and %d archived tickets, want %d archived of %d", len(active), len(arch), want.Archived, n)
	}
	for _, tk := range active {
		if tk.Archived != nil {
			t.Errorf("archived ticket %s in the working list", tk.Number)
		}
	}

	// A second run removes nothing more.
	again, err := h.st.RunRetention(ctx, pol, opts)
	must(t, err)
	if len(again.Items) != 0 || again.Recordings+again.Turns+again.Personal+again.Archived != 0 {
		t.Errorf("second run: %s", again.Summary())
	}

	// A reopened archived ticket comes back out of the archive.
	back := arch[0]
	clk.set(now.Add(time.Hour))
	must(t, h.st.Reopen(ctx, back.Number, "ana", "the citizen wrote again"))
	tk, err := h.st.Ticket(ctx, back.Number)
	if err != nil || tk.Archived != nil || tk.Status != tickets.StatusInProgress {
		t.Errorf("reopened archived ticket: %+v %v", tk, err)
	}
	if es, _ := h.st.AuditLog(ctx, tickets.AuditQuery{Action: "ticket_unarchive", Target: back.Number}); len(es) != 1 {
		t.Errorf("unarchive audit: %+v", es)
	}
	if ts, _ := h.st.ListTickets(ctx, tickets.TicketQuery{Status: tickets.StatusInProgress}); !slices.ContainsFunc(ts, func(x tickets.Ticket) bool { return x.Number == back.Number }) {
		t.Errorf("reopened ticket %s not in the working list", back.Number)
	}
	// Everything the job did left the hash chain intact.
	chainIntact(t, h.st)
}

// An erasure by caller and by ticket: the data is gone from the API, the
// audit has a line per ticket without the number in clear, a held ticket
// is refused.
func erasure(t *testing.T, open Opener) {
	h := engines(t, open(t), 1)[0]
	h.st.SetNumbers(tickets.SequentialNumbers())
	recDir := filepath.Join(t.TempDir(), "recordings")
	must(t, os.MkdirAll(recDir, 0o755))
	const caller, other = "+37360123456", "+37369876543"
	mk := func(call, who string) (string, string) {
		rec := filepath.Join(recDir, call+".wav")
		must(t, os.WriteFile(rec, []byte("RIFF"), 0o644))
		must(t, h.st.StartCall(ctx, tickets.CallRecord{ID: call, Telephony: "sip", Caller: who, Called: "1234"}))
		must(t, h.st.AnswerCall(ctx, call, time.Now(), "PCMU", rec))
		must(t, h.st.AppendTurn(ctx, call, tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "my CNP is 1960101123456"}))
		return call, rec
	}
	open1 := func(call, who string) string {
		tk, err := h.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", CallID: call, Caller: who, Description: "d",
			Personal: map[string]string{"cnp": "1960101123456"}})
		must(t, err)
		return tk.Number
	}
	c1, r1 := mk("e-1", caller)
	c2, r2 := mk("e-2", caller)
	c3, r3 := mk("e-3", caller) // no ticket
	c4, r4 := mk("e-4", other)
	t1, t2, t4 := open1(c1, caller), open1(c2, caller), open1(c4, other)
	// Survey calls were placed to the caller about t1 and t2, and to the
	// other caller about t4 (period 0: each is allowed).
	for n, who := range map[string]string{t1: caller, t2: caller, t4: other} {
		if ok, err := h.st.SurveyStarted(ctx, n, who, 0, time.Now()); err != nil || !ok {
			t.Fatalf("survey of %s: %v %v", n, ok, err)
		}
	}
	surveyNumbers := func() map[string]string {
		rows, err := h.db.QueryContext(ctx, `SELECT ticket, number FROM surveys`)
		must(t, err)
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var tk, n string
			must(t, rows.Scan(&tk, &n))
			out[tk] = n
		}
		return out
	}
	o := tickets.RetentionOptions{Actor: "admin", RecordingsDir: recDir}
	// A path outside the recordings folder is never deleted, and said so.
	outside := filepath.Join(t.TempDir(), "elsewhere.wav")
	must(t, os.WriteFile(outside, []byte("RIFF"), 0o644))
	must(t, h.st.AttachRecording(ctx, t1, "ana", outside))

	// Dry run first: lists, removes nothing.
	d := o
	d.DryRun = true
	dr, err := h.st.Erase(ctx, tickets.ErasureRequest{Caller: caller}, d)
	must(t, err)
	if len(dr.Items) != 2 || len(dr.Calls) != 1 || !dr.Items[0].Personal || dr.Items[0].Turns != 1 || len(dr.Items[0].Recordings) != 1 || dr.Surveys != 2 {
		t.Errorf("dry run: %+v", dr)
	}
	if sn := surveyNumbers(); sn[t1] != caller || sn[t2] != caller {
		t.Errorf("the dry run erased a survey's number: %v", sn)
	}
	if tk, _ := h.st.Ticket(ctx, t1); tk.Caller != caller {
		t.Errorf("the dry run erased")
	}

	// A hold on t2 keeps it: t1 and the call without a ticket are erased.
	must(t, h.st.Hold(ctx, t2, "admin", "court"))
	rep, err := h.st.Erase(ctx, tickets.ErasureRequest{Caller: caller}, o)
	if !errors.Is(err, tickets.ErrHeld) || !slices.Equal(rep.Held, []string{t2}) || len(rep.Items) != 1 || len(rep.Calls) != 1 {
		t.Fatalf("erase with a held ticket: %+v %v", rep, err)
	}
	// The surveys: the caller's number is gone from t1's, kept with the
	// held t2's and the other caller's.
	if sn := surveyNumbers(); rep.Surveys != 1 || sn[t1] == caller || sn[t1] == "" || sn[t2] != caller || sn[t4] != other {
		t.Errorf("surveys after the erasure (%d erased): %v", rep.Surveys, sn)
	}
	if es, _ := h.st.AuditLog(ctx, tickets.AuditQuery{Action: "erasure", Target: "surveys"}); len(es) != 1 || strings.Contains(es[0].Detail, caller) ||
		!strings.Contains(es[0].Detail, "1 satisfaction surveys") {
		t.Errorf("the surveys' erasure in the audit: %+v", es)
	}
	if sk := rep.Items[0].Skipped; len(sk) != 1 || !strings.Contains(sk[0], "outside the recordings folder") {
		t.Errorf("the recording outside the folder: %v", sk)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("a file outside the recordings folder was deleted: %v", err)
	}
	for _, p := range []string{r1, r3} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("recording %s not deleted: %v", p, err)
		}
	}
	for _, p := range []string{r2, r4} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("recording %s of a held or another caller's ticket: %v", p, err)
		}
	}
	tk, err := h.st.Ticket(ctx, t1)
	must(t, err)
	hist, err := h.st.History(ctx, t1)
	must(t, err)
	if tk.Caller != "" || len(tk.Personal) != 0 || hist[0].Data.Caller != "" || len(hist[0].Data.Personal) != 0 {
		t.Errorf("ticket %s after the erasure: %+v / %+v", t1, tk, hist[0].Data)
	}
	for _, c := range []string{c1, c3} {
		tr, err := h.st.Transcript(ctx, c)
		if err != nil || tr[0].Text != tickets.ErasedText {
			t.Errorf("transcript of %s: %+v %v", c, tr, err)
		}
		if cr, _ := h.st.Call(ctx, c); cr.Caller != "" {
			t.Errorf("call %s keeps its caller", c)
		}
	}
	if tr, _ := h.st.Transcript(ctx, c2); tr[0].Text == tickets.ErasedText {
		t.Errorf("the held ticket's transcript was erased")
	}
	if ts, _ := h.st.ListTickets(ctx, tickets.TicketQuery{Caller: caller}); len(ts) != 1 || ts[0].Number != t2 {
		t.Errorf("tickets still found by the caller: %+v", ts)
	}
	es, err := h.st.AuditLog(ctx, tickets.AuditQuery{Action: "erasure"})
	must(t, err)
	byTarget := map[string]tickets.AuditEntry{}
	for _, e := range es {
		byTarget[e.Target] = e
		if strings.Contains(e.Detail, caller) || strings.Contains(e.Detail, "60123456") {
			t.Errorf("the caller's number in clear in the audit: %q", e.Detail)
		}
	}
	if e, ok := byTarget[t1]; !ok || !e.OK || e.User != "admin" {
		t.Errorf("audit of %s: %+v", t1, e)
	}
	if e, ok := byTarget[t2]; !ok || e.OK || !strings.Contains(e.Detail, "legal hold") {
		t.Errorf("audit of the refused %s: %+v", t2, e)
	}
	if _, ok := byTarget["call:"+c3]; !ok {
		t.Errorf("no audit of the call without a ticket")
	}

	// By ticket: the other caller's.
	if _, err := h.st.Erase(ctx, tickets.ErasureRequest{Ticket: t4}, o); err != nil {
		t.Fatal(err)
	}
	if tk, _ := h.st.Ticket(ctx, t4); tk.Caller != "" || len(tk.Personal) != 0 {
		t.Errorf("ticket %s after its erasure: %+v", t4, tk)
	}
	if _, err := os.Stat(r4); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("recording of %s: %v", t4, err)
	}
	if e, err := h.st.AuditLog(ctx, tickets.AuditQuery{Action: "erasure", Target: t4}); err != nil || len(e) != 1 {
		t.Errorf("audit of %s: %+v %v", t4, e, err)
	}
	// A held ticket by number is refused.
	if _, err := h.st.Erase(ctx, tickets.ErasureRequest{Ticket: t2}, o); !errors.Is(err, tickets.ErrHeld) {
		t.Errorf("erase a held ticket: %v", err)
	}
	// Both rows still equal their history replayed.
	for _, n := range []string{t1, t4} {
		row, _ := h.st.Ticket(ctx, n)
		rp, _ := h.st.ReplayTicket(ctx, n)
		a, _ := json.Marshal(row)
		b, _ := json.Marshal(rp)
		if string(a) != string(b) {
			t.Errorf("ticket %s: row %s\nlog %s", n, a, b)
		}
	}
	// The hash chain over the history and the audit log still verifies:
	// the erasure blanked only what the chain leaves out.
	chainIntact(t, h.st)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A citizen's e-mail reply to an archived ticket (closed, its personal
// data already blanked) reopens it and brings it out of the archive.
func emailReplyLeavesArchive(t *testing.T, open Opener) {
	h := engines(t, open(t), 1)[0]
	clk := &clock{}
	h.st.SetClock(clk.now)
	start := time.Date(2025, 1, 10, 9, 0, 0, 0, time.UTC)
	clk.set(start)
	res, err := h.st.IngestEmail(ctx, tickets.EmailIntake{
		Message: tickets.EmailMessage{MessageID: "first@example.org", Address: "ion@example.org", Subject: "passport", Text: "lost it"},
		New:     tickets.NewTicket{Caller: "ion@example.org", Description: "passport"}})
	must(t, err)
	n := res.Ticket.Number
	must(t, h.st.Resolve(ctx, n, "ana", "done"))
	must(t, h.st.CloseTicket(ctx, n, "ana"))
	clk.set(start.Add(400 * 24 * time.Hour))
	rep, err := h.st.RunRetention(ctx, tickets.RetentionPolicy{Default: tickets.DefaultRetentionPeriods,
		Providers: map[string]tickets.RetentionPeriods{tickets.DefaultProvider: {ArchiveAfter: 90 * 24 * time.Hour, Personal: 365 * 24 * time.Hour}}},
		tickets.RetentionOptions{Actor: "retention"})
	must(t, err)
	if rep.Archived != 1 || rep.Personal != 1 {
		t.Fatalf("retention: %s", rep.Summary())
	}
	reply, err := h.st.IngestEmail(ctx, tickets.EmailIntake{
		Message: tickets.EmailMessage{MessageID: "reply@example.org", Address: "ion@example.org", Subject: "Re: passport [#" + n + "]",
			InReplyTo: "first@example.org", Text: "still lost"},
		New: tickets.NewTicket{Caller: "ion@example.org", Description: "x"}})
	must(t, err)
	if !reply.FollowUp || !reply.Reopened || reply.Ticket.Number != n {
		t.Fatalf("reply: %+v", reply)
	}
	tk, err := h.st.Ticket(ctx, n)
	must(t, err)
	if tk.Archived != nil || tk.Status != tickets.StatusInProgress || tk.Caller != "" {
		t.Errorf("after the reply: archived %v, status %s, caller %q (the blanked data does not come back)", tk.Archived, tk.Status, tk.Caller)
	}
	if ts, _ := h.st.ListTickets(ctx, tickets.TicketQuery{}); len(ts) != 1 {
		t.Errorf("the reopened ticket is not among the working tickets: %d", len(ts))
	}
}

// chainIntact fails the test unless the audit and history chains verify.
func chainIntact(t *testing.T, st *tickets.Store) {
	t.Helper()
	v, err := st.VerifyChains(ctx, tickets.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Findings) > 0 {
		t.Errorf("the chain does not verify: %+v", v.Findings)
	}
}
