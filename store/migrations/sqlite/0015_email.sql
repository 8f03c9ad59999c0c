-- 0015: the support mailbox (docs/email.md). Every e-mail of a ticket's
-- thread, received or sent, with the ticket it belongs to. A received
-- message is written in the same transaction as its ticket (or its
-- follow-up event), so the engine marks it processed on the IMAP server
-- only after this commit, and a message fetched again after a crash is
-- recognised by its Message-ID instead of making a second ticket.
-- A message to send (acknowledgement, agent's answer) waits here with
-- sent_ns NULL until the mailer delivers it to the SMTP server: written in
-- the transaction of what caused it, it survives restarts.
-- address is the citizen's address (sender of a received message,
-- recipient of a sent one): personal data, never logged.
CREATE TABLE email_messages (
    id          INTEGER NOT NULL PRIMARY KEY,
    ticket      TEXT    NOT NULL REFERENCES tickets (number),
    message_id  TEXT    NOT NULL UNIQUE CHECK (message_id <> ''),
    direction   TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    kind        TEXT    NOT NULL CHECK (kind <> ''),   -- in: request, reply, auto...; out: ack, answer
    address     TEXT    NOT NULL,
    subject     TEXT    NOT NULL DEFAULT '',
    in_reply_to TEXT    NOT NULL DEFAULT '',
    refs        TEXT    NOT NULL DEFAULT '',           -- References, space-separated
    text        TEXT    NOT NULL DEFAULT '',           -- the text part (HTML converted)
    raw         BLOB,                                  -- the message as received; NULL when over the size limit
    size        INTEGER NOT NULL DEFAULT 0,
    flags       TEXT    NOT NULL DEFAULT '',           -- space-separated: too_large, broken_mime, html_only...
    at_ns       INTEGER NOT NULL,
    sent_ns     INTEGER,                               -- out: NULL while waiting for the mailer
    next_ns     INTEGER NOT NULL DEFAULT 0,            -- out: not before this time (claim and retry)
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX email_messages_ticket ON email_messages (ticket, id);
CREATE INDEX email_messages_pending ON email_messages (next_ns) WHERE direction = 'out' AND sent_ns IS NULL;
CREATE INDEX email_messages_acks ON email_messages (address, at_ns) WHERE direction = 'out';

-- The attachments of a received message, with their type and SHA-256;
-- flagged ones (executables, archives that cannot be inspected) are kept
-- but never served inline.
CREATE TABLE email_attachments (
    message      INTEGER NOT NULL REFERENCES email_messages (id),
    idx          INTEGER NOT NULL,
    filename     TEXT    NOT NULL DEFAULT '',
    content_type TEXT    NOT NULL DEFAULT '',
    size         INTEGER NOT NULL,
    sha256       TEXT    NOT NULL,
    flagged      TEXT    NOT NULL DEFAULT '',          -- why it is flagged; '' when not
    data         BLOB    NOT NULL,
    PRIMARY KEY (message, idx)
) STRICT;

-- Resolving a ticket that came by e-mail also enqueues "email.resolved" in
-- the notification outbox, in the resolve's transaction: the mailer turns
-- it into an e-mail to the citizen in the ticket's thread (the webhook
-- sender takes only "ticket.resolved").
CREATE TRIGGER outbox_on_resolve_email AFTER INSERT ON ticket_events WHEN NEW.kind = 'resolved'
BEGIN
    INSERT INTO outbox (kind, ticket, payload, created_ns, next_ns)
    SELECT 'email.resolved', NEW.ticket,
           json_object('event', 'email.resolved', 'event_id', NEW.id, 'ticket', NEW.ticket,
                       'resolution', json_extract(NEW.data, '$.text')),
           NEW.at_ns, NEW.at_ns
    FROM tickets t WHERE t.number = NEW.ticket AND t.channel = 'email';
END;
