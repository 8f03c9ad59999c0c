package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/govline/ivr/tickets"
)

// [console.saml] as an administrator writes it: the IdP's metadata file,
// the SP's PEM key pair, the role mapping; and the errors that name the
// key when a file is wrong.
func TestConsoleSAMLConfig(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "console"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	crt := write("sp.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	k := write("sp.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	meta, _ := url.Parse("https://mpass.example/metadata")
	sso, _ := url.Parse("https://mpass.example/sso")
	idp := &saml.IdentityProvider{Key: key, Certificate: cert, MetadataURL: *meta, SSOURL: *sso}
	b, err := xml.Marshal(idp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	md := write("mpass.xml", b)

	file := write("ivrd.toml", []byte(`[console]
public_url = "https://console.example.gov"
[console.saml]
idp_metadata = "`+md+`"
cert = "`+crt+`"
key = "`+k+`"
role_attribute = "urn:mpass:role"
provider_attribute = "urn:mpass:organization"
break_glass = ["urgenta"]
[console.saml.roles]
"OPERATOR_L1" = "operator"
"SUPERVISOR" = "supervisor"
`))
	cfg, err := LoadConfig(file, env(map[string]string{"IVR_FLOWS_DIR": flowsDir(t)}))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := cfg.Console.samlConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sc.IDPMetadata.EntityID != "https://mpass.example/metadata" || sc.URL.String() != "https://console.example.gov" ||
		sc.Certificate == nil || sc.Roles["SUPERVISOR"] != tickets.RoleSupervisor || sc.ProviderAttribute != "urn:mpass:organization" {
		t.Fatalf("saml config: %+v", sc)
	}
	// Wrong files: the error names the key.
	for _, c := range []struct {
		set func(*Config)
		key string
	}{
		{func(c *Config) { c.Console.SAML.IDPMetadata = filepath.Join(dir, "missing.xml") }, "console.saml.idp_metadata"},
		{func(c *Config) { c.Console.SAML.IDPMetadata = crt }, "console.saml.idp_metadata"},
		{func(c *Config) { c.Console.SAML.Key = crt }, "console.saml.key"},
	} {
		bad := cfg
		c.set(&bad)
		if _, err := bad.Console.samlConfig(context.Background()); err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: %v", c.key, err)
		}
	}
}
