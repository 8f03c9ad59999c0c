package console

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// Two engines on one PostgreSQL behind one public address, with the same
// [console.saml] files: a sign-in started on one engine is finished on the
// other (the request ID is checked with the shared key), and the same
// answer replayed to the first engine is refused (the replay cache is in
// the database).
func TestSAMLTwoEngines(t *testing.T) {
	url0 := pgtest.Start(t).NewDatabase(t)
	idp := startIdP(t, "127.0.0.1")
	key, cert := keyPair(t, "ivr console")
	md := idp.metadata(t)
	public := ""
	var engines [2]struct {
		st   *tickets.Store
		base string
	}
	for i := range engines {
		db, err := store.Open(context.Background(), url0, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st := tickets.New(db)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + ln.Addr().String()
		if i == 0 {
			public = base // the address the IdP posts to; the proxy may send it to either engine
		}
		u, _ := url.Parse(public)
		c, err := New(Config{Store: st, Poll: 20 * time.Millisecond, SAML: &SAMLConfig{IDPMetadata: md, URL: u, Key: key, Certificate: cert,
			RoleAttribute: attrRole, ProviderAttribute: attrProvider, Roles: testRoles}})
		if err != nil {
			t.Fatal(err)
		}
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second}}
		srv.Start()
		t.Cleanup(srv.Close)
		engines[i].st, engines[i].base = st, base
	}
	idp.spURL = public + "/saml/metadata"
	s := &samlEnv{env: &env{t: t, st: engines[0].st}, idp: idp, base: engines[0].base}

	c := jarClient()
	f := s.toIdP(t, c, "/") // started on engine 0
	onOther := idpForm{action: engines[1].base + "/saml/acs", values: f.values}
	code, page := post(t, c, onOther) // finished on engine 1
	s1 := &samlEnv{env: &env{t: t, st: engines[1].st}, idp: idp, base: engines[1].base}
	s1.signedInAs(t, c, code, page, "/", "ion.popescu", tickets.RoleOperator, tickets.DefaultProvider)

	replay := jarClient()
	code, page = post(t, replay, f) // the same answer, to engine 0
	if code != http.StatusForbidden {
		t.Fatalf("the answer replayed to the other engine: %d\n%s", code, page)
	}
	if e := s.lastAudit(t, "login_failed"); e.Detail != "saml: replayed assertion" {
		t.Fatalf("the replay's audit entry: %+v", e)
	}
	if _, code := s.me(t, replay); code != http.StatusUnauthorized {
		t.Fatalf("signed in by a replay (%d)", code)
	}
}
