package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPasswordHashRoundTrip(t *testing.T) {
	h, err := hashPassword("corect horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q: want an argon2id PHC string", h)
	}
	if strings.Contains(h, "horse") {
		t.Fatal("hash holds the password")
	}
	if !verifyPassword(h, "corect horse battery") || verifyPassword(h, "corect horse batterY") || verifyPassword("garbage", "x") {
		t.Fatal("verify disagrees")
	}
	h2, _ := hashPassword("corect horse battery")
	if h2 == h {
		t.Fatal("two hashes of one password are equal: no salt?")
	}
}

func TestUsersLoginSessionsLockout(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	clock := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	if err := s.AddUser(ctx, "admin", "ana", RoleOperator, "short"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short password: %v, want ErrInvalid", err)
	}
	if err := s.AddUser(ctx, "admin", "ana'; DROP TABLE users;--", RoleOperator, "a good long password"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("odd name: %v, want ErrInvalid", err)
	}
	if err := s.AddUser(ctx, "admin", "ana", "boss", "a good long password"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad role: %v, want ErrInvalid", err)
	}
	if err := s.AddUser(ctx, "admin", "ana", RoleOperator, "a good long password"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, "admin", "ana", RoleSupervisor, "a good long password"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v, want ErrExists", err)
	}

	p := LoginPolicy{MaxFailures: 3, Lockout: 10 * time.Minute, SessionTTL: time.Hour}
	sess, err := s.Login(ctx, "ana", "a good long password", "10.0.0.5", p)
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Token) < 43 || len(sess.CSRF) < 43 || sess.User.Role != RoleOperator {
		t.Fatalf("session %+v", sess)
	}
	var stored int
	s.db.QueryRowContext(context.Background(), `SELECT count(*) FROM sessions WHERE token_hash = ? OR csrf = ?`, []byte(sess.Token), "x").Scan(&stored)
	if stored != 0 {
		t.Fatal("the raw token is stored")
	}
	got, err := s.SessionByToken(ctx, sess.Token)
	if err != nil || got.User.Name != "ana" || got.CSRF != sess.CSRF {
		t.Fatalf("SessionByToken: %+v, %v", got, err)
	}
	if _, err := s.SessionByToken(ctx, sess.Token+"x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forged token: %v", err)
	}
	advance(time.Hour)
	if _, err := s.SessionByToken(ctx, sess.Token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}

	// Lockout: 3 wrong passwords lock; the right one is then refused too.
	for i := range 3 {
		if _, err := s.Login(ctx, "ana", "wrong password!", "10.0.0.6", p); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("wrong password #%d: %v", i+1, err)
		}
	}
	if _, err := s.Login(ctx, "ana", "a good long password", "10.0.0.6", p); !errors.Is(err, ErrLocked) {
		t.Fatalf("locked account: %v, want ErrLocked", err)
	}
	advance(11 * time.Minute)
	sess, err = s.Login(ctx, "ana", "a good long password", "10.0.0.6", p)
	if err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	if _, err := s.Login(ctx, "nobody", "whatever it is", "10.0.0.7", p); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := s.Logout(ctx, sess.Token, "10.0.0.6"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByToken(ctx, sess.Token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after logout: %v", err)
	}

	log, err := s.AuditLog(ctx, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for i := len(log) - 1; i >= 0; i-- {
		e := log[i]
		actions = append(actions, e.Action+"/"+e.User+"/"+e.Address)
		if strings.Contains(e.Detail, "password!") || strings.Contains(e.Detail, "good long") {
			t.Fatalf("audit holds a password: %+v", e)
		}
	}
	want := []string{"user_add/admin/", "login/ana/10.0.0.5",
		"login_failed/ana/10.0.0.6", "login_failed/ana/10.0.0.6", "login_failed/ana/10.0.0.6",
		"login_locked/ana/10.0.0.6", "login/ana/10.0.0.6", "login_failed/nobody/10.0.0.7", "logout/ana/10.0.0.6"}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Fatalf("audit:\n got %v\nwant %v", actions, want)
	}
	if _, err := rawExec(s, `DELETE FROM audit`); err == nil {
		t.Fatal("audit rows deleted")
	}
	if _, err := rawExec(s, `UPDATE audit SET "user" = 'x'`); err == nil {
		t.Fatal("audit rows updated")
	}

	// Disabling ends the sessions.
	sess, _ = s.Login(ctx, "ana", "a good long password", "", p)
	if err := s.SetUserDisabled(ctx, "admin", "ana", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByToken(ctx, sess.Token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("disabled user's session: %v", err)
	}
	if _, err := s.Login(ctx, "ana", "a good long password", "", p); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("disabled user: %v", err)
	}
}

