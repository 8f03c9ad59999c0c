package console

// Sign-in through the government's SAML 2.0 identity provider (MPass):
// the console is a service provider (github.com/crewjam/saml). The flow:
//
//  1. GET /saml/login?next=PATH answers 303 to the identity provider with an
//     AuthnRequest (HTTP-Redirect binding, signed with the SP key). Its ID
//     carries its own expiry and an HMAC made with a key derived from the SP
//     key, so any engine of the line that holds the same key accepts the
//     answer, and the console keeps no state between the two requests.
//  2. The identity provider posts a Response to POST /saml/acs (HTTP-POST
//     binding). It must answer one of our requests (InResponseTo), be
//     signed by a certificate of the provider's metadata (the Response or
//     the Assertion), be addressed to this console (Destination, Recipient,
//     Audience), be in its validity period, and carry an assertion ID not
//     seen before (the replay cache is in the database: tickets.Store
//     UseAssertionID, shared by the engines).
//  3. The assertion's attributes give the user name (or the NameID), the
//     role (mapped by the configuration) and the provider; the store opens
//     the same session as a password sign-in (tickets.Store.ExternalLogin).
//
// Every refusal is audited as "login_failed" with a detail "saml: REASON"
// (never the assertion's personal data), and shown on the sign-in page.

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/govline/ivr/tickets"
)

// SAMLConfig configures sign-in through a SAML 2.0 identity provider
// (docs/console.md, "Signing in with MPass (SAML)").
type SAMLConfig struct {
	// IDPMetadata is the identity provider's metadata (LoadIDPMetadata);
	// required.
	IDPMetadata *saml.EntityDescriptor
	// URL is the console's public base URL, as browsers reach it
	// ("https://console.example.gov"); required. The service provider's
	// metadata is at URL/saml/metadata, its assertion consumer service at
	// URL/saml/acs.
	URL *url.URL
	// EntityID is the service provider's entity ID; "" means
	// URL/saml/metadata.
	EntityID string
	// Key and Certificate are the service provider's (LoadKeyPair): it
	// signs its requests with them and the identity provider may encrypt
	// assertions to the certificate. An RSA key is required.
	Key         crypto.Signer
	Certificate *x509.Certificate
	// UserAttribute names the attribute that carries the user name; ""
	// takes the assertion's NameID. The name must be a valid console user
	// name (letters, digits, '.', '-', '_', at most 64).
	UserAttribute string
	// RoleAttribute names the attribute that carries the role; required.
	RoleAttribute string
	// ProviderAttribute names the attribute that carries the user's
	// provider (tickets.Provider ID); "" puts every user in
	// tickets.DefaultProvider.
	ProviderAttribute string
	// Roles maps a value of RoleAttribute to a console role; required. An
	// assertion whose values map to no role, or to two different ones, is
	// refused.
	Roles map[string]tickets.Role
}

// Sign-in request lifetime: the user has this long at the identity
// provider between the console's redirect and the answer.
const samlRequestTTL = 10 * time.Minute

// samlSP is the console's service provider.
type samlSP struct {
	cfg   SAMLConfig
	sp    *saml.ServiceProvider
	idKey []byte // HMAC key of the request IDs, derived from the SP key
}

func newSAML(cfg *SAMLConfig, st *tickets.Store) (*samlSP, error) {
	switch {
	case cfg.IDPMetadata == nil:
		return nil, errors.New("console: saml: the identity provider's metadata is required")
	case cfg.URL == nil || (cfg.URL.Scheme != "https" && cfg.URL.Scheme != "http") || cfg.URL.Host == "":
		return nil, errors.New("console: saml: the console's public URL (http:// or https://) is required")
	case cfg.Key == nil || cfg.Certificate == nil:
		return nil, errors.New("console: saml: the service provider's key and certificate are required")
	case cfg.RoleAttribute == "":
		return nil, errors.New("console: saml: the role attribute is required")
	case len(cfg.Roles) == 0:
		return nil, errors.New("console: saml: the role mapping is empty")
	}
	if _, ok := cfg.Key.(*rsa.PrivateKey); !ok {
		return nil, errors.New("console: saml: the service provider's key must be an RSA key")
	}
	for v, r := range cfg.Roles {
		if !isRole(r) {
			return nil, fmt.Errorf("console: saml: role mapping %q: %q is not a role (%v)", v, r, tickets.Roles)
		}
	}
	base := strings.TrimSuffix(cfg.URL.String(), "/")
	metaURL, err := url.Parse(base + "/saml/metadata")
	if err != nil {
		return nil, fmt.Errorf("console: saml: %w", err)
	}
	acsURL, _ := url.Parse(base + "/saml/acs")
	der, err := x509.MarshalPKCS8PrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("console: saml: key: %w", err)
	}
	k := sha256.Sum256(append([]byte("govline ivr: saml request ids\x00"), der...))
	s := &samlSP{cfg: *cfg, idKey: k[:]}
	s.sp = &saml.ServiceProvider{
		EntityID:                         cfg.EntityID,
		Key:                              cfg.Key,
		Certificate:                      cfg.Certificate,
		MetadataURL:                      *metaURL,
		AcsURL:                           *acsURL,
		IDPMetadata:                      cfg.IDPMetadata,
		SignatureMethod:                  dsig.RSASHA256SignatureMethod,
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		AuthnNameIDFormat:                saml.UnspecifiedNameIDFormat,
		ReplayCache:                      replayCache{st},
		RejectSHA1Signatures:             true,
		// No decryption of an AES-CBC assertion in an unsigned response:
		// the refusals' differing reasons would make a padding oracle.
		// The metadata asks for AES-GCM first.
		RequireSignedResponseForCBC: true,
	}
	if s.sp.GetSSOBindingLocation(saml.HTTPRedirectBinding) == "" {
		return nil, errors.New("console: saml: the identity provider's metadata has no SingleSignOnService with the HTTP-Redirect binding")
	}
	return s, nil
}

