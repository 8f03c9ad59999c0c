package console

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/govline/ivr/tickets"
)

// Both languages have the same ids with as many %s; a catalog missing an
// id, or with a different count of values, is refused with the id named.
func TestCatalogsAgree(t *testing.T) {
	cat, err := catalogs()
	if err != nil {
		t.Fatal(err)
	}
	ro, en := cat[tickets.LangRomanian], cat[tickets.LangEnglish]
	if len(ro.text) < 100 || len(ro.text) != len(en.text) {
		t.Fatalf("catalogs: %d ids in Romanian, %d in English", len(ro.text), len(en.text))
	}
	read := func(lang string) ([]byte, error) { return os.ReadFile(filepath.Join("catalog", lang+".toml")) }
	for name, broken := range map[string]struct{ from, to, want string }{
		"an id missing": {"[queue]\ntitle = \"Tickets\"\n", "[queue]\n", "en.toml has no queue.title"},
		"an id more":    {"[queue]\n", "[queue]\nextra = \"x\"\n", "ro.toml has no queue.extra"},
		"a value less":  {`title = "Ticket %s"`, `title = "Ticket"`, "ticket.title has 1 %s in ro.toml and 0 in en.toml"},
	} {
		_, err := parseCatalogs(func(lang string) ([]byte, error) {
			b, err := read(lang)
			if lang == tickets.LangEnglish {
				b = []byte(strings.Replace(string(b), broken.from, broken.to, 1))
			}
			return b, err
		})
		if err == nil || !strings.Contains(err.Error(), broken.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, broken.want)
		}
	}
	// Romanian is written with the comma-below ș and ț, never the cedilla
	// forms ş and ţ of old fonts.
	b, err := read(tickets.LangRomanian)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(string(b), "şţŞŢ") {
		t.Error("ro.toml has a cedilla ş or ţ: write ș and ț (comma below)")
	}
}

var (
	tmplIDRE = regexp.MustCompile(`\bt "([a-z0-9_.]+)"`)
	goIDRE   = regexp.MustCompile(`(?:\.T|refuse|showLogin)\([^"\n]*"([a-z0-9_]+\.[a-z0-9_.]+)"`)
	jsIDRE   = regexp.MustCompile(`\bmsg\("([a-z0-9_]+)"`)
)

// Every id the templates, the Go code and console.js use is in the
// catalogs (which have the same ids).
func TestEveryTextIDIsInTheCatalog(t *testing.T) {
	cat, err := catalogs()
	if err != nil {
		t.Fatal(err)
	}
	ro := cat[tickets.LangRomanian]
	files, _ := filepath.Glob("templates/*.html")
	gos, _ := filepath.Glob("*.go")
	files = append(files, gos...)
	n := 0
	for _, f := range append(files, "static/console.js") {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		switch filepath.Ext(f) {
		case ".html":
			for _, m := range tmplIDRE.FindAllStringSubmatch(string(b), -1) {
				ids = append(ids, m[1])
			}
		case ".go":
			for _, m := range goIDRE.FindAllStringSubmatch(string(b), -1) {
				ids = append(ids, m[1])
			}
		case ".js":
			for _, m := range jsIDRE.FindAllStringSubmatch(string(b), -1) {
				ids = append(ids, "js."+m[1])
			}
		}
		for _, id := range ids {
			n++
			if !ro.has(id) {
				t.Errorf("%s says %s, which the catalogs do not have", f, id)
			}
		}
	}
	if n < 150 {
		t.Fatalf("found only %d uses of catalog ids: is the pattern still right?", n)
	}
}

var (
	actionRE    = regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	verbatimRE  = regexp.MustCompile(`(?s)<(script|code|kbd)\b[^>]*>.*?</(script|code|kbd)>`)
	tagRE       = regexp.MustCompile(`(?s)<[^>]*>`)
	shownAttrRE = regexp.MustCompile(`\b(placeholder|title|aria-label|alt|value)="([^"]*)"`)
)

// No template says anything to the user that is not from the catalog:
// with the template actions taken out, no letter is left between tags nor
// in an attribute a user sees or hears (placeholder, title, aria-label,
// alt). Key names (<kbd>) and commands (<code>) are not words of a
// language.
func TestTemplatesSayOnlyCatalogTexts(t *testing.T) {
	files, _ := filepath.Glob("templates/*.html")
	if len(files) < 7 {
		t.Fatalf("templates: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := actionRE.ReplaceAllString(string(b), "")
		for _, m := range shownAttrRE.FindAllStringSubmatch(s, -1) {
			if m[1] == "value" {
				continue // form values are data, not words
			}
			if strings.IndexFunc(m[2], unicode.IsLetter) >= 0 {
				t.Errorf("%s: %s=%q is not from the catalog", f, m[1], m[2])
			}
		}
		s = tagRE.ReplaceAllString(verbatimRE.ReplaceAllString(s, ""), " ")
		for _, w := range strings.Fields(html.UnescapeString(s)) {
			if strings.IndexFunc(w, unicode.IsLetter) >= 0 {
				t.Errorf("%s: %q is not from the catalog", f, w)
			}
		}
	}
	b, err := os.ReadFile("static/console.js")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(textContent|innerText|title)\s*=\s*"[^"]*[A-Za-z]|setAttribute\("(aria-label|title)",\s*"`).Find(b); m != nil {
		t.Errorf("console.js shows a text of its own: %s (use msg)", m)
	}
}

