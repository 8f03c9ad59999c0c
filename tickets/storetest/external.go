package storetest

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

// lastAudit returns the newest audit entry of action for user, failing the
// test when there is none.
func lastAudit(t *testing.T, st *tickets.Store, user, action string) tickets.AuditEntry {
	t.Helper()
	es, err := st.AuditLog(ctx, tickets.AuditQuery{User: user, Action: action, Limit: 1})
	must(t, err)
	if len(es) == 0 {
		t.Fatalf("no audit entry %s of %s", action, user)
	}
	return es[0]
}

// Users signed in by the identity provider (SAML): created as external,
// kept in step with the assertion's role and provider, never with a usable
// password; break-glass accounts stay password-only; disabled accounts and
// unknown providers are refused and audited; an assertion ID is accepted
// once across engines until it expires.
func externalUsers(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	a, b := hs[0].st, hs[1].st
	const pw = "a good long password"
	p := tickets.LoginPolicy{}
	id := tickets.ExternalIdentity{Name: "ion.popescu", Role: tickets.RoleOperator, Provider: tickets.DefaultProvider, Method: "saml"}

	sess, err := a.ExternalLogin(ctx, id, "10.0.0.7", p)
	must(t, err)
	if s, err := b.SessionByToken(ctx, sess.Token); err != nil || s.User.Name != id.Name || s.User.Role != tickets.RoleOperator || s.CSRF == "" {
		t.Fatalf("the external session on the other engine: %+v %v", s, err)
	}
	u, err := b.User(ctx, id.Name)
	must(t, err)
	if !u.External || u.Provider != tickets.DefaultProvider || u.Lang != tickets.LangRomanian {
		t.Fatalf("the external user: %+v", u)
	}
	if e := lastAudit(t, a, id.Name, "login"); e.Detail != "saml" || !e.OK || e.Address != "10.0.0.7" {
		t.Fatalf("the sign-in's audit entry: %+v", e)
	}
	if e := lastAudit(t, a, "saml", "user_external"); e.Target != id.Name || !strings.HasPrefix(e.Detail, "created") {
		t.Fatalf("the creation's audit entry: %+v", e)
	}
	// No password signs an external account in; it is audited, not counted.
	for _, try := range []string{"", tickets.DefaultProvider, "!external", pw} {
		if _, err := b.Login(ctx, id.Name, try, "10.0.0.8", p); !errors.Is(err, tickets.ErrBadLogin) {
			t.Fatalf("password sign-in of an external account with %q: %v", try, err)
		}
	}
	if e := lastAudit(t, a, id.Name, "login_failed"); !strings.Contains(e.Detail, "external account") {
		t.Fatalf("the refused password sign-in: %+v", e)
	}

	// The provider's new role and provider replace the old ones, and the
	// sessions opened with the old ones end.
	must(t, a.AddProvider(ctx, "admin", "passports", "Agenția Servicii Publice"))
	id2 := id
	id2.Role, id2.Provider = tickets.RoleSupervisor, "passports"
	sess2, err := b.ExternalLogin(ctx, id2, "10.0.0.7", p)
	must(t, err)
	if sess2.User.Role != tickets.RoleSupervisor || sess2.User.Provider != "passports" {
		t.Fatalf("the session after a change of role: %+v", sess2.User)
	}
	if _, err := a.SessionByToken(ctx, sess.Token); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("the session with the old role: %v, want it ended", err)
	}
	if e := lastAudit(t, a, "saml", "user_external"); !strings.Contains(e.Detail, "role supervisor, provider passports") {
		t.Fatalf("the change's audit entry: %+v", e)
	}

	// A local account is taken over (its password no longer works); a
	// break-glass account is not.
	must(t, a.AddUser(ctx, "admin", "maria", tickets.RoleOperator, pw))
	must(t, a.AddUser(ctx, "admin", "urgenta", tickets.RoleAdministrator, pw))
	bg := tickets.LoginPolicy{BreakGlass: []string{"urgenta"}}
	if _, err := a.ExternalLogin(ctx, tickets.ExternalIdentity{Name: "maria", Role: tickets.RoleSpecialist, Provider: "default", Method: "saml"}, "10.0.0.9", bg); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Login(ctx, "maria", pw, "10.0.0.9", p); !errors.Is(err, tickets.ErrBadLogin) {
		t.Fatalf("the password of a local account taken over by the identity provider: %v", err)
	}
	if _, err := b.ExternalLogin(ctx, tickets.ExternalIdentity{Name: "urgenta", Role: tickets.RoleAdministrator, Provider: "default", Method: "saml"}, "10.0.0.9", bg); !errors.Is(err, tickets.ErrExternalRefused) {
		t.Fatalf("a break-glass account through the identity provider: %v", err)
	}
	if e := lastAudit(t, a, "urgenta", "login_failed"); !strings.Contains(e.Detail, "break-glass") {
		t.Fatalf("the refused break-glass account: %+v", e)
	}
	if _, err := a.Login(ctx, "urgenta", pw, "10.0.0.9", bg); err != nil {
		t.Fatalf("a break-glass account's password: %v", err)
	}
	must(t, a.AddUser(ctx, "admin", "vasile", tickets.RoleOperator, pw))
	if _, err := a.Login(ctx, "vasile", pw, "10.0.0.9", bg); !errors.Is(err, tickets.ErrBadLogin) {
		t.Fatalf("the right password of an account that is not break-glass: %v", err)
	}
	if e := lastAudit(t, a, "vasile", "login_failed"); !strings.Contains(e.Detail, "break-glass accounts only") {
		t.Fatalf("the refused password sign-in: %+v", e)
	}
	// A password given by an administrator makes the account local again.
	must(t, b.SetPassword(ctx, "admin", "maria", pw))
	if s, err := a.Login(ctx, "maria", pw, "10.0.0.9", p); err != nil || s.User.External {
		t.Fatalf("a password given to an external account: %+v %v", s.User, err)
	}

	// Disabled, unknown provider, bad role: refused before any session.
	must(t, a.SetUserDisabled(ctx, "admin", id.Name, true))
	if _, err := b.ExternalLogin(ctx, id2, "10.0.0.7", p); !errors.Is(err, tickets.ErrExternalRefused) {
		t.Fatalf("a disabled account through the identity provider: %v", err)
	}
	if e := lastAudit(t, a, id.Name, "login_failed"); e.Detail != "saml: account disabled" {
		t.Fatalf("the refused disabled account: %+v", e)
	}
	if _, err := a.ExternalLogin(ctx, tickets.ExternalIdentity{Name: "nou", Role: tickets.RoleOperator, Provider: "nobody", Method: "saml"}, "", p); !errors.Is(err, tickets.ErrExternalRefused) || !errors.Is(err, tickets.ErrNoProvider) {
		t.Fatalf("an unknown provider: %v", err)
	}
	if _, err := a.User(ctx, "nou"); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("a user of an unknown provider was made: %v", err)
	}
	if _, err := a.ExternalLogin(ctx, tickets.ExternalIdentity{Name: "nou", Role: "janitor", Provider: "default"}, "", p); !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("an unknown role: %v", err)
	}

	// Two engines signing in one new user at once: one account, two sessions.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = hs[i%2].st.ExternalLogin(ctx, tickets.ExternalIdentity{Name: "elena", Role: tickets.RoleOperator, Provider: "default", Method: "saml"}, "", p)
		})
	}
	wg.Wait()
	must(t, errors.Join(errs...))

	// The replay cache: once, across engines, until the assertion expires.
	now := time.Now()
	must(t, a.UseAssertionID(ctx, "id-1", now.Add(time.Minute)))
	if err := b.UseAssertionID(ctx, "id-1", now.Add(time.Minute)); !errors.Is(err, tickets.ErrReplayed) {
		t.Fatalf("an assertion ID used twice: %v, want ErrReplayed", err)
	}
	ok := make(chan error, 8)
	for i := range 8 {
		go func() { ok <- hs[i%2].st.UseAssertionID(ctx, "id-2", now.Add(time.Minute)) }()
	}
	accepted := 0
	for range 8 {
		switch err := <-ok; {
		case err == nil:
			accepted++
		case !errors.Is(err, tickets.ErrReplayed):
			t.Fatal(err)
		}
	}
	if accepted != 1 {
		t.Fatalf("one assertion ID on 8 concurrent sign-ins: accepted %d times", accepted)
	}
	// Expired records are dropped as new ones are made.
	b.SetClock(func() time.Time { return now.Add(2 * time.Minute) })
	must(t, b.UseAssertionID(ctx, "id-1", now.Add(3*time.Minute)))
}
