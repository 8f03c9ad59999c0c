package console

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/tickets"

	"github.com/govline/ivr/redact"
)

// safeNext keeps a post-sign-in redirect on this site. Control
// characters are refused too: browsers drop tabs and newlines from a URL,
// so "/\t/evil.example" would become "//evil.example".
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "/"
	}
	return next
}

// loginPage shows the sign-in form in the language of the cookie
// (Romanian without one); /login?lang=en chooses English for it (a
// signed-in user's own choice is kept with the user: langPost).
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if lang := r.URL.Query().Get("lang"); lang != "" {
		c.setLangCookie(w, validLang(lang))
		http.Redirect(w, r, "/login?next="+url.QueryEscape(safeNext(r.FormValue("next"))), http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, http.StatusOK, "", "")
}

// showLogin shows the sign-in form with the catalog's message msgID (""
// for none).
func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, code int, name, msgID string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/login", HttpOnly: true,
		Secure: c.cfg.SecureCookie, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	m := c.msgs(r)
	msg := ""
	if msgID != "" {
		msg = m.T(msgID)
	}
	c.render(w, r, code, "login", page{Title: m.T("login.title"), Path: r.URL.RequestURI(), CSRF: tok, Error: msg,
		Data: map[string]any{"Name": name, "Next": safeNext(r.FormValue("next")), "SAML": c.saml != nil,
			"BreakGlass": c.saml != nil && c.cfg.Login.BreakGlass != nil}})
}

// setLangCookie remembers the language of the sign-in page (a year).
func (c *Console) setLangCookie(w http.ResponseWriter, lang string) {
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/", HttpOnly: true,
		Secure: c.cfg.SecureCookie, SameSite: http.SameSiteStrictMode, MaxAge: 365 * 24 * 3600})
}

// langPost keeps the language the user chose (POST /lang, lang=ro|en,
// from the switch in every page's header) and goes back to the page.
func (c *Console) langPost(w http.ResponseWriter, r *http.Request) {
	lang := r.PostFormValue("lang")
	if !slices.Contains(tickets.Langs, lang) {
		c.refuse(w, r, http.StatusBadRequest, "error.bad_lang")
		return
	}
	if err := c.st.SetUserLang(r.Context(), session(r).User.Name, lang); err != nil {
		c.serverError(w, r, err)
		return
	}
	c.setLangCookie(w, lang)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) loginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		c.showLogin(w, r, http.StatusBadRequest, "", "login.unreadable")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	ck, err := r.Cookie(loginCookie)
	if err != nil || ck.Value == "" || r.PostFormValue(csrfField) != ck.Value || !sameOrigin(r) {
		c.audit(r.Context(), tickets.AuditEntry{User: name, Action: "csrf_refused", Target: "/login", Address: clientAddr(r)})
		c.showLogin(w, r, http.StatusForbidden, name, "login.expired")
		return
	}
	sess, err := c.signIn(r, name, r.PostFormValue("password"))
	switch {
	case errors.Is(err, errTooMany), errors.Is(err, errBusy):
		w.Header().Set("Retry-After", retryAfter(err))
		c.showLogin(w, r, signInStatus(err), name, "login.too_many")
		return
	case errors.Is(err, context.Canceled):
		return
	case errors.Is(err, tickets.ErrLocked):
		c.showLogin(w, r, http.StatusForbidden, name, "login.locked")
		return
	case errors.Is(err, tickets.ErrBadLogin):
		c.showLogin(w, r, http.StatusUnauthorized, name, "login.bad")
		return
	case err != nil:
		c.serverError(w, r, err)
		return
	}
	c.setSession(w, sess)
	c.setLangCookie(w, validLang(sess.User.Lang))
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/login", MaxAge: -1})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) setSession(w http.ResponseWriter, sess tickets.Session) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sess.Token, Path: "/", HttpOnly: true,
		Secure: c.cfg.SecureCookie, SameSite: http.SameSiteStrictMode, Expires: sess.Expires})
}

