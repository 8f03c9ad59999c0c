package esl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// Content types FreeSWITCH's mod_event_socket sends.
const (
	typeAuthRequest    = "auth/request"
	typeCommandReply   = "command/reply"
	typeAPIResponse    = "api/response"
	typeEventPlain     = "text/event-plain"
	typeEventJSON      = "text/event-json"
	typeDisconnect     = "text/disconnect-notice"
	typeRudeRejection  = "text/rude-rejection"
	typeLogData        = "log/data"
	maxHeaderLine      = 16 << 10 // bytes in one header line
	maxHeaders         = 1024     // header lines in one block (a CHANNEL_DATA has about 200)
	defaultMaxBodySize = 4 << 20  // bytes in one body
)

// ErrProtocol marks input that is not the event socket protocol: the
// connection cannot be trusted to stay in step and is closed.
var ErrProtocol = errors.New("esl: protocol error")

// ErrRejected is FreeSWITCH refusing the connection (text/rude-rejection:
// its ACL does not allow the engine's address).
var ErrRejected = errors.New("esl: connection refused by FreeSWITCH (text/rude-rejection): check apply-inbound-acl in event_socket.conf.xml")

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, a...))
}

// Header is a header block. Keys are stored in lower case: FreeSWITCH is
// not consistent about case (sendmsg headers are lower case, events are
// capitalized), and neither is anything that parses them.
type Header map[string]string

// Get returns the value of key, in any case.
func (h Header) Get(key string) string { return h[strings.ToLower(key)] }

// frame is one message as it arrives: a header block and an optional body
// of Content-Length bytes.
type frame struct {
	header Header
	body   []byte
}

func (f *frame) contentType() string { return f.header.Get("Content-Type") }

// Event is one FreeSWITCH event, decoded from text/event-plain or
// text/event-json (header values are URL-decoded).
type Event struct {
	Name   string // Event-Name, e.g. CHANNEL_ANSWER
	Header Header
	Body   string
}

// Get returns a header of the event.
func (e *Event) Get(key string) string { return e.Header.Get(key) }

// frameReader reads frames from a stream. It never allocates more than its
// limits allow, whatever the peer sends.
type frameReader struct {
	br      *bufio.Reader
	maxBody int
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, maxHeaderLine), maxBody: defaultMaxBodySize}
}

// read returns the next frame. Empty lines between frames are skipped, as
// FreeSWITCH itself does. A line that is not "Name: value" or a bad
// Content-Length is ErrProtocol; a stream that ends inside a frame is
// io.ErrUnexpectedEOF.
func (r *frameReader) read() (*frame, error) {
	h, err := readHeaderBlock(r.br, true)
	if err != nil {
		return nil, err
	}
	f := &frame{header: h}
	n, err := contentLength(h, r.maxBody)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		f.body = make([]byte, n)
		if _, err := io.ReadFull(r.br, f.body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return f, nil
}

func contentLength(h Header, max int) (int, error) {
	v, ok := h["content-length"]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, protoErr("Content-Length %q is not a length", truncate(v, 32))
	}
	if n > max {
		return 0, protoErr("Content-Length %d is over the limit of %d bytes", n, max)
	}
	return n, nil
}

// readHeaderBlock reads "Name: value" lines up to an empty line. With
// skipLeading, empty lines before the first header are skipped.
func readHeaderBlock(br *bufio.Reader, skipLeading bool) (Header, error) {
	h := Header{}
	lines := 0
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, protoErr("header line longer than %d bytes", maxHeaderLine)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && (len(line) > 0 || len(h) > 0) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if len(h) == 0 && skipLeading {
				lines++
				if lines > maxHeaders {
					return nil, protoErr("too many empty lines")
				}
				continue
			}
			return h, nil
		}
		lines++
		if lines > maxHeaders {
			return nil, protoErr("more than %d header lines", maxHeaders)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		name = bytes.TrimSpace(name)
		if !ok || len(name) == 0 || !printable(name) {
			return nil, protoErr("not a header line: %q", truncate(string(line), 40))
		}
		h[strings.ToLower(string(name))] = string(bytes.TrimLeft(value, " \t"))
	}
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// decodeValue URL-decodes a header value as FreeSWITCH encodes it
// (switch_url_encode: '+' stays '+', so PathUnescape, not QueryUnescape).
// A value that does not decode is kept as it is.
func decodeValue(v string) string {
	if !strings.ContainsRune(v, '%') {
		return v
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return v
	}
	return d
}

