package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/tickets"
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiError answers {"error": msg}.
func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("the body is not the JSON expected: " + err.Error())
	}
	return nil
}

// apiLogin signs in a script: {"name","password"} -> {"token","csrf",
// "expires","user"}. Send the token as "Authorization: Bearer TOKEN".
func (c *Console) apiLogin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := readJSON(w, r, &in); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	sess, err := c.signIn(r, in.Name, in.Password)
	switch {
	case errors.Is(err, errTooMany), errors.Is(err, errBusy):
		w.Header().Set("Retry-After", retryAfter(err))
		apiError(w, signInStatus(err), err.Error())
		return
	case errors.Is(err, context.Canceled):
		return
	case errors.Is(err, tickets.ErrLocked):
		apiError(w, http.StatusForbidden, tickets.ErrLocked.Error())
		return
	case errors.Is(err, tickets.ErrBadLogin):
		apiError(w, http.StatusUnauthorized, tickets.ErrBadLogin.Error())
		return
	case err != nil:
		c.log.Error("api login", "err", err)
		apiError(w, http.StatusInternalServerError, "sign-in failed on the server")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": sess.Token, "csrf": sess.CSRF, "expires": sess.Expires, "user": sess.User})
}

func bearerOrCookie(r *http.Request) string {
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		return strings.TrimSpace(strings.TrimPrefix(a, "Bearer "))
	}
	if ck, err := r.Cookie(sessionCookie); err == nil {
		return ck.Value
	}
	return ""
}

func (c *Console) apiLogout(w http.ResponseWriter, r *http.Request) {
	if err := c.st.Logout(r.Context(), bearerOrCookie(r), clientAddr(r)); err != nil {
		c.log.Error("api logout", "err", err)
		apiError(w, http.StatusInternalServerError, "sign-out failed on the server")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (c *Console) apiMe(w http.ResponseWriter, r *http.Request) {
	s := session(r)
	moved := c.moved(r.Context(), s.User)
	if moved == nil {
		moved = []tickets.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": s.User, "expires": s.Expires, "personal_data": seesPersonalData(s.User.Role),
		"registrations_moved": moved})
}

func (c *Console) apiTickets(w http.ResponseWriter, r *http.Request) {
	q := parseListQuery(r.URL.Query())
	if r.URL.Query().Get("view") == "" {
		q.View = "all"
	}
	sess := session(r)
	ts, err := c.list(r.Context(), sess, q)
	if errors.Is(err, tickets.ErrInvalid) {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		c.log.Error("api tickets", "err", err)
		apiError(w, http.StatusInternalServerError, "listing failed on the server")
		return
	}
	if !seesPersonalData(sess.User.Role) {
		for i := range ts {
			ts[i] = maskTicket(ts[i], c.apiMsgs())
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tickets": ts})
}

func (c *Console) apiTicket(w http.ResponseWriter, r *http.Request) {
	v, err := c.loadTicket(r.Context(), r, r.PathValue("number"), c.apiMsgs())
	if errors.Is(err, tickets.ErrNotFound) {
		apiError(w, http.StatusNotFound, "no ticket "+r.PathValue("number"))
		return
	}
	if err != nil {
		c.log.Error("api ticket", "err", err)
		apiError(w, http.StatusInternalServerError, "reading the ticket failed on the server")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (c *Console) apiAction(w http.ResponseWriter, r *http.Request) {
	var a actionRequest
	if err := readJSON(w, r, &a); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	number := r.PathValue("number")
	if err := c.act(r.Context(), r, number, a); err != nil {
		code := actionStatus(err)
		msg := strings.TrimPrefix(err.Error(), "tickets: ")
		if code == http.StatusInternalServerError {
			c.log.Error("api action", "err", err)
			msg = "the action failed on the server"
		}
		apiError(w, code, msg)
		return
	}
	t, _, err := c.ticketFor(r.Context(), session(r).User, number)
	if err != nil {
		// Transferred away by this very action: the provider it left
		// reads it; anything else is a failure.
		apiError(w, http.StatusInternalServerError, "reading the ticket failed on the server")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t})
}

func (c *Console) apiIndicators(w http.ResponseWriter, r *http.Request) {
	d, err := c.dashboard(r.Context(), session(r).User, r.URL.Query())
	if errors.Is(err, tickets.ErrInvalid) {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		c.log.Error("api indicators", "err", err)
		apiError(w, http.StatusInternalServerError, "the indicators failed on the server")
		return
	}
	c.audit(r.Context(), tickets.AuditEntry{User: session(r).User.Name, Action: "dashboard_export", Target: d.From + ".." + d.To, Detail: "api", Address: clientAddr(r), OK: true})
	out := map[string]any{"report": d.Report, "ratings": d.Ratings, "total_ratings": d.TotalRatings}
	if session(r).User.Role == tickets.RoleMonitor {
		out["providers"] = d.Providers
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Console) apiMisses(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Misses == nil {
		apiError(w, http.StatusNotFound, "the knowledge base is not configured")
		return
	}
	since, err := parseSince(r.URL.Query().Get("since"), time.Now())
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	ms, err := c.cfg.Misses.Misses(r.Context(), since)
	if err != nil {
		c.log.Error("api misses", "err", err)
		apiError(w, http.StatusInternalServerError, "reading the misses failed on the server")
		return
	}
	if ms == nil {
		ms = []kb.Miss{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"misses": ms})
}
