// Package email is the e-mail channel: the support mailbox. It reads one
// mailbox over IMAP (IDLE when the server has it, polling otherwise) and
// turns each new message into a ticket of channel "email" or a follow-up
// of the ticket it answers; it sends the acknowledgements and the agents'
// answers over SMTP in the message's thread (docs/email.md). With
// Config.Survey, the notice of a resolved ticket asks for a rating from
// 1 to 5, and a reply that is the rating alone (RatingReply) rates the
// ticket instead of reopening it.
//
// A message is marked processed on the IMAP server (the keyword
// $IvrTicket) only after its ticket is committed; the store recognises a
// message fetched twice by its Message-ID, so a crash between the two
// (kill -9) never loses a message nor makes two tickets. Messages are
// never deleted from the mailbox.
//
// The sender's address and the message bodies are personal data: no log
// line of this package holds either (a log names the ticket, the IMAP
// UID, sizes and flags).
package email

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/govline/ivr/tickets"
)

// Store is what the channel needs of the ticket store (*tickets.Store).
// Its methods are safe for concurrent use; IngestEmail writes the message,
// its ticket and its reply in one transaction; ClaimEmail and EmailSent
// let several engines' mailers share the queue of e-mails to send.
type Store interface {
	IngestEmail(ctx context.Context, in tickets.EmailIntake) (tickets.EmailIntakeResult, error)
	ClaimEmail(ctx context.Context, lease time.Duration) (tickets.EmailMessage, bool, error)
	EmailSent(ctx context.Context, id int64, sendErr error, retry time.Duration) error
}

var _ Store = (*tickets.Store)(nil)

// Defaults of Config.
const (
	DefaultMaxSize     = 25 << 20 // a message's raw size kept
	DefaultAcksPerHour = 5        // acknowledgements to one sender per hour
	DefaultPoll        = 30 * time.Second
	DefaultIdleRefresh = 9 * time.Minute // below the 29 min of RFC 2177
)

// ProcessedKeyword is the IMAP keyword set on a message once its ticket
// is committed.
const ProcessedKeyword = "$IvrTicket"

// Config is the [email] section of ivrd.toml.
type Config struct {
	// IMAPURL is imap://USER:PASSWORD@HOST:PORT/MAILBOX (imaps:// for
	// TLS; ?starttls=1 for STARTTLS on imap://); empty turns the channel
	// off.
	IMAPURL string `toml:"imap_url"`
	// SMTPURL is smtp://USER:PASSWORD@HOST:PORT (STARTTLS when the server
	// offers it) or smtps:// for TLS; required with IMAPURL.
	SMTPURL string `toml:"smtp_url"`
	// Address is the line's own address: the From of its e-mails; a
	// message from it is never answered.
	Address string `toml:"address"`
	// Provider owns the tickets of this mailbox ("" lets the services
	// decide, as for calls).
	Provider string `toml:"provider"`
	// MaxSize is the largest message kept whole, in bytes (default 25 MB);
	// a larger one opens a ticket from its header, flagged too_large, and
	// stays on the mail server.
	MaxSize int64 `toml:"max_size"`
	// AcksPerHour limits the acknowledgements to one sender (default 5).
	AcksPerHour int `toml:"acks_per_hour"`
	// Poll is how often a server without IDLE is polled (default 30 s).
	Poll time.Duration `toml:"poll"`
	// Rules classify a new request by its subject and text, first match
	// wins for each of service and priority (after the knowledge base,
	// whose confident answer sets the service first).
	Rules []Rule `toml:"rules"`
	// Survey asks, in the notice of a resolved ticket, for a rating from 1
	// to 5 by reply (docs/email.md, "The satisfaction survey").
	Survey bool `toml:"survey"`
	// SurveyPeriod: an address is surveyed at most once in it (default
	// DefaultSurveyPeriod, 90 days).
	SurveyPeriod time.Duration `toml:"survey_period"`
	// Logger receives the channel's events (never an address or a body).
	Logger *slog.Logger `toml:"-"`
}

// Rule classifies the requests whose subject or text matches Match (a Go
// regular expression; "(?i)" for any case): Service and Priority ("" leaves
// it to the next rule or the default).
type Rule struct {
	Match    string `toml:"match"`
	Service  string `toml:"service"`
	Priority string `toml:"priority"`
	re       *regexp.Regexp
}

// classify returns the service and priority the rules give text.
func classify(rules []Rule, text string) (svc tickets.Service, prio tickets.Priority) {
	for _, r := range rules {
		if r.re == nil || !r.re.MatchString(text) {
			continue
		}
		if svc == "" && r.Service != "" {
			svc = tickets.Service(r.Service)
		}
		if prio == "" && r.Priority != "" {
			prio = tickets.Priority(r.Priority)
		}
	}
	return svc, prio
}

