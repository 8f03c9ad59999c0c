package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

const pw = "a long enough password"

type env struct {
	t        *testing.T
	st       *tickets.Store
	srv      *httptest.Server
	ticket   string // opened by the IVR during call-1, with a transcript
	resolved []string
	console  *Console
}

// apiSignIn posts a sign-in to the API and returns the status and headers.
func apiSignIn(t *testing.T, base, name, password string) (int, http.Header) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"name": name, "password": password})
	resp, err := http.Post(base+"/api/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func newEnv(t *testing.T, adjust ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.SQLiteURL(filepath.Join(t.TempDir(), tickets.DBFile)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := tickets.New(db)
	for name, role := range map[string]tickets.Role{"ana": tickets.RoleOperator, "sam": tickets.RoleSpecialist,
		"sue": tickets.RoleSupervisor, "adi": tickets.RoleAdministrator} {
		if err := st.AddUser(ctx, "test", name, role, pw); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.StartCall(ctx, tickets.CallRecord{ID: "call-1", Telephony: "sip", Caller: "+40721555666", Called: "1919"}); err != nil {
		t.Fatal(err)
	}
	for _, tu := range []tickets.Turn{
		{Speaker: tickets.SpeakerIVR, Text: "Cu ce vă pot ajuta?", Mode: tickets.ModeSpeech, Confidence: 1},
		{Speaker: tickets.SpeakerCaller, Text: "pașaportul meu a expirat", Mode: tickets.ModeSpeech, Confidence: 0.9},
	} {
		if err := st.AppendTurn(ctx, "call-1", tu); err != nil {
			t.Fatal(err)
		}
	}
	tk, err := st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "+40721555666", CallID: "call-1", Service: tickets.ServicePassport,
		Description: "wants a new passport <b>urgently</b>", Articles: []string{"kb-passport-renew"},
		Personal: map[string]string{"cnp": "1960101123456"}})
	if err != nil {
		t.Fatal(err)
	}
	old, err := st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "+40721555666", Service: tickets.ServiceIdentityCard, Description: "earlier identity card request"})
	if err != nil {
		t.Fatal(err)
	}
	_ = old
	ix := kb.NewMissTable(db)
	if err := ix.RecordMiss(ctx, "ro", "cât costă o viză pentru <script>x</script>", time.Now()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, ticket: tk.Number}
	cfg := Config{Store: st, Misses: ix, Poll: 20 * time.Millisecond,
		Login:    tickets.LoginPolicy{MaxFailures: 3, Lockout: time.Hour},
		Resolved: func(n string) { e.resolved = append(e.resolved, n) }}
	for _, a := range adjust {
		a(&cfg)
	}
	c, err := New(cfg)
	e.console = c
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(c)
	t.Cleanup(e.srv.Close)
	return e
}

// client is a browser: a cookie jar, no automatic redirects.
type client struct {
	e    *env
	http *http.Client
	csrf string
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) do(method, path string, form url.Values, hdr map[string]string) (int, string, http.Header) {
	c.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, c.e.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindStringSubmatch(string(b)); m != nil && !strings.HasPrefix(path, "/login") {
		c.csrf = m[1]
	}
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) get(path string) (int, string) {
	code, b, _ := c.do("GET", path, nil, nil)
	return code, b
}

// post sends a form with the page's CSRF token (unless form sets one).
func (c *client) post(path string, form url.Values) (int, string) {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", c.csrf)
	}
	code, b, _ := c.do("POST", path, form, nil)
	return code, b
}

func (c *client) login(name, password string) int {
	c.e.t.Helper()
	_, b, _ := c.do("GET", "/login", nil, nil)
	m := csrfRE.FindStringSubmatch(b)
	if m == nil {
		c.e.t.Fatalf("no csrf in the sign-in form: %s", b)
	}
	code, _, _ := c.do("POST", "/login", url.Values{"csrf": {m[1]}, "name": {name}, "password": {password}, "next": {"/"}}, nil)
	if code == http.StatusSeeOther {
		c.get("/") // picks up the session's CSRF token
	}
	return code
}

