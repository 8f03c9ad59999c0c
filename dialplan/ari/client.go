package ari

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client sends ARI REST requests to one Asterisk server. Every request is
// bounded by its context and by the configured request timeout, carries the
// credentials in the Authorization header (never in the URL, so no access
// log or error message can show them) and is reported to observe, which
// writes it into the call's protocol log and the latency histogram.
//
// It is safe for concurrent use.
type client struct {
	base    string // http(s)://host:port/ari, no user info
	user    string
	pass    string
	http    *http.Client
	timeout time.Duration
	observe func(r requestRecord)
}

// requestRecord is one ARI request as it appears in a call's protocol log.
type requestRecord struct {
	Method   string `json:"method"`
	Path     string `json:"path"` // path and query, never credentials
	Status   int    `json:"status"`
	Duration string `json:"duration"`
	Error    string `json:"error,omitempty"`
	dur      time.Duration
	call     string // the call whose log gets it, "" for none
}

// Error is an ARI request that Asterisk refused (a non-2xx status) or that
// never got an answer (Status 0: timeout, refused connection).
type Error struct {
	Method  string
	Path    string
	Status  int
	Message string // ARI's {"message": ...}, or the transport error
	Err     error
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("ARI %s %s: %s", e.Method, e.Path, e.Message)
	}
	return fmt.Sprintf("ARI %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// isNotFound reports whether err is ARI's 404: the channel or bridge is
// gone, which is what a cleanup wants anyway.
func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// do sends one request. query goes in the URL (ARI takes every parameter
// as a query parameter); body, if not nil, as JSON; out, if not nil,
// receives the decoded 2xx answer.
func (c *client) do(ctx context.Context, callID, method, path string, query url.Values, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := c.base + path
	logged := path
	if len(query) > 0 {
		target += "?" + query.Encode()
		logged += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return &Error{Method: method, Path: path, Message: "bad request", Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(c.user, c.pass)
	start := time.Now()
	rec := requestRecord{Method: method, Path: logged, call: callID}
	res, err := c.http.Do(req)
	if err != nil {
		rec.dur = time.Since(start)
		msg := "no answer"
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			msg = fmt.Sprintf("timeout after %s", rec.dur.Round(time.Millisecond))
		case errors.Is(err, context.Canceled):
			msg = "cancelled"
		default:
			msg = transportError(err)
		}
		rec.Error = msg
		c.report(rec)
		return &Error{Method: method, Path: path, Message: msg, Err: err}
	}
	defer res.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	rec.dur = time.Since(start)
	rec.Status = res.StatusCode
	if res.StatusCode < 200 || res.StatusCode > 299 {
		var m struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &m)
		if m.Message == "" {
			m.Message = http.StatusText(res.StatusCode)
		}
		rec.Error = m.Message
		c.report(rec)
		return &Error{Method: method, Path: path, Status: res.StatusCode, Message: m.Message}
	}
	if rerr != nil {
		rec.Error = "reading the answer: " + transportError(rerr)
		c.report(rec)
		return &Error{Method: method, Path: path, Status: res.StatusCode, Message: rec.Error, Err: rerr}
	}
	c.report(rec)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return &Error{Method: method, Path: path, Status: res.StatusCode, Message: "answer is not the expected JSON", Err: err}
		}
	}
	return nil
}

func (c *client) report(r requestRecord) {
	r.Duration = r.dur.Round(100 * time.Microsecond).String()
	if c.observe != nil {
		c.observe(r)
	}
}

// transportError describes a network error without the URL that net/http
// puts in it (the URL carries no credentials, but keeping the text short
// keeps the call log readable).
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