func isRole(r tickets.Role) bool {
	for _, x := range tickets.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// LoadIDPMetadata reads an identity provider's metadata from src: an
// http:// or https:// URL (fetched with client, nil for a client that
// gives up after 10 s), or a file.
func LoadIDPMetadata(ctx context.Context, src string, client *http.Client) (*saml.EntityDescriptor, error) {
	if strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "http://") {
		u, err := url.Parse(src)
		if err != nil {
			return nil, fmt.Errorf("identity provider metadata: %w", err)
		}
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		md, err := samlsp.FetchMetadata(ctx, client, *u)
		if err != nil {
			return nil, fmt.Errorf("identity provider metadata from %s: %w", src, err)
		}
		return md, nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("identity provider metadata: %w", err)
	}
	md, err := samlsp.ParseMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("identity provider metadata %s: %w", src, err)
	}
	return md, nil
}

// replayCache is the service provider's replay cache in the store: an
// assertion is accepted once by all the engines sharing the database.
type replayCache struct{ st *tickets.Store }

var _ saml.AssertionReplayCache = replayCache{}

// Consume implements saml.AssertionReplayCache.
func (c replayCache) Consume(id string, expires time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.st.UseAssertionID(ctx, id, expires)
	if errors.Is(err, tickets.ErrReplayed) {
		return fmt.Errorf("%w (%w)", saml.ErrAssertionReplayed, err)
	}
	return err
}

// newRequestID makes the ID of an AuthnRequest: a nonce, the request's
// expiry and an HMAC of both ("id-NONCE-EXPIRY-MAC", an xs:ID).
func (s *samlSP) newRequestID(now time.Time) string {
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	body := "id-" + hex.EncodeToString(nonce) + "-" + strconv.FormatInt(now.Add(samlRequestTTL).Unix(), 10)
	return body + "-" + s.mac(body)
}