func (e *env) auditRows(q tickets.AuditQuery) []tickets.AuditEntry {
	e.t.Helper()
	es, err := e.st.AuditLog(context.Background(), q)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

func TestNoSessionIsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	code, _, h := c.do("GET", "/tickets/"+e.ticket, nil, nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/login?next=%2Ftickets%2F"+e.ticket {
		t.Fatalf("page without session: %d %q", code, h.Get("Location"))
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/tickets"}, {"GET", "/api/tickets/" + e.ticket}, {"POST", "/tickets/" + e.ticket + "/note"},
		{"POST", "/api/tickets/" + e.ticket + "/actions"}, {"GET", "/events"}, {"GET", "/api/indicators"}, {"POST", "/logout"},
	} {
		code, body, _ := c.do(r.method, r.path, url.Values{"text": {"x"}}, nil)
		if code != http.StatusUnauthorized || !strings.Contains(body, "sign in") {
			t.Errorf("%s %s without session: %d %s", r.method, r.path, code, body)
		}
	}
	// A forged session cookie is no session.
	u, _ := url.Parse(e.srv.URL)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "forged-token-forged-token-forged-token-1234"}})
	if code, _ := c.get("/api/tickets"); code != http.StatusUnauthorized {
		t.Fatalf("forged cookie: %d", code)
	}
	if code, _, _ := c.do("GET", "/api/tickets", nil, map[string]string{"Authorization": "Bearer nope"}); code != http.StatusUnauthorized {
		t.Fatalf("forged bearer: %d", code)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	if code := c.login("ana", pw); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	note := "/tickets/" + e.ticket + "/note"
	if code, _ := c.post(note, url.Values{"text": {"no token"}, "csrf": {""}}); code != http.StatusForbidden {
		t.Fatalf("missing CSRF: %d", code)
	}
	if code, _ := c.post(note, url.Values{"text": {"forged"}, "csrf": {strings.Repeat("A", 43)}}); code != http.StatusForbidden {
		t.Fatalf("forged CSRF: %d", code)
	}
	// The right token from another site's page (Origin) is refused too.
	form := url.Values{"text": {"cross-site"}, "csrf": {c.csrf}}
	if code, _, _ := c.do("POST", note, form, map[string]string{"Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Fatalf("cross-origin: %d", code)
	}
	// The API with a cookie needs the header.
	if code, _, _ := c.do("POST", "/api/tickets/"+e.ticket+"/actions", nil, map[string]string{"Content-Type": "application/json"}); code != http.StatusForbidden {
		t.Fatalf("API without CSRF header: %d", code)
	}
	// Sign-out is state-changing too.
	if code, _ := c.post("/logout", url.Values{"csrf": {"x"}}); code != http.StatusForbidden {
		t.Fatalf("logout with a forged token: %d", code)
	}
	h, _ := e.st.History(context.Background(), e.ticket)
	if len(h) != 1 {
		t.Fatalf("a refused request changed the ticket: %+v", h)
	}
	if code, _ := c.post(note, url.Values{"text": {"with the token"}}); code != http.StatusSeeOther {
		t.Fatalf("with CSRF: %d", code)
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "csrf_refused", User: "ana"}); len(got) != 5 {
		t.Fatalf("csrf_refused audit rows: %d, want 5", len(got))
	}
	// The sign-in form has its own token.
	c2 := e.client()
	code, _, _ := c2.do("POST", "/login", url.Values{"name": {"ana"}, "password": {pw}}, nil)
	if code != http.StatusForbidden {
		t.Fatalf("sign-in without the form's token: %d", code)
	}
	if code, _ := c.post("/logout", nil); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := c.get("/api/tickets"); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t)
	op := e.client()
	op.login("ana", pw)
	for _, p := range []string{"/dashboard", "/dashboard.csv", "/api/indicators", "/kb/misses", "/api/kb/misses"} {
		if code, _ := op.get(p); code != http.StatusForbidden {
			t.Errorf("operator GET %s: %d, want 403", p, code)
		}
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "forbidden", User: "ana"}); len(got) != 5 {
		t.Fatalf("forbidden audit rows: %d", len(got))
	}
	sup := e.client()
	sup.login("sue", pw)
	if code, body := sup.get("/dashboard"); code != http.StatusOK || !strings.Contains(body, `id="indicators"`) {
		t.Fatalf("supervisor dashboard: %d", code)
	}
	if code, body := sup.get("/kb/misses"); code != http.StatusOK || !strings.Contains(body, "&lt;script&gt;") || strings.Contains(body, "<script>x") {
		t.Fatalf("misses page: %d %s", code, body)
	}
	// The supervisor reads tickets without personal data and cannot edit.
	code, body := sup.get("/tickets/" + e.ticket)
	for _, bad := range []string{"40721555666", "urgently", "pașaportul", "/note", "earlier identity card", "1960101123456"} {
		if strings.Contains(body, bad) {
			t.Errorf("supervisor ticket page shows %q", bad)
		}
	}
	if code != http.StatusOK || !strings.Contains(body, "********666") {
		t.Fatalf("supervisor ticket page: %d\n%s", code, body)
	}
	if code, _ := sup.post("/tickets/"+e.ticket+"/escalate", url.Values{"level": {"2"}}); code != http.StatusForbidden {
		t.Fatalf("supervisor escalates: %d", code)
	}
	for _, p := range []string{"/api/tickets", "/api/tickets/" + e.ticket} {
		_, body, _ = sup.do("GET", p, nil, nil)
		if strings.Contains(body, "40721555666") || strings.Contains(body, "urgently") || strings.Contains(body, "1960101123456") {
			t.Fatalf("API %s shows personal data to the supervisor: %s", p, body)
		}
	}
	// The operator sees it all.
	code, body = op.get("/tickets/" + e.ticket)
	if code != http.StatusOK || !strings.Contains(body, "40721555666") || !strings.Contains(body, "pașaportul meu a expirat") || !strings.Contains(body, "1960101123456") ||
		!strings.Contains(body, "earlier identity card request") || !strings.Contains(body, "kb-passport-renew") {
		t.Fatalf("operator ticket page: %d\n%s", code, body)
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "ticket_view", Target: e.ticket}); len(got) != 3 {
		t.Fatalf("ticket_view audit rows: %d, want 3", len(got))
	}
}

