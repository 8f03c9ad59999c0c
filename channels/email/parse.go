package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"mime"
	"net/mail"
	"path"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // ISO-8859-2, Windows-1250 and the other charsets of citizens' mail
	gomail "github.com/emersion/go-message/mail"
)

// Parsed is what the mailbox reads from one message. From and Text are
// personal data: never logged.
type Parsed struct {
	MessageID   string // without angle brackets; made up from the message's hash when missing
	From        string // the sender's address, lower case; "" when missing or unparseable
	Subject     string
	InReplyTo   string
	References  []string
	Text        string // the text part, or the HTML part converted to text
	Attachments []Attachment
	// Flags describe the message: "broken_mime" (its structure could not
	// be read whole: Text holds what could), "html_only", "no_from",
	// "too_large" (only the header was read).
	Flags []string
	// Automatic is why the message is an automatic one that must get no
	// automatic reply ("" when it is a person's): auto_submitted,
	// precedence, list, bounce, x_loop, own_address.
	Automatic string
}

// Attachment is one attachment with its type and checksum. Flagged says
// why it is never served inline ("" when it may be).
type Attachment struct {
	Filename    string
	ContentType string
	Data        []byte
	SHA256      string
	Flagged     string
}

// Parse reads a raw message. It never fails: a message whose MIME
// structure is broken keeps what could be read and is flagged
// "broken_mime" (the raw message is kept whole by the store anyway).
func Parse(raw []byte, own string) Parsed {
	var p Parsed
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		// Not even a header: the whole message is its text.
		p.Flags = append(p.Flags, "broken_mime")
		p.Text = strings.ToValidUTF8(string(raw), "\uFFFD")
		p.MessageID = hashID(raw)
		return p
	}
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		p.Flags = append(p.Flags, "broken_mime")
	}
	h := gomail.Header{Header: e.Header}
	p.headers(h, raw, own)
	var texts, htmls []string
	walkErr := walk(e, 0, func(pe *message.Entity) {
		ct, params, _ := pe.Header.ContentType()
		disp, dparams, _ := pe.Header.ContentDisposition()
		body, rerr := io.ReadAll(io.LimitReader(pe.Body, 200<<20))
		if rerr != nil {
			p.addFlag("broken_mime")
		}
		name := dparams["filename"]
		if name == "" {
			name = params["name"]
		}
		if ct == "" {
			ct = "text/plain"
		}
		switch {
		case disp != "attachment" && name == "" && ct == "text/plain":
			texts = append(texts, strings.ToValidUTF8(string(body), "\uFFFD"))
		case disp != "attachment" && name == "" && ct == "text/html":
			htmls = append(htmls, HTMLToText(strings.ToValidUTF8(string(body), "\uFFFD")))
		default:
			sum := sha256.Sum256(body)
			p.Attachments = append(p.Attachments, Attachment{Filename: name, ContentType: ct, Data: body,
				SHA256: hex.EncodeToString(sum[:]), Flagged: dangerous(name, ct)})
		}
	})
	if walkErr != nil {
		p.addFlag("broken_mime")
	}
	switch {
	case len(texts) > 0:
		p.Text = strings.Join(texts, "\n\n")
	case len(htmls) > 0:
		p.Text = strings.Join(htmls, "\n\n")
		p.addFlag("html_only")
	}
	p.Text = strings.TrimSpace(p.Text)
	return p
}

// ParseHeader reads only a message's header (a message over the size
// limit: its body is not fetched).
func ParseHeader(header []byte, own string) Parsed {
	var p Parsed
	e, _ := message.Read(bytes.NewReader(append(header, '\r', '\n')))
	if e == nil {
		p.MessageID = hashID(header)
		return p
	}
	p.headers(gomail.Header{Header: e.Header}, header, own)
	return p
}

func (p *Parsed) addFlag(f string) {
	for _, x := range p.Flags {
		if x == f {
			return
		}
	}
	p.Flags = append(p.Flags, f)
}

// walk visits the leaf parts of e (depth-limited against nesting bombs).
func walk(e *message.Entity, depth int, fn func(*message.Entity)) error {
	if depth > 20 {
		return fmt.Errorf("MIME nesting deeper than 20")
	}
	mr := e.MultipartReader()
	if mr == nil {
		fn(e)
		return nil
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if part == nil {
			return err
		}
		if err := walk(part, depth+1, fn); err != nil {
			return err
		}
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return err
		}
	}
}

var msgIDs = regexp.MustCompile(`<([^<>\s]+)>`)

func ids(v string) []string {
	var out []string
	for _, m := range msgIDs.FindAllStringSubmatch(v, -1) {
		out = append(out, m[1])
	}
	return out
}

func hashID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "sha256-" + hex.EncodeToString(sum[:16]) + "@no-message-id"
}

