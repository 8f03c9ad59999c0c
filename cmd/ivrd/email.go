package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/govline/ivr/channels/email"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/tickets"
	"github.com/govline/ivr/tickets/console"
)

// startEmail starts the support mailbox (and email.mailboxes) and the mailer when email.imap_url
// is set; both stop when ctx ends (joined by wg; unsent e-mails wait in the
// store, unprocessed messages in the mailbox). It returns the agents'
// answerer for the console (nil when the channel is off). knowledge (may
// be nil) answers the requests it is confident about in the
// acknowledgement.
func startEmail(ctx context.Context, wg *sync.WaitGroup, cfg Config, store *tickets.Store, knowledge flows.Knowledge, log *slog.Logger) (console.EmailAnswerer, error) {
	ec := cfg.Email.channel()
	if !ec.Enabled() {
		return nil, nil
	}
	ec.Logger = log.With("component", "email")
	// One period for surveys by call and by e-mail.
	ec.SurveyPeriod = cfg.Surveys.Period.Duration
	mailer, err := email.NewMailer(ec, store)
	if err != nil {
		return nil, err
	}
	var mbs []*email.Mailbox
	for i, mc := range cfg.Email.mailboxes() {
		mc.Logger = log.With("component", "email", "mailbox", i)
		mb, err := email.NewMailbox(mc, store)
		if err != nil {
			return nil, err
		}
		mb.Queued = mailer.Kick
		if k, ok := knowledge.(flows.KBIndex); knowledge != nil && (!ok || k.Index != nil) {
			mb.KB = knowledge
		}
		mbs = append(mbs, mb)
	}
	for _, mb := range mbs {
		wg.Go(func() { _ = mb.Run(ctx) })
	}
	wg.Go(func() { _ = mailer.Run(ctx) })
	return email.NewAnswerer(ec, store, mailer), nil
}
