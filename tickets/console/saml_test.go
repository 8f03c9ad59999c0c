package console

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"

	"github.com/govline/ivr/tickets"
)

// The attributes the test identity provider sends, as MPass would.
const (
	attrRole     = "urn:mpass:role"
	attrProvider = "urn:mpass:organization"
)

var testRoles = map[string]tickets.Role{
	"MPASS_OPERATOR":   tickets.RoleOperator,
	"MPASS_SUPERVISOR": tickets.RoleSupervisor,
}

// keyPair makes an RSA key and a self-signed certificate valid from an
// hour ago for a day.
func keyPair(t testing.TB, cn string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// testIdP is a SAML 2.0 identity provider built with crewjam/saml's
// IdentityProvider, on a loopback port. It signs in whoever asks as the
// user of its fields, and can be told to misbehave in one way (mode).
type testIdP struct {
	t     testing.TB
	idp   *saml.IdentityProvider
	srv   *httptest.Server
	spURL string // where the SP's metadata is fetched (lazily: the SP starts after the IdP)

	mu       sync.Mutex
	name     string
	roles    []string
	provider string
	mode     string // "", "unsigned", "tampered", "other_key", "expired", "wrong_audience"
	otherKey *rsa.PrivateKey
	otherCrt *x509.Certificate
}

// startIdP starts the identity provider on host ("127.0.0.1" or
// "localhost": another site for a browser).
func startIdP(t testing.TB, host string) *testIdP {
	t.Helper()
	key, cert := keyPair(t, "test MPass")
	p := &testIdP{t: t, name: "ion.popescu", roles: []string{"MPASS_OPERATOR"}, provider: tickets.DefaultProvider}
	p.otherKey, p.otherCrt = keyPair(t, "an impostor")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.srv = &httptest.Server{Listener: ln, Config: &http.Server{ReadHeaderTimeout: 5 * time.Second}}
	port := ln.Addr().(*net.TCPAddr).Port
	base := fmt.Sprintf("http://%s:%d", host, port)
	meta, _ := url.Parse(base + "/metadata")
	sso, _ := url.Parse(base + "/sso")
	p.idp = &saml.IdentityProvider{Key: key, Certificate: cert, MetadataURL: *meta, SSOURL: *sso,
		ServiceProviderProvider: p, SessionProvider: p, AssertionMaker: p, ResponseWriter: p}
	mux := http.NewServeMux()
	mux.Handle("/", p.idp.Handler())
	mux.HandleFunc("/idp-initiated", func(w http.ResponseWriter, r *http.Request) { p.idp.ServeIDPInitiated(w, r, p.spURL, "/") })
	p.srv.Config.Handler = mux
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testIdP) set(fn func(p *testIdP)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p)
}

func (p *testIdP) state() (name string, roles []string, provider, mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.name, p.roles, p.provider, p.mode
}

