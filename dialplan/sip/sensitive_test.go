package sip_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
)

func writeFile(t *testing.T, path, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A national ID number typed as a sensitive answer on a real call: the
// flow gets it (and the caller hears it read back), the ticket keeps it in
// its personal field, and everywhere else the call leaves a record (the
// transcript, the call record's DTMF string, its DTMF events, the
// conversation in the ticket's description) holds only its masked form.
func TestSensitiveAnswerOnARealCall(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.lua"), `
local cnp = ask_digits{ prompt = "CNP-ul, apoi diez.", min = 13, max = 13, confirm = true, sensitive = true }
vars.cnp = cnp
say("Am primit " .. #cnp .. " cifre.", { barge_in = false })
operator()
`)
	rt, err := flows.Load(dir, flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l := startLineStore(t, func(_ *sip.Config, e *ivr.Engine, store *tickets.Store) {
		e.Flow = rt
		e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
		e.Lang = "ro"
		e.Services = flows.Services{Desk: flows.TicketDesk{Store: store}, Transcript: flows.TicketTranscript{Store: store}}
	})
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()
	ctx := context.Background()
	l.waitTurn(t, callID, "ivr: CNP-ul")
	const cnp = "1960101123456"
	c.press(cnp + "#") // the '#' after the 13th digit is swallowed
	l.waitTurn(t, callID, "ivr: Ați spus")
	c.dtmf('1')
	if !c.waitEnded(60 * time.Second) {
		t.Fatal("the line did not hand the call on")
	}
	_ = l.eng.Calls.Flush(ctx)
	var everything []string
	turns, err := l.store.Transcript(ctx, callID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tu := range turns {
		everything = append(everything, tu.Speaker+": "+tu.Text)
	}
	rec, err := l.store.Call(ctx, callID)
	if err != nil {
		t.Fatal(err)
	}
	everything = append(everything, "dtmf column: "+rec.DTMF)
	evs, err := l.store.Events(ctx, callID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		everything = append(everything, e.Kind+" "+e.Detail)
	}
	ts, err := l.store.ListTickets(ctx, tickets.TicketQuery{})
	if err != nil || len(ts) != 1 {
		t.Fatalf("tickets %+v, %v", ts, err)
	}
	everything = append(everything, ts[0].Description)
	all := strings.Join(everything, "\n")
	if strings.Contains(all, cnp) || strings.Contains(all, "1 9 6 0") {
		t.Errorf("the CNP is in clear in the call's records:\n%s", all)
	}
	for _, want := range []string{"caller: **********456", "ivr: Ați spus: **********456. Este corect?", "ivr: Am primit 13 cifre.",
		"dtmf column: **********456#1", "dtmf rfc4733 [masked]", "cnp: **********456"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	if ts[0].Personal["cnp"] != cnp {
		t.Errorf("the ticket's personal field: %v, want the CNP", ts[0].Personal)
	}
}
