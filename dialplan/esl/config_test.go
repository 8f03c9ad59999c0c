package esl

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The FreeSWITCH configuration an administrator copies
// (dialplan/esl/freeswitch) must parse, use only parameter names
// FreeSWITCH 1.10 reads (checked against mod_event_socket.c and
// mod_callcenter.c), and agree with what the adapter does.

type fsAction struct {
	App  string `xml:"application,attr"`
	Data string `xml:"data,attr"`
}

type fsExtension struct {
	Name      string `xml:"name,attr"`
	Condition struct {
		Field      string     `xml:"field,attr"`
		Expression string     `xml:"expression,attr"`
		Actions    []fsAction `xml:"action"`
	} `xml:"condition"`
}

type fsInclude struct {
	Extensions []fsExtension `xml:"extension"`
	Contexts   []struct {
		Name       string        `xml:"name,attr"`
		Extensions []fsExtension `xml:"extension"`
	} `xml:"context"`
}

type fsParam struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type fsConfiguration struct {
	Name     string    `xml:"name,attr"`
	Settings []fsParam `xml:"settings>param"`
	Queues   []struct {
		Name   string    `xml:"name,attr"`
		Params []fsParam `xml:"param"`
	} `xml:"queues>queue"`
	Agents []struct {
		Attrs []xml.Attr `xml:",any,attr"`
	} `xml:"agents>agent"`
	Tiers []struct {
		Attrs []xml.Attr `xml:",any,attr"`
	} `xml:"tiers>tier"`
}

func readXML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("freeswitch", path))
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Names FreeSWITCH 1.10 reads (mod_event_socket.c config(),
// mod_callcenter.c load_queue / load_config), and the applications the
// dialplan uses (mod_dptools, mod_event_socket, mod_callcenter).
var (
	eventSocketParams = set("listen-ip", "listen-port", "password", "nat-map", "apply-inbound-acl", "stop-on-bind-error", "debug")
	queueParams       = set("strategy", "moh-sound", "announce-sound", "announce-frequency", "record-template", "time-base-score",
		"tier-rules-apply", "tier-rule-wait-second", "tier-rule-wait-multiply-level", "tier-rule-no-agent-no-wait",
		"discard-abandoned-after", "abandoned-resume-allowed", "max-wait-time", "max-wait-time-with-no-agent",
		"max-wait-time-with-no-agent-time-reached", "skip-agents-with-external-calls", "agent-no-answer-status")
	agentAttrs = set("name", "type", "contact", "status", "max-no-answer", "wrap-up-time", "reject-delay-time", "busy-delay-time", "no-answer-delay-time")
	tierAttrs  = set("agent", "queue", "level", "position")
	apps       = set("set", "socket", "transfer", "answer", "callcenter")
	strategies = set("ring-all", "longest-idle-agent", "round-robin", "top-down", "agent-with-least-talk-time",
		"agent-with-fewest-calls", "sequentially-by-agent-order", "random", "ring-progressively")
)

func set(s ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

func TestFreeSWITCHConfiguration(t *testing.T) {
	var pub, handoff fsInclude
	readXML(t, "dialplan/public/50_govline_ivr.xml", &pub)
	readXML(t, "dialplan/ivr_handoff.xml", &handoff)
	var es, cc fsConfiguration
	readXML(t, "autoload_configs/event_socket.conf.xml", &es)
	readXML(t, "autoload_configs/callcenter.conf.xml", &cc)

	// The line's extension: socket to the engine's default listen
	// address, async full (the adapter refuses static mode), then the
	// fallback into the handoff context.
	if len(pub.Extensions) != 1 {
		t.Fatalf("public: %d extensions", len(pub.Extensions))
	}
	acts := pub.Extensions[0].Condition.Actions
	socketAt := -1
	for i, a := range acts {
		if !apps[a.App] {
			t.Errorf("application %q is not one FreeSWITCH's standard modules provide here", a.App)
		}
		if a.App == "socket" {
			socketAt = i
			f := strings.Fields(a.Data)
			if len(f) != 3 || f[0] != DefaultListen || f[1] != "async" || f[2] != "full" {
				t.Errorf("socket data %q, want %q", a.Data, DefaultListen+" async full")
			}
		}
	}
	if socketAt < 0 || socketAt == len(acts)-1 {
		t.Fatal("no socket action, or no fallback after it")
	}
	last := acts[len(acts)-1]
	if last.App != "transfer" || last.Data != "level1 XML "+DefaultHandoffContext {
		t.Errorf("fallback %+v", last)
	}

	// The handoff context: the adapter's default context; every queue it
	// routes exists in callcenter.conf; the variables the adapter sets are
	// exported to the agent.
	if len(handoff.Contexts) != 1 || handoff.Contexts[0].Name != DefaultHandoffContext {
		t.Fatalf("handoff contexts %+v", handoff.Contexts)
	}
	queues := map[string]bool{}
	for _, q := range cc.Queues {
		queues[q.Name] = true
	}
	for _, ext := range handoff.Contexts[0].Extensions {
		re, err := regexp.Compile(ext.Condition.Expression)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"level1", "level2"} {
			if !re.MatchString(q) {
				t.Errorf("queue %s has no handoff extension", q)
			}
			if !queues[q+"@default"] {
				t.Errorf("queue %s@default missing in callcenter.conf.xml", q)
			}
		}
		var export string
		for _, a := range ext.Condition.Actions {
			if !apps[a.App] {
				t.Errorf("application %q", a.App)
			}
			if a.App == "set" && strings.HasPrefix(a.Data, "cc_export_vars=") {
				export = strings.TrimPrefix(a.Data, "cc_export_vars=")
			}
			if a.App == "callcenter" && a.Data != "$1@default" {
				t.Errorf("callcenter data %q", a.Data)
			}
		}
		for _, v := range []string{"IVR_TICKET", "IVR_LANG", "IVR_SUMMARY", "IVR_QUEUE"} {
			if !strings.Contains(","+export+",", ","+v+",") {
				t.Errorf("cc_export_vars %q lacks %s", export, v)
			}
		}
	}

	if es.Name != "event_socket.conf" || cc.Name != "callcenter.conf" {
		t.Errorf("configuration names %q, %q", es.Name, cc.Name)
	}
	for _, p := range es.Settings {
		if !eventSocketParams[p.Name] {
			t.Errorf("event_socket.conf: unknown param %q", p.Name)
		}
	}
	for _, q := range cc.Queues {
		for _, p := range q.Params {
			if !queueParams[p.Name] {
				t.Errorf("callcenter.conf queue %s: unknown param %q", q.Name, p.Name)
			}
			if p.Name == "strategy" && !strategies[p.Value] {
				t.Errorf("queue %s: strategy %q", q.Name, p.Value)
			}
		}
	}
	for _, a := range cc.Agents {
		for _, at := range a.Attrs {
			if !agentAttrs[at.Name.Local] {
				t.Errorf("agent attribute %q", at.Name.Local)
			}
		}
	}
	for _, tr := range cc.Tiers {
		for _, at := range tr.Attrs {
			if !tierAttrs[at.Name.Local] {
				t.Errorf("tier attribute %q", at.Name.Local)
			}
		}
	}
}