// metadata is the IdP's metadata, as an administrator saves it to a file.
func (p *testIdP) metadata(t testing.TB) *saml.EntityDescriptor {
	b, err := xml.Marshal(p.idp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	f := t.TempDir() + "/mpass-metadata.xml"
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	md, err := LoadIDPMetadata(context.Background(), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// GetServiceProvider implements saml.ServiceProviderProvider: the
// console's own metadata, fetched from it. For the modes that change the
// assertion after signing, the assertion is sent in clear (the SP's
// encryption key is left out).
func (p *testIdP) GetServiceProvider(r *http.Request, id string) (*saml.EntityDescriptor, error) {
	if id != p.spURL {
		return nil, os.ErrNotExist
	}
	resp, err := http.Get(p.spURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var md saml.EntityDescriptor
	if err := xml.Unmarshal(b, &md); err != nil {
		return nil, err
	}
	if _, _, _, mode := p.state(); mode == "unsigned" || mode == "tampered" {
		for i := range md.SPSSODescriptors {
			var keep []saml.KeyDescriptor
			for _, k := range md.SPSSODescriptors[i].KeyDescriptors {
				if k.Use != "encryption" {
					keep = append(keep, k)
				}
			}
			md.SPSSODescriptors[i].KeyDescriptors = keep
		}
	}
	return &md, nil
}

// GetSession implements saml.SessionProvider: the user is signed in.
func (p *testIdP) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	name, roles, provider, _ := p.state()
	var rv []saml.AttributeValue
	for _, v := range roles {
		rv = append(rv, saml.AttributeValue{Type: "xs:string", Value: v})
	}
	now := time.Now()
	return &saml.Session{ID: "s-" + name, CreateTime: now, ExpireTime: now.Add(time.Hour), Index: "1", NameID: name,
		CustomAttributes: []saml.Attribute{
			{Name: attrRole, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:uri", Values: rv},
			{Name: attrProvider, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:uri", Values: []saml.AttributeValue{{Type: "xs:string", Value: provider}}},
		}}
}

// MakeAssertion implements saml.AssertionMaker: the default assertion,
// for another audience or dated an hour ago when told to.
func (p *testIdP) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return err
	}
	a := req.Assertion
	switch _, _, _, mode := p.state(); mode {
	case "wrong_audience":
		a.Conditions.AudienceRestrictions = []saml.AudienceRestriction{{Audience: saml.Audience{Value: "https://another-service.example/saml/metadata"}}}
	case "expired":
		// Issued an hour ago: the response arrives long after its time.
		const back = -time.Hour
		req.Now = req.Now.Add(back)
		a.IssueInstant = a.IssueInstant.Add(back)
		a.Conditions.NotBefore = a.Conditions.NotBefore.Add(back)
		a.Conditions.NotOnOrAfter = a.Conditions.NotOnOrAfter.Add(back)
		for i := range a.Subject.SubjectConfirmations {
			if d := a.Subject.SubjectConfirmations[i].SubjectConfirmationData; d != nil {
				d.NotOnOrAfter = d.NotOnOrAfter.Add(back)
			}
		}
		for i := range a.AuthnStatements {
			a.AuthnStatements[i].AuthnInstant = a.AuthnStatements[i].AuthnInstant.Add(back)
		}
	}
	return nil
}

// WriteResponse implements saml.ResponseWriter: the HTTP-POST form, with
// the response signed as told.
func (p *testIdP) WriteResponse(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
	_, _, _, mode := p.state()
	switch mode {
	case "other_key": // signed, but by a key the console does not trust
		other := *req.IDP
		other.Key, other.Signer, other.Certificate = p.otherKey, nil, p.otherCrt
		req.IDP = &other
		if err := req.MakeResponse(); err != nil {
			return err
		}
	case "cbc", "cbc_unsigned_response": // the assertion encrypted with AES-CBC (signed inside)
		other := *req.IDP
		enc := xmlenc.OAEP()
		enc.BlockCipher = xmlenc.AES128CBC
		other.AssertionEncrypter = enc
		req.IDP = &other
		if err := req.MakeResponse(); err != nil {
			return err
		}
		if mode == "cbc_unsigned_response" {
			removeSignature(req.ResponseEl)
		}
	case "unsigned": // neither the assertion nor the response signed
		if err := req.MakeAssertionEl(); err != nil {
			return err
		}
		removeSignature(req.AssertionEl)
		if err := req.MakeResponse(); err != nil {
			return err
		}
		removeSignature(req.ResponseEl)
	case "tampered": // signed, then the role changed on the way
		if err := req.MakeResponse(); err != nil {
			return err
		}
		n := 0
		for _, v := range req.ResponseEl.FindElements("//Attribute[@Name='" + attrRole + "']/AttributeValue") {
			// Another role than the IdP gave: the escalation a
			// forger would want.
			if v.Text() == "MPASS_SUPERVISOR" {
				v.SetText("MPASS_OPERATOR")
			} else {
				v.SetText("MPASS_SUPERVISOR")
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("tampered: no role attribute in %s", elementString(req.ResponseEl))
		}
	}
	return req.WriteResponse(w)
}

func removeSignature(el *etree.Element) {
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" {
			el.RemoveChild(c)
		}
	}
}

func elementString(el *etree.Element) string {
	d := etree.NewDocument()
	d.SetRoot(el.Copy())
	s, _ := d.WriteToString()
	return s
}

// samlEnv is a console with SAML sign-in, served on its own loopback port
// (its public URL must be known before it starts), and its IdP.
type samlEnv struct {
	*env
	idp  *testIdP
	base string // the console's URL
}

func newSAMLEnv(t *testing.T, adjust ...func(*Config)) *samlEnv {
	t.Helper()
	return newSAMLEnvOn(t, "127.0.0.1", adjust...)
}

func newSAMLEnvOn(t *testing.T, idpHost string, adjust ...func(*Config)) *samlEnv {
	t.Helper()
	idp := startIdP(t, idpHost)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	u, _ := url.Parse(base)
	key, cert := keyPair(t, "ivr console")
	md := idp.metadata(t)
	e := newEnv(t, append([]func(*Config){func(c *Config) {
		c.SAML = &SAMLConfig{IDPMetadata: md, URL: u, Key: key, Certificate: cert,
			RoleAttribute: attrRole, ProviderAttribute: attrProvider, Roles: testRoles}
	}}, adjust...)...)
	if err := e.st.AddProvider(context.Background(), "test", "passports", "Agenția Servicii Publice"); err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: e.console, ReadHeaderTimeout: 5 * time.Second}}
	srv.Start()
	t.Cleanup(srv.Close)
	idp.spURL = base + "/saml/metadata"
	return &samlEnv{env: e, idp: idp, base: base}
}