// Notes and every other text an operator writes hold what callers say:
// the supervisor (no personal-data rights) reads them masked, on the page
// and through the API; the operator reads them whole.
func TestNotesMaskedForSupervisor(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	note := "CNP 1900101456781, phone 0721123456, mail ion.popescu@example.ro"
	if err := e.st.AddNote(ctx, e.ticket, "ana", note); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Resolve(ctx, e.ticket, "ana", "called back on 0721123456"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Reopen(ctx, e.ticket, "ana", "caller 0721123456 asked again"); err != nil {
		t.Fatal(err)
	}
	sup := e.client()
	sup.login("sue", pw)
	_, page := sup.get("/tickets/" + e.ticket)
	_, api, _ := sup.do("GET", "/api/tickets/"+e.ticket, nil, nil)
	for where, body := range map[string]string{"page": page, "API": api} {
		for _, secret := range []string{"1900101456781", "0721123456", "popescu"} {
			if strings.Contains(body, secret) {
				t.Errorf("the supervisor's %s shows %q", where, secret)
			}
		}
		if !strings.Contains(body, "CNP **********781, phone *******456") {
			t.Errorf("the supervisor's %s lacks the masked note", where)
		}
	}
	op := e.client()
	op.login("ana", pw)
	if _, body := op.get("/tickets/" + e.ticket); !strings.Contains(body, "phone 0721123456") {
		t.Error("the operator does not read the note whole")
	}
}

// Sign-ins are rationed before any password is hashed: an address that
// signs in too often gets 429 with Retry-After (audited once), and when
// every hashing slot stays taken a sign-in gets 503 with Retry-After
// instead of queueing without end.
func TestSignInRationed(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LoginRate = 4 })
	c := e.client()
	codes := map[int]int{}
	var hdr http.Header
	for range 7 {
		code, h := apiSignIn(t, e.srv.URL, "nobody", "wrong password")
		codes[code]++
		if code == http.StatusTooManyRequests {
			hdr = h
		}
	}
	if codes[http.StatusUnauthorized] != 4 || codes[http.StatusTooManyRequests] != 3 {
		t.Fatalf("7 sign-ins from one address at 4 a minute: %v", codes)
	}
	if ra, _ := strconv.Atoi(hdr.Get("Retry-After")); ra < 1 || ra > 15 {
		t.Errorf("429 Retry-After %q, want the seconds until the next sign-in (about 15)", hdr.Get("Retry-After"))
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "login_throttled"}); len(got) != 1 {
		t.Errorf("%d login_throttled audit rows, want 1 (once a minute per address)", len(got))
	}
	// The form too.
	if code := c.login("ana", pw); code != http.StatusTooManyRequests {
		t.Errorf("form sign-in beyond the rate: %d", code)
	}

	// One hashing slot, a short wait: of 12 concurrent sign-ins, those
	// that do not get the slot in time are told to come back.
	e2 := newEnv(t, func(c *Config) { c.LoginRate, c.HashConcurrency, c.HashWait = 1000, 1, 30*time.Millisecond })
	var mu sync.Mutex
	got := map[int]int{}
	var retry string
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			code, h := apiSignIn(t, e2.srv.URL, "ana", "wrong password")
			mu.Lock()
			got[code]++
			if code == http.StatusServiceUnavailable {
				retry = h.Get("Retry-After")
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[http.StatusServiceUnavailable] == 0 || retry != "1" || got[http.StatusServiceUnavailable]+got[http.StatusUnauthorized]+got[http.StatusForbidden] != 12 {
		t.Errorf("12 concurrent sign-ins, one hashing slot: %v (Retry-After %q)", got, retry)
	}
	if n := e2.console.SignIns()["busy"]; n != uint64(got[http.StatusServiceUnavailable]) {
		t.Errorf("busy sign-ins counted %d, answered %d", n, got[http.StatusServiceUnavailable])
	}
}

