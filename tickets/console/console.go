// Package console is the agents' web console: sign-in (a password, or
// the government's SAML 2.0 identity provider, MPass: saml.go), the live queue of
// tickets, the ticket screen (history, transcript, cited articles, the
// caller's earlier tickets) with its actions, the call's recording (read
// from this engine's disk, or fetched from the engine that took the call:
// recordings.go), the supervisor's dashboard with CSV export, the
// knowledge base misses, and a JSON API under /api/ (docs/console.md).
//
// Pages are rendered on the server (html/template escapes every value)
// in the user's language, Romanian by default or English as each user
// chooses (catalog.go: every text from catalog/ro.toml and en.toml; dates
// and numbers written the language's way), with a little vanilla
// JavaScript for keyboard shortcuts and live updates
// (server-sent events); templates and assets are embedded in the binary.
//
// Security: a session cookie (HttpOnly, SameSite=Strict) or, for scripts,
// a bearer token; a per-session CSRF token on every state-changing request;
// a role check on every route; every action, every ticket view, every
// recording played, every refusal and every failed sign-in is written to
// the store's audit log.
// Caller numbers, descriptions and transcripts are shown only to the agent
// roles; the supervisor sees them masked. Every user works for one
// provider and reaches only its tickets (providers.go); the national
// monitor sees every provider's indicators and no ticket.
//
// A Console is an http.Handler, safe for concurrent use. It starts no
// goroutine of its own: the server that mounts it owns the request
// goroutines; a live-update stream ends when its request's context does or
// when Shutdown is called.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/limit"
	"github.com/govline/ivr/tickets"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// MissLister lists the questions the knowledge base did not answer
// confidently (*kb.Index implements it). It must be safe for concurrent use.
type MissLister interface {
	Misses(ctx context.Context, since time.Time) ([]kb.Miss, error)
}

// CallbackLister lists the queued callbacks (queue.Callbacks implements
// it): state "pending" oldest first, at most limit. It must be safe for
// concurrent use.
type CallbackLister interface {
	List(ctx context.Context, state string, limit int) ([]queue.Callback, error)
}

// Config configures a Console.
type Config struct {
	// Store is the ticket store; required.
	Store *tickets.Store
	// Misses lists the knowledge base misses; nil hides the page.
	Misses MissLister
	// Callbacks lists the pending callbacks for the dashboard; nil hides
	// them.
	Callbacks CallbackLister
	// Login is the lockout and session policy (zero: the defaults).
	Login tickets.LoginPolicy
	// Sign-in protection, before any password is checked: LoginRate
	// sign-ins a minute per client address (429 beyond), HashConcurrency
	// password checks at once, each sign-in waiting at most HashWait for
	// its turn (503 beyond). Zero: DefaultLoginRate, DefaultHashConcurrency,
	// DefaultHashWait.
	LoginRate       int
	HashConcurrency int
	HashWait        time.Duration
	// SecureCookie sets the Secure flag on cookies: set it whenever the
	// console is reached over HTTPS (directly or behind a TLS proxy).
	SecureCookie bool
	// Resolved, if set, is called after a ticket is resolved through the
	// console (for example tickets.Sender.Kick). It must not block.
	Resolved func(number string)
	// Email sends an agent's answer to a ticket that came by e-mail, in
	// its thread (channels/email.Answerer); nil when the e-mail channel is
	// off: the ticket screen then has no answer form.
	Email EmailAnswerer
	// Chat sends an agent's message to the citizen whose web chat opened
	// a ticket (channels/chat.Server); nil when the chat is off: the
	// ticket screen then has no chat form.
	Chat ChatAnswerer
	// Poll is how often the live-update streams look for news (default 1 s).
	Poll time.Duration
	// Logger receives errors (never personal data); nil means slog.Default().
	Logger *slog.Logger

	// Recordings (recordings.go). Engine is this engine's name (the
	// calls' Engine; "" on a line of one engine). RecordingsDir, if set,
	// is the folder this engine's recordings are in: a path outside it is
	// never served. Peers maps another engine's name to its console's
	// base URL ("http://10.0.0.12:8081"), where this console fetches the
	// recordings that engine keeps; PeerSecret, shared by the engines,
	// signs those requests and enables this engine's own
	// /internal/recordings/ (empty: no engine-to-engine fetch at all).
	Engine        string
	RecordingsDir string
	Peers         map[string]string
	PeerSecret    []byte
	// PeerClient fetches from the other engines (nil: connections time
	// out after 3 s, headers after 10 s, the body streams unbounded).
	PeerClient *http.Client

	// SAML, if set, lets staff sign in through the government's SAML 2.0
	// identity provider (MPass; saml.go): the sign-in page shows the
	// button. Login.BreakGlass then may limit password sign-in to the
	// break-glass accounts.
	SAML *SAMLConfig
}