func (c *Console) logoutPost(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if err := c.st.Logout(r.Context(), ck.Value, clientAddr(r)); err != nil {
			c.serverError(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// listQuery is the queue's filter, from the URL.
type listQuery struct {
	Status, Service, Q, View string
	Limit                    int
}

func parseListQuery(v url.Values) listQuery {
	q := listQuery{Status: v.Get("status"), Service: v.Get("service"), Q: strings.TrimSpace(v.Get("q")), View: v.Get("view")}
	q.Limit, _ = strconv.Atoi(v.Get("limit"))
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 200
	}
	if q.View == "" {
		q.View = "open"
	}
	return q
}

// isNumber reports whether s looks like a ticket number.
func isNumber(s string) bool {
	if len(s) != 8 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// looksLikePhone: digits with an optional +, at least 6 digits.
func looksLikePhone(s string) bool {
	d := 0
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			d++
		case r == '+' && i == 0, r == ' ':
		default:
			return false
		}
	}
	return d >= 6
}

// list runs a queue query for the session's user. A free-text search
// matches the number, classification, assignee and (for roles that see
// personal data) caller and description of the newest tickets.
func (c *Console) list(ctx context.Context, sess tickets.Session, q listQuery) ([]tickets.Ticket, error) {
	// Only the user's provider's tickets, whatever the filter.
	// The "archive" view searches the archived tickets (docs/retention.md)
	// with the same filters and masks; the other views the working ones.
	tq := tickets.TicketQuery{Provider: sess.User.Provider, Status: tickets.Status(q.Status), Service: tickets.Service(q.Service),
		Archive: q.View == "archive"}
	if tq.Status != "" && !slices.Contains(tickets.Statuses, tq.Status) {
		return nil, fmt.Errorf("%w status %q", tickets.ErrInvalid, q.Status)
	}
	if tq.Service != "" && !slices.Contains(tickets.Services, tq.Service) {
		return nil, fmt.Errorf("%w service %q", tickets.ErrInvalid, q.Service)
	}
	pii := seesPersonalData(sess.User.Role)
	text := strings.ToLower(q.Q)
	switch {
	case text == "":
	case isNumber(text):
		t, _, err := c.ticketFor(ctx, sess.User, text)
		if errors.Is(err, tickets.ErrNotFound) {
			return []tickets.Ticket{}, nil
		}
		if err != nil {
			return nil, err
		}
		return []tickets.Ticket{t}, nil
	case looksLikePhone(text) && pii:
		tq.Caller = strings.ReplaceAll(q.Q, " ", "")
		text = ""
	}
	scan := q.Limit
	if text != "" || (q.View != "all" && q.View != "archive") {
		scan = 5000 // filter in Go over the newest tickets
	}
	tq.Limit = scan
	var all []tickets.Ticket
	if q.View == "open" && tq.Status == "" {
		// One indexed query per open status, so an old open ticket is
		// never pushed out of the queue by newer closed ones.
		for _, st := range []tickets.Status{tickets.StatusNew, tickets.StatusInProgress, tickets.StatusEscalated, tickets.StatusWaiting} {
			tq.Status = st
			ts, err := c.st.ListTickets(ctx, tq)
			if err != nil {
				return nil, err
			}
			all = append(all, ts...)
		}
	} else {
		var err error
		if all, err = c.st.ListTickets(ctx, tq); err != nil {
			return nil, err
		}
	}
	out := all[:0]
	for _, t := range all {
		switch q.View {
		case "open":
			if t.Status == tickets.StatusResolved || t.Status == tickets.StatusClosed {
				continue
			}
		case "mine":
			if t.Assignee != sess.User.Name {
				continue
			}
		}
		if text != "" {
			hay := strings.ToLower(t.Number + " " + t.Classification + " " + t.Assignee + " " + string(t.Service))
			if pii {
				hay += " " + strings.ToLower(t.Caller+" "+t.Description)
			}
			if !strings.Contains(hay, text) {
				continue
			}
		}
		out = append(out, t)
		if len(out) == q.Limit {
			break
		}
	}
	// Open tickets: most urgent first, then oldest deadline.
	if q.View == "open" {
		slices.SortStableFunc(out, func(a, b tickets.Ticket) int {
			if pa, pb := slices.Index(tickets.Priorities, a.Priority), slices.Index(tickets.Priorities, b.Priority); pa != pb {
				return pb - pa
			}
			return a.Deadline.Compare(b.Deadline)
		})
	}
	return out, nil
}

type queueData struct {
	Q         listQuery
	Tickets   []tickets.Ticket
	Statuses  []tickets.Status
	Services  []tickets.Service
	Callbacks []queue.Callback // pending, of tickets the user may see
}

// pendingCallbacks are the pending callbacks whose ticket u may see (a
// provider's agents see their provider's).
func (c *Console) pendingCallbacks(ctx context.Context, u tickets.User) []queue.Callback {
	if c.cfg.Callbacks == nil {
		return nil
	}
	all, err := c.cfg.Callbacks.List(ctx, queue.CallbackPending, 100)
	if err != nil {
		c.log.Warn("pending callbacks not listed", "err", err)
		return nil
	}
	var out []queue.Callback
	for _, cb := range all {
		if cb.Ticket == "" {
			continue
		}
		if _, _, err := c.ticketFor(ctx, u, cb.Ticket); err == nil {
			out = append(out, cb)
		}
	}
	return out
}

func (c *Console) queuePage(w http.ResponseWriter, r *http.Request) {
	if session(r).User.Role == tickets.RoleMonitor {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther) // no tickets: the indicators
		return
	}
	q := parseListQuery(r.URL.Query())
	if isNumber(q.Q) {
		if _, _, err := c.ticketFor(r.Context(), session(r).User, q.Q); err == nil {
			http.Redirect(w, r, "/tickets/"+q.Q, http.StatusSeeOther)
			return
		}
	}
	ts, err := c.list(r.Context(), session(r), q)
	m := c.msgs(r)
	data := queueData{Q: q, Tickets: ts, Statuses: tickets.Statuses, Services: tickets.Services}
	if r.Header.Get("X-Partial") != "1" {
		data.Callbacks = c.pendingCallbacks(r.Context(), session(r).User)
	}
	p := c.newPage(r, m.T("queue.title"), "queue", data)
	code := http.StatusOK
	if errors.Is(err, tickets.ErrInvalid) {
		p.Error, code = m.T("queue.bad_filter"), http.StatusBadRequest
	} else if err != nil {
		c.serverError(w, r, err)
		return
	}
	if r.Header.Get("X-Partial") == "1" {
		c.render(w, r, code, "queue-rows", p)
		return
	}
	c.render(w, r, code, "queue", p)
}