// Every sign-in costs one password derivation, whoever signs in: an
// unknown name (against a dummy hash), a wrong password, a disabled or a
// locked account, the right password. Nothing in the time taken tells
// whether a name exists.
func TestLoginCostsTheSameForEveryName(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	const good = "a long enough password"
	for _, name := range []string{"ana", "dan", "lia"} {
		if err := s.AddUser(ctx, "test", name, RoleOperator, good); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetUserDisabled(ctx, "test", "dan", true); err != nil {
		t.Fatal(err)
	}
	p := LoginPolicy{MaxFailures: 1, Lockout: time.Hour}
	_, _ = s.Login(ctx, "lia", "wrong", "10.0.0.1", p) // locks lia
	for _, c := range []struct{ name, pw, what string }{
		{"nobody", good, "unknown user"}, {"ana", "wrong", "wrong password"}, {"dan", good, "disabled"},
		{"lia", good, "locked"}, {"ana", good, "right password"},
	} {
		before := passwordChecks.Load()
		_, _ = s.Login(ctx, c.name, c.pw, "10.0.0.1", p)
		if n := passwordChecks.Load() - before; n != 1 {
			t.Errorf("%s: %d password derivations, want 1", c.what, n)
		}
	}
}

func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Caller: "0722000000"}); err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
		}
	}()
	for writes.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	err := s.Backup(ctx, dst)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(ctx, dst); err == nil {
		t.Fatal("backup over an existing file succeeded")
	}
	c, err := OpenReadOnly(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var check string
	c.db.QueryRowContext(context.Background(), `PRAGMA integrity_check`).Scan(&check)
	ts, err := c.ListTickets(ctx, TicketQuery{})
	if check != "ok" || err != nil || len(ts) < 20 {
		t.Fatalf("copy: integrity %q, %d tickets, %v", check, len(ts), err)
	}
}

func TestOutboxResolveSendsSignedWithRetries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DBFile)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Caller: "0722123456", Service: ServicePassport})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Resolve(ctx, tk.Number, "ana", "Programare făcută"); err != nil {
		t.Fatal(err)
	}
	ns, _ := s.Outbox(ctx, tk.Number, true)
	if len(ns) != 1 {
		t.Fatalf("outbox after resolve: %+v", ns)
	}

	secret := []byte("0123456789abcdef-secret")
	var calls atomic.Int32
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := calls.Add(1)
		sig := r.Header.Get(SignatureHeader)
		ts := strings.TrimPrefix(strings.Split(sig, ",")[0], "t=")
		sec, _ := strconv.ParseInt(ts, 10, 64)
		if sig != Sign(secret, time.Unix(sec, 0), body) {
			t.Errorf("bad signature %q", sig)
		}
		if n <= 3 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		bodies = append(bodies, string(body))
		mu.Unlock()
	}))
	defer srv.Close()

	cfg := WebhookConfig{URL: srv.URL, Secret: secret, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Poll: 10 * time.Millisecond}
	// Fail twice, then "crash" (close the store) and restart.
	snd, err := NewSender(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for calls.Load() < 2 {
		if _, err := snd.SendDue(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ns, _ = s.Outbox(ctx, tk.Number, true)
	if len(ns) != 1 || ns[0].Attempts != 2 || !strings.Contains(ns[0].LastError, "503") {
		t.Fatalf("outbox after restart: %+v", ns)
	}
	snd, _ = NewSender(s, cfg)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- snd.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ns, _ = s.Outbox(ctx, tk.Number, false)
		if ns[0].Sent != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if ns[0].Sent == nil || ns[0].Attempts != 4 {
		t.Fatalf("not sent after 4 attempts: %+v (calls %d)", ns[0], calls.Load())
	}
	if len(bodies) != 1 {
		t.Fatalf("delivered %d times", len(bodies))
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(bodies[0]), &p); err != nil {
		t.Fatal(err)
	}
	if p["event"] != "ticket.resolved" || p["ticket"] != tk.Number || p["caller"] != "0722123456" ||
		p["resolution"] != "Programare făcută" || p["service"] != "passport" {
		t.Fatalf("payload %v", p)
	}
	if snd.backoff(1) != 20*time.Millisecond || snd.backoff(2) != 40*time.Millisecond || snd.backoff(5) != 50*time.Millisecond {
		t.Fatalf("backoff %v %v %v", snd.backoff(1), snd.backoff(2), snd.backoff(5))
	}
	if _, err := NewSender(s, WebhookConfig{URL: "ftp://x", Secret: secret}); err == nil {
		t.Fatal("ftp url accepted")
	}

	// Delivered notifications (they hold the caller's number) are deleted
	// after the retention; a pending one never is.
	tk2, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Caller: "0722000111", Service: ServicePassport})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Resolve(ctx, tk2.Number, "ana", "Rezolvat"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeOutbox(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("purge of rows delivered in the last hour: %d, %v; want none", n, err)
	}
	if n, err := s.PurgeOutbox(ctx, time.Now().Add(24*365*time.Hour)); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want the delivered notification only", n, err)
	}
	if ns, _ := s.Outbox(ctx, tk.Number, false); len(ns) != 0 {
		t.Errorf("delivered notification still there: %+v", ns)
	}
	if ns, _ := s.Outbox(ctx, tk2.Number, true); len(ns) != 1 {
		t.Errorf("the pending notification was purged: %+v", ns)
	}
}
