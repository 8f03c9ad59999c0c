package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/dialplan/ari/aritest"
	"github.com/govline/ivr/tickets"
)

// alwaysOpen is a configuration whose operators work around the clock, so
// that a handoff test does not depend on the hour CI runs at.
func alwaysOpen(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ivrd.toml")
	conf := "[calendar]\nholidays = []\n[calendar.hours]\n"
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		conf += d + " = \"00:00-24:00\"\n"
	}
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDaemonOnAsterisk runs ivrd with engine.telephony = "ari" against a
// fake Asterisk that speaks ARI: a caller reaches the shipped flow, presses
// 0 for an operator, and leaves the application into the handoff context
// with the ticket number in IVR_TICKET; the ticket holds the call id.
func TestDaemonOnAsterisk(t *testing.T) {
	ast := aritest.New(t)
	d := startDaemon(t, "IVR_TELEPHONY=ari", "IVR_ARI_URL="+ast.URL(), "IVR_ARI_USER="+ast.User,
		"IVR_ARI_PASSWORD="+ast.Password, "IVR_CONFIG="+alwaysOpen(t))
	caller := ast.Call("0721000111", "1919")
	deadline := time.Now().Add(15 * time.Second)
	for caller.HeardLen() < caller.Rate() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if caller.HeardLen() < caller.Rate() {
		t.Fatal("no welcome heard over ExternalMedia")
	}
	caller.Press("0")
	var ch aritest.Chan
	for end := time.Now().Add(40 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		c, ok := ast.Channel(caller.ID)
		if ok && c.Context != "" {
			ch = c
			break
		}
	}
	if ch.Context != "ivr-handoff" || ch.Extension != "level1" {
		t.Fatalf("the caller was not continued to ivr-handoff/level1: %+v", ch)
	}
	number := ch.Vars["IVR_TICKET"]
	if !tickets.ValidNumber(number) || ch.Vars["IVR_LANG"] != "ro" || ch.Vars["IVR_SUMMARY"] != "service other" {
		t.Fatalf("channel variables %v: want a valid IVR_TICKET and IVR_LANG=ro", ch.Vars)
	}
	st, err := tickets.OpenReadOnly(tickets.DBPath(d.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tk, err := st.Ticket(context.Background(), number)
	if err != nil {
		t.Fatal(err)
	}
	if tk.CallID != caller.ID || tk.Level != 1 {
		t.Errorf("ticket %s: call %q level %d, want call %q level 1", number, tk.CallID, tk.Level, caller.ID)
	}
	_, metrics := d.get(t, "/metrics")
	for _, m := range []string{"ivr_active_calls ", "ivr_ari_connected{server=", "ivr_ari_request_seconds_bucket{le=\"0.001\"}", "ivr_ari_request_seconds_count "} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	if code, _ := d.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz on a connected Asterisk: %d", code)
	}
	// The agent reads the ticket through the console's API: an operator
	// account made with ivrctl, a sign-in, then the ticket with its
	// transcript.
	_, ivrctl := binaries(t)
	add := exec.Command(ivrctl, "--data", d.dataDir, "users", "add", "--role", "operator", "ana")
	add.Stdin = strings.NewReader("correct horse battery staple\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ivrctl users add: %v\n%s", err, out)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", d.consolePort)
	res, err := http.Post(base+"/api/login", "application/json", strings.NewReader(`{"name":"ana","password":"correct horse battery staple"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	_ = json.NewDecoder(res.Body).Decode(&login)
	res.Body.Close()
	if res.StatusCode != 200 || login.Token == "" {
		t.Fatalf("console sign-in: %d", res.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/api/tickets/"+number, nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), number) || !strings.Contains(string(body), "caller") {
		t.Errorf("console API ticket %s: %d %s", number, res.StatusCode, body)
	}
	if strings.Contains(d.logs.String(), ast.Password) || strings.Contains(d.logs.String(), "0721000111") {
		t.Error("the ARI password or the caller's number reached the log")
	}
}

// TestEditedKnowledgeBaseAnswersWithoutRestart: an editor adds an article
// (Romanian and English) to the flows folder of a running engine; within
// a few seconds the knowledge base answers it, as the next call's search
// would, without a restart.
func TestEditedKnowledgeBaseAnswersWithoutRestart(t *testing.T) {
	_, ivrctl := binaries(t)
	dir := filepath.Join(t.TempDir(), "flows")
	if err := os.CopyFS(dir, os.DirFS(flowsDir(t))); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "IVR_FLOWS_DIR="+dir)
	article := func(lang, title, keywords, spoken string) string {
		return "---\nid: heating-aid\nlang: " + lang + "\ntitle: " + title + "\nservice: online_request\nkeywords: " + keywords +
			"\nreviewed: 2026-11-23\n---\n\n## Spoken\n\n" + spoken + "\n\n## Full\n\n" + spoken + "\n"
	}
	files := map[string]string{
		"ro/heating-aid.md": article("ro", "Ajutorul pentru încălzirea locuinței", "ajutor încălzire, încălzire, lemne de foc, caloriferă",
			"Cererea pentru ajutorul de încălzire se depune online pe portal, în secțiunea Cereri."),
		"en/heating-aid.md": article("en", "Home heating aid", "heating aid, heating, firewood",
			"The request for heating aid is submitted online on the portal, in the Requests section."),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, "kb", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out []byte
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		cmd := exec.Command(ivrctl, "--data", d.dataDir, "kb", "search", "--json", "--lang", "ro", "ajutor pentru încălzire cu lemne")
		out, _ = cmd.Output()
		if strings.Contains(string(out), `"heating-aid"`) {
			break
		}
	}
	var res struct {
		Results []struct {
			ID        string `json:"id"`
			Confident bool   `json:"confident"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Results) == 0 || res.Results[0].ID != "heating-aid" {
		t.Fatalf("the new article is not the first answer: %s", out)
	}
	if !strings.Contains(d.logs.String(), "articles changed") {
		t.Error("the log does not say the knowledge base was re-imported")
	}
}

// TestDaemonSurveyOnAsterisk runs ivrd with engine.telephony = "ari" and
// [surveys] on: a phone ticket resolved while it runs gets its survey
// call through the fake Asterisk (POST /channels with
// ari.outbound_endpoint), the citizen hears the question, presses 4, and
// the ticket's rating is 4.
func TestDaemonSurveyOnAsterisk(t *testing.T) {
	ast := aritest.New(t)
	conf := alwaysOpen(t)
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("[surveys]\nenabled = true\nevery = \"1s\"\n[ari]\noutbound_endpoint = \"PJSIP/{number}@trunk\"\noutbound_caller_id = \"080012345\"\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "IVR_TELEPHONY=ari", "IVR_ARI_URL="+ast.URL(), "IVR_ARI_USER="+ast.User,
		"IVR_ARI_PASSWORD="+ast.Password, "IVR_CONFIG="+conf)
	st, err := tickets.Open(tickets.DBPath(d.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	tk, err := st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Channel: "phone", Caller: "0721000222", Lang: "ro", Service: tickets.ServicePassport})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Resolve(ctx, tk.Number, "ana", "done"); err != nil {
		t.Fatal(err)
	}
	var far *aritest.Caller
	for end := time.Now().Add(15 * time.Second); far == nil && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if o := ast.Originated(); len(o) > 0 {
			far = o[0]
		}
	}
	if far == nil {
		t.Fatal("no survey call reached Asterisk")
	}
	for _, r := range ast.Requests() {
		if r.Method == "POST" && r.Path == "/channels" && (r.Query.Get("endpoint") != "PJSIP/0721000222@trunk" || r.Query.Get("callerId") != "080012345") {
			t.Errorf("originate %v", r.Query)
		}
	}
	for end := time.Now().Add(20 * time.Second); far.HeardLen() < 2*far.Rate() && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
	}
	if far.HeardLen() < 2*far.Rate() {
		t.Fatal("the citizen heard no question")
	}
	far.Press("4")
	var rating int
	for end := time.Now().Add(30 * time.Second); rating == 0 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		got, err := st.Ticket(ctx, tk.Number)
		if err == nil {
			rating = got.Rating
		}
	}
	if rating != 4 {
		t.Fatalf("ticket %s rating %d, want 4", tk.Number, rating)
	}
	// Counted once the call ended (the engine hung up after the flow).
	counted := false
	for end := time.Now().Add(10 * time.Second); !counted && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		_, metrics := d.get(t, "/metrics")
		counted = strings.Contains(metrics, `ivr_survey_calls_total{result="rated"} 1`)
	}
	if !counted {
		t.Errorf("/metrics does not count the rated survey")
	}
}