// ticketView is everything the ticket screen shows.
type ticketView struct {
	Ticket     tickets.Ticket   `json:"ticket"`
	History    []historyLine    `json:"history"`
	Transcript []tickets.Turn   `json:"transcript"`
	Earlier    []tickets.Ticket `json:"earlier"`
	Call       *callSummary     `json:"call,omitempty"`
	// Seek is the moment the recording's first sample was taken (the
	// call's answer, when the engine opens the recording), set when the
	// screen has a player: each transcript line then plays the recording
	// from At-Seek.
	Seek *time.Time `json:"-"`
	// ReadOnly: the ticket left the user's provider (a transfer); its
	// screen shows it without actions.
	ReadOnly bool `json:"read_only"`
	// ProviderName names the ticket's provider.
	ProviderName string `json:"provider_name"`
	// Emails is the ticket's e-mail thread, oldest first (a ticket that
	// came by e-mail); addresses masked and texts hidden for the roles
	// that do not see personal data.
	Emails []tickets.EmailMessage `json:"emails,omitempty"`
	// CanEmail: the answer form is shown (an e-mail ticket, the channel on).
	CanEmail bool `json:"-"`
	// CanChat: the chat form is shown (a portal ticket, the chat on).
	CanChat bool `json:"-"`
	// For the forms.
	Others     []tickets.Provider `json:"-"` // the providers a ticket can be transferred to
	Statuses   []tickets.Status   `json:"-"`
	Services   []tickets.Service  `json:"-"`
	Priorities []tickets.Priority `json:"-"`
}

type historyLine struct {
	tickets.TicketEvent
	Summary string `json:"summary"`
}

type callSummary struct {
	ID     string     `json:"id"`
	Start  time.Time  `json:"start"`
	Answer *time.Time `json:"answer,omitempty"`
	End    *time.Time `json:"end,omitempty"`
}

// maskTicket hides the personal data of t from a role that does not need
// it: the caller masked, the description hidden (m says so), the
// classification an operator typed masked (redact.Text).
func maskTicket(t tickets.Ticket, m *msgs) tickets.Ticket {
	t.Caller = redact.Mask(t.Caller)
	if t.Description != "" {
		t.Description = m.T("ticket.hidden_value")
	}
	t.Classification = redact.Text(t.Classification)
	if len(t.Personal) > 0 {
		hidden := make(map[string]string, len(t.Personal))
		for k := range t.Personal {
			hidden[k] = m.T("ticket.hidden_value")
		}
		t.Personal = hidden
	}
	return t
}

// maskEvent hides the personal data of a history entry from a role that
// does not need it: the caller masked, the description dropped, and every
// text an operator wrote (notes, resolutions, reasons, a classification)
// masked by the one rule, so "CNP 1900101456781, phone 0721123456" reads
// "CNP **********781, phone *******456".
func maskEvent(e tickets.TicketEvent) tickets.TicketEvent {
	d := &e.Data
	d.Caller, d.Description, d.Personal = redact.Mask(d.Caller), "", nil
	d.Text, d.Reason, d.Classification = redact.Text(d.Text), redact.Text(d.Reason), redact.Text(d.Classification)
	return e
}