// When an agent's SIP phone registers from a new address while its
// registration from another is active (the registrar audits it), the
// agent sees it on every page and in /api/me, and so do administrators;
// other users do not.
func TestRegistrationFromNewAddressShown(t *testing.T) {
	e := newEnv(t)
	if err := e.st.Audit(context.Background(), tickets.AuditEntry{User: "ana", Action: tickets.AuditRegisterNewAddress, Target: "sip",
		Address: "203.0.113.9", OK: true, Detail: "registered from 203.0.113.9 while registered from 10.0.0.5: calls now go to the new address"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"ana": true, "adi": true, "sam": false, "sue": false} {
		c := e.client()
		c.login(name, pw)
		_, body := c.get("/")
		if shown := strings.Contains(body, `id="moved"`) && strings.Contains(body, "203.0.113.9"); shown != want {
			t.Errorf("%s's queue page shows the new-address registration: %v, want %v", name, shown, want)
		}
	}
	c := e.client()
	c.login("ana", pw)
	_, body, _ := c.do("GET", "/api/me", nil, nil)
	var me struct {
		Moved []tickets.AuditEntry `json:"registrations_moved"`
	}
	if err := json.Unmarshal([]byte(body), &me); err != nil || len(me.Moved) != 1 || me.Moved[0].Address != "203.0.113.9" {
		t.Errorf("/api/me: %v %s", err, body)
	}
}

func TestLockoutAndFailedLoginAudited(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	for i := range 3 {
		if code := c.login("ana", "wrong password "+string(rune('a'+i))); code != http.StatusUnauthorized {
			t.Fatalf("wrong password #%d: %d", i+1, code)
		}
	}
	if code := c.login("ana", pw); code != http.StatusForbidden {
		t.Fatalf("locked account with the right password: %d", code)
	}
	_, body, _ := c.do("GET", "/login", nil, nil)
	_ = body
	fails := e.auditRows(tickets.AuditQuery{Action: "login_failed", User: "ana"})
	locked := e.auditRows(tickets.AuditQuery{Action: "login_locked", User: "ana"})
	if len(fails) != 3 || len(locked) != 1 || fails[0].Address != "127.0.0.1" {
		t.Fatalf("audit: %+v %+v", fails, locked)
	}
	for _, f := range fails {
		if strings.Contains(f.Detail, "wrong password a") || strings.Contains(f.Detail, "wrong password b") {
			t.Fatal("the audit log holds the typed password")
		}
	}
	// A script is refused the same way.
	code, _, _ := c.do("POST", "/api/login", nil, nil)
	if code != http.StatusBadRequest {
		t.Fatalf("api login without body: %d", code)
	}
}

func TestEveryActionThroughTheStoreAndAudited(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("ana", pw)
	base := "/tickets/" + e.ticket + "/"
	steps := []struct {
		action string
		form   url.Values
		code   int
	}{
		{"note", url.Values{"text": {"called back"}}, 303},
		{"classify", url.Values{"service": {"passport"}, "code": {"P-12"}}, 303},
		{"priority", url.Values{"priority": {"high"}}, 303},
		{"take", nil, 303},
		{"status", url.Values{"status": {"waiting"}}, 303},
		{"escalate", url.Values{"level": {"2"}}, 303},
		{"escalate", url.Values{"level": {"1"}}, 409},
		{"assign", url.Values{"assignee": {"sam"}}, 303},
		{"resolve", url.Values{"text": {""}}, 409},
		{"resolve", url.Values{"text": {"new passport booked"}}, 303},
		{"close", nil, 303},
		{"note", url.Values{"text": {""}}, 400},
		{"reopen", url.Values{"text": {"citizen called again"}}, 303},
		{"explode", nil, 400},
	}
	for _, s := range steps {
		code, body := c.post(base+s.action, s.form)
		if code != s.code {
			t.Fatalf("%s %v: %d, want %d\n%s", s.action, s.form, code, s.code, body)
		}
		if code >= 400 && !strings.Contains(body, `id="error"`) {
			t.Fatalf("%s refused without a message", s.action)
		}
	}
	h, _ := e.st.History(context.Background(), e.ticket)
	var kinds []string
	for _, ev := range h[1:] {
		if ev.Actor != "ana" {
			t.Fatalf("event %d by %q, want ana", ev.ID, ev.Actor)
		}
		kinds = append(kinds, string(ev.Kind))
	}
	want := "note classified prioritized assigned status escalated assigned resolved closed reopened"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("history %v\nwant %s", kinds, want)
	}
	tk, _ := e.st.Ticket(context.Background(), e.ticket)
	if tk.Level != 2 || tk.Assignee != "sam" || tk.Priority != tickets.PriorityHigh || tk.Classification != "P-12" {
		t.Fatalf("ticket %+v", tk)
	}
	if len(e.resolved) != 1 || e.resolved[0] != e.ticket {
		t.Fatalf("Resolved hook: %v", e.resolved)
	}
	if ns, _ := e.st.Outbox(context.Background(), e.ticket, true); len(ns) != 1 {
		t.Fatalf("outbox: %+v", ns)
	}
	rows := e.auditRows(tickets.AuditQuery{User: "ana", Target: e.ticket})
	var acts []string
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].Action == "ticket_view" {
			continue
		}
		a := rows[i].Action
		if !rows[i].OK {
			a += "!"
		}
		acts = append(acts, a)
	}
	wantAudit := "ticket_note ticket_classify ticket_priority ticket_take ticket_status ticket_escalate ticket_escalate! ticket_assign " +
		"ticket_resolve! ticket_resolve ticket_close ticket_note! ticket_reopen ticket_unknown_action!"
	if strings.Join(acts, " ") != wantAudit {
		t.Fatalf("audit %v\nwant %s", acts, wantAudit)
	}
}