// Console is the web console; mount it at the root of its listener.
type Console struct {
	cfg  Config
	st   *tickets.Store
	log  *slog.Logger
	cat  map[string]*msgs                         // by language
	tpl  map[string]map[string]*template.Template // by language, then page
	mux  *http.ServeMux
	stat http.Handler
	// stop is closed by Shutdown: the live-update streams return.
	stop     chan struct{}
	stopOnce sync.Once

	peerClient    *http.Client
	saml          *samlSP // nil: no SAML sign-in
	gate          *gate
	throttleAudit *limit.Every // login_throttled audited once a minute per address
}

// Shutdown ends the live-update streams (which never go idle on their own),
// so that http.Server.Shutdown can finish: register it with
// srv.RegisterOnShutdown(console.Shutdown). Safe to call more than once.
func (c *Console) Shutdown() { c.stopOnce.Do(func() { close(c.stop) }) }

const (
	sessionCookie = "ivr_session"
	loginCookie   = "ivr_login" // double-submit CSRF token of the sign-in form
	langCookie    = "ivr_lang"  // the language of the sign-in page: the last one chosen or signed in with
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "csrf"
)

// New checks cfg and returns the console.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil {
		return nil, errors.New("console: config: Store is required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cat, err := catalogs()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, st: cfg.Store, log: cfg.Logger.With("component", "console"), cat: cat,
		tpl: map[string]map[string]*template.Template{}, stop: make(chan struct{}),
		gate: newGate(cfg), throttleAudit: limit.NewEvery(time.Minute, 0)}
	for _, lang := range tickets.Langs {
		if c.tpl[lang], err = parseTemplates(cat[lang]); err != nil {
			return nil, err
		}
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c.stat = http.StripPrefix("/static/", http.FileServerFS(sub))
	c.peerClient = cfg.PeerClient
	if c.peerClient == nil {
		c.peerClient = &http.Client{Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   4,
		}}
	}
	if cfg.SAML != nil {
		if c.saml, err = newSAML(cfg.SAML, cfg.Store); err != nil {
			return nil, err
		}
	}
	c.routes()
	return c, nil
}

// pages are the templates, each with base.html.
var pages = []string{"login", "queue", "ticket", "dashboard", "misses", "error"}

// parseTemplates parses the pages with the functions of m's language.
func parseTemplates(m *msgs) (map[string]*template.Template, error) {
	base, err := template.New("base").Funcs(funcsFor(m)).ParseFS(templateFS, "templates/base.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, page := range pages {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", page, err)
		}
		out[page] = t
	}
	return out, nil
}

// msgs returns the texts of r's language: the signed-in user's choice,
// else (the sign-in page, a refusal before sign-in) the language cookie,
// else Romanian. The JSON API always speaks English: see apiMsgs.
func (c *Console) msgs(r *http.Request) *msgs {
	lang := ""
	if s := session(r); s.User.Name != "" {
		lang = s.User.Lang
	} else if ck, err := r.Cookie(langCookie); err == nil {
		lang = ck.Value
	}
	return c.cat[validLang(lang)]
}

// apiMsgs are the texts of the JSON API (for scripts): English.
func (c *Console) apiMsgs() *msgs { return c.cat[tickets.LangEnglish] }

// Role sets.
var (
	allRoles = tickets.Roles
	// ticketReaders see their provider's tickets: every role but the
	// national monitor, who sees indicators only.
	ticketReaders = []tickets.Role{tickets.RoleOperator, tickets.RoleSpecialist, tickets.RoleAdministrator, tickets.RoleSupervisor}
	// editors change tickets and see personal data.
	editors = []tickets.Role{tickets.RoleOperator, tickets.RoleSpecialist, tickets.RoleAdministrator}
	// supervisors see the indicators: their provider's, or every
	// provider's for the monitor.
	supervisors = []tickets.Role{tickets.RoleSupervisor, tickets.RoleMonitor}
	kbReaders   = []tickets.Role{tickets.RoleSupervisor, tickets.RoleAdministrator}
)

