package console

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

// benchConsole returns a console over a new store with one operator and
// one supervisor, and their session cookies.
func benchConsole(b *testing.B) (*Console, *tickets.Store, map[string]*http.Cookie) {
	b.Helper()
	ctx := context.Background()
	st, err := tickets.Open(filepath.Join(b.TempDir(), tickets.DBFile))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	c, err := New(Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	cookies := map[string]*http.Cookie{}
	for name, role := range map[string]tickets.Role{"ana": tickets.RoleOperator, "sue": tickets.RoleSupervisor} {
		if err := st.AddUser(ctx, "bench", name, role, pw); err != nil {
			b.Fatal(err)
		}
		s, err := st.Login(ctx, name, pw, "127.0.0.1", tickets.LoginPolicy{})
		if err != nil {
			b.Fatal(err)
		}
		cookies[name] = &http.Cookie{Name: sessionCookie, Value: s.Token}
	}
	return c, st, cookies
}

func serve(b *testing.B, c *Console, ck *http.Cookie, path string) {
	req := httptest.NewRequest("GET", path, nil)
	req.AddCookie(ck)
	w := httptest.NewRecorder()
	c.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", path, w.Code, w.Body.String())
	}
}

// BenchmarkLogin: one sign-in (argon2id verification, session insert,
// audit row).
func BenchmarkLogin(b *testing.B) {
	_, st, _ := benchConsole(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Login(ctx, "ana", pw, "127.0.0.1", tickets.LoginPolicy{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPages: the queue (200 open tickets) and a ticket screen with 40
// history events and 60 transcript turns, rendered for an operator.
func BenchmarkPages(b *testing.B) {
	c, st, ck := benchConsole(b)
	ctx := context.Background()
	var last string
	for i := range 400 {
		tk, err := st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "+40721000001", CallID: "call-b",
			Service: tickets.Services[i%len(tickets.Services)], Description: "a request of a citizen"})
		if err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			st.Resolve(ctx, tk.Number, "ana", "done")
		}
		last = tk.Number
	}
	for i := range 40 {
		st.AddNote(ctx, last, "ana", "note number "+time.Duration(i).String())
	}
	for range 60 {
		st.AppendTurn(ctx, "call-b", tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "pașaportul meu a expirat", Mode: tickets.ModeSpeech, Confidence: 0.9})
	}
	b.Run("queue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serve(b, c, ck["ana"], "/")
		}
	})
	b.Run("ticket", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serve(b, c, ck["ana"], "/tickets/"+last)
		}
	})
}

// BenchmarkDashboard1M: the supervisor's dashboard page (every indicator
// per service, ratings, rendering) over 1,000,000 tickets and calls, for a
// year and for a month.
func BenchmarkDashboard1M(b *testing.B) {
	const n = 1_000_000
	c, st, ck := benchConsole(b)
	ctx := context.Background()
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.Local)
	year := from.AddDate(1, 0, 0).Sub(from)
	t0 := time.Now()
	if err := st.FillSynthetic(ctx, n, from, year); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d tickets and calls in %s", n, time.Since(t0).Round(time.Millisecond))
	for _, p := range []struct{ name, from, to string }{
		{"year", "2025-01-01", "2025-12-31"},
		{"month", "2025-06-01", "2025-06-30"},
	} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				serve(b, c, ck["sue"], "/dashboard?from="+p.from+"&to="+p.to)
			}
		})
		b.Run(p.name+"-csv", func(b *testing.B) {
			for b.Loop() {
				serve(b, c, ck["sue"], "/dashboard.csv?from="+p.from+"&to="+p.to)
			}
		})
	}
}

// BenchmarkSAMLSignIn: the console's side of an MPass sign-in, from the
// identity provider's answer (signed response and assertion, the assertion
// encrypted with AES-256-GCM to the console's RSA-2048 certificate) to the
// session: decrypting, checking both signatures and the conditions, the
// replay cache row, the account and session rows, the audit row. Getting
// each answer from the IdP is not timed.
func BenchmarkSAMLSignIn(b *testing.B) {
	st, err := tickets.Open(filepath.Join(b.TempDir(), tickets.DBFile))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	idp := startIdP(b, "127.0.0.1")
	key, cert := keyPair(b, "ivr console")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	u, _ := url.Parse(base)
	c, err := New(Config{Store: st, LoginRate: 1 << 20, SAML: &SAMLConfig{IDPMetadata: idp.metadata(b), URL: u, Key: key, Certificate: cert,
		RoleAttribute: attrRole, ProviderAttribute: attrProvider, Roles: testRoles}})
	if err != nil {
		b.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: c}}
	srv.Start()
	b.Cleanup(srv.Close)
	idp.spURL = base + "/saml/metadata"
	s := &samlEnv{env: &env{st: st}, idp: idp, base: base}
	for b.Loop() {
		b.StopTimer()
		cl := jarClient()
		f := s.toIdP(b, cl, "/")
		b.StartTimer()
		if code, page := post(b, cl, f); code != http.StatusOK {
			b.Fatalf("sign-in: %d %s", code, page)
		}
	}
}