func TestInjectionStoredAndShownEscaped(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("ana", pw)
	evil := `<script>alert(1)</script>"><img src=x onerror=alert(2)>' OR '1'='1'; DROP TABLE tickets;--`
	base := "/tickets/" + e.ticket + "/"
	for _, s := range []struct {
		action string
		form   url.Values
	}{
		{"note", url.Values{"text": {evil}}},
		{"classify", url.Values{"service": {"passport"}, "code": {evil}}},
		{"assign", url.Values{"assignee": {evil[:60]}}},
		{"status", url.Values{"status": {evil}}},
		{"priority", url.Values{"priority": {evil}}},
	} {
		c.post(base+s.action, s.form)
	}
	tk, err := e.st.Ticket(context.Background(), e.ticket)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Classification != evil || tk.Assignee != strings.TrimSpace(evil[:60]) {
		t.Fatalf("not stored as typed: %q %q", tk.Classification, tk.Assignee)
	}
	h, _ := e.st.History(context.Background(), e.ticket)
	if h[1].Data.Text != evil {
		t.Fatalf("note stored as %q", h[1].Data.Text)
	}
	for _, p := range []string{"/tickets/" + e.ticket, "/?view=all", "/?view=all&q=" + url.QueryEscape(evil), "/?q=" + url.QueryEscape("' OR 1=1 --")} {
		code, body := c.get(p)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", p, code)
		}
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Fatalf("GET %s shows the script raw", p)
		}
	}
	_, body := c.get("/tickets/" + e.ticket)
	if !strings.Contains(body, html.EscapeString("<script>alert(1)</script>")) && !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatal("the note is not shown (escaped)")
	}
	// The list search is not SQL: a quote finds nothing and breaks nothing.
	if _, b := c.get("/?view=all&q=" + url.QueryEscape("' OR 1=1 --")); !strings.Contains(b, "Nicio solicitare nu corespunde.") {
		t.Fatal("SQL in the search matched tickets")
	}
	// The sign-in form echoes the name escaped.
	c2 := e.client()
	_, lb, _ := c2.do("GET", "/login", nil, nil)
	tok := csrfRE.FindStringSubmatch(lb)[1]
	_, lb, _ = c2.do("POST", "/login", url.Values{"csrf": {tok}, "name": {`"><script>alert(3)</script>`}, "password": {"x"}}, nil)
	if strings.Contains(lb, "<script>alert(3)") {
		t.Fatal("sign-in echoes the name raw")
	}
	// JSON escapes too, and the store still has its tables.
	_, jb, _ := c.do("GET", "/api/tickets/"+e.ticket, nil, nil)
	if strings.Contains(jb, "<script>") {
		t.Fatal("API returns raw <script>")
	}
	if _, err := e.st.ListTickets(context.Background(), tickets.TicketQuery{}); err != nil {
		t.Fatal(err)
	}
	// Security headers.
	_, _, hdr := c.do("GET", "/", nil, nil)
	if !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") || hdr.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("headers %v", hdr)
	}
}