// loadTicket gathers the ticket screen for sess, its words in m's
// language, and audits the view.
func (c *Console) loadTicket(ctx context.Context, r *http.Request, number string, m *msgs) (ticketView, error) {
	sess := session(r)
	t, writable, err := c.ticketFor(ctx, sess.User, number)
	if errors.Is(err, tickets.ErrNotFound) {
		c.auditOtherProvider(ctx, sess.User, number, clientAddr(r), "view")
	}
	if err != nil {
		return ticketView{}, err
	}
	evs, err := c.st.History(ctx, number)
	if err != nil {
		return ticketView{}, err
	}
	pii := seesPersonalData(sess.User.Role)
	v := ticketView{Ticket: t, Statuses: tickets.Statuses, Services: tickets.Services, Priorities: tickets.Priorities,
		Transcript: []tickets.Turn{}, Earlier: []tickets.Ticket{}, ReadOnly: !writable}
	ps, err := c.providers(ctx)
	if err != nil {
		return ticketView{}, err
	}
	for _, p := range ps {
		if p.ID == t.Provider {
			if len(ps) > 1 { // a line of one provider does not name it
				v.ProviderName = p.Name
			}
		} else {
			v.Others = append(v.Others, p)
		}
	}
	for _, e := range evs {
		if !pii {
			e = maskEvent(e)
		}
		v.History = append(v.History, historyLine{TicketEvent: e, Summary: summarize(e, m)})
	}
	if t.CallID != "" {
		if cr, err := c.st.Call(ctx, t.CallID); err == nil {
			v.Call = &callSummary{ID: cr.ID, Start: cr.Start, Answer: cr.Answer, End: cr.End}
			if pii && cr.Recording != "" && t.Recording != "" && cr.Answer != nil {
				v.Seek = cr.Answer
			}
		}
		if pii {
			if v.Transcript, err = c.st.Transcript(ctx, t.CallID); err != nil {
				return ticketView{}, err
			}
		}
	}
	if pii && t.Caller != "" {
		earlier, err := c.st.ListTickets(ctx, tickets.TicketQuery{Provider: sess.User.Provider, Caller: t.Caller, Limit: 21})
		if err != nil {
			return ticketView{}, err
		}
		for _, e := range earlier {
			if e.Number != t.Number && len(v.Earlier) < 20 {
				v.Earlier = append(v.Earlier, e)
			}
		}
	}
	v.CanChat = t.Channel == tickets.ChannelPortal && c.cfg.Chat != nil
	if t.Channel == tickets.ChannelEmail {
		th, err := c.st.EmailThread(ctx, number)
		if err != nil {
			return ticketView{}, err
		}
		for _, e := range th {
			if !pii {
				e.Address, e.Subject, e.Text = redact.Mask(e.Address), redact.Text(e.Subject), m.T("ticket.hidden_value")
				e.Attachments = nil
			}
			v.Emails = append(v.Emails, e)
		}
		v.CanEmail = c.cfg.Email != nil
	}
	if !pii {
		v.Ticket = maskTicket(t, m)
	}
	c.audit(ctx, tickets.AuditEntry{User: sess.User.Name, Action: "ticket_view", Target: number, Address: clientAddr(r), OK: true})
	return v, nil
}

// summarize says in m's words what an event did (the enums of the data
// named in m's language).
func summarize(e tickets.TicketEvent, m *msgs) string {
	d := e.Data
	switch e.Kind {
	case tickets.EventCreated:
		return m.T("event.created", m.label(d.Service), m.label(d.Priority), roman(d.Level))
	case tickets.EventNote:
		return m.T("event.note", d.Text)
	case tickets.EventClassified:
		return m.T("event.classified", m.label(d.Service), d.Classification)
	case tickets.EventPrioritized:
		return m.T("event.prioritized", m.label(d.Priority))
	case tickets.EventEscalated:
		return m.T("event.escalated", roman(d.Level))
	case tickets.EventAssigned:
		if d.Assignee == "" {
			return m.T("event.unassigned")
		}
		return m.T("event.assigned", d.Assignee)
	case tickets.EventStatus:
		return m.T("event.status", m.label(d.Status))
	case tickets.EventResolved:
		return m.T("event.resolved", d.Text)
	case tickets.EventClosed:
		return m.T("event.closed")
	case tickets.EventReopened:
		return m.T("event.reopened", d.Text)
	case tickets.EventArticleCited:
		return m.T("event.article", d.Article)
	case tickets.EventRecording:
		return m.T("event.recording")
	case tickets.EventRating:
		return m.T("event.rated", d.Rating)
	case tickets.EventTransfer:
		return m.T("event.transfer", d.From, d.To, d.Text)
	case tickets.EventCorrection:
		s := m.T("event.correction", e.Supersedes)
		if d.Replaces != "" {
			s += " (" + string(d.Replaces) + ")"
		}
		if d.Retracted {
			s += ": " + m.T("event.withdrawn")
		} else if d.Text != "" {
			s += ": " + d.Text
		}
		if d.Reason != "" {
			s += " — " + d.Reason
		}
		return s
	}
	return m.T("event.other", e.Kind)
}

func (c *Console) ticketPage(w http.ResponseWriter, r *http.Request) {
	c.showTicket(w, r, http.StatusOK, "")
}

func (c *Console) showTicket(w http.ResponseWriter, r *http.Request, code int, msg string) {
	number := r.PathValue("number")
	m := c.msgs(r)
	v, err := c.loadTicket(r.Context(), r, number, m)
	if errors.Is(err, tickets.ErrNotFound) {
		c.refuse(w, r, http.StatusNotFound, "ticket.not_found", number)
		return
	}
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p := c.newPage(r, m.T("ticket.title", number), "ticket", v)
	p.Path = "/tickets/" + number // also after a refused action (a POST)
	p.Error = msg
	c.render(w, r, code, "ticket", p)
}

