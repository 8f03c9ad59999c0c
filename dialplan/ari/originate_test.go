package ari

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govline/ivr/dialplan/ari/aritest"
)

// originateRequest is the POST /channels the fake Asterisk received.
func originateRequest(t *testing.T, ast *aritest.Asterisk) aritest.Request {
	t.Helper()
	for _, r := range ast.Requests() {
		if r.Method == "POST" && r.Path == "/channels" {
			return r
		}
	}
	t.Fatal("no POST /channels")
	return aritest.Request{}
}

// Originate through ARI sends the documented form (POST /channels with
// endpoint, app, appArgs, callerId, timeout, channelId); the answered
// channel enters the application and the engine serves it: the far end
// hears the line. A busy far end ends the originate with cause 17, an
// unanswered one with cause 19.
func TestOriginateThroughARI(t *testing.T) {
	l := startLine(t, nil)
	for i := 0; i < 500 && !l.ast.Registered(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	ctx := context.Background()
	id, err := l.srv.Originate(ctx, OriginateRequest{Endpoint: "PJSIP/0722123456@trunk", CallerID: "Linia de asistență <080012345>",
		Timeout: 20 * time.Second, Args: []string{"callback", "17"}})
	if err != nil {
		t.Fatalf("Originate: %v", err)
	}
	r := originateRequest(t, l.ast)
	q := r.Query
	if q.Get("endpoint") != "PJSIP/0722123456@trunk" || q.Get("app") != "ivr" || q.Get("appArgs") != "callback,17" ||
		q.Get("callerId") != "Linia de asistență <080012345>" || q.Get("timeout") != "20" || q.Get("channelId") != id {
		t.Errorf("POST /channels %v, want the documented form with channelId %s", q, id)
	}
	far := l.ast.Originated()
	if len(far) != 1 {
		t.Fatalf("%d answered originates, want 1", len(far))
	}
	if !waitFor(15*time.Second, func() bool { return far[0].HeardLen() > far[0].Rate() }) {
		t.Fatal("the answered channel heard nothing of the line")
	}

	l.ast.SetDial(func(string) string { return "busy" })
	_, err = l.srv.Originate(ctx, OriginateRequest{Endpoint: "PJSIP/0722000001@trunk"})
	var oe *OriginateError
	if !errors.As(err, &oe) || !oe.Busy() {
		t.Errorf("busy: %v, want cause 17", err)
	}
	l.ast.SetDial(func(string) string { return "noanswer" })
	_, err = l.srv.Originate(ctx, OriginateRequest{Endpoint: "PJSIP/0722000002@trunk", Timeout: time.Second})
	if !errors.As(err, &oe) || !oe.NoAnswer() {
		t.Errorf("no answer: %v, want cause 19", err)
	}
	_, err = l.srv.Originate(ctx, OriginateRequest{Endpoint: ""})
	if err == nil {
		t.Error("an originate without an endpoint was sent")
	}
}