func TestAPI(t *testing.T) {
	e := newEnv(t)
	call := func(method, path, token, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, m := call("POST", "/api/login", "", `{"name":"ana","password":"nope nope nope"}`)
	if code != http.StatusUnauthorized {
		t.Fatalf("api login wrong password: %d %v", code, m)
	}
	code, m = call("POST", "/api/login", "", `{"name":"ana","password":"`+pw+`"}`)
	if code != http.StatusOK {
		t.Fatalf("api login: %d %v", code, m)
	}
	tok := m["token"].(string)
	code, m = call("GET", "/api/tickets?status=new", tok, "")
	if code != http.StatusOK || len(m["tickets"].([]any)) != 2 {
		t.Fatalf("list: %d %v", code, m)
	}
	if code, m = call("GET", "/api/tickets?status=bogus", tok, ""); code != http.StatusBadRequest {
		t.Fatalf("bad status: %d %v", code, m)
	}
	code, m = call("GET", "/api/tickets/"+e.ticket, tok, "")
	if code != http.StatusOK || len(m["transcript"].([]any)) != 2 || len(m["earlier"].([]any)) != 1 {
		t.Fatalf("show: %d %v", code, m)
	}
	if code, _ = call("GET", "/api/tickets/12345678", tok, ""); code != http.StatusNotFound {
		t.Fatalf("unknown ticket: %d", code)
	}
	code, m = call("POST", "/api/tickets/"+e.ticket+"/actions", tok, `{"action":"escalate","level":3}`)
	if code != http.StatusOK || m["ticket"].(map[string]any)["level"].(float64) != 3 {
		t.Fatalf("escalate: %d %v", code, m)
	}
	if code, m = call("POST", "/api/tickets/"+e.ticket+"/actions", tok, `{"action":"close"}`); code != http.StatusConflict {
		t.Fatalf("close an open ticket: %d %v", code, m)
	}
	if code, _ = call("POST", "/api/tickets/"+e.ticket+"/actions", tok, `{"action":"note","evil":1}`); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", code)
	}
	if code, _ = call("GET", "/api/indicators", tok, ""); code != http.StatusForbidden {
		t.Fatalf("operator indicators: %d", code)
	}
	_, m = call("POST", "/api/login", "", `{"name":"sue","password":"`+pw+`"}`)
	stok := m["token"].(string)
	code, m = call("GET", "/api/indicators?from=2000-01-01&to=2100-01-01", stok, "")
	if code != http.StatusOK || m["report"].(map[string]any)["total"].(map[string]any)["requests"].(float64) != 2 {
		t.Fatalf("indicators: %d %v", code, m)
	}
	if code, _ = call("GET", "/api/indicators?from=yesterday", stok, ""); code != http.StatusBadRequest {
		t.Fatalf("bad period: %d", code)
	}
	if code, _ = call("POST", "/api/logout", stok, ""); code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	if code, _ = call("GET", "/api/me", stok, ""); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
}

