-- 0013: several public-service providers on one line (docs/providers.md).
-- A provider owns services, dialed numbers, users and tickets; the line
-- always has the provider "default", which owns everything not given to
-- another, so a line of one provider needs no configuration and the rows
-- written before this migration belong to it.
CREATE TABLE providers (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (id GLOB '[a-z]*' AND id NOT GLOB '*[^a-z0-9_-]*' AND length(id) <= 32),
    name       TEXT    NOT NULL CHECK (name <> ''),
    created_ns INTEGER NOT NULL
) STRICT;

INSERT INTO providers (id, name, created_ns) VALUES ('default', 'Default provider', 0);

-- Which provider a service's new requests go to (a service not listed:
-- "default"), and a dialed number's (which wins over the service).
CREATE TABLE provider_services (
    service  TEXT NOT NULL PRIMARY KEY,
    provider TEXT NOT NULL REFERENCES providers (id)
) STRICT;

CREATE TABLE provider_numbers (
    number   TEXT NOT NULL PRIMARY KEY CHECK (number <> ''),
    provider TEXT NOT NULL REFERENCES providers (id)
) STRICT;

-- (SQLite adds no column with a foreign key and a default: the store checks it.)
ALTER TABLE tickets ADD COLUMN provider TEXT NOT NULL DEFAULT 'default';
CREATE INDEX tickets_provider ON tickets (provider, created_ns DESC);
CREATE INDEX tickets_provider_indicators ON tickets (provider, service, created_ns, channel, resolved_ns,
    resolved_level, deadline_ns, first_contact);

-- Users belong to a provider, and the national "monitor" role joins the
-- roles: SQLite cannot change a CHECK, so the table is rebuilt. The
-- sessions that reference it end (everybody signs in again after the
-- upgrade).
DELETE FROM sessions;
CREATE TABLE users_new (
    name         TEXT    NOT NULL PRIMARY KEY CHECK (name <> '' AND length(name) <= 64),
    role         TEXT    NOT NULL CHECK (role IN ('operator', 'specialist', 'administrator', 'supervisor', 'monitor')),
    password     TEXT    NOT NULL,                 -- argon2id PHC string
    failed       INTEGER NOT NULL DEFAULT 0,       -- consecutive failed sign-ins
    locked_until INTEGER NOT NULL DEFAULT 0,       -- ns; 0 = not locked
    disabled     INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_ns   INTEGER NOT NULL,
    lang         TEXT    NOT NULL DEFAULT 'ro' CHECK (lang IN ('ro', 'en')),
    provider     TEXT    NOT NULL DEFAULT 'default' REFERENCES providers (id)
) STRICT;
INSERT INTO users_new (name, role, password, failed, locked_until, disabled, created_ns, lang)
    SELECT name, role, password, failed, locked_until, disabled, created_ns, lang FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

-- A ticket passes to another provider with a "transfer" event: the
-- history's kinds grow by one, and SQLite rebuilds the table to change its
-- CHECK (same rows, same ids, same triggers).
CREATE TABLE ticket_events_new (
    id         INTEGER NOT NULL PRIMARY KEY,
    ticket     TEXT    NOT NULL REFERENCES tickets (number) DEFERRABLE INITIALLY DEFERRED,
    at_ns      INTEGER NOT NULL,
    actor      TEXT    NOT NULL CHECK (actor <> ''),
    kind       TEXT    NOT NULL CHECK (kind IN ('created', 'note', 'classified', 'prioritized',
                   'escalated', 'assigned', 'status', 'resolved', 'closed', 'reopened',
                   'article_cited', 'recording', 'rating', 'correction', 'transfer')),
    data       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    supersedes INTEGER REFERENCES ticket_events_new (id),
    CHECK ((kind = 'correction') = (supersedes IS NOT NULL))
) STRICT;
INSERT INTO ticket_events_new (id, ticket, at_ns, actor, kind, data, supersedes)
    SELECT id, ticket, at_ns, actor, kind, data, supersedes FROM ticket_events ORDER BY id;
DROP TABLE ticket_events;
ALTER TABLE ticket_events_new RENAME TO ticket_events;

CREATE INDEX ticket_events_ticket ON ticket_events (ticket, id);

CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events
BEGIN
    SELECT RAISE(ABORT, 'ticket history is append-only: add a correction instead');
END;

CREATE TRIGGER ticket_events_no_delete BEFORE DELETE ON ticket_events
BEGIN
    SELECT RAISE(ABORT, 'ticket history is append-only: add a correction instead');
END;

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