// Dates, numbers, shares and the data's enums are written each
// language's way.
func TestFormats(t *testing.T) {
	cat, err := catalogs()
	if err != nil {
		t.Fatal(err)
	}
	ro, en := cat[tickets.LangRomanian], cat[tickets.LangEnglish]
	at := time.Date(2026, 12, 6, 14, 5, 0, 0, time.Local)
	for _, c := range []struct{ got, want string }{
		{ro.when(at), "06.12.2026 14:05"},
		{en.when(at), "2026-12-06 14:05"},
		{ro.when(time.Time{}), "—"},
		{ro.number(1234567.891, 2), "1.234.567,89"},
		{en.number(1234567.891, 2), "1,234,567.89"},
		{ro.number(999, 0), "999"},
		{ro.number(-1234.5, 1), "-1.234,5"},
		{ro.number(-0.01, 1), "0,0"},
		{ro.pct(0.125), "12,5\u00a0%"},
		{en.pct(0.125), "12.5%"},
		{funcsFor(ro)["hours"].(func(time.Duration) string)(90 * time.Minute), "1,5 h"},
		{funcsFor(ro)["avg"].(func(float64) string)(4.5), "4,50"},
		{ro.label(tickets.StatusInProgress), "în lucru"},
		{ro.label(tickets.StatusWaiting), "în așteptarea cetățeanului"},
		{en.label(tickets.StatusWaiting), "waiting for citizen"},
		{ro.label(tickets.PriorityUrgent), "urgentă"},
		{ro.label(tickets.ServicePassport), "pașaport"},
		{ro.label(tickets.Service("")), "toate serviciile"},
		{ro.label(tickets.RoleSupervisor), "supervizor"},
		{ro.label(tickets.Status("unheard_of")), "unheard_of"},
		{ro.T("ticket.level", roman(2)), "nivelul II"},
		{ro.T("error.forbidden", "operator"), "Rolul dumneavoastră (operator) nu poate deschide această pagină."},
		{ro.T("no.such.id"), "[no.such.id]"},
		{mmss(75 * time.Second), "1:15"},
		{mmss(3725 * time.Second), "1:02:05"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

var langRE = regexp.MustCompile(`<html lang="([a-z]+)"`)

// A user sees the console in Romanian until choosing English in the
// header; the choice is kept with the user (a new session, another
// browser, still English), audited, and sets the sign-in page's language;
// the sign-in page offers English before anyone signs in.
func TestLanguageChoice(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	code, body := c.get("/login")
	if code != http.StatusOK || langRE.FindStringSubmatch(body)[1] != "ro" || !strings.Contains(body, ">Autentificare</button>") ||
		!strings.Contains(body, `<label for="name">Nume de utilizator</label>`) {
		t.Fatalf("sign-in page by default: %d %s", code, body)
	}
	code, _, hdr := c.do("GET", "/login?lang=en&next=%2Fdashboard", nil, nil)
	if code != http.StatusSeeOther || hdr.Get("Location") != "/login?next=%2Fdashboard" {
		t.Fatalf("choosing English before signing in: %d %v", code, hdr)
	}
	if _, body := c.get("/login"); langRE.FindStringSubmatch(body)[1] != "en" || !strings.Contains(body, ">Sign in</button>") {
		t.Fatalf("sign-in page after choosing English: %s", body)
	}
	// ana has not chosen: Romanian, whatever the sign-in page spoke.
	if code := c.login("ana", pw); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	_, body = c.get("/")
	for _, want := range []string{`<html lang="ro">`, "<h1>Solicitări</h1>", `>nouă</td>`, `>pașaport</td>`, `>normală</td>`,
		`<a class="skip" href="#main">Salt la conținut</a>`, `<nav aria-label="Meniul principal">`, `<main id="main"`,
		`aria-label="Căutare"`, `lang="en" title="Limba">English</button>`, "Ieșire"} {
		if !strings.Contains(body, want) {
			t.Errorf("Romanian queue without %s", want)
		}
	}
	if _, b := c.get("/tickets/" + e.ticket); !strings.Contains(b, "Solicitarea "+e.ticket) || !strings.Contains(b, "deschisă (pașaport, prioritate normală, nivelul I)") ||
		!strings.Contains(b, "<b>apelant</b> pașaportul meu a expirat") {
		t.Errorf("Romanian ticket screen: %s", b)
	}
	// She switches to English from the header, back to the page she was on.
	code, _ = c.post("/lang", url.Values{"lang": {"en"}, "next": {"/?view=all"}})
	if code != http.StatusSeeOther {
		t.Fatalf("switch: %d", code)
	}
	_, body = c.get("/?view=all")
	for _, want := range []string{`<html lang="en">`, "<h1>Tickets</h1>", `>new</td>`, `>passport</td>`, `lang="ro" title="Language">Română</button>`, "Sign out"} {
		if !strings.Contains(body, want) {
			t.Errorf("English queue without %s", want)
		}
	}
	if u, err := e.st.User(context.Background(), "ana"); err != nil || u.Lang != "en" {
		t.Fatalf("ana's language kept: %+v %v", u, err)
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "user_lang", User: "ana"}); len(got) != 1 || got[0].Detail != "en" {
		t.Fatalf("the choice audited: %+v", got)
	}
	// Another browser: English from the first page, sign-in page aside.
	c2 := e.client()
	if c2.login("ana", pw) != http.StatusSeeOther {
		t.Fatal("second sign-in")
	}
	if _, b := c2.get("/"); !strings.Contains(b, `<html lang="en">`) {
		t.Error("the choice is not kept with the user")
	}
	// A language the console does not speak, a next off the site.
	if code, b := c.post("/lang", url.Values{"lang": {"fr"}}); code != http.StatusBadRequest || !strings.Contains(b, "Unknown language.") {
		t.Errorf("French: %d %s", code, b)
	}
	if code, _, hdr := c.do("POST", "/lang", url.Values{"csrf": {c.csrf}, "lang": {"ro"}, "next": {"//evil.example/"}}, nil); code != http.StatusSeeOther || hdr.Get("Location") != "/" {
		t.Errorf("next off the site: %d %q", code, hdr.Get("Location"))
	}
	// Without the CSRF token the choice is refused.
	if code, _, _ := c.do("POST", "/lang", url.Values{"lang": {"en"}}, nil); code != http.StatusForbidden {
		t.Errorf("switch without CSRF: %d", code)
	}
	// A supervisor sees the dashboard's numbers the Romanian way.
	sue := e.client()
	sue.login("sue", pw)
	if _, b := sue.get("/dashboard"); !strings.Contains(b, "<h1>Indicatori</h1>") || !strings.Contains(b, "\u00a0%") || !strings.Contains(b, `<th scope="row">Total</th>`) {
		t.Errorf("Romanian dashboard: %s", b)
	}
}

var (
	controlRE = regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	idAttrRE  = regexp.MustCompile(`\bid="([^"]+)"`)
)

// Every form control a user reaches has a name a screen reader says: it
// sits in a <label>, a <label for> names it, or it has an aria-label;
// every page has its landmarks (a header, a navigation, a main part) and
// a skip link first.
func TestControlsAreLabelled(t *testing.T) {
	e := newEnv(t)
	pages := map[string][]string{"ana": {"/", "/tickets/" + e.ticket}, "sue": {"/dashboard", "/kb/misses"}}
	for user, paths := range pages {
		c := e.client()
		c.login(user, pw)
		for _, p := range paths {
			_, body := c.get(p)
			checkLabels(t, user+" "+p, body)
		}
	}
	_, body := e.client().get("/login")
	checkLabels(t, "/login", body)
}

func checkLabels(t *testing.T, where, body string) {
	t.Helper()
	for _, want := range []string{`<header`, `<main id="main"`, `<a class="skip" href="#main">`} {
		if !strings.Contains(body, want) {
			t.Errorf("%s: no %s", where, want)
		}
	}
	if strings.Contains(body, "aria-current") && !strings.Contains(body, "<nav aria-label=") {
		t.Errorf("%s: a menu without a named <nav>", where)
	}
	if i, j := strings.Index(body, `class="skip"`), strings.Index(body, "<header"); i < 0 || i > j {
		t.Errorf("%s: the skip link is not the first thing to focus", where)
	}
	for _, loc := range controlRE.FindAllStringIndex(body, -1) {
		tag := body[loc[0]:loc[1]]
		if strings.Contains(tag, `type="hidden"`) || strings.Contains(tag, "aria-label=") {
			continue
		}
		before := body[:loc[0]]
		if strings.LastIndex(before, "<label") > strings.LastIndex(before, "</label>") {
			continue // inside its label
		}
		if m := idAttrRE.FindStringSubmatch(tag); m != nil && strings.Contains(body, `<label for="`+m[1]+`">`) {
			continue
		}
		t.Errorf("%s: %s has no label", where, tag)
	}
}
