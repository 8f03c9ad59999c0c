-- 0004: console users, their sessions, the audit log of every user action,
-- and the notification outbox.
--
-- Passwords are stored as argon2id hashes (PHC string); session tokens as
-- their SHA-256 (a stolen database holds no usable token). Times are
-- INTEGER nanoseconds since the Unix epoch (UTC).

CREATE TABLE users (
    name         TEXT    NOT NULL PRIMARY KEY CHECK (name <> '' AND length(name) <= 64),
    role         TEXT    NOT NULL CHECK (role IN ('operator', 'specialist', 'administrator', 'supervisor')),
    password     TEXT    NOT NULL,                 -- argon2id PHC string
    failed       INTEGER NOT NULL DEFAULT 0,       -- consecutive failed sign-ins
    locked_until INTEGER NOT NULL DEFAULT 0,       -- ns; 0 = not locked
    disabled     INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_ns   INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    token_hash  BLOB    NOT NULL PRIMARY KEY,      -- sha256 of the cookie token
    user        TEXT    NOT NULL REFERENCES users (name),
    csrf        TEXT    NOT NULL,                  -- per-session CSRF token
    created_ns  INTEGER NOT NULL,
    expires_ns  INTEGER NOT NULL,
    address     TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX sessions_expires ON sessions (expires_ns);

-- Dashboard: satisfaction ratings per service and period. An hourly
-- roll-up (by hour of the ticket's creation, UTC) kept by triggers, as
-- ticket_stats is, and a covering index of the rated tickets for the
-- partial hours at the edges of a period.
CREATE INDEX tickets_rating ON tickets (created_ns, service, rating) WHERE rating IS NOT NULL;

CREATE TABLE rating_stats (
    service TEXT    NOT NULL,
    hour    INTEGER NOT NULL,   -- created_ns / 3600e9
    count   INTEGER NOT NULL,
    sum     INTEGER NOT NULL,
    PRIMARY KEY (service, hour)
) STRICT, WITHOUT ROWID;

INSERT INTO rating_stats (service, hour, count, sum)
SELECT service, created_ns / 3600000000000, count(*), sum(rating) FROM tickets
WHERE rating IS NOT NULL GROUP BY 1, 2;

CREATE TRIGGER tickets_rating_insert AFTER INSERT ON tickets WHEN NEW.rating IS NOT NULL
BEGIN
    INSERT INTO rating_stats (service, hour, count, sum) VALUES (NEW.service, NEW.created_ns / 3600000000000, 1, NEW.rating)
        ON CONFLICT (service, hour) DO UPDATE SET count = count + 1, sum = sum + excluded.sum;
END;

CREATE TRIGGER tickets_rating_update AFTER UPDATE ON tickets
WHEN OLD.rating IS NOT NEW.rating OR OLD.service IS NOT NEW.service OR OLD.created_ns IS NOT NEW.created_ns
BEGIN
    INSERT INTO rating_stats (service, hour, count, sum)
    SELECT OLD.service, OLD.created_ns / 3600000000000, -1, -OLD.rating WHERE OLD.rating IS NOT NULL
        ON CONFLICT (service, hour) DO UPDATE SET count = count + excluded.count, sum = sum + excluded.sum;
    INSERT INTO rating_stats (service, hour, count, sum)
    SELECT NEW.service, NEW.created_ns / 3600000000000, 1, NEW.rating WHERE NEW.rating IS NOT NULL
        ON CONFLICT (service, hour) DO UPDATE SET count = count + excluded.count, sum = sum + excluded.sum;
END;

-- The audit log: who did what, when, from where. Append-only.
CREATE TABLE audit (
    id       INTEGER NOT NULL PRIMARY KEY,
    at_ns    INTEGER NOT NULL,
    user     TEXT    NOT NULL,                     -- as typed for a failed sign-in
    action   TEXT    NOT NULL CHECK (action <> ''),
    target   TEXT    NOT NULL DEFAULT '',          -- a ticket number, a page...
    detail   TEXT    NOT NULL DEFAULT '',
    address  TEXT    NOT NULL DEFAULT '',
    ok       INTEGER NOT NULL CHECK (ok IN (0, 1))
) STRICT;

CREATE INDEX audit_at ON audit (at_ns);
CREATE INDEX audit_user ON audit (user, at_ns);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- The notification outbox: one row per notification to send. A resolve
-- event enqueues one in the same transaction (trigger below), so a
-- resolution is never without its notification, even across a crash.
CREATE TABLE outbox (
    id          INTEGER NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    ticket      TEXT    NOT NULL,
    payload     TEXT    NOT NULL CHECK (json_valid(payload)),
    created_ns  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_ns     INTEGER NOT NULL,                  -- not before this time
    sent_ns     INTEGER,                           -- NULL while pending
    last_error  TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX outbox_pending ON outbox (next_ns) WHERE sent_ns IS NULL;

CREATE TRIGGER outbox_on_resolve AFTER INSERT ON ticket_events WHEN NEW.kind = 'resolved'
BEGIN
    INSERT INTO outbox (kind, ticket, payload, created_ns, next_ns)
    SELECT 'ticket.resolved', NEW.ticket,
           json_object('event', 'ticket.resolved', 'event_id', NEW.id, 'ticket', NEW.ticket,
                       'channel', t.channel, 'caller', t.caller, 'lang', t.lang, 'service', t.service,
                       'resolved_at_ns', NEW.at_ns, 'resolution', json_extract(NEW.data, '$.text')),
           NEW.at_ns, NEW.at_ns
    FROM tickets t WHERE t.number = NEW.ticket;
END;
