package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/govline/ivr/tickets"
)

// providersEnv adds two providers to newEnv's line (whose tickets are the
// default provider's), a ticket of each, their operators, a supervisor of
// the first and the national monitor.
func providersEnv(t *testing.T) (e *env, a, a2, b tickets.Ticket) {
	t.Helper()
	ctx := context.Background()
	e = newEnv(t)
	st := e.st
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.AddProvider(ctx, "test", "pass", "Agenția Servicii Publice"))
	must(st.AddProvider(ctx, "test", "social", "Casa Națională de Asigurări Sociale"))
	must(st.AddProviderUser(ctx, "test", "pass", "pavel", tickets.RoleOperator, pw))
	must(st.AddProviderUser(ctx, "test", "pass", "petra", tickets.RoleSupervisor, pw))
	must(st.AddProviderUser(ctx, "test", "social", "sorin", tickets.RoleOperator, pw))
	must(st.AddProviderUser(ctx, "test", "default", "mona", tickets.RoleMonitor, pw))
	var err error
	a, err = st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Provider: "pass", Caller: "+37369111222", Service: tickets.ServicePassport, Description: "pașaport pierdut"})
	must(err)
	a2, err = st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Provider: "pass", Service: tickets.ServiceIdentityCard, Channel: tickets.ChannelEmail, Description: "buletin"})
	must(err)
	b, err = st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Provider: "social", Caller: "+37369000111", Service: tickets.ServiceOther, Description: "pensia secretă"})
	must(err)
	return e, a, a2, b
}

// An operator reaches only their provider's tickets: another provider's
// ticket is "not found" by URL, by the API, by search and for actions, and
// the attempt is audited; a call of another provider plays no recording.
func TestProviderTicketsNotReachable(t *testing.T) {
	e, a, _, b := providersEnv(t)
	c := e.client()
	if c.login("pavel", pw) != http.StatusSeeOther {
		t.Fatal("sign-in")
	}
	for _, path := range []string{"/tickets/" + b.Number, "/tickets/" + e.ticket} {
		if code, body := c.get(path); code != http.StatusNotFound || strings.Contains(body, "pensia") || strings.Contains(body, "+37369000111") {
			t.Errorf("GET %s by another provider's operator: %d", path, code)
		}
	}
	if code, _ := c.get("/tickets/" + a.Number); code != http.StatusOK {
		t.Errorf("own ticket: %d", code)
	}
	// Search: by number (which opens a ticket), by phone, by text.
	for _, q := range []string{b.Number, "+37369000111", "pensia", ""} {
		code, body := c.get("/?view=all&q=" + url.QueryEscape(q))
		if code != http.StatusOK || strings.Contains(body, "/tickets/"+b.Number) || strings.Contains(body, "/tickets/"+e.ticket) {
			t.Errorf("search %q: %d, shows another provider's ticket", q, code)
		}
	}
	if _, body := c.get("/?view=all"); !strings.Contains(body, a.Number) {
		t.Error("the queue lacks the provider's own ticket")
	}
	if code, _ := c.post("/tickets/"+b.Number+"/note", url.Values{"text": {"x"}}); code != http.StatusNotFound {
		t.Errorf("a note on another provider's ticket: %d", code)
	}
	if code, _ := c.get("/calls/call-1/recording"); code != http.StatusNotFound {
		t.Errorf("the recording of another provider's call: %d", code)
	}
	if code, _ := c.get("/pop?call=call-1"); code != http.StatusNotFound {
		t.Errorf("the pop-up of another provider's call: %d", code)
	}
	// The API.
	tok := apiToken(t, e, "pavel")
	api := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, _ := api("GET", "/api/tickets/"+b.Number, ""); code != http.StatusNotFound {
		t.Errorf("API: another provider's ticket: %d", code)
	}
	if code, _ := api("POST", "/api/tickets/"+b.Number+"/actions", `{"action":"note","text":"x"}`); code != http.StatusNotFound {
		t.Errorf("API: an action on another provider's ticket: %d", code)
	}
	for _, q := range []string{"", b.Number, "+37369000111", "pensia"} {
		code, m := api("GET", "/api/tickets?q="+url.QueryEscape(q), "")
		ts, _ := m["tickets"].([]any)
		for _, x := range ts {
			if n := x.(map[string]any)["number"]; n != a.Number && (n == b.Number || n == e.ticket) {
				t.Errorf("API search %q: %d shows %v", q, code, n)
			}
		}
		if q == "" && len(ts) != 2 {
			t.Errorf("API list: %d tickets, want the provider's 2", len(ts))
		}
	}
	if es := e.auditRows(tickets.AuditQuery{User: "pavel", Action: "ticket_other_provider", Target: b.Number}); len(es) < 3 {
		t.Errorf("the attempts on another provider's ticket: %d audited, want at least 3 (view, note, API)", len(es))
	}
	h, err := e.st.History(context.Background(), b.Number)
	if err != nil || len(h) != 1 {
		t.Errorf("another provider's ticket changed: %d events %v", len(h), err)
	}
}