func (p *Parsed) headers(h gomail.Header, raw []byte, own string) {
	if v := ids(h.Get("Message-Id")); len(v) > 0 {
		p.MessageID = v[0]
	} else {
		p.MessageID = hashID(raw)
	}
	if s, err := h.Subject(); err == nil {
		p.Subject = s
	} else {
		p.Subject = h.Get("Subject")
	}
	p.Subject = strings.ToValidUTF8(p.Subject, "\uFFFD")
	if v := ids(h.Get("In-Reply-To")); len(v) > 0 {
		p.InReplyTo = v[0]
	}
	p.References = ids(h.Get("References"))
	if from, err := h.AddressList("From"); err == nil && len(from) > 0 {
		p.From = strings.ToLower(from[0].Address)
	} else if a, err := mail.ParseAddress(h.Get("From")); err == nil {
		p.From = strings.ToLower(a.Address)
	}
	if p.From == "" {
		p.addFlag("no_from")
	}
	p.Automatic = automatic(h, p.From, own)
}

// automatic says why a message must get no automatic reply (RFC 3834 and
// the habits of mailing lists and bounces), or "".
func automatic(h gomail.Header, from, own string) string {
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" && v != "no" {
		return "auto_submitted"
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Precedence"))) {
	case "bulk", "list", "junk", "auto_reply":
		return "precedence"
	}
	if h.Get("List-Id") != "" || h.Get("List-Unsubscribe") != "" || h.Get("List-Post") != "" {
		return "list"
	}
	if h.Get("X-Loop") != "" || h.Get("X-Autoreply") != "" || h.Get("X-Autorespond") != "" ||
		strings.EqualFold(h.Get("X-Auto-Response-Suppress"), "All") {
		return "x_loop"
	}
	if rp := strings.TrimSpace(h.Get("Return-Path")); rp == "<>" {
		return "bounce"
	}
	if ct, _, _ := h.ContentType(); ct == "multipart/report" {
		return "bounce"
	}
	local := from
	if i := strings.IndexByte(from, '@'); i >= 0 {
		local = from[:i]
	}
	switch local {
	case "mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply":
		return "bounce"
	}
	if from == "" {
		return "no_from"
	}
	if own != "" && strings.EqualFold(from, own) {
		return "own_address"
	}
	return ""
}

var dangerousExt = map[string]string{
	".exe": "executable", ".com": "executable", ".bat": "executable", ".cmd": "executable", ".scr": "executable",
	".pif": "executable", ".msi": "executable", ".dll": "executable", ".js": "executable", ".jse": "executable",
	".vbs": "executable", ".vbe": "executable", ".wsf": "executable", ".ps1": "executable", ".jar": "executable",
	".hta": "executable", ".lnk": "executable", ".sh": "executable", ".apk": "executable", ".iso": "archive",
	".zip": "archive", ".rar": "archive", ".7z": "archive", ".gz": "archive", ".tgz": "archive", ".tar": "archive",
	".bz2": "archive", ".xz": "archive", ".cab": "archive", ".img": "archive",
	".docm": "macros", ".xlsm": "macros", ".pptm": "macros", ".html": "active_content", ".htm": "active_content",
	".svg": "active_content",
}

// dangerous says why an attachment must never be served inline: an
// executable, an archive the engine cannot inspect, a document with
// macros, active content; "" otherwise.
func dangerous(name, ct string) string {
	if why, ok := dangerousExt[strings.ToLower(path.Ext(name))]; ok {
		return why
	}
	switch ct {
	case "application/x-msdownload", "application/x-msdos-program", "application/x-executable",
		"application/x-sh", "application/javascript", "application/java-archive", "application/vnd.microsoft.portable-executable":
		return "executable"
	case "application/zip", "application/x-zip-compressed", "application/x-rar-compressed", "application/x-7z-compressed",
		"application/gzip", "application/x-tar":
		return "archive"
	case "text/html", "image/svg+xml":
		return "active_content"
	}
	return ""
}

var (
	reDrop  = regexp.MustCompile(`(?is)<(script|style|head|title|noscript|template|iframe|object)\b.*?</(script|style|head|title|noscript|template|iframe|object)\s*>`)
	reBreak = regexp.MustCompile(`(?i)<\s*(br|/p|p|/div|div|/li|li|/tr|tr|/h[1-6]|hr|/blockquote|/table)\b[^>]*>`)
	reTag   = regexp.MustCompile(`(?s)<[^>]*>|<!--.*?-->`)
	reSpace = regexp.MustCompile(`[ \t\r\f\v]+`)
	reLines = regexp.MustCompile(`\n\s*\n\s*\n+`)
)

// HTMLToText turns an HTML body into plain text: scripts, styles and
// every tag dropped, entities decoded, line breaks kept. The result is
// text only (shown escaped by the console): nothing of the HTML runs.
func HTMLToText(s string) string {
	s = reDrop.ReplaceAllString(s, " ")
	s = reBreak.ReplaceAllString(s, "\n")
	s = reTag.ReplaceAllString(s, "")
	s = html.UnescapeString(s)
	s = reSpace.ReplaceAllString(s, " ")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	s = strings.Join(lines, "\n")
	s = reLines.ReplaceAllString(s, "\n\n")
	return strings.TrimSpace(s)
}

// mimeWord encodes a header value (a subject) for the wire.
func mimeWord(s string) string { return mime.QEncoding.Encode("utf-8", s) }