// actionRequest is one change of a ticket, from a form or the API.
type actionRequest struct {
	Action   string `json:"action"`
	Text     string `json:"text,omitempty"`     // note, resolve, reopen
	Service  string `json:"service,omitempty"`  // classify
	Code     string `json:"code,omitempty"`     // classify
	Priority string `json:"priority,omitempty"` // priority
	Level    int    `json:"level,omitempty"`    // escalate
	Assignee string `json:"assignee,omitempty"` // assign ("" = unassign)
	Status   string `json:"status,omitempty"`   // status
	Provider string `json:"provider,omitempty"` // transfer (Text is the reason)
}

const maxText = 10000

// errBadAction is returned (wrapped) for an unknown action.
var errBadAction = errors.New("unknown action")

// Refusals of an action's text, before the store (both tickets.ErrInvalid).
var (
	errTooLong   = fmt.Errorf("%w: text too long", tickets.ErrInvalid)
	errEmptyNote = fmt.Errorf("%w note: empty", tickets.ErrInvalid)
	errEmailOff  = fmt.Errorf("%w: the e-mail channel is off", tickets.ErrTransition)
	errChatOff   = fmt.Errorf("%w: the chat is off", tickets.ErrTransition)
)

// actionMessage says in m's words why an action was refused.
func actionMessage(err error, number string, m *msgs) string {
	switch {
	case errors.Is(err, errTooLong):
		return m.T("action.too_long")
	case errors.Is(err, errEmptyNote):
		return m.T("action.note_empty")
	case errors.Is(err, errEmailOff):
		return m.T("action.email_off")
	case errors.Is(err, errChatOff):
		return m.T("action.chat_off")
	case errors.Is(err, tickets.ErrNotFound):
		return m.T("ticket.not_found", number)
	case errors.Is(err, errReadOnly):
		return m.T("action.read_only")
	case errors.Is(err, tickets.ErrTransition):
		return m.T("action.transition")
	case errors.Is(err, errBadAction):
		return m.T("action.unknown")
	}
	return m.T("action.invalid")
}

// act performs a, as the session's user, and audits it.
func (c *Console) act(ctx context.Context, r *http.Request, number string, a actionRequest) error {
	sess := session(r)
	who := sess.User.Name
	if len(a.Text) > maxText || len(a.Code) > 200 || len(a.Assignee) > 64 || len(a.Provider) > 64 {
		return errTooLong
	}
	// Only the ticket's own provider changes it: checked here to answer
	// "read only" to the provider it left, and again by the store under
	// the ticket's lock (AsProvider).
	_, writable, err := c.ticketFor(ctx, sess.User, number)
	switch {
	case errors.Is(err, tickets.ErrNotFound):
		c.auditOtherProvider(ctx, sess.User, number, clientAddr(r), a.Action)
		return err
	case err != nil:
		return err
	case !writable:
		err = errReadOnly
		c.audit(ctx, tickets.AuditEntry{User: who, Action: "ticket_" + a.Action, Target: number, Detail: "refused: " + err.Error(), Address: clientAddr(r)})
		return err
	}
	ctx = tickets.AsProvider(ctx, sess.User.Provider)
	switch a.Action {
	case "note":
		if strings.TrimSpace(a.Text) == "" {
			err = errEmptyNote
			break
		}
		err = c.st.AddNote(ctx, number, who, a.Text)
	case "classify":
		err = c.st.Classify(ctx, number, who, tickets.Service(a.Service), a.Code)
	case "priority":
		err = c.st.SetPriority(ctx, number, who, tickets.Priority(a.Priority))
	case "escalate":
		err = c.st.Escalate(ctx, number, who, a.Level)
	case "assign":
		err = c.st.Assign(ctx, number, who, a.Assignee)
	case "take":
		a.Assignee = who
		err = c.st.Assign(ctx, number, who, who)
	case "status":
		err = c.st.SetStatus(ctx, number, who, tickets.Status(a.Status))
	case "resolve":
		err = c.st.Resolve(ctx, number, who, a.Text)
		if err == nil && c.cfg.Resolved != nil {
			c.cfg.Resolved(number)
		}
	case "close":
		err = c.st.CloseTicket(ctx, number, who)
	case "reopen":
		err = c.st.Reopen(ctx, number, who, a.Text)
	case "email":
		switch {
		case strings.TrimSpace(a.Text) == "":
			err = errEmptyNote
		case c.cfg.Email == nil:
			err = errEmailOff
		default:
			err = c.cfg.Email.AnswerByEmail(ctx, number, who, a.Text)
		}
	case "chat":
		switch {
		case strings.TrimSpace(a.Text) == "":
			err = errEmptyNote
		case c.cfg.Chat == nil:
			err = errChatOff
		default:
			if err = c.cfg.Chat.AnswerInChat(ctx, number, who, a.Text); err != nil && !errors.Is(err, tickets.ErrInvalid) {
				err = fmt.Errorf("%w: %w", errChatOff, err) // the citizen left the chat
			}
		}
	case "transfer":
		err = c.st.Transfer(ctx, number, who, a.Provider, a.Text)
	default:
		err = fmt.Errorf("%w %q: want note, email, chat, classify, priority, escalate, assign, take, status, resolve, close, reopen or transfer", errBadAction, a.Action)
	}
	detail := ""
	switch a.Action {
	case "classify":
		detail = a.Service + " " + a.Code
	case "priority":
		detail = a.Priority
	case "escalate":
		detail = "level " + strconv.Itoa(a.Level)
	case "assign", "take":
		detail = a.Assignee
	case "status":
		detail = a.Status
	case "transfer":
		detail = "to " + a.Provider
	}
	if err != nil {
		detail = strings.TrimSpace(detail + " refused: " + strings.TrimPrefix(err.Error(), "tickets: "))
	}
	action := "ticket_" + a.Action
	if errors.Is(err, errBadAction) || len(action) > 40 {
		action = "ticket_unknown_action"
	}
	c.audit(ctx, tickets.AuditEntry{User: who, Action: action, Target: number, Detail: detail, Address: clientAddr(r), OK: err == nil})
	return err
}