func (s *samlSP) mac(body string) string {
	m := hmac.New(sha256.New, s.idKey)
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// validRequestID reports whether id was made by newRequestID with this
// key and has not expired at now.
func (s *samlSP) validRequestID(id string, now time.Time) bool {
	i := strings.LastIndexByte(id, '-')
	if i < 0 || len(id) > 128 {
		return false
	}
	body, mac := id[:i], id[i+1:]
	if !hmac.Equal([]byte(mac), []byte(s.mac(body))) {
		return false
	}
	j := strings.LastIndexByte(body, '-')
	exp, err := strconv.ParseInt(body[j+1:], 10, 64)
	return err == nil && now.Unix() <= exp
}

// samlMetadata serves the service provider's metadata (GET
// /saml/metadata), for the identity provider's administrator.
func (c *Console) samlMetadata(w http.ResponseWriter, r *http.Request) {
	b, err := xml.MarshalIndent(c.saml.sp.Metadata(), "", "  ")
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(b)
}

// samlLogin sends the browser to the identity provider (GET
// /saml/login?next=PATH).
func (c *Console) samlLogin(w http.ResponseWriter, r *http.Request) {
	sp := c.saml.sp
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	req.ID = c.saml.newRequestID(time.Now())
	next := safeNext(r.FormValue("next"))
	if len(next) > 80 { // the binding's limit on RelayState
		next = "/"
	}
	u, err := req.Redirect(next, sp)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// samlRefusal is why an answer of the identity provider was refused: the
// audit detail (after "saml: ") and the catalog id of the page's message.
type samlRefusal struct{ detail, msg string }

var (
	refusedUnsigned    = samlRefusal{"unsigned response and assertion", "saml.unsigned"}
	refusedSignature   = samlRefusal{"bad signature", "saml.signature"}
	refusedExpired     = samlRefusal{"expired", "saml.expired"}
	refusedNotYet      = samlRefusal{"not yet valid (clocks differ?)", "saml.not_yet"}
	refusedAudience    = samlRefusal{"wrong audience", "saml.audience"}
	refusedReplayed    = samlRefusal{"replayed assertion", "saml.replayed"}
	refusedUnsolicited = samlRefusal{"not an answer to a request of this console (unsolicited, or older than 10 minutes)", "saml.unsolicited"}
	refusedDestination = samlRefusal{"wrong destination or recipient", "saml.invalid"}
	refusedIssuer      = samlRefusal{"issuer is not the configured identity provider", "saml.invalid"}
	refusedStatus      = samlRefusal{"the identity provider did not authenticate the user", "saml.idp"}
	refusedMalformed   = samlRefusal{"malformed response", "saml.invalid"}
	refusedArtifact    = samlRefusal{"artifact binding not offered", "saml.invalid"}
	refusedInvalid     = samlRefusal{"invalid response", "saml.invalid"}
	refusedNoRole      = samlRefusal{"no role attribute", "saml.role"}
	refusedRoles       = samlRefusal{"attribute values of two different roles", "saml.role"}
	refusedNoProvider  = samlRefusal{"no provider attribute", "saml.provider"}
	refusedUserName    = samlRefusal{"the user name is not usable in the console", "saml.user"}
)

// classify maps the service provider's error to a refusal. signed tells
// whether the response carried any XML signature (or an encrypted
// assertion, whose signature is inside).
func classifySAML(err error, signed bool) samlRefusal {
	var bad saml.ErrBadStatus
	switch {
	case errors.Is(err, saml.ErrAssertionReplayed):
		return refusedReplayed
	case errors.Is(err, saml.ErrInvalidSignature):
		return refusedSignature
	case !signed || missingSignature(err):
		return refusedUnsigned
	case errors.Is(err, saml.ErrExpired):
		return refusedExpired
	case errors.Is(err, saml.ErrNotYetValid):
		return refusedNotYet
	case errors.Is(err, saml.ErrAudienceMismatch):
		return refusedAudience
	case errors.Is(err, saml.ErrRequestIDMismatch):
		return refusedUnsolicited
	case errors.Is(err, saml.ErrDestinationMismatch):
		return refusedDestination
	case errors.Is(err, saml.ErrIssuerMismatch):
		return refusedIssuer
	case errors.As(err, &bad):
		return refusedStatus
	case errors.Is(err, saml.ErrMalformedMessage):
		return refusedMalformed
	}
	return refusedInvalid
}

// samlACS is the assertion consumer service (POST /saml/acs): the
// identity provider's answer, posted by the browser.
func (c *Console) samlACS(w http.ResponseWriter, r *http.Request) {
	addr := clientAddr(r)
	ctx := r.Context()
	g := c.gate
	if wait, ok := g.buckets.Take(addr, time.Now()); !ok {
		g.count("throttled")
		if ok, _ := c.throttleAudit.Allow(addr); ok {
			c.audit(ctx, tickets.AuditEntry{Action: "login_throttled", Address: addr, Detail: "saml: more than the sign-ins a minute allowed from one address"})
		}
		w.Header().Set("Retry-After", retryAfter(&retryError{errTooMany, wait}))
		c.showLogin(w, r, http.StatusTooManyRequests, "", "login.too_many")
		return
	}
	refuse := func(user string, why samlRefusal, err error) {
		g.count("bad")
		if err != nil {
			var ire *saml.InvalidResponseError
			if errors.As(err, &ire) && ire.PrivateErr != nil {
				err = ire.PrivateErr // "Authentication failed" says nothing
			}
			c.log.Info("saml sign-in refused", "reason", why.detail, "err", err)
		}
		c.audit(ctx, tickets.AuditEntry{User: user, Action: "login_failed", Detail: "saml: " + why.detail, Address: addr})
		c.showLogin(w, r, http.StatusForbidden, "", why.msg)
	}
	r.Body = http.MaxBytesReader(w, r.Body, 512<<10)
	if err := r.ParseForm(); err != nil {
		refuse("", refusedMalformed, err)
		return
	}
	if r.Form.Get("SAMLart") != "" { // the library would look in the URL's query too
		refuse("", refusedArtifact, nil)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(r.PostForm.Get("SAMLResponse"))
	if err != nil || len(raw) == 0 {
		refuse("", refusedMalformed, err)
		return
	}
	// A first look, before the library checks it all: which of our
	// requests it answers, and whether anything in it is signed (to tell
	// an unsigned answer from a badly signed one).
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil || doc.Root() == nil {
		refuse("", refusedMalformed, err)
		return
	}
	root := doc.Root()
	signed := hasSignature(root)
	for _, a := range root.ChildElements() {
		if a.Tag == "EncryptedAssertion" || (a.Tag == "Assertion" && hasSignature(a)) {
			signed = true
		}
	}
	inResponseTo := root.SelectAttrValue("InResponseTo", "")
	var ids []string
	if c.saml.validRequestID(inResponseTo, time.Now()) {
		ids = []string{inResponseTo}
	}
	assertion, err := c.saml.sp.ParseResponse(r, ids)
	if err != nil {
		why := classifySAML(err, signed)
		if why == refusedInvalid && ids == nil {
			why = refusedUnsolicited
		}
		refuse("", why, err)
		return
	}
	id, why := c.saml.identity(assertion)
	if why != nil {
		refuse(id.Name, *why, nil)
		return
	}
	sess, err := c.st.ExternalLogin(ctx, id, addr, c.cfg.Login)
	switch {
	case errors.Is(err, tickets.ErrNoProvider): // audited by the store
		g.count("bad")
		c.showLogin(w, r, http.StatusForbidden, "", "saml.provider")
		return
	case errors.Is(err, tickets.ErrExternalRefused): // audited by the store
		g.count("bad")
		c.showLogin(w, r, http.StatusForbidden, "", "saml.refused")
		return
	case errors.Is(err, tickets.ErrInvalid):
		refuse("", refusedUserName, err)
		return
	case err != nil:
		g.count("error")
		c.serverError(w, r, err)
		return
	}
	g.count("ok")
	c.setSession(w, sess)
	c.setLangCookie(w, validLang(sess.User.Lang))
	// A page of ours, not a redirect, goes on to the console: the browser
	// came here from the identity provider's site, and it sends the
	// session's SameSite=Strict cookie only on a navigation that starts on
	// this site.
	next := safeNext(r.PostForm.Get("RelayState"))
	m := c.cat[validLang(sess.User.Lang)]
	var b strings.Builder
	if err := continueTpl.Execute(&b, map[string]string{"Lang": m.lang, "Next": next, "Text": m.T("saml.continue")}); err != nil {
		c.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

var continueTpl = template.Must(template.New("continue").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.Next}}"><title>{{.Text}}</title></head>
<body><p><a id="continue" href="{{.Next}}">{{.Text}}</a></p></body></html>
`))

// missingSignature reports whether err says that nothing was signed
// (an encrypted assertion without a signature inside, in a response
// without one). The library does not export that error.
func missingSignature(err error) bool {
	var ire *saml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		err = ire.PrivateErr
	}
	return strings.Contains(err.Error(), "signature element not present")
}

func hasSignature(el *etree.Element) bool {
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" {
			return true
		}
	}
	return false
}

// identity reads the user from a verified assertion, or says why it is
// refused.
func (s *samlSP) identity(a *saml.Assertion) (tickets.ExternalIdentity, *samlRefusal) {
	id := tickets.ExternalIdentity{Method: "saml", Provider: tickets.DefaultProvider}
	values := func(name string) []string {
		var out []string
		for _, st := range a.AttributeStatements {
			for _, at := range st.Attributes {
				if at.Name == name || (at.FriendlyName != "" && at.FriendlyName == name) {
					for _, v := range at.Values {
						out = append(out, strings.TrimSpace(v.Value))
					}
				}
			}
		}
		return out
	}
	if s.cfg.UserAttribute == "" {
		if a.Subject != nil && a.Subject.NameID != nil {
			id.Name = strings.TrimSpace(a.Subject.NameID.Value)
		}
	} else if v := values(s.cfg.UserAttribute); len(v) > 0 {
		id.Name = v[0]
	}
	if id.Name == "" || len(id.Name) > 64 {
		return id, &refusedUserName
	}
	roleValues := values(s.cfg.RoleAttribute)
	if len(roleValues) == 0 {
		return id, &refusedNoRole
	}
	var unknown []string
	for _, v := range roleValues {
		r, ok := s.cfg.Roles[v]
		switch {
		case !ok:
			unknown = append(unknown, v)
		case id.Role == "":
			id.Role = r
		case id.Role != r:
			return id, &refusedRoles
		}
	}
	if id.Role == "" {
		// The values are the identity provider's role names, not personal
		// data: the administrator needs them to fix the mapping.
		for i, v := range unknown {
			if len(v) > 40 {
				unknown[i] = v[:40] + "…"
			}
			unknown[i] = strconv.Quote(unknown[i])
		}
		return id, &samlRefusal{"unknown role " + strings.Join(unknown, ", "), "saml.role"}
	}
	if s.cfg.ProviderAttribute != "" {
		v := values(s.cfg.ProviderAttribute)
		if len(v) == 0 || v[0] == "" {
			return id, &refusedNoProvider
		}
		id.Provider = v[0]
	}
	return id, nil
}
