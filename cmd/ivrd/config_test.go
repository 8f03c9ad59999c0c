package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr/amd"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func flowsDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "flows"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEmbeddedDefaults(t *testing.T) {
	c, err := LoadConfig("", env(map[string]string{"IVR_FLOWS_DIR": flowsDir(t)}))
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.Listen != "127.0.0.1:5060" || c.HTTP.Listen != "127.0.0.1:8080" || c.Engine.DataDir != "./var" ||
		c.Engine.Telephony != "sip" || c.SIP.RTPTimeout.Duration != 30*time.Second || !c.Engine.RecordCalls {
		t.Errorf("defaults = %+v", c)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	c, err := LoadConfig("", env(map[string]string{
		"IVR_FLOWS_DIR":   flowsDir(t),
		"IVR_SIP_LISTEN":  "127.0.0.1:5070",
		"IVR_HTTP_LISTEN": "127.0.0.1:9090",
		"IVR_DATA_DIR":    "/tmp/x",
		"IVR_RTP_TIMEOUT": "5s",
		"IVR_TELEPHONY":   "sip",
		// The limits of the line under attack.
		"IVR_SIP_MAX_CALLS": "300", "IVR_SIP_MAX_CALLS_PER_SOURCE": "20", "IVR_SIP_MAX_PENDING": "50",
		"IVR_SIP_MAX_PENDING_PER_SOURCE": "5", "IVR_SIP_ACK_TIMEOUT": "10s",
		"IVR_SIP_REGISTER_MAX_FAILURES": "6", "IVR_SIP_REGISTER_ADDRESS_MAX_FAILURES": "12",
		"IVR_SIP_REGISTER_BACKOFF": "2s", "IVR_SIP_REGISTER_LOCKOUT": "1h",
		"IVR_CONSOLE_LOGIN_RATE": "30", "IVR_CONSOLE_HASH_CONCURRENCY": "1", "IVR_CONSOLE_HASH_WAIT": "500ms",
		"IVR_RECORDINGS_SECRET": "a secret long enough", "IVR_RECORDINGS_PEERS": "engine-1=http://10.0.0.11:8081, engine-2 = https://e2.example/",
		"IVR_SIP_TRUNK": "sip:line:p%40ss@10.0.0.9:5080", "IVR_SIP_CALLER_ID": "+37322123456",
		"IVR_EMAIL_SURVEY": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.Listen != "127.0.0.1:5070" || c.HTTP.Listen != "127.0.0.1:9090" || c.Engine.DataDir != "/tmp/x" || c.SIP.RTPTimeout.Duration != 5*time.Second {
		t.Errorf("overrides not applied: %+v", c)
	}
	s, q, con := c.SIP, c.SIP.Queue, c.Console
	if s.MaxCalls != 300 || s.MaxCallsPerSource != 20 || s.MaxPending != 50 || s.MaxPendingPerSource != 5 || s.AckTimeout.Duration != 10*time.Second ||
		q.MaxFailures != 6 || q.AddressMaxFailures != 12 || q.Backoff.Duration != 2*time.Second || q.Lockout.Duration != time.Hour ||
		con.LoginRate != 30 || con.HashConcurrency != 1 || con.HashWait.Duration != 500*time.Millisecond {
		t.Errorf("limit overrides not applied: %+v %+v %+v", s, q, con)
	}
	if o := c.outboundConfig(nil); o.Trunk != (sip.Trunk{User: "line", Password: "p@ss", Host: "10.0.0.9", Port: 5080, Transport: "udp"}) || o.CallerID != "+37322123456" {
		t.Errorf("trunk overrides not applied: %+v", o)
	}
	// The shipped defaults of answering machine detection reach the line.
	if m := c.outboundConfig(nil).Machine; m != (sip.MachineDetection{Enabled: true, Speech: sip.DefaultMachineSpeech, Pause: sip.DefaultMachinePause,
		Silence: sip.DefaultMachineSilence, Max: sip.DefaultMachineMax}) {
		t.Errorf("machine detection %+v, want on with the documented defaults", m)
	}
	// And the PBXs' own calls.
	if a, e := c.ariConfig().Outbound.Machine, c.eslConfig().Outbound.Machine; a != c.outboundConfig(nil).Machine || e != (amd.Config{}) {
		t.Errorf("machine detection through Asterisk %+v, want the line's; through FreeSWITCH without a gateway %+v, want none", a, e)
	}
	if ec := c.Email.channel(); !ec.Survey || !c.Email.Survey {
		t.Errorf("IVR_EMAIL_SURVEY not applied: %+v", c.Email)
	}
	if r := c.Recording; r.Secret != "a secret long enough" || len(r.Peers) != 2 || r.Peers["engine-1"] != "http://10.0.0.11:8081" || r.Peers["engine-2"] != "https://e2.example/" {
		t.Errorf("recordings overrides not applied: %+v", r)
	}
}

// Every bad value is refused with an error that names its key.
func TestBadConfigNamesTheKey(t *testing.T) {
	fd := flowsDir(t)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tlsTrunk := "sips:u:p@10.0.0.1"
	cases := []struct {
		env  map[string]string
		file string
		key  string
	}{
		{env: map[string]string{"IVR_SIP_LISTEN": "nonsense"}, key: "sip.listen"},
		{env: map[string]string{"IVR_SIP_LISTEN": "127.0.0.1:99999"}, key: "sip.listen"},
		{env: map[string]string{"IVR_HTTP_LISTEN": "localhost"}, key: "http.listen"},
		{env: map[string]string{"IVR_TELEPHONY": "skype"}, key: "engine.telephony"},
		{env: map[string]string{"IVR_TELEPHONY": "ari", "IVR_ARI_URL": "ftp://asterisk"}, key: "ari"},
		{env: map[string]string{"IVR_TELEPHONY": "ari", "IVR_ARI_APP": "bad app name!"}, key: "ari"},
		{env: map[string]string{"IVR_TELEPHONY": "esl", "IVR_ESL_LISTEN": "nowhere"}, key: "esl"},
		{env: map[string]string{"IVR_RTP_TIMEOUT": "soon"}, key: "sip.rtp_timeout"},
		{env: map[string]string{"IVR_RTP_TIMEOUT": "10ms"}, key: "sip.rtp_timeout"},
		{env: map[string]string{"IVR_FLOWS_DIR": "/does/not/exist"}, key: "engine.flows_dir"},
		{env: map[string]string{"IVR_LANGUAGE": "fr"}, key: "engine.language"},
		{env: map[string]string{"IVR_RECORD_CALLS": "maybe"}, key: "engine.record_calls"},
		{env: map[string]string{"IVR_LOG_LEVEL": "loud"}, key: "log.level"},
		{file: "[sip]\ncodecs = [\"G729\"]\n", key: "sip.codecs"},
		{file: "[sip]\njitter_depth = 0\n", key: "sip.jitter_depth"},
		{env: map[string]string{"IVR_SIP_TRUNK": "sip:u:p@trunk.example.md:5060"}, key: "sip.trunk"},
		{env: map[string]string{"IVR_SIP_TRUNK": "http://10.0.0.1"}, key: "sip.trunk"},
		{env: map[string]string{"IVR_SIP_CALLER_ID": "0800;x"}, key: "sip.caller_id"},
		{env: map[string]string{"IVR_SIP_TRUNK": "sip:u:p@10.0.0.1;transport=sctp"}, key: "sip.trunk"},
		{env: map[string]string{"IVR_SIP_TRUNK": "sips:u:p@10.0.0.1;transport=udp"}, key: "sip.trunk"},
		{env: map[string]string{"IVR_SIP_TRUNK": "sip:u:p@10.0.0.1;transport=tcp", "IVR_SIP_TRUNK_CA": notPEM}, key: "sip.trunk_ca"},
		{env: map[string]string{"IVR_SIP_TRUNK_SERVER_NAME": "trunk.example"}, key: "sip.trunk_server_name"},
		{env: map[string]string{"IVR_SIP_TRUNK": tlsTrunk, "IVR_SIP_TRUNK_CA": "/does/not/exist.pem"}, key: "sip.trunk_ca"},
		{env: map[string]string{"IVR_SIP_TRUNK": tlsTrunk, "IVR_SIP_TRUNK_CA": notPEM}, key: "sip.trunk_ca"},
		{file: "[sip]\ntrunk = \"sips:u:p@10.0.0.1\"\ntrunk_cert = \"/etc/ivr/line.pem\"\n", key: "sip.trunk_cert"},
		{env: map[string]string{"IVR_SIP_TRUNK": tlsTrunk, "IVR_SIP_TRUNK_CERT": notPEM, "IVR_SIP_TRUNK_KEY": notPEM}, key: "sip.trunk_cert"},
		{file: "[sip.outbound]\nper_second = 0\n", key: "sip.outbound.per_second"},
		{env: map[string]string{"IVR_SURVEYS": "true"}, key: "surveys.enabled"},
		{env: map[string]string{"IVR_SURVEYS": "true", "IVR_TELEPHONY": "ari", "IVR_ARI_PASSWORD": "x"}, key: "surveys.enabled"},
		{file: "[engine]\ntelephony = \"ari\"\n[ari]\npassword = \"x\"\noutbound_endpoint = \"PJSIP/trunk\"\n", key: "ari"},
		{env: map[string]string{"IVR_SURVEYS": "true", "IVR_TELEPHONY": "esl"}, key: "surveys.enabled"},
		{env: map[string]string{"IVR_TELEPHONY": "esl"}, file: "[esl.outbound]\ngateway = \"trunk\"\n", key: "esl.outbound.gateway"},
		{file: "[engine]\ntelephony = \"esl\"\n[esl]\ninbound_addr = \"127.0.0.1:8021\"\ninbound_password = \"ClueCon\"\n[esl.outbound]\ngateway = \"trunk one\"\n", key: "esl"},
		{env: map[string]string{"IVR_RETENTION": "perhaps"}, key: "retention.enabled"},
		{file: "[retention]\nrecordings = \"1y\"\n", key: "retention.recordings"},
		{file: "[retention]\nat = \"3h30\"\n", key: "retention.at"},
		{file: "[retention.providers.pass]\npersonal = \"-1d\"\n", key: "retention.providers.pass.personal"},
		{env: map[string]string{"IVR_SURVEYS_PERIOD": "1m"}, key: "surveys.period"},
		{file: "[sip.outbound]\nretries = -1\n", key: "sip.outbound.retries"},
		{file: "[sip.outbound]\nmax_concurrent = 0\n", key: "sip.outbound.max_concurrent"},
		{file: "[sip.outbound]\nring_timeout = \"1s\"\n", key: "sip.outbound.ring_timeout"},
		{file: "[sip.outbound]\nmachine_speech = \"20s\"\n", key: "sip.outbound.machine_speech"},
		{file: "[sip.outbound]\nmachine_pause = \"100ms\"\n", key: "sip.outbound.machine_pause"},
		{file: "[sip.outbound]\nmachine_silence = \"0s\"\n", key: "sip.outbound.machine_silence"},
		{file: "[sip.outbound]\nmachine_max = \"2s\"\n", key: "sip.outbound.machine_max"},
		{file: "[ari]\nmachine_speech = \"20s\"\n", key: "ari.machine_speech"},
		{file: "[esl.outbound]\nmachine_pause = \"100ms\"\n", key: "esl.outbound.machine_pause"},
		{file: "[ari]\nmachine_detektion = true\n", key: "ari.machine_detektion"},
		{file: "[sip]\nlistn = \"127.0.0.1:5060\"\n", key: "sip.listn"},
		{file: "[sip]\nrtp_port_min = 10000\nrtp_port_max = 10001\n", key: "sip.rtp_port_min"},
		{file: "[engine]\nmenu_retries = 0\n", key: "engine.menu_retries"},
		{file: "[engine]\nshutdown_grace = \"forever\"\n", key: "shutdown_grace"},
		{file: "[sip\nlisten=1", key: "line 2"},
		{file: "[flows]\ndefault = \"nope.lua\"\n", key: "flows"},
		{file: "[flows]\ndefault = \"../etc/passwd\"\n", key: "flows"},
		{file: "[flows.routes]\n\"0800\" = \"missing.lua\"\n", key: "flows"},
		{file: "[flows]\ncpu_limit = \"1ms\"\n", key: "flows.cpu_limit"},
		{env: map[string]string{"IVR_FLOWS_RELOAD": "often"}, key: "flows.reload"},
		{file: "[calendar]\ntime_zone = \"Mars/Olympus\"\n", key: "calendar"},
		{file: "[calendar.hours]\nmon = \"20:00-08:00\"\n", key: "mon"},
		{file: "[calendar.hours]\nsun = \"9 to 5\"\n", key: "sun"},
		{file: "[calendar]\nholidays = [\"25 Dec\"]\n", key: "holidays"},
		{file: "[deadlines.default]\nnormal = \"soon\"\n", key: "deadlines"},
		{env: map[string]string{"IVR_CONSOLE_LISTEN": "127.0.0.1:8080"}, key: "console.listen"},
		{env: map[string]string{"IVR_CHAT_LISTEN": "127.0.0.1:8081"}, key: "chat.listen"},
		{env: map[string]string{"IVR_CHAT_LISTEN": "nohost"}, key: "chat.listen"},
		{env: map[string]string{"IVR_CHAT_ORIGINS": "https://portal.gov.ro/"}, key: "chat.origins"},
		{env: map[string]string{"IVR_WEBHOOK_URL": "https://gw.example/notify", "IVR_WEBHOOK_SECRET": "short"}, key: "webhook.secret"},
		{env: map[string]string{"IVR_WEBHOOK_URL": "gw.example"}, key: "webhook.url"},
		{env: map[string]string{"IVR_EMAIL_IMAP_URL": "pop3://u:p@mail.example:110"}, key: "email.imap_url"},
		{env: map[string]string{"IVR_EMAIL_IMAP_URL": "imap://mail.example:143/INBOX", "IVR_EMAIL_SMTP_URL": "smtp://mail.example:587", "IVR_EMAIL_ADDRESS": "support@example.gov"}, key: "email.imap_url"},
		{env: map[string]string{"IVR_EMAIL_IMAP_URL": "imap://u:p@mail.example:143/INBOX", "IVR_EMAIL_ADDRESS": "support@example.gov"}, key: "email.smtp_url"},
		{env: map[string]string{"IVR_EMAIL_IMAP_URL": "imap://u:p@mail.example:143/INBOX", "IVR_EMAIL_SMTP_URL": "http://mail.example", "IVR_EMAIL_ADDRESS": "support@example.gov"}, key: "email.smtp_url"},
		{env: map[string]string{"IVR_EMAIL_IMAP_URL": "imap://u:p@mail.example:143/INBOX", "IVR_EMAIL_SMTP_URL": "smtp://mail.example:587", "IVR_EMAIL_ADDRESS": "support"}, key: "email.address"},
		{env: map[string]string{"IVR_EMAIL_SMTP_URL": "smtp://mail.example:587"}, key: "email.imap_url"},
		{file: "[email]\nmax_size_mb = -1\n", key: "email.max_size_mb"},
		{file: "[email]\nimap_url = \"imap://u:p@h:143/INBOX\"\nsmtp_url = \"smtp://h:587\"\naddress = \"s@example.gov\"\n[[email.mailboxes]]\nimap_url = \"ftp://x\"\n", key: "email.mailboxes[0]"},
		{file: "[[email.mailboxes]]\nimap_url = \"imap://u:p@h:143/INBOX\"\n", key: "email.imap_url"},
		{file: "[console]\nlockout = \"1s\"\n", key: "console.lockout"},
		{env: map[string]string{"IVR_SPEECH": "sometimes"}, key: "speech.enabled"},
		{env: map[string]string{"IVR_SPEECH_VAD": "both"}, key: "speech.vad"},
		{env: map[string]string{"IVR_SPEECH_MAX_CALLS": "-2"}, key: "speech.max_calls"},
		{env: map[string]string{"IVR_SPEECH_MAX_CALLS": "many"}, key: "speech.max_calls"},
		{file: "[speech]\nvad_threshold = 1.5\n", key: "speech.vad_threshold"},
		{file: "[speech]\nmin_speech = \"5ms\"\n", key: "speech.min_speech"},
		{file: "[speech]\nnoise_margin_db = -3\n", key: "speech.noise_margin_db"},
		{file: "[speech]\nend_silence = \"soon\"\n", key: "end_silence"},
		{file: "[speech]\nend_silence = \"50ms\"\n", key: "speech.end_silence"},
		{file: "[speech]\nend_silence = \"2s\"\ndigits_end_silence = \"1s\"\n", key: "speech.digits_end_silence"},
		{file: "[speech]\nmax_utterance = \"1h\"\n", key: "speech.max_utterance"},
		{env: map[string]string{"IVR_SIP_MAX_CALLS": "lots"}, key: "sip.max_calls"},
		{file: "[sip]\nmax_calls = 0\n", key: "sip.max_calls"},
		{file: "[sip]\nmax_calls_per_source = 2000\n", key: "sip.max_calls_per_source"},
		{file: "[sip]\nmax_pending_per_source = 500\n", key: "sip.max_pending_per_source"},
		{env: map[string]string{"IVR_SIP_ACK_TIMEOUT": "100ms"}, key: "sip.ack_timeout"},
		{file: "[sip.queue]\nmax_failures = 0\n", key: "sip.queue.max_failures"},
		{file: "[sip.queue]\nbackoff = \"0s\"\n", key: "sip.queue.backoff"},
		{env: map[string]string{"IVR_SIP_REGISTER_LOCKOUT": "10s"}, key: "sip.queue.lockout"},
		{env: map[string]string{"IVR_CONSOLE_LOGIN_RATE": "x"}, key: "console.login_rate"},
		{env: map[string]string{"IVR_CONSOLE_HASH_CONCURRENCY": "0"}, key: "console.hash_concurrency"},
		{file: "[console]\nhash_wait = \"1m\"\n", key: "console.hash_wait"},
		{env: map[string]string{"IVR_RECORDINGS_PEERS": "engine-1=http://10.0.0.11:8081"}, key: "recordings.secret"},
		{env: map[string]string{"IVR_RECORDINGS_SECRET": "short"}, key: "recordings.secret"},
		{env: map[string]string{"IVR_RECORDINGS_SECRET": "a secret long enough", "IVR_RECORDINGS_PEERS": "engine-1=10.0.0.11:8081"}, key: "recordings.peers"},
		{env: map[string]string{"IVR_RECORDINGS_PEERS": "engine-1"}, key: "recordings.peers"},
		{file: "[recordings]\nsecret = \"a secret long enough\"\n[recordings.peers]\nengine-1 = \"ftp://x\"\n", key: "recordings.peers"},
		{file: "[console]\npublic_url = \"ftp://console.example\"\n", key: "console.public_url"},
		{file: "[console]\npublic_url = \"https://console.example/console\"\n", key: "console.public_url"},
		{env: map[string]string{"IVR_CONSOLE_SAML_IDP_METADATA": "/etc/ivr/mpass.xml"}, key: "console.public_url"},
		{file: "[console]\npublic_url = \"https://c.example\"\n[console.saml]\nidp_metadata = \"/x\"\nkey = \"k\"\nrole_attribute = \"r\"\n[console.saml.roles]\nA = \"operator\"\n", key: "console.saml.cert"},
		{file: "[console]\npublic_url = \"https://c.example\"\n[console.saml]\nidp_metadata = \"/x\"\ncert = \"c\"\nkey = \"k\"\nrole_attribute = \"r\"\n", key: "console.saml.roles"},
		{file: "[console]\npublic_url = \"https://c.example\"\n[console.saml]\nidp_metadata = \"/x\"\ncert = \"c\"\nkey = \"k\"\nrole_attribute = \"r\"\n[console.saml.roles]\nA = \"janitor\"\n", key: "console.saml.roles"},
		{file: "[console]\nlisten = \"\"\npublic_url = \"https://c.example\"\n[console.saml]\nidp_metadata = \"/x\"\ncert = \"c\"\nkey = \"k\"\nrole_attribute = \"r\"\n[console.saml.roles]\nA = \"operator\"\n", key: "console.saml.idp_metadata"},
	}
	for _, c := range cases {
		e := map[string]string{"IVR_FLOWS_DIR": fd}
		for k, v := range c.env {
			e[k] = v
		}
		path := ""
		if c.file != "" {
			path = filepath.Join(t.TempDir(), "ivrd.toml")
			if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := LoadConfig(path, env(e))
		if err == nil {
			t.Errorf("%v %q: accepted", c.env, c.file)
			continue
		}
		if !strings.Contains(err.Error(), c.key) {
			t.Errorf("%v %q: error %q does not name %s", c.env, c.file, err, c.key)
		}
	}
}

// A TLS trunk's keys, from the file and the environment, reach the line.
func TestTrunkTLSConfig(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trunk CA"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, cert, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "line.pem"), filepath.Join(dir, "line.key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for f, b := range map[string][]byte{ca: certPEM, cert: certPEM, keyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "ivrd.toml")
	file := "[sip]\ntrunk = \"sip:line:secret@10.0.0.9;transport=tls\"\ntrunk_ca = \"" + ca + "\"\ntrunk_server_name = \"trunk.operator.example\"\n"
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path, env(map[string]string{"IVR_FLOWS_DIR": flowsDir(t), "IVR_SIP_TRUNK_CERT": cert, "IVR_SIP_TRUNK_KEY": keyFile}))
	if err != nil {
		t.Fatal(err)
	}
	o := c.outboundConfig(nil)
	if o.Trunk != (sip.Trunk{User: "line", Password: "secret", Host: "10.0.0.9", Port: 5061, Transport: "tls"}) {
		t.Errorf("trunk %+v, want TLS on 5061", o.Trunk)
	}
	if want := (sip.TrunkTLS{CAFile: ca, ServerName: "trunk.operator.example", CertFile: cert, KeyFile: keyFile}); o.TLS != want {
		t.Errorf("trunk TLS %+v, want %+v", o.TLS, want)
	}
	conf, err := o.TLS.Config(o.Trunk)
	if err != nil {
		t.Fatal(err)
	}
	if conf.ServerName != "trunk.operator.example" || len(conf.Certificates) != 1 || conf.InsecureSkipVerify {
		t.Errorf("TLS configuration: name %q, %d client certificates, skip verify %v", conf.ServerName, len(conf.Certificates), conf.InsecureSkipVerify)
	}
}

// The shipped example is the embedded default, so it is always valid.
func TestExampleConfigIsValid(t *testing.T) {
	_, err := LoadConfig("ivrd.toml", env(map[string]string{"IVR_FLOWS_DIR": flowsDir(t)}))
	if err != nil {
		t.Fatal(err)
	}
}

// Survey calls run on every telephony: through Asterisk with
// ari.outbound_endpoint, through FreeSWITCH with [esl.outbound] and the
// inbound event socket; the keys reach the adapters.
func TestSurveysOnEveryTelephony(t *testing.T) {
	fd := flowsDir(t)
	for _, c := range []struct{ name, file string }{
		{"ari", "[engine]\ntelephony = \"ari\"\n[surveys]\nenabled = true\n[ari]\npassword = \"x\"\noutbound_endpoint = \"PJSIP/{number}@trunk\"\noutbound_caller_id = \"080012345\"\noutbound_ring_timeout = \"25s\"\nmachine_speech = \"3s\"\n"},
		{"esl", "[engine]\ntelephony = \"esl\"\n[surveys]\nenabled = true\n[esl]\ninbound_addr = \"127.0.0.1:8021\"\ninbound_password = \"ClueCon\"\n[esl.outbound]\ngateway = \"trunk\"\ncaller_id = \"080012345\"\nring_timeout = \"25s\"\nmachine_detection = false\n"},
	} {
		path := filepath.Join(t.TempDir(), "ivrd.toml")
		if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path, env(map[string]string{"IVR_FLOWS_DIR": fd}))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		switch c.name {
		case "ari":
			o := cfg.ariConfig().Outbound
			if o.Endpoint != "PJSIP/{number}@trunk" || o.CallerID != "080012345" || o.RingTimeout != 25*time.Second ||
				o.Machine != (amd.Config{Enabled: true, Speech: 3 * time.Second, Pause: amd.DefaultPause, Silence: amd.DefaultSilence, Max: amd.DefaultMax}) {
				t.Errorf("ari outbound %+v", o)
			}
		case "esl":
			o := cfg.eslConfig().Outbound
			if o.Gateway != "trunk" || o.CallerID != "080012345" || o.RingTimeout != 25*time.Second || o.Addr != "127.0.0.1:8021" || o.Password != "ClueCon" ||
				o.Machine.Enabled || o.Machine.Speech != amd.DefaultSpeech {
				t.Errorf("esl outbound %+v", o)
			}
		}
	}
}