func TestDashboardCSV(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.st.Resolve(ctx, e.ticket, "ana", "done"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Rate(ctx, e.ticket, "ivr", 4); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.login("sue", pw)
	code, body, hdr := c.do("GET", "/dashboard.csv", nil, nil)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %v", code, hdr)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 1+len(tickets.Services)+1 {
		t.Fatalf("csv rows: %d %v", len(recs), err)
	}
	col := func(name string) int {
		for i, h := range recs[0] {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	pass := recs[1+1] // passport is the second service
	total := recs[len(recs)-1]
	if pass[col("service")] != "passport" || pass[col("requests")] != "1" || pass[col("resolved")] != "1" ||
		pass[col("ratings")] != "1" || pass[col("avg_rating")] != "4.0000" || total[col("requests")] != "2" || total[col("service")] != "total" {
		t.Fatalf("csv:\n%s", body)
	}
	if len(e.auditRows(tickets.AuditQuery{Action: "dashboard_export", User: "sue"})) != 1 {
		t.Fatal("export not audited")
	}
}

func TestLiveEvents(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("ana", pw)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/events", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %v", resp.StatusCode, resp.Header)
	}
	events := make(chan [2]string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var ev string
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.HasPrefix(l, "event: "):
				ev = l[7:]
			case strings.HasPrefix(l, "data: "):
				events <- [2]string{ev, l[6:]}
			}
		}
		close(events)
	}()
	time.Sleep(100 * time.Millisecond) // the stream has taken its cursor
	st := e.st
	if err := st.AppendTurn(ctx, "call-1", tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "vreau un operator", Mode: tickets.ModeSpeech, Confidence: 0.8}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddNote(ctx, e.ticket, "sam", "looking"); err != nil {
		t.Fatal(err)
	}
	if err := st.AddEvent(ctx, "call-1", tickets.CallEvent{Kind: BridgedEvent, Detail: `{"agent":"ana"}`}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for len(seen) < 3 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended; seen %v", seen)
			}
			seen[ev[0]] = ev[1]
		case <-ctx.Done():
			t.Fatalf("timeout; seen %v", seen)
		}
	}
	if !strings.Contains(seen["turn"], "vreau un operator") || !strings.Contains(seen["ticket"], `"actor":"sam"`) ||
		!strings.Contains(seen["pop"], "/pop?call=call-1") {
		t.Fatalf("events %v", seen)
	}
	code, _, h := c.do("GET", "/pop?call=call-1", nil, nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/tickets/"+e.ticket {
		t.Fatalf("pop: %d %v", code, h.Get("Location"))
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.login("ana", pw)
	con := e.srv.Config.Handler.(*Console)
	resp, err := c.http.Get(e.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); close(done) }()
	con.Shutdown()
	con.Shutdown()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream outlived Shutdown")
	}
}

// An old open ticket stays in the queue behind many newer resolved ones.
func TestQueueKeepsOldOpenTickets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for range 30 {
		tk, err := e.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.Resolve(ctx, tk.Number, "ana", "done"); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client()
	c.login("ana", pw)
	_, body := c.get("/?limit=5")
	if !strings.Contains(body, e.ticket) || strings.Count(body, `data-href="/tickets/`) != 2 {
		t.Fatalf("queue:\n%s", body)
	}
}