// actionStatus maps a store error to an HTTP status.
func actionStatus(err error) int {
	switch {
	case errors.Is(err, tickets.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, errReadOnly):
		return http.StatusForbidden
	case errors.Is(err, tickets.ErrTransition):
		return http.StatusConflict
	case errors.Is(err, tickets.ErrInvalid), errors.Is(err, errBadAction):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (c *Console) ticketAction(w http.ResponseWriter, r *http.Request) {
	number := r.PathValue("number")
	lvl, _ := strconv.Atoi(r.PostFormValue("level"))
	a := actionRequest{Action: r.PathValue("action"), Text: r.PostFormValue("text"), Service: r.PostFormValue("service"),
		Code: r.PostFormValue("code"), Priority: r.PostFormValue("priority"), Level: lvl,
		Assignee: strings.TrimSpace(r.PostFormValue("assignee")), Status: r.PostFormValue("status"),
		Provider: r.PostFormValue("provider")}
	err := c.act(r.Context(), r, number, a)
	if err != nil {
		code := actionStatus(err)
		if code == http.StatusInternalServerError {
			c.serverError(w, r, err)
			return
		}
		c.showTicket(w, r, code, actionMessage(err, number, c.msgs(r)))
		return
	}
	http.Redirect(w, r, "/tickets/"+number, http.StatusSeeOther)
}

// popPage opens the ticket of a call: the screen that pops when a call is
// bridged to the agent (/pop?call=CALL_ID).
func (c *Console) popPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("call")
	ts, err := c.st.TicketsOfCall(r.Context(), id)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	// The newest of the call's tickets that the user's provider holds.
	ts = slices.DeleteFunc(ts, func(t tickets.Ticket) bool { return t.Provider != session(r).User.Provider })
	if len(ts) == 0 {
		c.refuse(w, r, http.StatusNotFound, "ticket.no_ticket_of_call")
		return
	}
	http.Redirect(w, r, "/tickets/"+ts[len(ts)-1].Number, http.StatusSeeOther)
}

// period reads from/to (dates, local time of the server; to inclusive) and
// defaults to the last 30 days.
func period(v url.Values, now time.Time) (from, to time.Time, err error) {
	day := func(s string) (time.Time, error) { return time.ParseInLocation("2006-01-02", s, time.Local) }
	y, m, d := now.Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.Local)
	to, from = today.AddDate(0, 0, 1), today.AddDate(0, 0, -29)
	if s := v.Get("from"); s != "" {
		if from, err = day(s); err != nil {
			return from, to, fmt.Errorf("from %q: want a date like 2026-03-01", s)
		}
	}
	if s := v.Get("to"); s != "" {
		t, err := day(s)
		if err != nil {
			return from, to, fmt.Errorf("to %q: want a date like 2026-03-31", s)
		}
		to = t.AddDate(0, 0, 1)
	}
	if !from.Before(to) {
		return from, to, errors.New("the period is empty: from must be on or before to")
	}
	return from, to, nil
}

type dashboardData struct {
	// Provider is the provider shown ("" the whole line, for a monitor),
	// ProviderName its name; Providers are every provider's totals, for
	// a monitor.
	Provider     string
	ProviderName string
	Providers    []providerTotal
	From, To     string
	Report       tickets.Report
	Ratings      []tickets.Ratings
	TotalRatings tickets.Ratings
	// Surveys are the survey calls of the period, line-wide (shown when
	// the dashboard is the whole line's); Callbacks the pending ones.
	Surveys   *tickets.SurveyCounts
	Callbacks []queue.Callback
	Elapsed   time.Duration
}

