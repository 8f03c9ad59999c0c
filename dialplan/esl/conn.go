package esl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/ivr"
)

// ErrTimeout is a command FreeSWITCH did not answer in time. The
// connection is closed after it: a late reply would otherwise be taken as
// the reply to the next command.
var ErrTimeout = errors.New("esl: FreeSWITCH did not reply in time")

// ErrClosed is a command on a connection that is gone.
var ErrClosed = errors.New("esl: event socket closed")

// recorder receives the protocol log of a connection: one line per command
// sent, reply received and event received. It must not block.
type recorder func(kind, detail string)

// conn is one event socket connection, inbound or outbound. It owns one
// goroutine, the reader, which sorts what arrives: replies to the command
// in flight, events to Events. Commands are sent one at a time (the
// protocol answers them in order, without an id).
//
// Events and Done may be used from any goroutine; command is safe for
// concurrent use (calls are serialized).
type conn struct {
	nc      net.Conn
	fr      *frameReader
	rec     recorder
	metrics *Metrics
	timeout time.Duration // per command

	events  chan *Event // closed when the reader ends
	replies chan *frame // capacity 1: one command in flight
	done    chan struct{}
	errMu   sync.Mutex
	err     error // why the reader ended; set before done is closed

	cmdMu     sync.Mutex
	pending   atomic.Bool // a command waits for its reply
	closeOnce sync.Once
}

func newConn(nc net.Conn, rec recorder, m *Metrics, timeout time.Duration) *conn {
	if rec == nil {
		rec = func(string, string) {}
	}
	c := &conn{
		nc: nc, fr: newFrameReader(nc), rec: rec, metrics: m, timeout: timeout,
		events:  make(chan *Event, 256),
		replies: make(chan *frame, 1),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Events delivers the events of the connection (and, as an event named
// DISCONNECT_NOTICE, FreeSWITCH's text/disconnect-notice). It is closed
// when the connection ends.
func (c *conn) Events() <-chan *Event { return c.events }

// Done is closed when the connection has ended; Err then says why.
func (c *conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it runs; io.EOF when
// FreeSWITCH closed it).
func (c *conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Close closes the socket and joins the reader.
func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.nc.Close() })
	<-c.done
	return err
}

func (c *conn) readLoop() {
	var err error
	// A bug in the reader ends this connection (events closed below),
	// not the process.
	defer ivr.Recover(c.metrics.Engine, nil, "esl connection reader", nil)
	defer func() {
		c.errMu.Lock()
		c.err = err
		c.errMu.Unlock()
		close(c.events)
		close(c.done)
	}()
	for {
		var f *frame
		f, err = c.fr.read()
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				c.metrics.ProtocolErrors.Add(1)
				c.rec("esl.protocol-error", err.Error())
			}
			return
		}
		switch ct := f.contentType(); ct {
		case typeCommandReply, typeAPIResponse, typeAuthRequest:
			if ct != typeAuthRequest && !c.pending.Load() {
				// A reply nobody asked for (FreeSWITCH sends none): the
				// frame was read whole, so it is skipped.
				c.metrics.ProtocolErrors.Add(1)
				text, _ := replyText(f)
				c.rec("esl.unexpected", "reply without a command: "+truncate(firstLine(text), 80))
				continue
			}
			select {
			case c.replies <- f:
			default:
				// Nobody asked: FreeSWITCH never sends one unasked, so
				// the stream is out of step.
				c.metrics.ProtocolErrors.Add(1)
				text, _ := replyText(f)
				c.rec("esl.protocol-error", "reply without a command: "+truncate(text, 80))
				err = protoErr("reply without a command")
				return
			}
		case typeEventPlain, typeEventJSON:
			var ev *Event
			if ct == typeEventPlain {
				ev, err = parseEventPlain(f.body, c.fr.maxBody)
			} else {
				ev, err = parseEventJSON(f.body)
			}
			if err != nil {
				// One bad event is skipped: its frame was read whole, so
				// the stream is still in step.
				c.metrics.ProtocolErrors.Add(1)
				c.rec("esl.protocol-error", err.Error())
				err = nil
				continue
			}
			c.deliver(ev)
		case typeDisconnect:
			h := f.header
			h["event-name"] = "DISCONNECT_NOTICE"
			c.deliver(&Event{Name: "DISCONNECT_NOTICE", Header: h, Body: strings.TrimSpace(string(f.body))})
		case typeRudeRejection:
			c.metrics.RudeRejections.Add(1)
			c.rec("esl.rude-rejection", truncate(strings.TrimSpace(string(f.body)), 120))
			err = ErrRejected
			return
		case typeLogData:
			// We never ask for logs; ignore them.
		default:
			c.metrics.ProtocolErrors.Add(1)
			c.rec("esl.unexpected", "content type "+truncate(ct, 60))
		}
	}
}

// deliver queues an event; when the consumer has fallen 256 events behind
// the event is dropped and counted rather than stalling the reader (which
// would stall every command's reply).
func (c *conn) deliver(ev *Event) {
	select {
	case c.events <- ev:
	default:
		c.metrics.EventsDropped.Add(1)
		c.rec("esl.event-dropped", ev.Name)
	}
}

// command sends one command and returns FreeSWITCH's reply. logged is how
// the command appears in the protocol log (credentials masked). A reply
// starting with "-" (-ERR, -USAGE) is returned as an error along with it.
func (c *conn) command(ctx context.Context, wire []byte, logged string) (*frame, error) {
	c.cmdMu.Lock()
	defer c.cmdMu.Unlock()
	select {
	case <-c.done:
		return nil, ErrClosed
	default:
	}
	c.rec("esl.command", logged)
	c.pending.Store(true)
	defer c.pending.Store(false)
	start := time.Now()
	deadline := start.Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.nc.SetWriteDeadline(deadline)
	if _, err := c.nc.Write(wire); err != nil {
		c.rec("esl.command-failed", err.Error())
		c.closeOnce.Do(func() { c.nc.Close() })
		return nil, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case f := <-c.replies:
		elapsed := time.Since(start)
		c.metrics.CommandLatency.Observe(elapsed)
		text, ok := replyText(f)
		c.rec("esl.reply", fmt.Sprintf("%s (%d ms)", truncate(firstLine(text), 120), elapsed.Milliseconds()))
		if !ok {
			return f, fmt.Errorf("esl: %s: %s", firstWord(logged), truncate(firstLine(text), 120))
		}
		return f, nil
	case <-c.done:
		return nil, ErrClosed
	case <-t.C:
		c.metrics.CommandTimeouts.Add(1)
		c.rec("esl.timeout", fmt.Sprintf("%s: no reply in %s", firstWord(logged), time.Since(start).Round(time.Millisecond)))
		c.closeOnce.Do(func() { c.nc.Close() })
		return nil, ErrTimeout
	case <-ctx.Done():
		// The reply may still come: the connection is out of step.
		c.closeOnce.Do(func() { c.nc.Close() })
		return nil, ctx.Err()
	}
}

// waitReply waits for an unasked frame FreeSWITCH sends first (the
// auth/request greeting of an inbound connection).
func (c *conn) waitReply(ctx context.Context) (*frame, error) {
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case f := <-c.replies:
		return f, nil
	case <-c.done:
		if err := c.Err(); err != nil {
			return nil, err
		}
		return nil, ErrClosed
	case <-t.C:
		c.closeOnce.Do(func() { c.nc.Close() })
		return nil, ErrTimeout
	case <-ctx.Done():
		c.closeOnce.Do(func() { c.nc.Close() })
		return nil, ctx.Err()
	}
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}
