package esl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// inboundFS is FreeSWITCH's event socket as an inbound client meets it:
// auth/request, then command/reply to auth, then api/response to each api
// command (the originate's body is answer).
type inboundFS struct {
	ln       net.Listener
	password string
	answer   string
	mu       sync.Mutex
	got      []string
}

func newInboundFS(t *testing.T, password, answer string) *inboundFS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &inboundFS{ln: ln, password: password, answer: answer}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(c) })
		}
	})
	return f
}

func (f *inboundFS) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "Content-Type: auth/request\n\n")
	br := bufio.NewReader(c)
	for {
		var lines []string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			l = strings.TrimRight(l, "\r\n")
			if l == "" {
				break
			}
			lines = append(lines, l)
		}
		if len(lines) == 0 {
			continue
		}
		cmd := lines[0]
		f.mu.Lock()
		f.got = append(f.got, cmd)
		f.mu.Unlock()
		switch {
		case strings.HasPrefix(cmd, "auth "):
			if strings.TrimPrefix(cmd, "auth ") != f.password {
				fmt.Fprint(c, "Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
				return
			}
			fmt.Fprint(c, "Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
		case strings.HasPrefix(cmd, "api "):
			fmt.Fprintf(c, "Content-Type: api/response\nContent-Length: %d\n\n%s", len(f.answer)+1, f.answer+"\n")
		default:
			fmt.Fprint(c, "Content-Type: command/reply\nReply-Text: -ERR command not found\n\n")
		}
	}
}

func (f *inboundFS) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

// The originate command has FreeSWITCH's documented form, goes over an
// authenticated inbound event socket, and returns the new channel's uuid;
// -ERR USER_BUSY is an OriginateError naming the cause; values that would
// break the command are refused before anything is sent.
func TestOriginateThroughEventSocket(t *testing.T) {
	req := OriginateRequest{Gateway: "trunk", Number: "0722123456", CallerID: "080012345", Timeout: 25 * time.Second, Socket: "127.0.0.1:8084"}
	fs := newInboundFS(t, "ClueCon", "+OK 7f4de4bc-17d7-11dd-b7a0-db4edd065621")
	uuid, err := Originate(context.Background(), fs.ln.Addr().String(), "ClueCon", req)
	if err != nil || uuid != "7f4de4bc-17d7-11dd-b7a0-db4edd065621" {
		t.Fatalf("Originate: %q, %v", uuid, err)
	}
	want := []string{"auth ClueCon", "api originate {origination_caller_id_number=080012345,originate_timeout=25}sofia/gateway/trunk/0722123456 &socket(127.0.0.1:8084 async full)"}
	if got := fs.commands(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("commands %q, want %q", got, want)
	}

	busy := newInboundFS(t, "ClueCon", "-ERR USER_BUSY")
	_, err = Originate(context.Background(), busy.ln.Addr().String(), "ClueCon", req)
	var oe *OriginateError
	if !errors.As(err, &oe) || oe.Cause != "USER_BUSY" {
		t.Errorf("busy: %v, want USER_BUSY", err)
	}
	if _, err := Originate(context.Background(), fs.ln.Addr().String(), "wrong", req); err == nil || !strings.Contains(err.Error(), "auth refused") {
		t.Errorf("wrong password: %v", err)
	}
	for _, bad := range []OriginateRequest{
		{Gateway: "trunk", Number: "0722 123456", Socket: "127.0.0.1:8084"},
		{Gateway: "trunk", Number: "0722123456,x=y", Socket: "127.0.0.1:8084"},
		{Gateway: "trunk}", Number: "0722123456", Socket: "127.0.0.1:8084"},
		{Gateway: "trunk", Number: "0722123456", CallerID: "1\napi shutdown", Socket: "127.0.0.1:8084"},
		{Gateway: "trunk", Number: "0722123456", Socket: "nowhere"},
		{Gateway: "trunk", Number: "0722123456", Socket: "127.0.0.1:8084", UUID: "x,origination_caller_id_number=1"},
	} {
		if _, err := bad.Command(); !errors.Is(err, ErrBadArgument) {
			t.Errorf("%+v: %v, want ErrBadArgument", bad, err)
		}
	}
}
