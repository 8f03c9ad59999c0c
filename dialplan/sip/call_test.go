package sip_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"
	"github.com/go-audio/wav"
	"github.com/pion/rtp"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
)

func tone(freq float64, rate int, dur time.Duration, amp float64) []int16 {
	n := int(float64(rate) * dur.Seconds())
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return out
}

func (c *call) sendPCM(pcm []int16) {
	n := c.rate / 50
	for off := 0; off+n <= len(pcm); off += n {
		c.send <- pcm[off : off+n]
	}
}

// record waits for the call record to be closed and returns it.
func record(t *testing.T, l *line, id string) tickets.CallRecord {
	t.Helper()
	var rec tickets.CallRecord
	ok := waitFor(5*time.Second, func() bool {
		r, err := l.store.Call(context.Background(), id)
		if err != nil {
			return false
		}
		rec = r
		return r.End != nil
	})
	if !ok {
		t.Fatalf("call record %s not closed: %+v", id, rec)
	}
	return rec
}

func callID(c *call) string { return c.d.InviteRequest.CallID().Value() }

// A caller hears the whole greeting, interrupts the menu with a key (RFC
// 4733), hears the answer for that key, presses 0 and the line says goodbye
// and hangs up. The call record and the two-channel recording tell it all.
func TestCallerHearsGreetingAndNavigatesMenuWithRFC4733(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	c := l.answered(t)
	answered := time.Now()
	c.sendPCM(tone(440, 8000, time.Second, 8000)) // the caller speaks first: left channel of the recording

	greet := promptEnvelope(t, l.eng.Prompts, "greeting", 8000)
	// Wait for the greeting and half a second more (3 s of slack for a
	// loaded machine: when the greeting started is checked below).
	if !waitFor(time.Duration(len(greet)+40)*20*time.Millisecond+3*time.Second, func() bool { return c.heardLen() >= (len(greet)+25)*160 }) {
		t.Fatalf("heard only %d samples of audio", c.heardLen())
	}
	env := envelope(c.heardSince(0), 8000)
	first, _ := speechSpan(env)
	gFirst, gLast := speechSpan(greet)
	if first < 0 {
		t.Fatal("the caller heard only silence")
	}
	if first > 15 {
		t.Errorf("greeting started %d ms after answer, want within 300 ms", first*20)
	}
	// The menu follows the greeting at once, so measure the greeting where
	// it matches best.
	off, corr := match(env[:min(len(env), len(greet)+40)], greet)
	if corr < 0.9 {
		t.Errorf("what the caller heard does not match the greeting: correlation %.2f", corr)
	}
	hf, hl := speechSpan(env[off : off+len(greet)])
	if d := (hl - hf) - (gLast - gFirst); d < -5 || d > 5 {
		t.Errorf("greeting lasted %d ms, the prompt lasts %d ms", (hl-hf)*20, (gLast-gFirst)*20)
	}

	// Barge into the menu with 1: the identity card answer plays.
	time.Sleep(time.Second)
	mark := c.heardLen()
	c.dtmf('1')
	info := promptEnvelope(t, l.eng.Prompts, "info_identity", 8000)
	if !waitFor(time.Duration(len(info)+60)*20*time.Millisecond, func() bool { return c.heardLen() >= mark+(len(info)+25)*160 }) {
		t.Fatalf("no audio after the key press: heard %d samples, mark %d, packets out %d", c.heardLen(), mark, l.eng.Metrics.RTPPacketsOut.Load())
	}
	after := envelope(c.heardSince(mark), 8000)
	at, corrInfo := match(after, info)
	if corrInfo < 0.9 {
		t.Errorf("after pressing 1 the caller did not hear the identity card answer (correlation %.2f)", corrInfo)
	}
	if at*20 > 500 {
		t.Errorf("the answer started %d ms after the key, want within 500 ms", at*20)
	}
	portal := promptEnvelope(t, l.eng.Prompts, "info_portal", 8000)
	if _, cp := match(after, portal); cp >= corrInfo {
		t.Errorf("the portal answer matches better (%.2f) than the identity answer (%.2f)", cp, corrInfo)
	}

	// 0 ends the call: goodbye, then the line hangs up.
	c.dtmf('0')
	if !c.waitEnded(30 * time.Second) {
		t.Fatal("the line did not hang up after 0")
	}
	callDur := time.Since(answered)

	rec := record(t, l, callID(c))
	if rec.DTMF != "10" {
		t.Errorf("call record DTMF = %q, want %q", rec.DTMF, "10")
	}
	if rec.EndReason != string(ivr.EndEngineHangup) {
		t.Errorf("end reason = %q, want engine_hangup", rec.EndReason)
	}
	if rec.Codec != "PCMU" || rec.Answer == nil || rec.Caller == "" || rec.Called != "1919" {
		t.Errorf("call record incomplete: %+v", rec)
	}
	if rec.Stats.In < 100 || rec.Stats.Out < 100 {
		t.Errorf("packet statistics too low: %+v", rec.Stats)
	}
	events, err := l.store.Events(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, e := range events {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"sip.invite", "sip.180", "sip.200", "dtmf", "sip.bye.sent"} {
		if !kinds[k] {
			t.Errorf("call event log lacks %s: %v", k, events)
		}
	}

	// The recording: two channels, as long as the call, caller on the left.
	f, err := os.Open(rec.Recording)
	if err != nil {
		t.Fatalf("recording: %v", err)
	}
	defer f.Close()
	dec := wav.NewDecoder(f)
	buf, err := dec.FullPCMBuffer()
	if err != nil {
		t.Fatal(err)
	}
	if dec.NumChans != 2 || dec.SampleRate != 8000 {
		t.Fatalf("recording is %d channels at %d Hz, want 2 at 8000", dec.NumChans, dec.SampleRate)
	}
	frames := len(buf.Data) / 2
	recDur := time.Duration(frames) * time.Second / 8000
	if d := recDur - callDur; d < -time.Second || d > time.Second {
		t.Errorf("recording lasts %s, the call %s", recDur, callDur)
	}
	left := make([]int16, frames)
	right := make([]int16, frames)
	for i := range frames {
		left[i] = int16(buf.Data[2*i])
		right[i] = int16(buf.Data[2*i+1])
	}
	if r := audio.RMS(left[:8000*3/2]); r < 1000 {
		t.Errorf("caller's tone missing from the left channel (RMS %.0f)", r)
	}
	if r := audio.RMS(right[:8000*4]); r < 300 {
		t.Errorf("greeting missing from the right channel (RMS %.0f)", r)
	}
	if r := audio.RMS(left[8000*2 : 8000*4]); r > 200 {
		t.Errorf("left channel should be the (silent) caller after the tone, RMS %.0f", r)
	}
}

// DTMF by SIP INFO, both content types, drives the same menu.
func TestSIPInfoDTMF(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	c := l.answered(t)
	time.Sleep(500 * time.Millisecond)
	if got := c.info("application/dtmf-relay", "Signal=2\r\nDuration=160\r\n"); got != 200 {
		t.Fatalf("INFO dtmf-relay answered %d", got)
	}
	if got := c.info("text/plain", "hello"); got != 415 {
		t.Errorf("INFO with an unknown body answered %d, want 415", got)
	}
	if got := c.info("application/dtmf-relay", "Signal=Z\r\n"); got != 415 {
		t.Errorf("INFO with a bad signal answered %d, want 415", got)
	}
	time.Sleep(time.Second)
	if got := c.info("application/dtmf", "0"); got != 200 {
		t.Fatalf("INFO dtmf answered %d", got)
	}
	if !c.waitEnded(20 * time.Second) {
		t.Fatal("the line did not hang up after 0")
	}
	rec := record(t, l, callID(c))
	if rec.DTMF != "20" {
		t.Errorf("DTMF = %q, want 20", rec.DTMF)
	}
}

// The caller hangs up mid-greeting.
func TestCallerHangsUp(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	c := l.answered(t)
	time.Sleep(time.Second)
	c.hangup()
	rec := record(t, l, callID(c))
	if rec.EndReason != string(ivr.EndCallerHangup) {
		t.Errorf("end reason = %q, want caller_hangup", rec.EndReason)
	}
	if !waitFor(3*time.Second, func() bool { return l.eng.Metrics.ActiveCalls.Load() == 0 }) {
		t.Errorf("active calls = %d after hangup", l.eng.Metrics.ActiveCalls.Load())
	}
}

// CANCEL while the line rings: 487, no answer, a record that says so.
func TestCancelBeforeAnswer(t *testing.T) {
	t.Parallel()
	l := startLine(t, func(c *sip.Config, _ *ivr.Engine) { c.AnswerDelay = 3 * time.Second })
	p := newPhone(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var id string
	_, err := invite(ctx, p.dg, gosip.Uri{User: "1919", Host: "127.0.0.1", Port: l.port}, diago.InviteOptions{
		OnResponse: func(res *gosip.Response) error {
			if res.StatusCode == 180 {
				id = res.CallID().Value()
				cancel()
			}
			return nil
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("invite: %v, want cancelled", err)
	}
	rec := record(t, l, id)
	if rec.EndReason != string(ivr.EndCancelled) || rec.Answer != nil {
		t.Errorf("record = %+v, want cancelled and never answered", rec)
	}
}

// An offer with no codec we speak gets 488 and a record.
func TestNoCommonCodecIs488(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	g722 := media.Codec{Name: "G722", PayloadType: 9, SampleRate: 8000, SampleDur: 20 * time.Millisecond, NumChannels: 1}
	p := newPhone(t, g722)
	var id string
	_, err := p.dial(l, "1919", diago.InviteOptions{OnResponse: func(res *gosip.Response) error {
		id = res.CallID().Value()
		return nil
	}})
	if status(err) != 488 {
		t.Fatalf("invite: %v, want 488", err)
	}
	rec := record(t, l, id)
	if rec.EndReason != string(ivr.EndNoCommonCodec) {
		t.Errorf("end reason = %q", rec.EndReason)
	}
}

// A caller who never sends RTP is hung up after the RTP timeout.
func TestRTPTimeout(t *testing.T) {
	t.Parallel()
	l := startLine(t, func(c *sip.Config, _ *ivr.Engine) { c.RTPTimeout = 1500 * time.Millisecond })
	c := l.answered(t)
	c.mute <- true
	start := time.Now()
	if !c.waitEnded(6 * time.Second) {
		t.Fatal("the line did not hang up a silent caller")
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("hung up after %s, before the 1.5 s timeout", el)
	}
	rec := record(t, l, callID(c))
	if rec.EndReason != string(ivr.EndRTPTimeout) {
		t.Errorf("end reason = %q, want rtp_timeout", rec.EndReason)
	}
}

// Hold (re-INVITE sendonly) stops the caller's RTP without a timeout;
// unhold resumes and the call goes on.
func TestHoldAndUnhold(t *testing.T) {
	t.Parallel()
	l := startLine(t, func(c *sip.Config, e *ivr.Engine) {
		c.RTPTimeout = 2 * time.Second
		e.Timing.FirstDigit = 10 * time.Second
	})
	c := l.answered(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.d.Hold(ctx); err != nil {
		t.Fatalf("hold: %v", err)
	}
	c.mute <- true
	time.Sleep(4 * time.Second) // twice the RTP timeout
	if c.d.Context().Err() != nil {
		rec := record(t, l, callID(c))
		events, _ := l.store.Events(context.Background(), rec.ID)
		t.Fatalf("the call ended while on hold: %+v\n%v", rec, events)
	}
	if err := c.d.Unhold(ctx); err != nil {
		t.Fatalf("unhold: %v", err)
	}
	c.mute <- false
	time.Sleep(500 * time.Millisecond)
	c.pressToEnd('0')
	rec := record(t, l, callID(c))
	if rec.EndReason != string(ivr.EndEngineHangup) || rec.DTMF != "0" {
		t.Errorf("record = %+v", rec)
	}
	events, _ := l.store.Events(context.Background(), rec.ID)
	var holds int
	for _, e := range events {
		if e.Kind == "sip.reinvite" {
			holds++
		}
	}
	if holds < 2 {
		t.Errorf("re-INVITEs logged: %d, want 2 (hold, unhold)", holds)
	}
}

// Opus and PCMA callers hear the greeting too.
func TestOtherCodecs(t *testing.T) {
	t.Parallel()
	for _, codec := range []media.Codec{media.CodecAudioAlaw, media.CodecAudioOpus} {
		t.Run(codec.Name, func(t *testing.T) {
			t.Parallel()
			l := startLine(t, nil)
			c, err := newPhone(t, codec, media.CodecTelephoneEvent8000).dial(l, "1919", diago.InviteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !waitFor(5*time.Second, func() bool { return c.heardLen() >= 3*c.rate }) {
				t.Fatal("no audio")
			}
			env := envelope(c.heardSince(0), c.rate)
			greet := promptEnvelope(t, l.eng.Prompts, "greeting", 16000)
			if _, corr := match(env, greet[:len(env)-20]); corr < 0.85 {
				t.Errorf("%s caller did not hear the greeting: correlation %.2f", codec.Name, corr)
			}
			c.pressToEnd('0')
			rec := record(t, l, callID(c))
			if !strings.EqualFold(rec.Codec, codec.Name) || rec.DTMF != "0" {
				t.Errorf("record = %+v", rec)
			}
		})
	}
}

// Garbage at the SIP port changes nothing for real callers.
func TestGarbageDatagramsDoNotHurt(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	conn, err := net.Dial("udp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	garbage := [][]byte{
		{0, 1, 2, 3, 0xff, 0xfe},
		[]byte("INVITE\r\n\r\n"),
		[]byte("INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK1\r\nContent-Length: 99999\r\n\r\nv=0"),
		[]byte("SIP/2.0 200 OK\r\nCSeq: abc\r\n\r\n"),
		[]byte("OPTIONS sip:x SIP/2.0\r\nVia: ;;;\r\nFrom: <<<\r\nTo: >\r\nCall-ID:\r\nCSeq: 1 OPTIONS\r\n\r\n"),
		[]byte(strings.Repeat("A", 60000)),
		// A well-formed INVITE whose SDP is a lone LF: it used to crash
		// the SDP parser of the SIP library.
		[]byte("INVITE sip:1919@" + l.addr + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbadsdp\r\n" +
			"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:1919@127.0.0.1>\r\nCall-ID: bad-sdp@test\r\nCSeq: 1 INVITE\r\n" +
			"Contact: <sip:x@127.0.0.1:9>\r\nContent-Type: application/sdp\r\nContent-Length: 1\r\n\r\n\n"),
	}
	for range 20 {
		for _, g := range garbage {
			_, _ = conn.Write(g)
		}
	}
	c := l.answered(t)
	if n := l.eng.Metrics.Panics.Load(); n != 0 {
		t.Errorf("%d panics recovered", n)
	}
	if rec, err := l.store.Call(context.Background(), "bad-sdp@test"); err == nil && rec.EndReason != string(ivr.EndError) {
		t.Errorf("the INVITE with a broken SDP ended as %q", rec.EndReason)
	}
	if !waitFor(3*time.Second, func() bool { return c.heardLen() > 8000 }) {
		t.Fatal("no audio after garbage")
	}
	c.pressToEnd('0')
}

// OPTIONS keepalives are answered 200 with the methods allowed.
func TestOptionsKeepalive(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	p := newPhone(t)
	req := gosip.NewRequest(gosip.OPTIONS, gosip.Uri{Host: "127.0.0.1", Port: l.port})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	client, err := newClient(p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.Contains(res.GetHeader("Allow").Value(), "INVITE") {
		t.Errorf("OPTIONS answered %d Allow=%v", res.StatusCode, res.GetHeader("Allow"))
	}
}

// A draining engine answers OPTIONS out of a dialog with 503, so that a
// balancer probing with OPTIONS sends new calls elsewhere.
func TestOptionsWhileDraining(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	p := newPhone(t)
	client, err := newClient(p)
	if err != nil {
		t.Fatal(err)
	}
	probe := func() int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		res, err := client.Do(ctx, gosip.NewRequest(gosip.OPTIONS, gosip.Uri{Host: "127.0.0.1", Port: l.port}))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == 503 && res.GetHeader("Retry-After") == nil {
			t.Error("503 without Retry-After")
		}
		return res.StatusCode
	}
	if st := probe(); st != 200 {
		t.Fatalf("OPTIONS before draining: %d, want 200", st)
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		drained <- l.eng.Drain(ctx)
	}()
	if !waitFor(5*time.Second, l.eng.Draining) {
		t.Fatal("the engine never started draining")
	}
	if st := probe(); st != 503 {
		t.Fatalf("OPTIONS while draining: %d, want 503", st)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
}

// While draining, new calls get 503 and the active call goes on.
func TestDrainRefusesNewCalls(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	c := l.answered(t)
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		drained <- l.eng.Drain(ctx)
	}()
	if !waitFor(2*time.Second, l.eng.Draining) {
		t.Fatal("not draining")
	}
	_, err := newPhone(t).dial(l, "1919", diago.InviteOptions{})
	if status(err) != 503 {
		t.Fatalf("new call while draining: %v, want 503", err)
	}
	if c.d.Context().Err() != nil {
		t.Fatal("the active call ended when draining began")
	}
	c.pressToEnd('0')
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
}

// status is the SIP status of a failed INVITE, or 0.
func status(err error) int {
	var v sipgo.ErrDialogResponse
	if errors.As(err, &v) {
		return v.Res.StatusCode
	}
	var p *sipgo.ErrDialogResponse
	if errors.As(err, &p) {
		return p.Res.StatusCode
	}
	return 0
}

// A recording that cannot be written (the disk is full) is logged and
// counted; the caller notices nothing.
func TestFullDiskForRecordings(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Fatalf("this test needs /dev/full: %v", err)
	}
	l := startLine(t, nil)
	id := "full-disk-call@test"
	day := time.Now().UTC().Format("2006-01-02")
	path := filepath.Join(l.eng.RecDir, day, ivr.SafeFileName(id)+".wav")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	callIDHdr := gosip.CallIDHeader(id)
	c, err := newPhone(t).dial(l, "1919", diago.InviteOptions{Headers: []gosip.Header{&callIDHdr}})
	if err != nil {
		t.Fatal(err)
	}
	if callID(c) != id {
		t.Fatalf("call id %q, want %q", callID(c), id)
	}
	if !waitFor(4*time.Second, func() bool { return c.heardLen() >= 3*8000 }) {
		t.Fatal("the caller heard nothing")
	}
	if r := audio.RMS(c.heardSince(0)); r < 300 {
		t.Errorf("the caller heard silence (RMS %.0f)", r)
	}
	c.pressToEnd('0')
	rec := record(t, l, id)
	if rec.EndReason != string(ivr.EndEngineHangup) || rec.DTMF != "0" {
		t.Errorf("record = %+v", rec)
	}
	if n := l.eng.Metrics.RecordingErrors.Load(); n != 1 {
		t.Errorf("recording errors counted: %d, want 1", n)
	}
}

// A re-INVITE that changes the codec keeps the call; one with no codec we
// speak is refused with 488 and the call keeps its media.
func TestReinviteChangesCodec(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	c := l.answered(t, media.CodecAudioUlaw, media.CodecAudioAlaw, media.CodecTelephoneEvent8000)
	laddr := c.d.MediaSession().Laddr
	reinvite := func(formats, rtpmap string) int {
		sdp := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
			"m=audio " + fmt.Sprint(laddr.Port) + " RTP/AVP " + formats + "\r\n" + rtpmap + "a=sendrecv\r\n"
		req := gosip.NewRequest(gosip.INVITE, c.d.InviteResponse.Contact().Address)
		req.AppendHeader(c.d.InviteRequest.Contact())
		req.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody([]byte(sdp))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			res, err := c.d.Do(ctx, req.Clone())
			if err != nil {
				t.Fatalf("re-INVITE: %v", err)
			}
			if res.StatusCode == 491 { // our previous transaction still settling
				time.Sleep(300 * time.Millisecond)
				continue
			}
			if res.IsSuccess() {
				ack := gosip.NewRequest(gosip.ACK, res.Contact().Address)
				if err := c.d.WriteRequest(ack); err != nil {
					t.Fatal(err)
				}
			}
			return res.StatusCode
		}
	}
	time.Sleep(500 * time.Millisecond)
	if code := reinvite("9", "a=rtpmap:9 G722/8000\r\n"); code != 488 {
		t.Errorf("re-INVITE with G.722 only answered %d, want 488", code)
	}
	if code := reinvite("8 101", "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"); code != 200 {
		t.Fatalf("re-INVITE to PCMA answered %d", code)
	}
	before := l.eng.Metrics.RTPPacketsOut.Load()
	time.Sleep(time.Second)
	if got := l.eng.Metrics.RTPPacketsOut.Load() - before; got < 40 {
		t.Errorf("%d packets sent in the second after the codec change", got)
	}
	if c.d.Context().Err() != nil {
		t.Fatal("the call ended on the codec change")
	}
	c.pressToEnd('0')
	rec := record(t, l, callID(c))
	events, _ := l.store.Events(context.Background(), rec.ID)
	var changed bool
	for _, e := range events {
		if e.Kind == "media.update" && strings.Contains(e.Detail, "PCMA") {
			changed = true
		}
	}
	if !changed || rec.DTMF != "0" || rec.EndReason != string(ivr.EndEngineHangup) {
		t.Errorf("record %+v, events %v", rec, events)
	}
}

// A line that sends DTMF as tones in the audio (an analog gateway) drives
// the menu too.
func TestInbandDTMF(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	c := l.answered(t)
	time.Sleep(500 * time.Millisecond)
	// Key 0: 941 Hz + 1336 Hz for 100 ms.
	n := 800
	key := make([]int16, n)
	for i := range key {
		ts := float64(i) / 8000
		key[i] = int16(6000*math.Sin(2*math.Pi*941*ts) + 6000*math.Sin(2*math.Pi*1336*ts))
	}
	c.sendPCM(key)
	if !c.waitEnded(20 * time.Second) {
		t.Fatal("no hangup after an in-band 0")
	}
	rec := record(t, l, callID(c))
	if rec.DTMF != "0" || rec.EndReason != string(ivr.EndEngineHangup) {
		t.Errorf("record = %+v", rec)
	}
	var b strings.Builder
	if err := l.eng.Metrics.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `ivr_dtmf_digits_total{source="inband"} 1`) {
		t.Errorf("in-band key not counted:\n%s", b.String())
	}
}

// An INVITE without SDP (late offer, as some trunks send): the 200 OK
// carries the line's offer, the ACK the caller's answer, and the call goes
// on as any other: audio both ways, keys, hangup.
func TestLateOffer(t *testing.T) {
	t.Parallel()
	l := startLine(t, nil)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("late-offer-trunk"))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	rtpConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rtpConn.Close()
	myPort := rtpConn.LocalAddr().(*net.UDPAddr).Port

	dua := sipgo.DialogUA{Client: client, ContactHDR: gosip.ContactHeader{Address: gosip.Uri{User: "trunk", Host: "127.0.0.1", Port: freePort(t)}}}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sess, err := dua.Invite(ctx, gosip.Uri{User: "1919", Host: "127.0.0.1", Port: l.port}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("late-offer INVITE not answered: %v", err)
	}
	offerSDP := string(sess.InviteResponse.Body())
	if !strings.Contains(offerSDP, "m=audio") || !strings.Contains(offerSDP, "PCMU/8000") || !strings.Contains(offerSDP, "telephone-event/8000") {
		t.Fatalf("the 200 OK does not offer audio:\n%s", offerSDP)
	}
	var linePort int
	for _, line := range strings.Split(offerSDP, "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[0], "m=audio") {
			fmt.Sscan(f[1], &linePort)
		}
	}
	answer := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n", myPort)
	ack := gosip.NewRequest(gosip.ACK, sess.InviteResponse.Contact().Address)
	ack.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody([]byte(answer))
	if err := sess.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}

	// The line's audio arrives as PCMU and is the greeting (not silence).
	dec, _ := audio.NewDecoder("PCMU")
	var heard []int16
	buf := make([]byte, 1500)
	pcm := make([]int16, 160)
	var pkt rtp.Packet
	_ = rtpConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(heard) < 2*8000 {
		n, err := rtpConn.Read(buf)
		if err != nil {
			t.Fatalf("RTP from the line: %v (heard %d samples)", err, len(heard))
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil || pkt.PayloadType != 0 {
			t.Fatalf("bad RTP from the line: pt %d, %v", pkt.PayloadType, err)
		}
		m, _ := dec.Decode(pcm, pkt.Payload)
		heard = append(heard, pcm[:m]...)
	}
	if r := audio.RMS(heard); r < 300 {
		t.Errorf("the late-offer caller heard silence (RMS %.0f)", r)
	}

	// Key 1 as RFC 4733 from our RTP socket, then hang up.
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: linePort}
	for i, end := range []bool{false, false, true, true, true} {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: uint16(100 + i), Timestamp: 8000, SSRC: 42, Marker: i == 0},
			Payload: []byte{1, 10, 0, byte(160 * (i + 1))}}
		if end {
			p.Payload[1] |= 0x80
		}
		b, _ := p.Marshal()
		if _, err := rtpConn.WriteToUDP(b, to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if err := sess.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	rec := record(t, l, sess.InviteRequest.CallID().Value())
	if rec.DTMF != "1" || rec.Codec != "PCMU" || rec.EndReason != string(ivr.EndCallerHangup) || rec.Answer == nil {
		t.Errorf("record = %+v", rec)
	}
}