// providerTotal is one provider's line of the monitor's dashboard.
type providerTotal struct {
	ID, Name string
	Total    tickets.Indicators
}

// dashboard computes the indicators u may see: a supervisor's provider's;
// for the monitor, the provider chosen (?provider=ID) or the whole line,
// and every provider's totals.
func (c *Console) dashboard(ctx context.Context, u tickets.User, v url.Values) (dashboardData, error) {
	from, to, err := period(v, time.Now())
	if err != nil {
		return dashboardData{}, fmt.Errorf("%w: %v", tickets.ErrInvalid, err)
	}
	start := time.Now()
	ps, err := c.providers(ctx)
	if err != nil {
		return dashboardData{}, err
	}
	d := dashboardData{From: from.Format("2006-01-02"), To: to.AddDate(0, 0, -1).Format("2006-01-02"), Provider: u.Provider}
	if u.Role == tickets.RoleMonitor {
		d.Provider = v.Get("provider")
		if d.Provider != "" && !slices.ContainsFunc(ps, func(p tickets.Provider) bool { return p.ID == d.Provider }) {
			return dashboardData{}, fmt.Errorf("%w provider %q", tickets.ErrInvalid, d.Provider)
		}
		for _, p := range ps {
			rep, err := c.st.ProviderIndicators(ctx, p.ID, from, to)
			if err != nil {
				return dashboardData{}, err
			}
			d.Providers = append(d.Providers, providerTotal{ID: p.ID, Name: p.Name, Total: rep.Total})
		}
	}
	for _, p := range ps {
		if p.ID == d.Provider && len(ps) > 1 { // a line of one provider does not name it
			d.ProviderName = p.Name
		}
	}
	if d.Report, err = c.st.ProviderIndicators(ctx, d.Provider, from, to); err != nil {
		return dashboardData{}, err
	}
	if d.TotalRatings, d.Ratings, err = c.st.ProviderRatings(ctx, d.Provider, from, to); err != nil {
		return dashboardData{}, err
	}
	if d.Provider == "" || len(ps) <= 1 { // surveys and callbacks are counted for the whole line
		sc, err := c.st.SurveyReport(ctx, from, to)
		if err != nil {
			return dashboardData{}, err
		}
		d.Surveys = &sc
		if c.cfg.Callbacks != nil {
			if d.Callbacks, err = c.cfg.Callbacks.List(ctx, queue.CallbackPending, 100); err != nil {
				return dashboardData{}, err
			}
		}
	}
	d.Elapsed = time.Since(start)
	return d, nil
}

func (c *Console) dashboardPage(w http.ResponseWriter, r *http.Request) {
	d, err := c.dashboard(r.Context(), session(r).User, r.URL.Query())
	m := c.msgs(r)
	p := c.newPage(r, m.T("dashboard.title"), "dashboard", d)
	code := http.StatusOK
	if errors.Is(err, tickets.ErrInvalid) {
		p.Error, code = m.T("dashboard.bad_period"), http.StatusBadRequest
	} else if err != nil {
		c.serverError(w, r, err)
		return
	}
	c.audit(r.Context(), tickets.AuditEntry{User: session(r).User.Name, Action: "dashboard_view", Target: d.From + ".." + d.To, Address: clientAddr(r), OK: err == nil})
	c.render(w, r, code, "dashboard", p)
}

// csvHeader names the columns of the dashboard export.
var csvHeader = []string{"from", "to", "provider", "service", "requests", "phone_requests", "email_requests", "portal_requests", "first_contact", "first_contact_share",
	"resolved", "resolved_level1", "resolved_level1_share", "avg_resolution_level1_hours", "within_deadline",
	"within_deadline_share", "avg_resolution_hours", "queued_calls", "abandoned", "abandoned_share", "ratings", "avg_rating"}

