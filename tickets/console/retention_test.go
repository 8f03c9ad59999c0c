package console

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

// The archive through the API (out of the working list, in the archive
// view, readable by number), and an erasure by the caller's number: the
// API no longer returns the number, the sensitive answers or the
// transcript's words, and the audit has the erasure.
func TestArchiveAndErasureThroughAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	get := func(path, token string) (int, map[string]any, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		json.NewDecoder(resp.Body).Decode(&raw)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return resp.StatusCode, m, string(raw)
	}
	numbers := func(m map[string]any) []string {
		var out []string
		for _, x := range m["tickets"].([]any) {
			out = append(out, x.(map[string]any)["number"].(string))
		}
		return out
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/login", strings.NewReader(`{"name":"ana","password":"`+pw+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]any
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	tok := login["token"].(string)

	// A ticket closed 100 days ago goes to the archive.
	past := time.Now().Add(-100 * 24 * time.Hour)
	e.st.SetClock(func() time.Time { return past })
	old, err := e.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "+40721000000", Description: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Resolve(ctx, old.Number, "ana", "done"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CloseTicket(ctx, old.Number, "ana"); err != nil {
		t.Fatal(err)
	}
	e.st.SetClock(time.Now)
	if _, m, _ := get("/api/tickets", tok); !contains(numbers(m), old.Number) {
		t.Fatalf("closed ticket not listed before the archive: %v", numbers(m))
	}
	rep, err := e.st.RunRetention(ctx, tickets.RetentionPolicy{Default: tickets.RetentionPeriods{ArchiveAfter: 90 * 24 * time.Hour}},
		tickets.RetentionOptions{Actor: "retention"})
	if err != nil || rep.Archived != 1 {
		t.Fatalf("retention: %+v %v", rep, err)
	}
	if _, m, _ := get("/api/tickets", tok); contains(numbers(m), old.Number) {
		t.Errorf("archived ticket in the working list")
	}
	if _, m, _ := get("/api/tickets?view=archive", tok); !contains(numbers(m), old.Number) || len(numbers(m)) != 1 {
		t.Errorf("archive view: %v", numbers(m))
	}
	if code, _, body := get("/api/tickets/"+old.Number, tok); code != http.StatusOK || !strings.Contains(body, `"archived"`) {
		t.Errorf("archived ticket by number: %d %s", code, body)
	}

	// The erasure of the caller of the env's tickets.
	const caller = "+40721555666"
	if _, _, body := get("/api/tickets/"+e.ticket, tok); !strings.Contains(body, caller) || !strings.Contains(body, "pașaportul") {
		t.Fatalf("before the erasure the API shows the caller and the transcript: %s", body)
	}
	er, err := e.st.Erase(ctx, tickets.ErasureRequest{Caller: caller}, tickets.RetentionOptions{Actor: "adi"})
	if err != nil || len(er.Items) != 2 {
		t.Fatalf("erase: %+v %v", er, err)
	}
	code, _, body := get("/api/tickets/"+e.ticket, tok)
	if code != http.StatusOK || strings.Contains(body, caller) || strings.Contains(body, "1960101123456") ||
		strings.Contains(body, "pașaportul") || !strings.Contains(body, tickets.ErasedText) {
		t.Errorf("after the erasure: %d %s", code, body)
	}
	if _, m, _ := get("/api/tickets?q="+strings.ReplaceAll(caller, "+", "%2B"), tok); len(numbers(m)) != 0 {
		t.Errorf("search by the erased number finds %v", numbers(m))
	}
	es, err := e.st.AuditLog(ctx, tickets.AuditQuery{Action: "erasure", Target: e.ticket})
	if err != nil || len(es) != 1 || es[0].User != "adi" || strings.Contains(es[0].Detail, caller) {
		t.Errorf("erasure audit: %+v %v", es, err)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
