package tickets

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/store"
)

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "data", DBFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := DBPath(dir)

	_, err := OpenReadOnly(path)
	if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--data") {
		t.Fatalf("missing file: err = %v, want ErrNoDatabase naming the path and --data", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenReadOnly created the file")
	}

	// Not an ivr database.
	other := filepath.Join(dir, "other.db")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(other); err == nil || !strings.Contains(err.Error(), "not a line database") {
		t.Fatalf("empty file: err = %v, want 'not a line database'", err)
	}

	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.StartCall(ctx, CallRecord{ID: "c1", Telephony: "sip", Start: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Read while the writer is open...
	r, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Call(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := r.AppendDTMF(ctx, "c1", '1'); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write on read-only store: err = %v, want ErrReadOnly", err)
	}
	// ...and sees the writer's later commits.
	if err := w.AppendDTMF(ctx, "c1", '7'); err != nil {
		t.Fatal(err)
	}
	if c, err := r.Call(ctx, "c1"); err != nil || c.DTMF != "7" {
		t.Fatalf("reader sees dtmf %q (err %v), want 7", c.DTMF, err)
	}
	r.Close()
	w.Close()

	// ...and after the writer closed (WAL and shm files gone).
	r, err = OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if c, err := r.Call(ctx, "c1"); err != nil || c.DTMF != "7" {
		t.Fatalf("after close: dtmf %q, err %v", c.DTMF, err)
	}
}

func TestCallLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	start := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	answer := start.Add(500 * time.Millisecond)
	end := start.Add(42 * time.Second)

	if err := s.StartCall(ctx, CallRecord{ID: "call-1", Telephony: "sip", Caller: "+33612345678", Called: "100", Start: start}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Call(ctx, "call-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Answer != nil || c.End != nil || c.DTMF != "" || !c.Start.Equal(start) || c.Start.Location() != time.UTC {
		t.Fatalf("after start: %+v", c)
	}
	if err := s.StartCall(ctx, CallRecord{ID: "call-1", Start: start}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate start: err = %v, want ErrExists", err)
	}
	if err := s.AnswerCall(ctx, "call-1", answer, "PCMU", "/rec/call-1.wav"); err != nil {
		t.Fatal(err)
	}
	for _, d := range "12#" {
		if err := s.AppendDTMF(ctx, "call-1", d); err != nil {
			t.Fatal(err)
		}
	}
	st := PacketStats{In: 2100, Out: 2090, Lost: 3, Late: 1}
	if err := s.EndCall(ctx, "call-1", end, EndCallerHangup, st); err != nil {
		t.Fatal(err)
	}
	c, err = s.Call(ctx, "call-1")
	if err != nil {
		t.Fatal(err)
	}
	want := CallRecord{
		ID: "call-1", Telephony: "sip", Caller: "+33612345678", Called: "100",
		Start: start.UTC(), Answer: ptr(answer.UTC()), End: ptr(end.UTC()), EndReason: EndCallerHangup,
		Codec: "PCMU", DTMF: "12#", Recording: "/rec/call-1.wav", Stats: st, QueueOutcome: QueueNone,
	}
	if fmt.Sprintf("%+v", deref(c)) != fmt.Sprintf("%+v", deref(want)) {
		t.Fatalf("record\n got %+v\nwant %+v", deref(c), deref(want))
	}
	if c.Duration() != 42*time.Second {
		t.Errorf("Duration = %v, want 42s", c.Duration())
	}

	// Missing calls.
	if _, err := s.Call(ctx, "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Call(nope): err = %v, want ErrNotFound naming the id", err)
	}
	if err := s.AnswerCall(ctx, "nope", answer, "PCMU", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("AnswerCall(nope): err = %v", err)
	}
	if err := s.AppendDTMF(ctx, "nope", '1'); !errors.Is(err, ErrNotFound) {
		t.Errorf("AppendDTMF(nope): err = %v", err)
	}
	if err := s.EndCall(ctx, "nope", end, EndError, PacketStats{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("EndCall(nope): err = %v", err)
	}
	if err := s.AddEvent(ctx, "nope", CallEvent{Kind: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddEvent(nope): err = %v", err)
	}
	if _, err := s.Events(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Events(nope): err = %v", err)
	}
	// Bad input names what is wrong.
	if err := s.StartCall(ctx, CallRecord{}); err == nil || !strings.Contains(err.Error(), "empty call ID") {
		t.Errorf("StartCall(no id): err = %v", err)
	}
	if err := s.AppendDTMF(ctx, "call-1", 'x'); err == nil || !strings.Contains(err.Error(), "invalid digit 'x'") {
		t.Errorf("AppendDTMF('x'): err = %v", err)
	}
	if err := s.AddEvent(ctx, "call-1", CallEvent{}); err == nil || !strings.Contains(err.Error(), "empty event kind") {
		t.Errorf("AddEvent(no kind): err = %v", err)
	}
}

type flatCall struct {
	CallRecord
	Answer, End string
}

func deref(c CallRecord) flatCall {
	f := flatCall{CallRecord: c}
	if c.Answer != nil {
		f.Answer = c.Answer.Format(time.RFC3339Nano)
	}
	if c.End != nil {
		f.End = c.End.Format(time.RFC3339Nano)
	}
	f.CallRecord.Answer, f.CallRecord.End = nil, nil
	return f
}

func ptr[T any](v T) *T { return &v }

func TestZeroTimeMeansNow(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	before := time.Now()
	if err := s.StartCall(ctx, CallRecord{ID: "z"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AnswerCall(ctx, "z", time.Time{}, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.EndCall(ctx, "z", time.Time{}, EndShutdown, PacketStats{}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Call(ctx, "z")
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	for name, tm := range map[string]time.Time{"start": c.Start, "answer": *c.Answer, "end": *c.End} {
		if tm.Before(before) || tm.After(after) {
			t.Errorf("%s = %v, want between %v and %v", name, tm, before, after)
		}
	}
}

func TestAppendDTMFInOrder(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if err := s.StartCall(ctx, CallRecord{ID: "d", Start: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const digits = "0123456789*#ABCDabcd"
	for _, d := range digits {
		if err := s.AppendDTMF(ctx, "d", d); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Call(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if c.DTMF != "0123456789*#ABCDABCD" {
		t.Fatalf("DTMF = %q", c.DTMF)
	}
}

func TestAnswerCallTwiceKeepsFirstTime(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	if err := s.StartCall(ctx, CallRecord{ID: "a", Start: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.AnswerCall(ctx, "a", t0.Add(time.Second), "PCMU", "/r.wav"); err != nil {
		t.Fatal(err)
	}
	if err := s.AnswerCall(ctx, "a", t0.Add(5*time.Second), "opus", ""); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Call(ctx, "a")
	if !c.Answer.Equal(t0.Add(time.Second)) || c.Codec != "opus" || c.Recording != "/r.wav" {
		t.Fatalf("answer %v codec %q recording %q", c.Answer, c.Codec, c.Recording)
	}
}

func TestEndCallIdempotent(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	if err := s.StartCall(ctx, CallRecord{ID: "e", Start: t0}); err != nil {
		t.Fatal(err)
	}
	first := PacketStats{In: 10, Out: 11, Lost: 1, Late: 2}
	if err := s.EndCall(ctx, "e", t0.Add(10*time.Second), EndCallerHangup, first); err != nil {
		t.Fatal(err)
	}
	if err := s.EndCall(ctx, "e", t0.Add(20*time.Second), EndShutdown, PacketStats{In: 99}); err != nil {
		t.Fatalf("second EndCall: %v, want nil", err)
	}
	c, _ := s.Call(ctx, "e")
	if !c.End.Equal(t0.Add(10*time.Second)) || c.EndReason != EndCallerHangup || c.Stats != first {
		t.Fatalf("second EndCall overwrote the first: end %v reason %q stats %+v", c.End, c.EndReason, c.Stats)
	}
}

func TestPacketStatsSaturate(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if err := s.StartCall(ctx, CallRecord{ID: "p", Start: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.EndCall(ctx, "p", time.Now(), EndError, PacketStats{In: 1<<64 - 1}); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Call(ctx, "p")
	if c.Stats.In != 1<<63-1 {
		t.Fatalf("In = %d", c.Stats.In)
	}
}

func TestEventsChronological(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	if err := s.StartCall(ctx, CallRecord{ID: "ev", Start: t0}); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.Events(ctx, "ev"); err != nil || evs == nil || len(evs) != 0 {
		t.Fatalf("no events: %v, %v; want empty non-nil slice", evs, err)
	}
	// Added out of order; two share a timestamp and keep insertion order.
	add := []CallEvent{
		{At: t0.Add(3 * time.Second), Kind: "dtmf", Detail: "1"},
		{At: t0, Kind: "sip.invite"},
		{At: t0.Add(time.Second), Kind: "sip.180"},
		{At: t0.Add(3 * time.Second), Kind: "dtmf", Detail: "2"},
		{At: t0.Add(2 * time.Second), Kind: "sip.200"},
	}
	for _, e := range add {
		if err := s.AddEvent(ctx, "ev", e); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.Events(ctx, "ev")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Kind+e.Detail)
	}
	if want := "[sip.invite sip.180 sip.200 dtmf1 dtmf2]"; fmt.Sprint(got) != want {
		t.Fatalf("events %v, want %s", got, want)
	}
}

func TestCloseOrphans(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DBFile)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0).UTC()
	for _, id := range []string{"open1", "open2", "done"} {
		if err := s.StartCall(ctx, CallRecord{ID: id, Start: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EndCall(ctx, "done", t0.Add(time.Second), EndCallerHangup, PacketStats{}); err != nil {
		t.Fatal(err)
	}
	// open1 was last known alive by a checkpoint at +40 s, open2 by an
	// event at +25 s.
	log := s.NewCallLog(0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	log.Progress("open1", t0.Add(40*time.Second), PacketStats{In: 2000, Out: 1990, Lost: 3})
	log.Event("open1", CallEvent{At: t0.Add(30 * time.Second), Kind: "dtmf", Detail: "1"})
	log.Event("open2", CallEvent{At: t0.Add(25 * time.Second), Kind: "sip.200"})
	log.Close()
	s.Close() // "crash"

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	restart := t0.Add(time.Hour)
	n, err := s.CloseOrphans(ctx, restart)
	if err != nil || n != 2 {
		t.Fatalf("CloseOrphans = %d, %v; want 2", n, err)
	}
	for id, end := range map[string]time.Time{"open1": t0.Add(40 * time.Second), "open2": t0.Add(25 * time.Second)} {
		c, _ := s.Call(ctx, id)
		// The end is the last known activity, not the restart an hour later.
		if c.End == nil || !c.End.Equal(end) || c.EndReason != EndEngineRestart {
			t.Errorf("%s: end %v reason %q, want %v", id, c.End, c.EndReason, end)
		}
		evs, _ := s.Events(ctx, id)
		if last := evs[len(evs)-1]; last.Kind != "engine.restart" || !last.At.Equal(restart) {
			t.Errorf("%s: events %+v, want engine.restart last, at the restart", id, evs)
		}
	}
	if c, _ := s.Call(ctx, "open1"); c.Stats != (PacketStats{In: 2000, Out: 1990, Lost: 3}) {
		t.Errorf("packet counts after the crash: %+v, want the last checkpoint's", c.Stats)
	}
	c, _ := s.Call(ctx, "done")
	if c.EndReason != EndCallerHangup {
		t.Errorf("ended call touched: reason %q", c.EndReason)
	}
	if n, err := s.CloseOrphans(ctx, restart); err != nil || n != 0 {
		t.Fatalf("second CloseOrphans = %d, %v; want 0", n, err)
	}
}

func TestListCalls(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	for i := range 5 {
		if err := s.StartCall(ctx, CallRecord{ID: fmt.Sprintf("c%d", i), Start: t0.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(q CallQuery) string {
		cs, err := s.ListCalls(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		q    CallQuery
		want string
	}{
		{CallQuery{}, "[c4 c3 c2 c1 c0]"},
		{CallQuery{Limit: 2}, "[c4 c3]"},
		{CallQuery{Since: t0.Add(3 * time.Minute)}, "[c4 c3]"},
		{CallQuery{Since: t0.Add(time.Minute), Limit: 1}, "[c4]"},
		{CallQuery{Since: t0.Add(time.Hour)}, "[]"},
	} {
		if got := ids(tc.q); got != tc.want {
			t.Errorf("ListCalls(%+v) = %s, want %s", tc.q, got, tc.want)
		}
	}
}

func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	const calls = 50
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			id := fmt.Sprintf("conc-%02d", i)
			now := time.Now()
			err := s.StartCall(ctx, CallRecord{ID: id, Telephony: "sip", Caller: "+3300000" + fmt.Sprint(i), Called: "100", Start: now})
			if err == nil {
				err = s.AddEvent(ctx, id, CallEvent{At: now, Kind: "sip.invite"})
			}
			if err == nil {
				err = s.AnswerCall(ctx, id, now, "PCMU", "")
			}
			for _, d := range "123#" {
				if err == nil {
					err = s.AppendDTMF(ctx, id, d)
				}
				if err == nil {
					err = s.AddEvent(ctx, id, CallEvent{Kind: "dtmf", Detail: string(d)})
				}
				if err == nil {
					_, err = s.ListCalls(ctx, CallQuery{Limit: 5}) // readers in between
				}
			}
			if err == nil {
				err = s.EndCall(ctx, id, time.Now(), EndCallerHangup, PacketStats{In: uint64(i)})
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
			}
		})
	}
	// A read-only reader in the same process, as ivrctl would be.
	r, err := OpenReadOnly(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wg.Go(func() {
		for range 20 {
			if _, err := r.ListCalls(ctx, CallQuery{}); err != nil {
				errs <- fmt.Errorf("reader: %w", err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	cs, err := s.ListCalls(ctx, CallQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != calls {
		t.Fatalf("%d calls stored, want %d", len(cs), calls)
	}
	for _, c := range cs {
		if c.DTMF != "123#" || c.End == nil || c.EndReason != EndCallerHangup {
			t.Errorf("%s: dtmf %q end %v reason %q", c.ID, c.DTMF, c.End, c.EndReason)
		}
		if evs, err := s.Events(ctx, c.ID); err != nil || len(evs) != 5 {
			t.Errorf("%s: %d events, err %v; want 5", c.ID, len(evs), err)
		}
	}
}

// rawExec runs one statement in a write transaction: what a test does to
// the tables behind the Store's back (to see the database refuse it).
func rawExec(s *Store, q string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := s.db.Write(context.Background(), func(tx *store.Tx) error {
		var err error
		res, err = tx.ExecContext(context.Background(), q, args...)
		return err
	})
	return res, err
}

// holdWriteLock makes another writer hold SQLite's write lock until
// release is called.
func holdWriteLock(t testing.TB, s *Store) (release func()) {
	t.Helper()
	held, hold, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_ = s.db.Write(context.Background(), func(*store.Tx) error {
			close(held)
			<-hold
			return nil
		})
	}()
	<-held
	var once sync.Once
	release = func() { once.Do(func() { close(hold); <-done }) }
	t.Cleanup(release)
	return release
}

func TestWriteLockHonoursContext(t *testing.T) {
	s := openTemp(t)
	holdWriteLock(t, s) // another writer holds the lock
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := s.StartCall(ctx, CallRecord{ID: "x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestNoPersonalDataInLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	end := time.Now()
	c := CallRecord{ID: "c1", Caller: "+33612345678", Called: "100", DTMF: "4711#", Start: end.Add(-time.Minute), End: &end}
	log.Info("call", "caller", redact.Phone(c.Caller))
	log.Info("call", "call", c)
	log.Info(fmt.Sprintf("call from %v", redact.Phone(c.Caller)))
	out := buf.String()
	for _, secret := range []string{"33612345", "4711"} {
		if strings.Contains(out, secret) {
			t.Errorf("log leaks %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "+********678") || !strings.Contains(out, `"dtmf_digits":5`) {
		t.Errorf("log lacks the masked number or digit count:\n%s", out)
	}
}

func BenchmarkCallLifecycle(b *testing.B) {
	ctx := context.Background()
	s := openTemp(b)
	t0 := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("bench-%d", i)
		i++
		if err := s.StartCall(ctx, CallRecord{ID: id, Telephony: "sip", Caller: "+33612345678", Called: "100", Start: t0}); err != nil {
			b.Fatal(err)
		}
		if err := s.AddEvent(ctx, id, CallEvent{At: t0, Kind: "sip.invite"}); err != nil {
			b.Fatal(err)
		}
		if err := s.AnswerCall(ctx, id, t0, "PCMU", "/rec/"+id+".wav"); err != nil {
			b.Fatal(err)
		}
		for _, d := range "12#" {
			if err := s.AppendDTMF(ctx, id, d); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.EndCall(ctx, id, t0, EndCallerHangup, PacketStats{In: 500, Out: 500}); err != nil {
			b.Fatal(err)
		}
	}
}

// Two processes (here two Stores) opening and writing one new file at once:
// the migration runs once and no writer sees SQLITE_BUSY.
func TestTwoStoresSameFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DBFile)
	stores := make([]*Store, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range stores {
		wg.Go(func() {
			s, err := Open(path)
			if err != nil {
				errs <- err
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s == nil {
			t.Fatal(<-errs)
		}
		defer s.Close()
	}
	for i := range 40 {
		s := stores[i%2]
		wg.Go(func() {
			id := fmt.Sprintf("two-%d", i)
			err := s.StartCall(ctx, CallRecord{ID: id, Start: time.Now()})
			for _, d := range "0123456789" {
				if err == nil {
					err = s.AppendDTMF(ctx, id, d)
				}
			}
			if err == nil {
				err = s.EndCall(ctx, id, time.Now(), EndCallerHangup, PacketStats{})
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n, max int
	if err := stores[0].db.QueryRowContext(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil || n != max {
		t.Errorf("%d migrations recorded, up to version %d (err %v): want each once", n, max, err)
	}
	cs, _ := stores[1].ListCalls(ctx, CallQuery{})
	if len(cs) != 40 {
		t.Errorf("%d calls, want 40", len(cs))
	}
}