// seesPersonalData reports whether role r is shown caller numbers,
// descriptions and transcripts.
func seesPersonalData(r tickets.Role) bool { return slices.Contains(editors, r) }

// EmailAnswerer sends an agent's answer by e-mail: it records the answer
// in the ticket's history and queues it in the ticket's thread in one
// transaction. Safe for concurrent use.
type EmailAnswerer interface {
	AnswerByEmail(ctx context.Context, number, actor, text string) error
}

// ChatAnswerer sends an agent's message to the citizen in the chat that
// opened ticket number, and keeps it in the ticket's transcript; it fails
// when that chat is no longer open. Safe for concurrent use.
type ChatAnswerer interface {
	AnswerInChat(ctx context.Context, number, actor, text string) error
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", c.stat)
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.loginPost)
	if c.saml != nil {
		m.HandleFunc("GET /saml/metadata", c.samlMetadata)
		m.HandleFunc("GET /saml/login", c.samlLogin)
		m.HandleFunc("POST /saml/acs", c.samlACS)
	}
	m.HandleFunc("POST /logout", c.auth(allRoles, c.logoutPost))
	m.HandleFunc("POST /lang", c.auth(allRoles, c.langPost))
	m.HandleFunc("GET /{$}", c.auth(allRoles, c.queuePage))
	m.HandleFunc("GET /tickets/{number}", c.auth(ticketReaders, c.ticketPage))
	m.HandleFunc("POST /tickets/{number}/{action}", c.auth(editors, c.ticketAction))
	m.HandleFunc("GET /tickets/{number}/emails/{id}/attachments/{idx}", c.auth(editors, c.emailAttachment))
	m.HandleFunc("GET /tickets/{number}/emails/{id}/raw", c.auth(editors, c.emailAttachment))
	m.HandleFunc("GET /pop", c.auth(editors, c.popPage))
	m.HandleFunc("GET /dashboard", c.auth(supervisors, c.dashboardPage))
	m.HandleFunc("GET /dashboard.csv", c.auth(supervisors, c.dashboardCSV))
	m.HandleFunc("GET /kb/misses", c.auth(kbReaders, c.missesPage))
	m.HandleFunc("GET /events", c.auth(ticketReaders, c.events))
	// A recording is personal data: the roles that see it.
	m.HandleFunc("GET /calls/{id}/recording", c.auth(editors, c.playRecording))
	m.HandleFunc("GET /internal/recordings/{id}", c.peerRecording)

	m.HandleFunc("POST /api/login", c.apiLogin)
	m.HandleFunc("POST /api/logout", c.auth(allRoles, c.apiLogout))
	m.HandleFunc("GET /api/me", c.auth(allRoles, c.apiMe))
	m.HandleFunc("GET /api/tickets", c.auth(ticketReaders, c.apiTickets))
	m.HandleFunc("GET /api/tickets/{number}", c.auth(ticketReaders, c.apiTicket))
	m.HandleFunc("POST /api/tickets/{number}/actions", c.auth(editors, c.apiAction))
	m.HandleFunc("GET /api/indicators", c.auth(supervisors, c.apiIndicators))
	m.HandleFunc("GET /api/kb/misses", c.auth(kbReaders, c.apiMisses))
	m.HandleFunc("GET /api/calls/{id}/recording", c.auth(editors, c.playRecording))
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
	c.mux = m
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on form posts, which sameOrigin refuses.
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

type ctxKey struct{}

// session returns the request's session (set by auth).
func session(r *http.Request) tickets.Session {
	s, _ := r.Context().Value(ctxKey{}).(tickets.Session)
	return s
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// clientAddr is the address the request came from (the proxy's, behind
// one).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func stateChanging(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// auth wraps h with the session, CSRF and role checks.
func (c *Console) auth(roles []tickets.Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var token string
		bearer := false
		if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
			token, bearer = strings.TrimSpace(strings.TrimPrefix(a, "Bearer ")), true
		} else if ck, err := r.Cookie(sessionCookie); err == nil {
			token = ck.Value
		}
		sess, err := c.st.SessionByToken(ctx, token)
		if err != nil {
			if !errors.Is(err, tickets.ErrNotFound) {
				c.log.Error("session lookup", "err", err)
				c.refuse(w, r, http.StatusServiceUnavailable, "error.database")
				return
			}
			if isAPI(r) || r.URL.Path == "/events" || stateChanging(r.Method) {
				apiError(w, http.StatusUnauthorized, c.apiMsgs().T("error.signin"))
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		// A refusal from here on speaks the user's language.
		r = r.WithContext(context.WithValue(ctx, ctxKey{}, sess))
		// A bearer token is not sent by browsers on their own, so it needs
		// no CSRF token; a cookie does.
		if stateChanging(r.Method) && !bearer {
			got := r.Header.Get(csrfHeader)
			if got == "" {
				got = r.PostFormValue(csrfField)
			}
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) != 1 || !sameOrigin(r) {
				c.audit(ctx, tickets.AuditEntry{User: sess.User.Name, Action: "csrf_refused", Target: r.URL.Path, Address: clientAddr(r)})
				c.refuse(w, r, http.StatusForbidden, "error.csrf")
				return
			}
		}
		if !slices.Contains(roles, sess.User.Role) {
			c.audit(ctx, tickets.AuditEntry{User: sess.User.Name, Action: "forbidden", Target: r.Method + " " + r.URL.Path, Address: clientAddr(r)})
			c.refuse(w, r, http.StatusForbidden, "error.forbidden", string(sess.User.Role))
			return
		}
		h(w, r)
	}
}