// Enabled reports whether the channel is configured.
func (c Config) Enabled() bool { return c.IMAPURL != "" }

// WithDefaults fills the zero limits.
func (c Config) WithDefaults() Config {
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.AcksPerHour <= 0 {
		c.AcksPerHour = DefaultAcksPerHour
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.SurveyPeriod <= 0 {
		c.SurveyPeriod = DefaultSurveyPeriod
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	rules := make([]Rule, len(c.Rules))
	for i, r := range c.Rules {
		r.re, _ = regexp.Compile(r.Match) // Validate reports a bad one
		rules[i] = r
	}
	c.Rules = rules
	return c
}

// Validate checks an enabled configuration; each error names its key
// (email.imap_url...). The URLs' passwords are never in the message.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if _, err := parseServerURL(c.IMAPURL, "imap", "imaps"); err != nil {
		errs = append(errs, fmt.Errorf("email.imap_url: %w", err))
	}
	if c.SMTPURL == "" {
		errs = append(errs, errors.New("email.smtp_url: required when email.imap_url is set (acknowledgements and answers are sent over SMTP)"))
	} else if _, err := parseServerURL(c.SMTPURL, "smtp", "smtps"); err != nil {
		errs = append(errs, fmt.Errorf("email.smtp_url: %w", err))
	}
	if a := c.Address; a == "" {
		errs = append(errs, errors.New("email.address: required when email.imap_url is set (the line's own address)"))
	} else if i := strings.IndexByte(a, '@'); i <= 0 || i == len(a)-1 || strings.ContainsAny(a, " <>\r\n") {
		errs = append(errs, fmt.Errorf("email.address: %q is not an address like support@example.gov", a))
	}
	if c.MaxSize < 0 {
		errs = append(errs, fmt.Errorf("email.max_size: %d, want a positive number of bytes", c.MaxSize))
	}
	if c.AcksPerHour < 0 {
		errs = append(errs, fmt.Errorf("email.acks_per_hour: %d, want 0 (default) or more", c.AcksPerHour))
	}
	if c.SurveyPeriod < 0 {
		errs = append(errs, fmt.Errorf("email.survey_period: %s, want a positive duration", c.SurveyPeriod))
	}
	for i, r := range c.Rules {
		if _, err := regexp.Compile(r.Match); err != nil || r.Match == "" {
			errs = append(errs, fmt.Errorf("email.rules[%d].match: %q is not a regular expression", i, r.Match))
		}
		if r.Service != "" && !slicesContains(serviceNames(), r.Service) {
			errs = append(errs, fmt.Errorf("email.rules[%d].service: %q is not one of %v", i, r.Service, tickets.Services))
		}
		if r.Priority != "" && !slices.Contains(tickets.Priorities, tickets.Priority(r.Priority)) {
			errs = append(errs, fmt.Errorf("email.rules[%d].priority: %q is not one of %v", i, r.Priority, tickets.Priorities))
		}
	}
	return errors.Join(errs...)
}

// server is a parsed imap_url or smtp_url.
type server struct {
	tls      bool // implicit TLS (imaps, smtps)
	starttls bool
	host     string // host:port
	user     string
	password string
	mailbox  string // imap: the mailbox, INBOX by default
}

func parseServerURL(raw, plain, secure string) (server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's error repeats the URL, password included: say less.
		return server{}, fmt.Errorf("not a URL like %s://USER:PASSWORD@HOST:PORT", plain)
	}
	var s server
	switch u.Scheme {
	case plain:
	case secure:
		s.tls = true
	default:
		return server{}, fmt.Errorf("scheme %q: want %s:// or %s://", u.Scheme, plain, secure)
	}
	if u.Hostname() == "" {
		return server{}, errors.New("no host")
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"imap": "143", "imaps": "993", "smtp": "587", "smtps": "465"}[u.Scheme]
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return server{}, fmt.Errorf("port %q: want 1..65535", port)
	}
	s.host = u.Hostname() + ":" + port
	if strings.Contains(u.Hostname(), ":") {
		s.host = "[" + u.Hostname() + "]:" + port
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.password, _ = u.User.Password()
	}
	if plain == "imap" && s.user == "" {
		return server{}, errors.New("no user: imap://USER:PASSWORD@HOST:PORT/INBOX")
	}
	s.mailbox = strings.TrimPrefix(u.Path, "/")
	if s.mailbox == "" {
		s.mailbox = "INBOX"
	}
	switch v := u.Query().Get("starttls"); v {
	case "", "0", "false":
	case "1", "true":
		if s.tls {
			return server{}, errors.New("starttls with " + secure + "://: the connection is TLS already")
		}
		s.starttls = true
	default:
		return server{}, fmt.Errorf("starttls=%q: want 1 or 0", v)
	}
	return s, nil
}
