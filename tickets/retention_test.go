package tickets_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

func TestRetentionConfig(t *testing.T) {
	s := func(v string) *string { return &v }
	pol, err := tickets.RetentionConfig{ArchiveAfter: "30d", Recordings: "2160h", Transcripts: "0",
		Providers: map[string]tickets.RetentionOverride{"pass": {Recordings: s("7d")}}}.Policy()
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	want := tickets.RetentionPeriods{ArchiveAfter: 30 * day, Recordings: 90 * day, Transcripts: 0, Personal: tickets.DefaultPersonal}
	if pol.Default != want {
		t.Errorf("default %+v, want %+v", pol.Default, want)
	}
	want.Recordings = 7 * day
	if got := pol.For("pass"); got != want {
		t.Errorf("pass %+v, want %+v", got, want)
	}
	if got := pol.For("other"); got != pol.Default {
		t.Errorf("a provider without an override: %+v", got)
	}
	for _, c := range []struct {
		cfg tickets.RetentionConfig
		key string
	}{
		{tickets.RetentionConfig{Recordings: "ten days"}, "retention.recordings"},
		{tickets.RetentionConfig{Personal: "-3d"}, "retention.personal"},
		{tickets.RetentionConfig{At: "25:00"}, "retention.at"},
		{tickets.RetentionConfig{Providers: map[string]tickets.RetentionOverride{"pass": {Transcripts: s("1y")}}}, "retention.providers.pass.transcripts"},
		{tickets.RetentionConfig{Providers: map[string]tickets.RetentionOverride{"Bad Id": {}}}, "retention.providers.Bad Id"},
	} {
		if _, err := c.cfg.Policy(); err == nil || !strings.HasPrefix(err.Error(), c.key+":") {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.key)
		}
	}
}

func TestBlankPersonal(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{`{"channel":"phone","caller":"+37360000001","description":"a \u003cb\u003e","personal":{"cnp":"1"},"deadline_ns":1}`,
			`{"channel":"phone","caller":"","description":"a \u003cb\u003e","personal":{},"deadline_ns":1}`},
		{`{"text":"note"}`, `{"text":"note"}`},
		{`{"caller":"","personal":{}}`, `{"caller":"","personal":{}}`},
	} {
		got, changed, err := tickets.BlankPersonal(c.in)
		if err != nil || got != c.out || changed != (c.in != c.out) {
			t.Errorf("BlankPersonal(%s) = %s, %v, %v; want %s", c.in, got, changed, err, c.out)
		}
	}
	if _, _, err := tickets.BlankPersonal(`[1]`); err == nil {
		t.Error("an array is accepted")
	}
}

// TestRetentionScale measures the retention job on many tickets (SQLite):
// IVR_RETENTION_SCALE=N go test -run TestRetentionScale ./tickets/ -v.
// N closed tickets spread over three years, each with a recording file,
// three transcript turns and personal data; a dry run, the run, a second
// run are timed.
func TestRetentionScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IVR_RETENTION_SCALE"))
	if n <= 0 {
		t.Skip("set IVR_RETENTION_SCALE=N to measure the job on N tickets")
	}
	dir := t.TempDir()
	s, err := tickets.Open(filepath.Join(dir, tickets.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	recs := filepath.Join(dir, "recordings")
	if err := os.MkdirAll(recs, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var clock time.Time
	s.SetClock(func() time.Time { return clock })
	s.SetNumbers(tickets.SequentialNumbers())
	began := time.Now()
	for i := range n {
		created := now.Add(-time.Duration(i) * (3 * 365 * 24 * time.Hour / time.Duration(n)))
		clock = created
		call := fmt.Sprintf("c%07d", i)
		rec := filepath.Join(recs, call+".wav")
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.WriteFile(rec, []byte("RIFF"), 0o644))
		must(s.StartCall(ctx, tickets.CallRecord{ID: call, Telephony: "sip", Caller: "+37360000001", Called: "1", Start: created}))
		must(s.AnswerCall(ctx, call, created, "PCMU", rec))
		for j := range 3 {
			must(s.AppendTurn(ctx, call, tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "text", At: created.Add(time.Duration(j) * time.Second)}))
		}
		tk, err := s.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", CallID: call, Caller: "+37360000001", Personal: map[string]string{"cnp": "1"}})
		must(err)
		must(s.Resolve(ctx, tk.Number, "ana", "done"))
		clock = created.Add(time.Hour)
		must(s.CloseTicket(ctx, tk.Number, "ana"))
	}
	t.Logf("%d tickets generated in %s", n, time.Since(began).Round(time.Millisecond))
	clock = now.Add(time.Hour)
	pol := tickets.RetentionPolicy{Default: tickets.DefaultRetentionPeriods}
	pol.Default.Personal = 2 * 365 * 24 * time.Hour
	o := tickets.RetentionOptions{Actor: "retention", RecordingsDir: recs}
	for _, c := range []struct {
		name string
		dry  bool
	}{{"dry run", true}, {"run", false}, {"second run", false}} {
		o.DryRun = c.dry
		start := time.Now()
		rep, err := s.RunRetention(ctx, pol, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s over %d tickets: %s; %s", c.name, n, time.Since(start).Round(time.Millisecond), rep.Summary())
	}
}