// Resolved in the console, the citizen's notification leaves through the
// webhook, signed.
func TestResolveNotifiesThroughWebhook(t *testing.T) {
	e := newEnv(t)
	got := make(chan string, 4)
	secret := []byte("a shared secret of the gateway")
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sig := r.Header.Get(tickets.SignatureHeader)
		var ts int64
		fmtOK := strings.HasPrefix(sig, "t=")
		if fmtOK {
			for _, ch := range strings.TrimPrefix(strings.SplitN(sig, ",", 2)[0], "t=") {
				ts = ts*10 + int64(ch-'0')
			}
		}
		if !fmtOK || sig != tickets.Sign(secret, time.Unix(ts, 0), b) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		got <- string(b)
	}))
	defer gw.Close()
	snd, err := tickets.NewSender(e.st, tickets.WebhookConfig{URL: gw.URL, Secret: secret, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- snd.Run(ctx) }()
	defer func() { cancel(); <-done }()
	con, _ := New(Config{Store: e.st, Resolved: func(string) { snd.Kick() }})
	srv := httptest.NewServer(con)
	defer srv.Close()
	e.srv = srv
	c := e.client()
	c.login("ana", pw)
	time.Sleep(50 * time.Millisecond) // the sender is idle, waiting an hour
	if code, _ := c.post("/tickets/"+e.ticket+"/resolve", url.Values{"text": {"programare făcută"}}); code != http.StatusSeeOther {
		t.Fatalf("resolve: %d", code)
	}
	select {
	case b := <-got:
		if !strings.Contains(b, e.ticket) || !strings.Contains(b, "programare făcută") || !strings.Contains(b, "+40721555666") {
			t.Fatalf("notification %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
}

// The dashboard of the whole line shows the survey calls' response rate
// and the pending callbacks with their attempts.
func TestDashboardShowsCallbacksAndSurveys(t *testing.T) {
	var cbs queue.Callbacks
	e := newEnv(t, func(c *Config) {
		db, err := store.Open(context.Background(), store.SQLiteURL(c.Store.Path()), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		cbs = queue.Callbacks{DB: db}
		c.Callbacks = cbs
	})
	ctx := context.Background()
	c := e.client()
	c.login("sue", pw)
	if code, body := c.get("/dashboard"); code != http.StatusOK || !strings.Contains(body, `id="no-callbacks"`) || !strings.Contains(body, `id="surveys"`) {
		t.Fatalf("dashboard without callbacks: %d\n%s", code, body)
	}
	id, err := cbs.Add(ctx, queue.Callback{Queue: "level1", Number: "+40721555666", Lang: "ro", Ticket: e.ticket, CallID: "call-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cbs.Attempted(ctx, id, "busy", queue.CallbackPending); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.st.SurveyStarted(ctx, e.ticket, "+40721555666", time.Hour, time.Now()); err != nil || !ok {
		t.Fatalf("survey: %v %v", ok, err)
	}
	if err := e.st.SurveyEnded(ctx, e.ticket, tickets.SurveyRated); err != nil {
		t.Fatal(err)
	}
	code, body := c.get("/dashboard")
	if code != http.StatusOK {
		t.Fatalf("dashboard: %d", code)
	}
	i := strings.Index(body, `id="callbacks"`)
	if i < 0 || !strings.Contains(body[i:], e.ticket) || !strings.Contains(body[i:], "busy") {
		t.Errorf("the pending callback (ticket %s, last attempt busy) is not on the dashboard:\n%s", e.ticket, body)
	}
	if strings.Contains(body, "+40721555666") {
		t.Error("the callback's number is on the dashboard")
	}
	// The agents see it under their queue, with their provider's tickets.
	ana := e.client()
	ana.login("ana", pw)
	if code, body := ana.get("/"); code != http.StatusOK || !strings.Contains(body, `id="callbacks"`) || !strings.Contains(body[strings.Index(body, `id="callbacks"`):], e.ticket) {
		t.Errorf("the agent's queue page shows no pending callback for %s: %d", e.ticket, code)
	}
	j := strings.Index(body, `id="surveys"`)
	if j < 0 || !strings.Contains(body[j:j+300], "100") {
		t.Errorf("the survey response rate (1 of 1) is not on the dashboard:\n%s", body[j:])
	}
}
