package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/tickets"
)

// The second line as an operator runs it: ivrd on its embedded
// configuration routes 1920 to flows/permis.lua. A caller presses 3 (their
// file) and types their national ID number (CNP) with the keypad; the line
// reads it back, the caller confirms, and a ticket goes to the operators.
// The CNP is in the ticket's personal field and masked everywhere
// else the call leaves a trace: the transcript, and the call record's DTMF
// string (what ivrctl calls list shows).
func TestSecondLineRoutedOnItsNumber(t *testing.T) {
	d := startDaemon(t)
	dg := newUA(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := invite(ctx, dg, sip.Uri{User: "1920", Host: "127.0.0.1", Port: d.sipPort}, diago.InviteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	callID := call.InviteRequest.CallID().Value()
	w, err := call.AudioWriter()
	if err != nil {
		t.Fatal(err)
	}
	dw, err := call.AudioWriterDTMF()
	if err != nil {
		t.Fatal(err)
	}
	// diago's DTMF writer shares the audio writer's packet state: one
	// goroutine at a time writes, audio between key presses as a phone.
	var mu sync.Mutex
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		silence := bytes.Repeat([]byte{0xff}, 160)
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			_, err := w.Write(silence)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	press := func(keys string) {
		t.Helper()
		for _, k := range keys {
			mu.Lock()
			err := dw.WriteDTMF(k)
			mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(60 * time.Millisecond)
		}
	}
	st, err := tickets.OpenReadOnly(tickets.DBPath(d.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitTurn := func(prefix string) {
		t.Helper()
		if !waitFor(45*time.Second, func() bool {
			turns, _ := st.Transcript(context.Background(), callID)
			for _, tu := range turns {
				if strings.HasPrefix(tu.Speaker+": "+tu.Text, prefix) {
					return true
				}
			}
			return false
		}) {
			turns, _ := st.Transcript(context.Background(), callID)
			t.Fatalf("no turn %q; transcript %+v", prefix, turns)
		}
	}
	waitTurn("ivr: Bună ziua! Permise de conducere")
	waitTurn("ivr: Spuneți permis, înmatriculare sau dosar")
	press("3")
	waitTurn("ivr: Pentru dosarul dumneavoastră, tastați codul numeric personal")
	const cnp = "1960203123456"
	press(cnp + "#")
	waitTurn("ivr: Ați spus: **********456. Este corect?")
	press("1")
	// Then the operators' queue, or outside working hours the ticket's
	// number (the test runs on the real clock).
	var ts []tickets.Ticket
	if !waitFor(45*time.Second, func() bool {
		ts, err = st.TicketsOfCall(context.Background(), callID)
		return err == nil && len(ts) == 1
	}) {
		t.Fatalf("tickets of the call: %+v, %v", ts, err)
	}
	turns, err := st.Transcript(context.Background(), callID)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, tu := range turns {
		all = append(all, tu.Speaker+": "+tu.Text)
	}
	if tk := ts[0]; tk.Personal["cnp"] != cnp || tk.Service != tickets.ServiceDrivingLicence || strings.Contains(tk.Description, cnp) {
		t.Errorf("ticket %+v: want the CNP in the personal field only, service driving_licence", tk)
	}
	if !waitFor(5*time.Second, func() bool {
		for _, c := range listCalls(t, d.dataDir) {
			if c.ID == callID && strings.HasPrefix(c.DTMF, "3**********456") {
				return true
			}
		}
		return false
	}) {
		t.Errorf("the call's DTMF string is not masked: %+v", listCalls(t, d.dataDir))
	}
	if joined := strings.Join(all, "\n"); strings.Contains(joined, cnp) || !strings.Contains(joined, "caller: **********456") {
		t.Errorf("transcript:\n%s", joined)
	}
}