// apiToken signs in to the API and returns the bearer token.
func apiToken(t *testing.T, e *env, name string) string {
	t.Helper()
	resp, err := http.Post(e.srv.URL+"/api/login", "application/json", strings.NewReader(`{"name":"`+name+`","password":"`+pw+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	tok, _ := m["token"].(string)
	if tok == "" {
		t.Fatalf("API sign-in of %s: %d %v", name, resp.StatusCode, m)
	}
	return tok
}

// A transfer moves the ticket to the other provider's queue, with its
// history; the provider it left reads it without actions.
func TestProviderTransfer(t *testing.T) {
	e, a, _, _ := providersEnv(t)
	pavel, sorin := e.client(), e.client()
	pavel.login("pavel", pw)
	sorin.login("sorin", pw)
	_, body := pavel.get("/tickets/" + a.Number)
	if !strings.Contains(body, `id="transfer-to"`) || !strings.Contains(body, "Casa Națională de Asigurări Sociale") ||
		!strings.Contains(body, `id="provider" data-provider="pass"`) {
		t.Fatalf("the transfer form: %s", body)
	}
	if code, _ := pavel.post("/tickets/"+a.Number+"/transfer", url.Values{"provider": {"social"}, "text": {""}}); code != http.StatusConflict {
		t.Errorf("a transfer without a reason: %d", code)
	}
	if code, _ := pavel.post("/tickets/"+a.Number+"/transfer", url.Values{"provider": {"social"}, "text": {"o întrebare despre pensie"}}); code != http.StatusSeeOther {
		t.Fatalf("transfer: %d", code)
	}
	code, body := pavel.get("/tickets/" + a.Number)
	if code != http.StatusOK || !strings.Contains(body, `id="read-only"`) || strings.Contains(body, `id="add-note"`) ||
		!strings.Contains(body, "transmisă de la prestatorul pass la social: o întrebare despre pensie") {
		t.Errorf("the ticket for the provider it left: %d %s", code, body)
	}
	if code, _ := pavel.post("/tickets/"+a.Number+"/note", url.Values{"text": {"still mine?"}}); code != http.StatusForbidden {
		t.Errorf("a note by the provider it left: %d", code)
	}
	if _, body := pavel.get("/?view=all"); strings.Contains(body, a.Number) {
		t.Error("the transferred ticket is still in the old provider's queue")
	}
	if _, body := sorin.get("/"); !strings.Contains(body, a.Number) {
		t.Error("the transferred ticket is not in the new provider's queue")
	}
	code, body = sorin.get("/tickets/" + a.Number)
	if code != http.StatusOK || !strings.Contains(body, `id="add-note"`) || !strings.Contains(body, "o întrebare despre pensie") {
		t.Errorf("the ticket for its new provider: %d", code)
	}
	if code, _ := sorin.post("/tickets/"+a.Number+"/note", url.Values{"text": {"preluat"}}); code != http.StatusSeeOther {
		t.Errorf("a note by the new provider: %d", code)
	}
	if es := e.auditRows(tickets.AuditQuery{Action: "ticket_transfer", Target: a.Number}); len(es) < 2 || es[0].User != "pavel" {
		// the store's entry and the console's (with the address)
		t.Errorf("the transfer's audit: %+v", es)
	}
}

// The monitor sees every provider's indicators and no ticket, no personal
// data; a supervisor sees their provider's indicators only.
func TestProviderIndicatorsByRole(t *testing.T) {
	e, a, _, _ := providersEnv(t)
	if err := e.st.Transfer(context.Background(), a.Number, "pavel", "social", "pensie"); err != nil {
		t.Fatal(err)
	}
	mona := e.client()
	mona.login("mona", pw)
	if code, _, hdr := mona.do("GET", "/", nil, nil); code != http.StatusSeeOther || hdr.Get("Location") != "/dashboard" {
		t.Errorf("the monitor's home: %d %q", code, hdr.Get("Location"))
	}
	for _, path := range []string{"/tickets/" + a.Number, "/api/tickets", "/api/tickets/" + a.Number, "/events", "/calls/call-1/recording"} {
		if code, _ := mona.get(path); code != http.StatusForbidden {
			t.Errorf("monitor GET %s: %d, want 403", path, code)
		}
	}
	code, body := mona.get("/dashboard?from=2000-01-01&to=2100-01-01")
	if code != http.StatusOK || !strings.Contains(body, `id="providers"`) || strings.Contains(body, `id="nav-queue"`) {
		t.Fatalf("the monitor's dashboard: %d %s", code, body)
	}
	for _, personal := range []string{"+37369111222", "+37369000111", "+40721555666", "pașaport pierdut", "pensia", a.Number} {
		if strings.Contains(body, personal) {
			t.Errorf("the monitor's dashboard shows %q", personal)
		}
	}
	tok := apiToken(t, e, "mona")
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/indicators?from=2000-01-01&to=2100-01-01", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Report    tickets.Report `json:"report"`
		Providers []struct {
			ID    string
			Total tickets.Indicators
		} `json:"providers"`
	}
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	// default: newEnv's 2; pass: a2 (a left); social: b and a.
	got := map[string]int{}
	for _, p := range m.Providers {
		got[p.ID] = p.Total.Requests
	}
	if m.Report.Total.Requests != 5 || got["default"] != 2 || got["pass"] != 1 || got["social"] != 2 {
		t.Errorf("the monitor's indicators: line %d, providers %v", m.Report.Total.Requests, got)
	}
	code, body = mona.get("/dashboard?provider=pass&from=2000-01-01&to=2100-01-01")
	if code != http.StatusOK || !strings.Contains(body, `<td id="total-requests">1</td>`) || !strings.Contains(body, "Agenția Servicii Publice") {
		t.Errorf("the monitor's dashboard of one provider: %d", code)
	}
	if code, _ := mona.get("/dashboard?provider=nobody"); code != http.StatusBadRequest {
		t.Errorf("an unknown provider: %d", code)
	}
	// The supervisor of pass: pass's figures whatever it asks.
	petra := e.client()
	petra.login("petra", pw)
	code, body = petra.get("/dashboard?provider=social&from=2000-01-01&to=2100-01-01")
	if code != http.StatusOK || !strings.Contains(body, `<td id="total-requests">1</td>`) || strings.Contains(body, `id="providers"`) {
		t.Errorf("the supervisor's dashboard: %d", code)
	}
	if code, _ := petra.get("/tickets/" + a.Number); code != http.StatusOK {
		t.Errorf("the supervisor reads a ticket its provider transferred: %d", code)
	}
	if code, _ := petra.get("/tickets/" + e.ticket); code != http.StatusNotFound {
		t.Errorf("the supervisor opens another provider's ticket: %d", code)
	}
}