// sameOrigin refuses a cross-site request whose Origin header names
// another host (a second line of defence behind the CSRF token).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// refuse answers a refused request with the catalog's text id (args
// fill its %s): JSON in English for the API, a page in the user's
// language otherwise.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, code int, id string, args ...any) {
	if isAPI(r) || r.URL.Path == "/events" {
		apiError(w, code, c.apiMsgs().T(id, args...))
		return
	}
	m := c.msgs(r)
	title := "error." + strconv.Itoa(code)
	if !m.has(title) {
		title = "error.title"
	}
	c.render(w, r, code, "error", map[string]any{"Title": m.T(title), "Message": m.T(id, args...)})
}

// audit writes e, logging (not failing) when the store refuses.
func (c *Console) audit(ctx context.Context, e tickets.AuditEntry) {
	if err := c.st.Audit(context.WithoutCancel(ctx), e); err != nil {
		c.log.Error("audit", "entry", e, "err", err)
	}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// page is what every template receives.
type page struct {
	Title   string
	Path    string // the page's path and query, where a change of language returns
	User    tickets.User
	CSRF    string
	Nav     string
	PII     bool // the user sees personal data
	Now     time.Time
	Error   string
	Data    any
	CanEdit bool
	IsSup   bool
	IsMon   bool // the national monitor: indicators only
	IsKB    bool
	// Moved are the SIP registrations of the last day that took an
	// agent's calls to a new address: the user's own, or everyone's for
	// an administrator.
	Moved []tickets.AuditEntry
}

func (c *Console) newPage(r *http.Request, title, nav string, data any) page {
	s := session(r)
	path := "/"
	if r.Method == http.MethodGet {
		path = r.URL.RequestURI()
	}
	return page{Title: title, Path: path, User: s.User, CSRF: s.CSRF, Nav: nav, PII: seesPersonalData(s.User.Role), Now: time.Now(),
		Data: data, CanEdit: slices.Contains(editors, s.User.Role), IsSup: slices.Contains(supervisors, s.User.Role),
		IsMon: s.User.Role == tickets.RoleMonitor,
		IsKB:  c.cfg.Misses != nil && slices.Contains(kbReaders, s.User.Role),
		Moved: c.moved(r.Context(), s.User)}
}

// moved returns the registrations from a new address in the last day
// that u is shown: its own, or everyone's for an administrator.
func (c *Console) moved(ctx context.Context, u tickets.User) []tickets.AuditEntry {
	if u.Name == "" {
		return nil
	}
	q := tickets.AuditQuery{Action: tickets.AuditRegisterNewAddress, Since: time.Now().Add(-24 * time.Hour), Limit: 20}
	if u.Role != tickets.RoleAdministrator {
		q.User = u.Name
	}
	es, err := c.st.AuditLog(ctx, q)
	if err != nil {
		c.log.Warn("registrations from a new address", "err", err)
		return nil
	}
	return es
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	m := c.msgs(r)
	tpl := c.tpl[m.lang]
	t := tpl[name]
	if t == nil { // a part of a page: "queue-rows" is in "queue"
		t = tpl[strings.SplitN(name, "-", 2)[0]]
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		c.log.Error("render", "page", name, "err", err)
		http.Error(w, m.T("error.draw"), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

func (c *Console) serverError(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("request", "path", r.URL.Path, "err", err)
	c.refuse(w, r, http.StatusInternalServerError, "error.server")
}