// browser is an http.Client with a cookie jar that does not follow
// redirects on its own (each step is checked).
func jarClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout: 10 * time.Second}
}

var (
	reMPass     = regexp.MustCompile(`<a class="sso" id="mpass" href="([^"]+)"`)
	reFormURL   = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	reFormField = regexp.MustCompile(`<input type="hidden" name="(SAMLResponse|RelayState)" value="([^"]*)"`)
	reError     = regexp.MustCompile(`(?s)role="alert"[^>]*>([^<]*)<`)
)

func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// idpForm is what the identity provider's page posts to the console.
type idpForm struct {
	action string
	values url.Values
}

// toIdP follows the sign-in page's MPass button to the identity provider
// and returns the form its page would post (the browser's script submits
// it), with the RelayState the console gave.
func (s *samlEnv) toIdP(t testing.TB, c *http.Client, next string) idpForm {
	t.Helper()
	_, page := get(t, c, s.base+"/login?next="+url.QueryEscape(next))
	m := reMPass.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the sign-in page has no MPass button:\n%s", page)
	}
	resp, _ := get(t, c, s.base+html.UnescapeString(m[1]))
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "/sso?SAMLRequest=") {
		t.Fatalf("the MPass button: %d to %q, want 303 to the identity provider", resp.StatusCode, loc)
	}
	q, _ := url.Parse(loc)
	if q.Query().Get("Signature") == "" || q.Query().Get("SigAlg") != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
		t.Errorf("the AuthnRequest is not signed with RSA-SHA256: %s", loc)
	}
	resp, page = get(t, c, loc)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the identity provider answered %d: %s", resp.StatusCode, page)
	}
	f := idpForm{values: url.Values{}}
	if m := reFormURL.FindStringSubmatch(page); m != nil {
		f.action = html.UnescapeString(m[1])
	}
	for _, m := range reFormField.FindAllStringSubmatch(page, -1) {
		f.values.Set(m[1], html.UnescapeString(m[2]))
	}
	if f.action != s.base+"/saml/acs" || f.values.Get("SAMLResponse") == "" {
		t.Fatalf("the identity provider's form: %+v\n%s", f, page)
	}
	if f.values.Get("RelayState") != next {
		t.Errorf("RelayState %q, want %q", f.values.Get("RelayState"), next)
	}
	return f
}

// post posts the identity provider's form to the console, as the browser
// does, and returns the status and page.
func post(t testing.TB, c *http.Client, f idpForm) (int, string) {
	t.Helper()
	resp, err := c.PostForm(f.action, f.values)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// me is the signed-in user of c (GET /api/me with its cookie), or the
// status when there is none.
func (s *samlEnv) me(t *testing.T, c *http.Client) (tickets.User, int) {
	t.Helper()
	resp, body := get(t, c, s.base+"/api/me")
	var out struct{ User tickets.User }
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
	}
	return out.User, resp.StatusCode
}

