package esl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// OriginateRequest is an outbound call FreeSWITCH places for the engine,
// as the originate API documents it:
//
//	originate {origination_caller_id_number=N,originate_timeout=S}sofia/gateway/GATEWAY/NUMBER &socket(HOST:PORT async full)
//
// FreeSWITCH dials the number through its gateway and, once answered,
// connects the channel to the engine's outbound event socket (Socket),
// where the engine serves it as any call.
type OriginateRequest struct {
	Gateway  string        // the sofia gateway (the trunk) as FreeSWITCH names it
	Number   string        // digits, an optional leading +
	CallerID string        // origination_caller_id_number; "" leaves the gateway's
	Timeout  time.Duration // originate_timeout, default 30 s
	Socket   string        // host:port of the engine's event socket listener
	// UUID, when set, is the new channel's uuid (origination_uuid): the
	// engine knows the channel that connects to Socket before the
	// originate returns.
	UUID string
}

// Command is the API command of r, or an error for a value that would
// break it (a space, a comma, a brace, a line break).
func (r OriginateRequest) Command() (string, error) {
	if err := token("gateway", r.Gateway); err != nil {
		return "", err
	}
	if err := token("number", r.Number); err != nil {
		return "", err
	}
	if _, _, err := net.SplitHostPort(r.Socket); err != nil || token("socket", strings.ReplaceAll(r.Socket, ":", "")) != nil {
		return "", fmt.Errorf("%w: socket %q is not host:port", ErrBadArgument, r.Socket)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	vars := []string{}
	if r.CallerID != "" {
		if err := token("caller id", r.CallerID); err != nil {
			return "", err
		}
		vars = append(vars, "origination_caller_id_number="+r.CallerID)
	}
	if r.UUID != "" {
		if err := token("uuid", r.UUID); err != nil {
			return "", err
		}
		vars = append(vars, "origination_uuid="+r.UUID)
	}
	vars = append(vars, fmt.Sprintf("originate_timeout=%d", int(timeout/time.Second)))
	return fmt.Sprintf("originate {%s}sofia/gateway/%s/%s &socket(%s async full)", strings.Join(vars, ","), r.Gateway, r.Number, r.Socket), nil
}

// OriginateError is an originate FreeSWITCH answered with -ERR: Cause is
// the hangup cause it names (USER_BUSY, NO_ANSWER, CALL_REJECTED...).
type OriginateError struct{ Cause string }

func (e *OriginateError) Error() string { return "esl originate: " + e.Cause }

// Originate connects to FreeSWITCH's event socket (inbound: addr,
// password), runs the originate and returns the new channel's uuid once
// it is answered (the API returns then), or an *OriginateError.
func Originate(ctx context.Context, addr, password string, r OriginateRequest) (string, error) {
	cmd, err := r.Command()
	if err != nil {
		return "", err
	}
	if err := checkArg("password", password); err != nil {
		return "", err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) }) // a blocked read ends with ctx
	defer stop()
	fr := newFrameReader(c)
	f, err := fr.read()
	if err != nil {
		return "", err
	}
	if f.contentType() != typeAuthRequest {
		return "", protoErr("expected auth/request, got %q", f.contentType())
	}
	send := func(line string) (*frame, error) {
		b, err := command(line)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write(b); err != nil {
			return nil, err
		}
		for {
			f, err := fr.read()
			if err != nil {
				return nil, err
			}
			if ct := f.contentType(); ct == typeCommandReply || ct == typeAPIResponse {
				return f, nil
			}
		}
	}
	if f, err = send("auth " + password); err != nil {
		return "", err
	}
	if txt, ok := replyText(f); !ok {
		return "", fmt.Errorf("esl: auth refused: %s", txt)
	}
	if f, err = send("api " + cmd); err != nil {
		return "", err
	}
	txt, ok := replyText(f)
	if !ok {
		return "", &OriginateError{Cause: strings.TrimSpace(strings.TrimPrefix(txt, "-ERR"))}
	}
	uuid := strings.TrimSpace(strings.TrimPrefix(txt, "+OK"))
	if uuid == "" {
		return "", errors.New("esl: originate answered +OK without a uuid")
	}
	return uuid, nil
}
