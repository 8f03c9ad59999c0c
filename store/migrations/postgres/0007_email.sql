-- 0007: the support mailbox (docs/email.md); see sqlite/0015_email.sql.
CREATE TABLE email_messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket      text   NOT NULL REFERENCES tickets (number),
    message_id  text   NOT NULL UNIQUE CHECK (message_id <> ''),
    direction   text   NOT NULL CHECK (direction IN ('in', 'out')),
    kind        text   NOT NULL CHECK (kind <> ''),
    address     text   NOT NULL,
    subject     text   NOT NULL DEFAULT '',
    in_reply_to text   NOT NULL DEFAULT '',
    refs        text   NOT NULL DEFAULT '',
    text        text   NOT NULL DEFAULT '',
    raw         bytea,
    size        bigint NOT NULL DEFAULT 0,
    flags       text   NOT NULL DEFAULT '',
    at_ns       bigint NOT NULL,
    sent_ns     bigint,
    next_ns     bigint NOT NULL DEFAULT 0,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text   NOT NULL DEFAULT ''
);

CREATE INDEX email_messages_ticket ON email_messages (ticket, id);
CREATE INDEX email_messages_pending ON email_messages (next_ns) WHERE direction = 'out' AND sent_ns IS NULL;
CREATE INDEX email_messages_acks ON email_messages (address, at_ns) WHERE direction = 'out';

CREATE TABLE email_attachments (
    message      bigint NOT NULL REFERENCES email_messages (id),
    idx          integer NOT NULL,
    filename     text   NOT NULL DEFAULT '',
    content_type text   NOT NULL DEFAULT '',
    size         bigint NOT NULL,
    sha256       text   NOT NULL,
    flagged      text   NOT NULL DEFAULT '',
    data         bytea  NOT NULL,
    PRIMARY KEY (message, idx)
);

-- Resolving a ticket that came by e-mail also enqueues "email.resolved"
-- (see sqlite/0015_email.sql).
CREATE FUNCTION outbox_on_resolve_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (kind, ticket, payload, created_ns, next_ns)
    SELECT 'email.resolved', NEW.ticket,
           json_build_object('event', 'email.resolved', 'event_id', NEW.id, 'ticket', NEW.ticket,
                             'resolution', NEW.data::json -> 'text')::text,
           NEW.at_ns, NEW.at_ns
    FROM tickets t WHERE t.number = NEW.ticket AND t.channel = 'email';
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_on_resolve_email AFTER INSERT ON ticket_events
    FOR EACH ROW WHEN (NEW.kind = 'resolved') EXECUTE FUNCTION outbox_on_resolve_email();
