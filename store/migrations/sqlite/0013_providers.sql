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

-- Requests per channel, an indicator of the regulation: the hourly roll-up
-- counts the e-mail and portal requests besides the phone ones (recounted
-- here from the rows; the triggers keep them from now on).
ALTER TABLE ticket_stats ADD COLUMN email INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ticket_stats ADD COLUMN portal INTEGER NOT NULL DEFAULT 0;
UPDATE ticket_stats SET
    email = (SELECT count(*) FROM tickets t WHERE t.service = ticket_stats.service AND t.channel = 'email'
             AND t.created_ns >= ticket_stats.hour * 3600000000000 AND t.created_ns < (ticket_stats.hour + 1) * 3600000000000),
    portal = (SELECT count(*) FROM tickets t WHERE t.service = ticket_stats.service AND t.channel = 'portal'
             AND t.created_ns >= ticket_stats.hour * 3600000000000 AND t.created_ns < (ticket_stats.hour + 1) * 3600000000000);

DROP TRIGGER tickets_stats_insert;
DROP TRIGGER tickets_stats_update;

CREATE TRIGGER tickets_stats_insert AFTER INSERT ON tickets
BEGIN
    INSERT INTO ticket_stats (service, hour, requests, phone, email, portal, first_contact, resolved, resolved_level1, within_deadline, resolution_ms, resolution_level1_ms)
    VALUES (NEW.service, NEW.created_ns / 3600000000000,
            1, (NEW.channel = 'phone'), (NEW.channel = 'email'), (NEW.channel = 'portal'), NEW.first_contact, (NEW.resolved_ns IS NOT NULL),
            coalesce(NEW.resolved_level = 1, 0), coalesce(NEW.resolved_ns <= NEW.deadline_ns, 0),
            coalesce((NEW.resolved_ns - NEW.created_ns) / 1000000, 0),
            CASE WHEN NEW.resolved_level = 1 THEN (NEW.resolved_ns - NEW.created_ns) / 1000000 ELSE 0 END)
        ON CONFLICT (service, hour) DO UPDATE SET
            requests = requests + excluded.requests, phone = phone + excluded.phone,
            email = email + excluded.email, portal = portal + excluded.portal,
            first_contact = first_contact + excluded.first_contact, resolved = resolved + excluded.resolved,
            resolved_level1 = resolved_level1 + excluded.resolved_level1,
            within_deadline = within_deadline + excluded.within_deadline,
            resolution_ms = resolution_ms + excluded.resolution_ms,
            resolution_level1_ms = resolution_level1_ms + excluded.resolution_level1_ms;
END;

CREATE TRIGGER tickets_stats_update AFTER UPDATE ON tickets
WHEN OLD.service IS NOT NEW.service OR OLD.created_ns IS NOT NEW.created_ns OR OLD.channel IS NOT NEW.channel
  OR OLD.first_contact IS NOT NEW.first_contact OR OLD.resolved_ns IS NOT NEW.resolved_ns
  OR OLD.resolved_level IS NOT NEW.resolved_level OR OLD.deadline_ns IS NOT NEW.deadline_ns
BEGIN
    INSERT INTO ticket_stats (service, hour, requests, phone, email, portal, first_contact, resolved, resolved_level1, within_deadline, resolution_ms, resolution_level1_ms)
    VALUES (OLD.service, OLD.created_ns / 3600000000000,
            -1, -(OLD.channel = 'phone'), -(OLD.channel = 'email'), -(OLD.channel = 'portal'), -OLD.first_contact, -(OLD.resolved_ns IS NOT NULL),
            -coalesce(OLD.resolved_level = 1, 0), -coalesce(OLD.resolved_ns <= OLD.deadline_ns, 0),
            -coalesce((OLD.resolved_ns - OLD.created_ns) / 1000000, 0),
            -CASE WHEN OLD.resolved_level = 1 THEN (OLD.resolved_ns - OLD.created_ns) / 1000000 ELSE 0 END)
        ON CONFLICT (service, hour) DO UPDATE SET
            requests = requests + excluded.requests, phone = phone + excluded.phone,
            email = email + excluded.email, portal = portal + excluded.portal,
            first_contact = first_contact + excluded.first_contact, resolved = resolved + excluded.resolved,
            resolved_level1 = resolved_level1 + excluded.resolved_level1,
            within_deadline = within_deadline + excluded.within_deadline,
            resolution_ms = resolution_ms + excluded.resolution_ms,
            resolution_level1_ms = resolution_level1_ms + excluded.resolution_level1_ms;
    INSERT INTO ticket_stats (service, hour, requests, phone, email, portal, first_contact, resolved, resolved_level1, within_deadline, resolution_ms, resolution_level1_ms)
    VALUES (NEW.service, NEW.created_ns / 3600000000000,
            1, (NEW.channel = 'phone'), (NEW.channel = 'email'), (NEW.channel = 'portal'), NEW.first_contact, (NEW.resolved_ns IS NOT NULL),
            coalesce(NEW.resolved_level = 1, 0), coalesce(NEW.resolved_ns <= NEW.deadline_ns, 0),
            coalesce((NEW.resolved_ns - NEW.created_ns) / 1000000, 0),
            CASE WHEN NEW.resolved_level = 1 THEN (NEW.resolved_ns - NEW.created_ns) / 1000000 ELSE 0 END)
        ON CONFLICT (service, hour) DO UPDATE SET
            requests = requests + excluded.requests, phone = phone + excluded.phone,
            email = email + excluded.email, portal = portal + excluded.portal,
            first_contact = first_contact + excluded.first_contact, resolved = resolved + excluded.resolved,
            resolved_level1 = resolved_level1 + excluded.resolved_level1,
            within_deadline = within_deadline + excluded.within_deadline,
            resolution_ms = resolution_ms + excluded.resolution_ms,
            resolution_level1_ms = resolution_level1_ms + excluded.resolution_level1_ms;
END;