// signedInAs checks that the console accepted the answer and that the
// browser now works as user with role and provider.
func (s *samlEnv) signedInAs(t *testing.T, c *http.Client, code int, page, next, user string, role tickets.Role, provider string) {
	t.Helper()
	if code != http.StatusOK || !strings.Contains(page, `content="0;url=`+next+`"`) {
		t.Fatalf("the console's answer to the identity provider: %d\n%s", code, page)
	}
	u, status := s.me(t, c)
	if status != http.StatusOK || u.Name != user || u.Role != role || u.Provider != provider || !u.External {
		t.Fatalf("signed in as %+v (%d), want %s, %s of %s, external", u, status, user, role, provider)
	}
	resp, body := get(t, c, s.base+next)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, user) {
		t.Fatalf("the console at %s after the sign-in: %d", next, resp.StatusCode)
	}
}

// lastAudit is the newest audit entry of action.
func (s *samlEnv) lastAudit(t *testing.T, action string) tickets.AuditEntry {
	t.Helper()
	es, err := s.st.AuditLog(context.Background(), tickets.AuditQuery{Action: action, Limit: 1})
	if err != nil || len(es) == 0 {
		t.Fatalf("no audit entry %s: %v", action, err)
	}
	return es[0]
}

func TestSAMLSignIn(t *testing.T) {
	s := newSAMLEnv(t)
	c := jarClient()
	f := s.toIdP(t, c, "/dashboard")
	// The assertion is encrypted to the console's certificate (its
	// metadata offers it), as MPass does.
	if raw, _ := decodeB64(f.values.Get("SAMLResponse")); !strings.Contains(raw, "EncryptedAssertion") {
		t.Errorf("the good response's assertion is not encrypted")
	}
	s.idp.set(func(p *testIdP) { p.roles, p.provider = []string{"MPASS_SUPERVISOR"}, "passports" })
	f = s.toIdP(t, c, "/dashboard")
	code, page := post(t, c, f)
	s.signedInAs(t, c, code, page, "/dashboard", "ion.popescu", tickets.RoleSupervisor, "passports")
	if e := s.lastAudit(t, "login"); e.User != "ion.popescu" || e.Detail != "saml" || !e.OK {
		t.Errorf("the sign-in's audit entry: %+v", e)
	}
	if e := s.lastAudit(t, "user_external"); e.Target != "ion.popescu" || !strings.Contains(e.Detail, "created: role supervisor, provider passports") {
		t.Errorf("the account's creation: %+v", e)
	}
	// The session is the same kind as a password sign-in's: the cookie,
	// a CSRF token for forms, and sign-out.
	var sessCookie *http.Cookie
	u, _ := url.Parse(s.base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			sessCookie = ck
		}
	}
	if sessCookie == nil {
		t.Fatal("no session cookie")
	}
	sess, err := s.st.SessionByToken(context.Background(), sessCookie.Value)
	if err != nil || sess.CSRF == "" || time.Until(sess.Expires) < 9*time.Hour {
		t.Fatalf("the session: %+v %v", sess, err)
	}
	resp, err := c.PostForm(s.base+"/logout", url.Values{"csrf": {sess.CSRF}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, code := s.me(t, c); code != http.StatusUnauthorized {
		t.Fatalf("after sign-out: %d", code)
	}

	// A second sign-in with another role: the account follows MPass.
	s.idp.set(func(p *testIdP) { p.roles, p.provider = []string{"MPASS_OPERATOR"}, tickets.DefaultProvider })
	code, page = post(t, c, s.toIdP(t, c, "/"))
	s.signedInAs(t, c, code, page, "/", "ion.popescu", tickets.RoleOperator, tickets.DefaultProvider)

	// The sign-in page without SAML has no button.
	plain := newEnv(t)
	_, body := get(t, jarClient(), plain.srv.URL+"/login")
	if strings.Contains(body, `id="mpass"`) {
		t.Error("the MPass button without SAML configured")
	}
	if resp, _ := get(t, jarClient(), plain.srv.URL+"/saml/login"); resp.StatusCode == http.StatusSeeOther {
		t.Error("/saml/login answers without SAML configured")
	}
}

func decodeB64(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	return string(b), err
}

func base64Enc(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// Each bad answer is really produced (by the IdP, or by changing its
// answer on the way), refused with a page that says why, audited, and
// leaves the browser signed out; the same IdP's good answer, just before,
// is accepted, so that each refusal is the bad part's doing.
func TestSAMLRefusals(t *testing.T) {
	s := newSAMLEnv(t)
	good := func(t *testing.T) {
		t.Helper()
		s.idp.set(func(p *testIdP) {
			p.mode, p.roles, p.provider = "", []string{"MPASS_OPERATOR"}, tickets.DefaultProvider
		})
		c := jarClient()
		code, page := post(t, c, s.toIdP(t, c, "/"))
		s.signedInAs(t, c, code, page, "/", "ion.popescu", tickets.RoleOperator, tickets.DefaultProvider)
	}
	refused := func(t *testing.T, c *http.Client, f idpForm, detail, msgID string) {
		t.Helper()
		before, _ := s.st.AuditLog(context.Background(), tickets.AuditQuery{Action: "login_failed", Limit: 1})
		code, page := post(t, c, f)
		want := html.EscapeString(s.console.cat[tickets.LangRomanian].T(msgID))
		m := reError.FindStringSubmatch(page)
		if code != http.StatusForbidden || m == nil || strings.TrimSpace(m[1]) != want {
			t.Fatalf("refusal: %d, message %q, want 403 and %q", code, m, want)
		}
		if _, code := s.me(t, c); code != http.StatusUnauthorized {
			t.Fatalf("refused, yet signed in (%d)", code)
		}
		e := s.lastAudit(t, "login_failed")
		if len(before) > 0 && e.ID == before[0].ID {
			t.Fatalf("no audit entry for the refusal")
		}
		if e.Detail != "saml: "+detail || e.OK || e.Address != "127.0.0.1" {
			t.Fatalf("the refusal's audit entry: %+v, want detail %q", e, "saml: "+detail)
		}
	}
	for _, tc := range []struct{ mode, detail, msg string }{
		{"unsigned", "unsigned response and assertion", "saml.unsigned"},
		{"tampered", "bad signature", "saml.signature"},
		{"other_key", "bad signature", "saml.signature"},
		{"expired", "expired", "saml.expired"},
		{"wrong_audience", "wrong audience", "saml.audience"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			good(t)
			s.idp.set(func(p *testIdP) { p.mode = tc.mode })
			c := jarClient()
			refused(t, c, s.toIdP(t, c, "/"), tc.detail, tc.msg)
		})
	}
	t.Run("cbc_unsigned_response", func(t *testing.T) {
		// AES-CBC in a signed response is accepted...
		s.idp.set(func(p *testIdP) { p.mode = "cbc" })
		c := jarClient()
		f := s.toIdP(t, c, "/")
		if raw, _ := decodeB64(f.values.Get("SAMLResponse")); !strings.Contains(raw, "aes128-cbc") {
			t.Fatal("the IdP did not encrypt with AES-CBC")
		}
		code, page := post(t, c, f)
		s.signedInAs(t, c, code, page, "/", "ion.popescu", tickets.RoleOperator, tickets.DefaultProvider)
		// ...but not decrypted when nothing authenticates the response.
		s.idp.set(func(p *testIdP) { p.mode = "cbc_unsigned_response" })
		c = jarClient()
		refused(t, c, s.toIdP(t, c, "/"), "bad signature", "saml.signature")
	})
	t.Run("replayed", func(t *testing.T) {
		good(t)
		c := jarClient()
		f := s.toIdP(t, c, "/")
		code, page := post(t, c, f)
		s.signedInAs(t, c, code, page, "/", "ion.popescu", tickets.RoleOperator, tickets.DefaultProvider)
		// The same answer again, from another browser (captured on the way).
		refused(t, jarClient(), f, "replayed assertion", "saml.replayed")
		// And from the same browser, signed out.
		resp, err := c.PostForm(s.base+"/logout", url.Values{"csrf": {s.csrf(t, c)}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		refused(t, c, f, "replayed assertion", "saml.replayed")
	})
	t.Run("unknown_role", func(t *testing.T) {
		good(t)
		s.idp.set(func(p *testIdP) { p.roles = []string{"MPASS_JANITOR"} })
		c := jarClient()
		refused(t, c, s.toIdP(t, c, "/"), `unknown role "MPASS_JANITOR"`, "saml.role")
		if e := s.lastAudit(t, "login_failed"); e.User != "ion.popescu" {
			t.Errorf("the unknown role's audit entry names %q", e.User)
		}
	})
	t.Run("two_roles", func(t *testing.T) {
		s.idp.set(func(p *testIdP) { p.mode, p.roles = "", []string{"MPASS_OPERATOR", "MPASS_SUPERVISOR"} })
		c := jarClient()
		refused(t, c, s.toIdP(t, c, "/"), "attribute values of two different roles", "saml.role")
	})
	t.Run("unknown_provider", func(t *testing.T) {
		good(t)
		s.idp.set(func(p *testIdP) { p.provider = "nobody" })
		c := jarClient()
		refused(t, c, s.toIdP(t, c, "/"), "unknown provider", "saml.provider")
	})
	t.Run("unsolicited", func(t *testing.T) {
		good(t)
		// An IdP-initiated answer: it answers no request of the console.
		s.idp.set(func(p *testIdP) { p.mode = "" })
		c := jarClient()
		resp, page := get(t, c, s.idp.srv.URL+"/idp-initiated")
		f := idpForm{values: url.Values{}}
		if m := reFormURL.FindStringSubmatch(page); m != nil {
			f.action = html.UnescapeString(m[1])
		}
		for _, m := range reFormField.FindAllStringSubmatch(page, -1) {
			f.values.Set(m[1], html.UnescapeString(m[2]))
		}
		if resp.StatusCode != http.StatusOK || f.action != s.base+"/saml/acs" {
			t.Fatalf("the IdP-initiated answer: %d %+v", resp.StatusCode, f)
		}
		refused(t, c, f, "not an answer to a request of this console (unsolicited, or older than 10 minutes)", "saml.unsolicited")
		// The request IDs: the console's own, for 10 minutes, unforgeable.
		id := s.console.saml.newRequestID(time.Now())
		forged := id[:len(id)-4] + "beef"
		if forged == id {
			forged = id[:len(id)-4] + "feed"
		}
		if !s.console.saml.validRequestID(id, time.Now().Add(samlRequestTTL-time.Second)) || s.console.saml.validRequestID(forged, time.Now()) ||
			s.console.saml.validRequestID(id, time.Now().Add(samlRequestTTL+time.Second)) {
			t.Fatal("the request ID check accepts a forged or expired ID, or refuses a good one")
		}
	})
	t.Run("artifact", func(t *testing.T) {
		// The artifact binding is not offered: the console never asks
		// the IdP to resolve one, even when the URL carries it.
		c := jarClient()
		f := idpForm{action: s.base + "/saml/acs?SAMLart=AAQAAMFbLinlXaCM%2BFIxiDwGOLAy2T71gbpO7ZhNzAgEANlB90ECfpNEVLg%3D", values: url.Values{"RelayState": {"/"}}}
		refused(t, c, f, "artifact binding not offered", "saml.invalid")
	})
	t.Run("disabled", func(t *testing.T) {
		good(t)
		if err := s.st.SetUserDisabled(context.Background(), "test", "ion.popescu", true); err != nil {
			t.Fatal(err)
		}
		defer s.st.SetUserDisabled(context.Background(), "test", "ion.popescu", false)
		c := jarClient()
		refused(t, c, s.toIdP(t, c, "/"), "account disabled", "saml.refused")
	})
}

// csrf is the CSRF token of c's session (from the page's meta tag).
func (s *samlEnv) csrf(t *testing.T, c *http.Client) string {
	t.Helper()
	_, body := get(t, c, s.base+"/")
	m := regexp.MustCompile(`<meta name="csrf" content="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

// With break-glass accounts listed, only they sign in with a password;
// they never sign in through MPass; the others use MPass.
func TestSAMLBreakGlass(t *testing.T) {
	s := newSAMLEnv(t, func(c *Config) { c.Login.BreakGlass = []string{"adi"} })
	c := jarClient()
	if _, page := get(t, c, s.base+"/login"); !strings.Contains(page, s.console.cat["ro"].T("login.or_password_break_glass")) {
		t.Error("the sign-in page does not say the password form is for emergency accounts only")
	}
	if code, _ := s.passwordSignIn(t, c, "adi"); code != http.StatusSeeOther {
		t.Fatalf("the break-glass account's password: %d", code)
	}
	if code, _ := s.passwordSignIn(t, jarClient(), "ana"); code != http.StatusUnauthorized {
		t.Fatalf("the password of an account that is not break-glass: %d, want 401", code)
	}
	if e := s.lastAudit(t, "login_failed"); e.User != "ana" || !strings.Contains(e.Detail, "break-glass accounts only") {
		t.Fatalf("the refused password: %+v", e)
	}
	if st, _ := apiSignIn(t, s.base, "ana", pw); st != http.StatusUnauthorized {
		t.Fatalf("the API's password sign-in of an account that is not break-glass: %d", st)
	}
	s.idp.set(func(p *testIdP) { p.name, p.roles = "adi", []string{"MPASS_OPERATOR"} })
	c = jarClient()
	code, page := post(t, c, s.toIdP(t, c, "/"))
	if code != http.StatusForbidden || !strings.Contains(page, html.EscapeString(s.console.cat["ro"].T("saml.refused"))) {
		t.Fatalf("the break-glass account through MPass: %d", code)
	}
	if e := s.lastAudit(t, "login_failed"); e.User != "adi" || !strings.Contains(e.Detail, "break-glass") {
		t.Fatalf("the refused break-glass account: %+v", e)
	}
	// A local account signing in through MPass becomes external.
	s.idp.set(func(p *testIdP) { p.name = "ana" })
	c = jarClient()
	code, page = post(t, c, s.toIdP(t, c, "/"))
	s.signedInAs(t, c, code, page, "/", "ana", tickets.RoleOperator, tickets.DefaultProvider)
	if e := s.lastAudit(t, "user_external"); e.Target != "ana" || !strings.Contains(e.Detail, "converted from a local account") {
		t.Fatalf("the conversion's audit entry: %+v", e)
	}
}

// passwordSignIn signs in with the form, as a browser does.
func (s *samlEnv) passwordSignIn(t *testing.T, c *http.Client, name string) (int, string) {
	t.Helper()
	_, page := get(t, c, s.base+"/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no sign-in token")
	}
	resp, err := c.PostForm(s.base+"/login", url.Values{"csrf": {m[1]}, "name": {name}, "password": {pw}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// The metadata an administrator gives MPass: entity ID, the ACS with the
// HTTP-POST binding, the certificate, signed requests.
func TestSAMLMetadata(t *testing.T) {
	s := newSAMLEnv(t)
	resp, body := get(t, jarClient(), s.base+"/saml/metadata")
	var md saml.EntityDescriptor
	if err := xml.Unmarshal([]byte(body), &md); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata: %d %v", resp.StatusCode, err)
	}
	sp := md.SPSSODescriptors[0]
	if md.EntityID != s.base+"/saml/metadata" || len(sp.AssertionConsumerServices) != 1 ||
		sp.AssertionConsumerServices[0].Location != s.base+"/saml/acs" || sp.AssertionConsumerServices[0].Binding != saml.HTTPPostBinding ||
		sp.AuthnRequestsSigned == nil || !*sp.AuthnRequestsSigned || len(sp.KeyDescriptors) != 2 {
		t.Fatalf("metadata: %s", body)
	}
	// The IdP's metadata, from its address rather than a file.
	got, err := LoadIDPMetadata(context.Background(), s.idp.srv.URL+"/metadata", nil)
	if err != nil || got.EntityID != s.idp.idp.MetadataURL.String() || len(got.IDPSSODescriptors) != 1 {
		t.Fatalf("the IdP's metadata by URL: %+v %v", got, err)
	}
	if _, err := LoadIDPMetadata(context.Background(), s.idp.srv.URL+"/nothing", nil); err == nil {
		t.Fatal("metadata from a 404: no error")
	}
}

// The page after sign-in (the RelayState MPass sends back, or next=) stays
// on this site.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/dashboard": "/dashboard", "/tickets/12?x=1": "/tickets/12?x=1", "": "/", "https://evil.example/": "/",
		"//evil.example": "/", "/\\evil.example": "/", "/\t/evil.example": "/", "/\n/evil.example": "/", "dashboard": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