// parseEventPlain decodes the body of a text/event-plain frame: a header
// block with URL-encoded values, then an optional Content-Length body.
func parseEventPlain(body []byte, maxBody int) (*Event, error) {
	h := make(Header, 64)
	rest := body
	for len(rest) > 0 && (rest[0] == '\n' || rest[0] == '\r') {
		rest = rest[1:]
	}
	ended := false
	for len(h) <= maxHeaders {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break // FreeSWITCH ends every header block with an empty line
		}
		line := bytes.TrimRight(rest[:i], "\r")
		rest = rest[i+1:]
		if len(line) == 0 {
			ended = true
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		name = bytes.TrimSpace(name)
		if !ok || len(name) == 0 || !printable(name) {
			return nil, protoErr("not a header line in an event: %q", truncate(string(line), 40))
		}
		h[strings.ToLower(string(name))] = decodeValue(string(bytes.TrimLeft(value, " \t")))
	}
	if !ended {
		if len(h) > maxHeaders {
			return nil, protoErr("more than %d header lines in an event", maxHeaders)
		}
		return nil, protoErr("event truncated")
	}
	ev := &Event{Name: h.Get("Event-Name"), Header: h}
	n, err := contentLength(h, maxBody)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		if len(rest) < n {
			return nil, protoErr("event body truncated")
		}
		ev.Body = string(rest[:n])
	}
	if ev.Name == "" {
		return nil, protoErr("event without Event-Name")
	}
	return ev, nil
}

// parseEventJSON decodes the body of a text/event-json frame.
func parseEventJSON(body []byte) (*Event, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, protoErr("event JSON: %v", err)
	}
	ev := &Event{Header: Header{}}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		if k == "_body" {
			ev.Body = s
			continue
		}
		ev.Header[strings.ToLower(k)] = s
	}
	ev.Name = ev.Header.Get("Event-Name")
	if ev.Name == "" {
		return nil, protoErr("event without Event-Name")
	}
	return ev, nil
}

// replyText returns the reply of a command/reply or api/response frame and
// whether it reports success. The reply to `connect` carries the channel's
// data as URL-encoded headers, its Reply-Text included ("%2BOK%0A").
func replyText(f *frame) (string, bool) {
	var s string
	switch f.contentType() {
	case typeAPIResponse:
		s = string(f.body)
	default:
		s = decodeValue(f.header.Get("Reply-Text"))
	}
	s = strings.TrimSpace(s)
	return s, !strings.HasPrefix(s, "-")
}

// ErrBadArgument is a command argument that would break the protocol (a
// line break ends an event socket command; FreeSWITCH would run what
// follows as another command).
var ErrBadArgument = errors.New("esl: command argument not allowed")

// checkArg refuses a command argument with characters that end a command
// or a header line.
func checkArg(what, s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return fmt.Errorf("%w: %s contains a line break or NUL", ErrBadArgument, what)
		}
	}
	return nil
}

// token checks a value used as one word of a command (a channel uuid, a
// variable name, an extension, a context, a queue): letters, digits and
// . _ - @ + only.
func token(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrBadArgument, what)
	}
	if len(s) > 128 {
		return fmt.Errorf("%w: %s is longer than 128 bytes", ErrBadArgument, what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == '@', c == '+':
		default:
			return fmt.Errorf("%w: %s %q may hold only letters, digits and . _ - @ +", ErrBadArgument, what, truncate(s, 40))
		}
	}
	return nil
}

// freeText makes a value safe as the last word of an API command and as a
// channel variable that the dialplan may expand later: control characters
// become spaces, and the characters FreeSWITCH gives a meaning to in
// arguments and variable expansion (' quoting, \ escaping, { } of ${...},
// which can call an API; the comma that separates {var=value,...} in a dial
// string) are replaced. At most max bytes, cut on a rune.
func freeText(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len()+len(string(r)) > max {
			break // the loop: the text is full
		}
		switch {
		case r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029:
			r = ' '
		case r == '\'' || r == '"' || r == '`':
			r = ' '
		case r == '\\':
			r = '/'
		case r == '{':
			r = '('
		case r == '}':
			r = ')'
		case r == ',':
			r = ';' // a {var=value,...} dial string that expands it would split here
		}
		b.WriteRune(r)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// sendmsg formats a sendmsg command for the channel uuid: a header block
// (lower-case names, in the order given).
func sendmsg(uuid string, headers ...[2]string) ([]byte, error) {
	if err := token("channel uuid", uuid); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("sendmsg ")
	b.WriteString(uuid)
	b.WriteByte('\n')
	for _, h := range headers {
		if err := checkArg(h[0], h[0]); err != nil {
			return nil, err
		}
		if err := checkArg(h[0], h[1]); err != nil {
			return nil, err
		}
		b.WriteString(h[0])
		b.WriteString(": ")
		b.WriteString(h[1])
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// command formats a one-line command (api, linger, myevents, auth, event).
func command(line string) ([]byte, error) {
	if err := checkArg("command", line); err != nil {
		return nil, err
	}
	return []byte(line + "\n\n"), nil
}

// summary describes an event for the call's protocol log: its name and
// the headers an administrator reads, never caller numbers or names.
func (e *Event) summary() string {
	var parts []string
	for _, k := range loggedHeaders {
		if v := e.Get(k); v != "" {
			parts = append(parts, k+"="+truncate(v, 80))
		}
	}
	if len(parts) == 0 {
		return e.Name
	}
	return e.Name + " " + strings.Join(parts, " ")
}

// loggedHeaders are the event headers kept in the call's protocol log.
var loggedHeaders = []string{
	"Event-Subclass", "Channel-State", "Answer-State", "Application", "Application-Response",
	"Application-UUID", "Hangup-Cause", "DTMF-Source", "Other-Leg-Unique-ID", "Content-Disposition", "Linger-Time",
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