func (c *Console) dashboardCSV(w http.ResponseWriter, r *http.Request) {
	d, err := c.dashboard(r.Context(), session(r).User, r.URL.Query())
	if errors.Is(err, tickets.ErrInvalid) {
		c.refuse(w, r, http.StatusBadRequest, "dashboard.bad_period")
		return
	}
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	c.audit(r.Context(), tickets.AuditEntry{User: session(r).User.Name, Action: "dashboard_export", Target: d.From + ".." + d.To, Address: clientAddr(r), OK: true})
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="indicators_%s_%s.csv"`, d.From, d.To))
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	row := func(in tickets.Indicators, rt tickets.Ratings) {
		name := string(in.Service)
		if name == "" {
			name = "total"
		}
		f := func(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }
		h := func(x time.Duration) string { return strconv.FormatFloat(x.Hours(), 'f', 2, 64) }
		prov := d.Provider
		if prov == "" {
			prov = "all"
		}
		_ = cw.Write([]string{d.From, d.To, prov, name, strconv.Itoa(in.Requests), strconv.Itoa(in.PhoneRequests),
			strconv.Itoa(in.Channels[tickets.ChannelEmail]), strconv.Itoa(in.Channels[tickets.ChannelPortal]),
			strconv.Itoa(in.FirstContact), f(in.FirstContactShare), strconv.Itoa(in.Resolved), strconv.Itoa(in.ResolvedLevel1),
			f(in.ResolvedLevel1Share), h(in.AvgResolutionLevel1), strconv.Itoa(in.WithinDeadline), f(in.WithinDeadlineShare),
			h(in.AvgResolution), strconv.Itoa(in.QueuedCalls), strconv.Itoa(in.Abandoned), f(in.AbandonedShare),
			strconv.Itoa(rt.Count), f(rt.Average)})
	}
	for i, in := range d.Report.Services {
		row(in, d.Ratings[i])
	}
	row(d.Report.Total, d.TotalRatings)
	cw.Flush()
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now.AddDate(0, 0, -7), nil
	}
	if strings.HasSuffix(s, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err == nil && n > 0 && n < 10000 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("since %q: want a duration like 7d or 24h", s)
	}
	return now.Add(-d), nil
}

func (c *Console) missesPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Misses == nil {
		c.refuse(w, r, http.StatusNotFound, "misses.not_configured")
		return
	}
	since, err := parseSince(r.URL.Query().Get("since"), time.Now())
	code := http.StatusOK
	var ms []kb.Miss
	m := c.msgs(r)
	p := c.newPage(r, m.T("misses.title"), "misses", nil)
	if err != nil {
		p.Error, code = m.T("misses.bad_since"), http.StatusBadRequest
	} else if ms, err = c.cfg.Misses.Misses(r.Context(), since); err != nil {
		c.serverError(w, r, err)
		return
	}
	p.Data = map[string]any{"Since": r.URL.Query().Get("since"), "Misses": ms}
	c.render(w, r, code, "misses", p)
}

// emailAttachment serves one attachment of a ticket's e-mail (or, without
// an index, the raw message as an .eml file), always as a
// download (never inline: Content-Disposition attachment, nosniff, a
// sandboxing CSP); a flagged one (an executable, an archive) as
// application/octet-stream whatever it claimed to be.
func (c *Console) emailAttachment(w http.ResponseWriter, r *http.Request) {
	number := r.PathValue("number")
	id, err1 := strconv.ParseInt(r.PathValue("id"), 10, 64)
	idx, err2 := strconv.Atoi(r.PathValue("idx"))
	if r.PathValue("idx") == "" {
		err2 = nil
	}
	if err1 != nil || err2 != nil {
		c.refuse(w, r, http.StatusNotFound, "ticket.not_found", number)
		return
	}
	sess := session(r)
	if _, _, err := c.ticketFor(r.Context(), sess.User, number); err != nil {
		c.refuse(w, r, http.StatusNotFound, "ticket.not_found", number)
		return
	}
	th, err := c.st.EmailThread(r.Context(), number)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	ok := false
	for _, e := range th {
		ok = ok || e.ID == id
	}
	if !ok {
		c.refuse(w, r, http.StatusNotFound, "ticket.not_found", number)
		return
	}
	var a tickets.EmailAttachment
	if r.PathValue("idx") == "" { // the raw message
		a.Filename, a.ContentType = fmt.Sprintf("message-%d.eml", id), "message/rfc822"
		a.Data, err = c.st.EmailRaw(r.Context(), id)
		if err == nil && a.Data == nil {
			err = fmt.Errorf("message %d not kept (over the size limit): %w", id, tickets.ErrNotFound)
		}
		idx = -1
	} else {
		a, err = c.st.EmailAttachmentData(r.Context(), id, idx)
	}
	if errors.Is(err, tickets.ErrNotFound) {
		c.refuse(w, r, http.StatusNotFound, "ticket.not_found", number)
		return
	}
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	ct := a.ContentType
	if a.Flagged != "" || ct == "" || strings.ContainsAny(ct, "\r\n") || idx < 0 {
		ct = "application/octet-stream"
	}
	name := strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == '/' {
			return '_'
		}
		return r
	}, a.Filename)
	if name == "" {
		name = "attachment-" + strconv.Itoa(idx)
	}
	c.audit(r.Context(), tickets.AuditEntry{User: sess.User.Name, Action: "email_attachment", Target: number,
		Detail: fmt.Sprintf("message %d attachment %d (-1: the raw message)", id, idx), Address: clientAddr(r), OK: true})
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.Header().Set("Cache-Control", "private, no-store")
	_, _ = w.Write(a.Data)
}
