package ari

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// confSection is one [section] of an Asterisk configuration file.
type confSection struct {
	name  string
	lines [][2]string // key, value in order ("exten", "same", "member" included)
}

func (s confSection) get(key string) string {
	for _, l := range s.lines {
		if l[0] == key {
			return l[1]
		}
	}
	return ""
}

// parseConf reads Asterisk's configuration syntax: [section], key = value,
// key => value, ';' comments.
func parseConf(t *testing.T, name string) []confSection {
	t.Helper()
	f, err := os.Open(filepath.Join("asterisk", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []confSection
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section header", name, n)
			}
			out = append(out, confSection{name: line[1 : len(line)-1]})
			continue
		}
		if len(out) == 0 {
			t.Fatalf("%s:%d: option outside a section", name, n)
		}
		k, v, ok := strings.Cut(line, "=>")
		if !ok {
			k, v, ok = strings.Cut(line, "=")
		}
		if !ok {
			t.Fatalf("%s:%d: not key = value: %q", name, n, line)
		}
		out[len(out)-1].lines = append(out[len(out)-1].lines, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out
}

// Option names each file may use, from the Asterisk 20 documentation and
// configs/samples/*.conf.sample (res_pjsip's object types by "type").
var knownOptions = map[string]map[string]bool{
	"http.conf":               set("enabled", "bindaddr", "bindport", "tlsenable", "tlsbindaddr", "tlscertfile", "tlsprivatekey", "prefix", "sessionlimit", "session_inactivity"),
	"ari.conf":                set("enabled", "pretty", "allowed_origins", "auth_realm", "websocket_write_timeout", "channelvars", "type", "read_only", "password", "password_format"),
	"queues.conf":             set("persistentmembers", "shared_lastcall", "strategy", "timeout", "retry", "wrapuptime", "maxlen", "joinempty", "leavewhenempty", "ringinuse", "announce-frequency", "announce-holdtime", "setinterfacevar", "setqueueentryvar", "member", "musicclass", "servicelevel", "weight"),
	"extensions.conf":         set("static", "writeprotect", "exten", "same", "include"),
	"pjsip.conf/transport":    set("type", "protocol", "bind", "external_media_address", "external_signaling_address", "local_net"),
	"pjsip.conf/endpoint":     set("type", "transport", "context", "disallow", "allow", "dtmf_mode", "direct_media", "rtp_symmetric", "force_rport", "rewrite_contact", "aors", "auth", "outbound_auth", "from_user", "callerid", "send_pai"),
	"pjsip.conf/aor":          set("type", "contact", "qualify_frequency", "max_contacts", "remove_existing"),
	"pjsip.conf/auth":         set("type", "auth_type", "username", "password"),
	"pjsip.conf/identify":     set("type", "endpoint", "match"),
	"pjsip.conf/registration": set("type", "transport", "outbound_auth", "server_uri", "client_uri", "retry_interval"),
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func TestAsteriskConfigFiles(t *testing.T) {
	files := map[string][]confSection{}
	for _, name := range []string{"http.conf", "ari.conf", "pjsip.conf", "extensions.conf", "queues.conf"} {
		files[name] = parseConf(t, name)
		for _, s := range files[name] {
			known := knownOptions[name]
			if name == "pjsip.conf" {
				known = knownOptions["pjsip.conf/"+s.get("type")]
				if known == nil {
					t.Errorf("pjsip.conf [%s]: unknown type %q", s.name, s.get("type"))
					continue
				}
			}
			for _, l := range s.lines {
				if !known[l[0]] {
					t.Errorf("%s [%s]: option %q is not an Asterisk 20 option of this file", name, s.name, l[0])
				}
			}
		}
	}
	sections := func(file string) map[string][]confSection {
		m := map[string][]confSection{}
		for _, s := range files[file] {
			m[s.name] = append(m[s.name], s)
		}
		return m
	}

	// http.conf serves ARI where the adapter's default URL points.
	http := sections("http.conf")["general"][0]
	if http.get("enabled") != "yes" || http.get("bindport") != "8088" {
		t.Errorf("http.conf: enabled %q bindport %q", http.get("enabled"), http.get("bindport"))
	}
	// ari.conf: enabled, one read-write user named like the application.
	ari := sections("ari.conf")
	if ari["general"][0].get("enabled") != "yes" {
		t.Error("ari.conf: ARI not enabled")
	}
	if u := ari[DefaultApp]; len(u) != 1 || u[0].get("type") != "user" || u[0].get("read_only") != "no" || u[0].get("password") == "" {
		t.Errorf("ari.conf: no read-write user %q", DefaultApp)
	}

	// extensions.conf: the incoming context enters Stasis(ivr); the
	// handoff context has, for every queue, an extension of the queue's
	// name with priority 1 that calls Queue(that queue).
	ext := sections("extensions.conf")
	var stasis bool
	for _, l := range ext["from-trunk"][0].lines {
		if strings.Contains(l[1], "Stasis("+DefaultApp+")") {
			stasis = true
		}
	}
	if !stasis {
		t.Errorf("extensions.conf [from-trunk] does not enter Stasis(%s)", DefaultApp)
	}
	queues := sections("queues.conf")
	handoff := ext[DefaultHandoffContext]
	if len(handoff) != 1 {
		t.Fatalf("extensions.conf has no [%s] context", DefaultHandoffContext)
	}
	exts := map[string]string{} // extension -> Queue() argument
	cur := ""
	queueRE := regexp.MustCompile(`Queue\(([A-Za-z0-9_.-]+)`)
	for _, l := range handoff[0].lines {
		if l[0] == "exten" {
			parts := strings.SplitN(l[1], ",", 3)
			cur = parts[0]
			if parts[1] != "1" {
				t.Errorf("extension %s starts at priority %s, the adapter continues at 1", cur, parts[1])
			}
		}
		if m := queueRE.FindStringSubmatch(l[1]); m != nil {
			exts[cur] = m[1]
		}
	}
	for name := range queues {
		if name == "general" {
			continue
		}
		if exts[name] != name {
			t.Errorf("queue %s: no extension %s in [%s] that calls Queue(%s)", name, name, DefaultHandoffContext, name)
		}
		// Every member is a PJSIP endpoint of pjsip.conf.
		for _, l := range queues[name][0].lines {
			if l[0] != "member" {
				continue
			}
			iface := strings.SplitN(l[1], ",", 2)[0]
			ep := strings.TrimPrefix(iface, "PJSIP/")
			found := false
			for _, s := range sections("pjsip.conf")[ep] {
				if s.get("type") == "endpoint" {
					found = true
				}
			}
			if !found {
				t.Errorf("queue %s member %s is not a PJSIP endpoint", name, iface)
			}
		}
	}
	text, _ := os.ReadFile(filepath.Join("asterisk", "extensions.conf"))
	for _, v := range []string{"${IVR_TICKET}", "${IVR_LANG}", "${IVR_SUMMARY}"} {
		if !strings.Contains(string(text), v) {
			t.Errorf("extensions.conf does not use %s", v)
		}
	}

	// pjsip.conf: endpoints offer ulaw (the ExternalMedia format needs no
	// transcoding from it), send RFC 4733 DTMF (which Asterisk turns into
	// ChannelDtmfReceived) and keep media through Asterisk (no direct
	// media: the bridge with the ExternalMedia channel needs it).
	for _, s := range files["pjsip.conf"] {
		if s.get("type") != "endpoint" {
			continue
		}
		if !strings.Contains(s.get("allow"), "ulaw") || s.get("dtmf_mode") != "rfc4733" || s.get("direct_media") != "no" {
			t.Errorf("pjsip.conf endpoint %s: allow %q dtmf_mode %q direct_media %q", s.name, s.get("allow"), s.get("dtmf_mode"), s.get("direct_media"))
		}
	}
}
