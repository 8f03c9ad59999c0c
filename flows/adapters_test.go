package flows_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/flows/sim"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// main.lua on the real services: the ticket store, its transcript and
// calendar, the knowledge base index. A caller's ticket is opened with a
// valid number, the turns are stored, and a second call learns its status.
func TestMainOnRealServices(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, store.SQLiteURL(tickets.DBPath(dir)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := tickets.New(db)
	ix, err := kb.Open(kb.IndexPath(dir), kb.NewMissTable(db))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if _, err := ix.ImportDir(ctx, "kb"); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC) // a Tuesday, 12:00 in Bucharest
	st.SetClock(func() time.Time { return at })
	svc := flows.Services{KB: flows.KBIndex{Index: ix, RecordMisses: true}, Desk: flows.TicketDesk{Store: st},
		Transcript: flows.TicketTranscript{Store: st}, Calendar: tickets.DefaultCalendar(),
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return at }}
	rt, err := flows.Load(".", flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	call := func(id, input string) (flows.Outcome, string) {
		var said []string
		ch := sim.NewChannel(strings.NewReader(input), nil)
		ch.Lines = func(l string) { said = append(said, l) }
		o := rt.Run(ctx, flows.Facts{CallID: id, Caller: "+40722123456", Called: "1919", Start: at, Recording: "/var/rec/" + id + ".wav"}, ch, svc)
		return o, strings.Join(said, "\n")
	}

	o, said := call("call-1", "mi-am pierdut buletinul\nnu\n")
	if o.Kind != flows.OutcomeTransfer || o.Queue != "level1" || !tickets.ValidNumber(o.Ticket) {
		t.Fatalf("outcome %+v\n%s", o, said)
	}
	tk, err := st.Ticket(ctx, o.Ticket)
	if err != nil || tk.Service != tickets.ServiceIdentityCard || tk.Caller != "+40722123456" || tk.CallID != "call-1" ||
		tk.Recording != "/var/rec/call-1.wav" || strings.Join(tk.Articles, ",") != "cei-lost-stolen" ||
		!strings.Contains(tk.Description, "mi-am pierdut buletinul") {
		t.Errorf("ticket %+v, %v", tk, err)
	}
	turns, err := st.Transcript(ctx, "call-1")
	if err != nil || len(turns) < 5 || turns[2].Speaker != "caller" || turns[2].Text != "mi-am pierdut buletinul" || turns[2].Mode != "speech" {
		t.Errorf("transcript %+v, %v", turns, err)
	}

	_, said = call("call-2", "#5\n#"+o.Ticket+"#\nda\nda\nnu\n")
	if !strings.Contains(said, "ivr: Solicitarea "+spaced(o.Ticket)+" este înregistrată.") {
		t.Errorf("status of %s:\n%s", o.Ticket, said)
	}
	bad := o.Ticket[:7] + string('0'+(o.Ticket[7]-'0'+1)%10)
	_, said = call("call-3", "#5\n#"+bad+"#\nda\n")
	if !strings.Contains(said, "ivr: Acest număr nu este valid.") {
		t.Errorf("a number with a wrong check digit:\n%s", said)
	}

	call("call-4", "ce vreme va fi mâine\nnu\n")
	misses, err := ix.Misses(ctx, time.Time{})
	if err != nil || len(misses) == 0 {
		t.Errorf("no miss recorded: %v %v", misses, err)
	}
}

func spaced(s string) string { return strings.Join(strings.Split(s, ""), " ") }

// call.channel is "phone" on a Channel that does not name itself (the
// chat's is tested in channels/chat), and a chat's ticket is opened on
// the portal channel.
func TestCallChannel(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.lua"), []byte(`say(call.channel)`), 0o644); err != nil {
		t.Fatal(err)
	}
	rt, err := flows.Load(dir, flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var said []string
	ch := sim.NewChannel(strings.NewReader(""), nil)
	ch.Lines = func(l string) { said = append(said, l) }
	rt.Run(context.Background(), flows.Facts{}, ch, flows.Services{Log: slog.New(slog.DiscardHandler)})
	if len(said) == 0 || said[0] != "ivr: phone" {
		t.Errorf("call.channel: %q", said)
	}
	if c := (flows.TicketDraft{Channel: "chat"}).NewTicket().Channel; c != tickets.ChannelPortal {
		t.Errorf("a chat's ticket on %q", c)
	}
	if c := (flows.TicketDraft{}).NewTicket().Channel; c != tickets.ChannelPhone {
		t.Errorf("a call's ticket on %q", c)
	}
}
