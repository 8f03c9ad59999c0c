-- 0002: tickets, their append-only event log, call transcripts, and the
-- call-level facts the indicators need (service, queue outcome).
--
-- The event log (ticket_events) is the truth; the tickets row is its
-- materialized current state, written in the same transaction as each
-- event. Times are INTEGER nanoseconds since the Unix epoch (UTC).

-- Call-level facts for the indicators: the service the call was about and
-- what happened in the agent queue (the queue itself comes later).
ALTER TABLE calls ADD COLUMN service TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN queue_outcome TEXT NOT NULL DEFAULT 'none'
    CHECK (queue_outcome IN ('none', 'answered', 'abandoned'));

-- Indicators: calls that reached the queue, per service and period.
CREATE INDEX calls_queue ON calls (service, start_ns, queue_outcome) WHERE queue_outcome <> 'none';

CREATE TABLE tickets (
    number         TEXT    NOT NULL PRIMARY KEY
                   CHECK (length(number) = 8 AND number NOT GLOB '*[^0-9]*'),
    channel        TEXT    NOT NULL CHECK (channel IN ('phone', 'email', 'portal')),
    caller         TEXT    NOT NULL DEFAULT '',      -- personal data: never logged raw
    lang           TEXT    NOT NULL DEFAULT 'ro',
    service        TEXT    NOT NULL CHECK (service IN ('identity_card', 'passport', 'portal_account',
                       'online_request', 'request_status', 'driving_licence', 'support_service', 'other')),
    classification TEXT    NOT NULL DEFAULT '',
    priority       TEXT    NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    level          INTEGER NOT NULL CHECK (level BETWEEN 1 AND 3),
    status         TEXT    NOT NULL CHECK (status IN ('new', 'in_progress', 'escalated', 'waiting', 'resolved', 'closed')),
    assignee       TEXT    NOT NULL DEFAULT '',
    deadline_ns    INTEGER NOT NULL,
    description    TEXT    NOT NULL DEFAULT '',      -- personal data: never logged
    call_id        TEXT    NOT NULL DEFAULT '',      -- the call that opened it; its transcript
    recording      TEXT    NOT NULL DEFAULT '',
    articles       TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(articles)),   -- KB article ids cited
    rating         INTEGER CHECK (rating BETWEEN 1 AND 5),
    created_ns     INTEGER NOT NULL,
    updated_ns     INTEGER NOT NULL,
    escalated      INTEGER NOT NULL DEFAULT 0 CHECK (escalated IN (0, 1)),      -- ever escalated
    resolved_ns    INTEGER,                          -- current resolution; NULL while not resolved
    resolved_level INTEGER CHECK (resolved_level BETWEEN 1 AND 3),
    first_contact  INTEGER NOT NULL DEFAULT 0 CHECK (first_contact IN (0, 1)),  -- resolved during its call
    closed_ns      INTEGER,
    last_event     INTEGER NOT NULL DEFAULT 0        -- id of the newest event folded in
) STRICT;

-- ListTickets / TicketsByCaller: newest first, by filter.
CREATE INDEX tickets_created ON tickets (created_ns DESC);
CREATE INDEX tickets_status ON tickets (status, created_ns DESC);
CREATE INDEX tickets_caller ON tickets (caller, created_ns DESC);
CREATE INDEX tickets_call ON tickets (call_id) WHERE call_id <> '';
-- Indicators: one range scan per service over a covering index.
CREATE INDEX tickets_indicators ON tickets (service, created_ns, channel, resolved_ns,
    resolved_level, deadline_ns, first_contact);

-- Indicators: an hourly roll-up of the tickets per service and hour of
-- creation (UTC), kept by triggers in the same transaction as every ticket
-- row; Indicators sums the whole hours of a period from it and scans only
-- the partial hours at its edges. Durations in milliseconds (integers, so
-- adding and subtracting is exact).
CREATE TABLE ticket_stats (
    service              TEXT    NOT NULL,
    hour                 INTEGER NOT NULL,   -- created_ns / 3600e9
    requests             INTEGER NOT NULL,
    phone                INTEGER NOT NULL,
    first_contact        INTEGER NOT NULL,
    resolved             INTEGER NOT NULL,
    resolved_level1      INTEGER NOT NULL,
    within_deadline      INTEGER NOT NULL,
    resolution_ms        INTEGER NOT NULL,   -- sum over the resolved
    resolution_level1_ms INTEGER NOT NULL,   -- sum over the resolved at level 1
    PRIMARY KEY (service, hour)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER tickets_stats_insert AFTER INSERT ON tickets
BEGIN
    INSERT INTO ticket_stats (service, hour, requests, phone, first_contact, resolved, resolved_level1, within_deadline, resolution_ms, resolution_level1_ms)
    VALUES (NEW.service, NEW.created_ns / 3600000000000,
            1, (NEW.channel = 'phone'), NEW.first_contact, (NEW.resolved_ns IS NOT NULL),
            coalesce(NEW.resolved_level = 1, 0), coalesce(NEW.resolved_ns <= NEW.deadline_ns, 0),
            coalesce((NEW.resolved_ns - NEW.created_ns) / 1000000, 0),
            CASE WHEN NEW.resolved_level = 1 THEN (NEW.resolved_ns - NEW.created_ns) / 1000000 ELSE 0 END)
        ON CONFLICT (service, hour) DO UPDATE SET
            requests = requests + excluded.requests, phone = phone + excluded.phone,
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
    INSERT INTO ticket_stats (service, hour, requests, phone, first_contact, resolved, resolved_level1, within_deadline, resolution_ms, resolution_level1_ms)
    VALUES (OLD.service, OLD.created_ns / 3600000000000,
            -1, -(OLD.channel = 'phone'), -OLD.first_contact, -(OLD.resolved_ns IS NOT NULL),
            -coalesce(OLD.resolved_level = 1, 0), -coalesce(OLD.resolved_ns <= OLD.deadline_ns, 0),
            -coalesce((OLD.resolved_ns - OLD.created_ns) / 1000000, 0),
            -CASE WHEN OLD.resolved_level = 1 THEN (OLD.resolved_ns - OLD.created_ns) / 1000000 ELSE 0 END)
        ON CONFLICT (service, hour) DO UPDATE SET
            requests = requests + excluded.requests, phone = phone + excluded.phone,
            first_contact = first_contact + excluded.first_contact, resolved = resolved + excluded.resolved,
            resolved_level1 = resolved_level1 + excluded.resolved_level1,
            within_deadline = within_deadline + excluded.within_deadline,
            resolution_ms = resolution_ms + excluded.resolution_ms,
            resolution_level1_ms = resolution_level1_ms + excluded.resolution_level1_ms;
    INSERT INTO ticket_stats (service, hour, requests, phone, first_contact, resolved, resolved_level1, within_deadline, resolution_ms, resolution_level1_ms)
    VALUES (NEW.service, NEW.created_ns / 3600000000000,
            1, (NEW.channel = 'phone'), NEW.first_contact, (NEW.resolved_ns IS NOT NULL),
            coalesce(NEW.resolved_level = 1, 0), coalesce(NEW.resolved_ns <= NEW.deadline_ns, 0),
            coalesce((NEW.resolved_ns - NEW.created_ns) / 1000000, 0),
            CASE WHEN NEW.resolved_level = 1 THEN (NEW.resolved_ns - NEW.created_ns) / 1000000 ELSE 0 END)
        ON CONFLICT (service, hour) DO UPDATE SET
            requests = requests + excluded.requests, phone = phone + excluded.phone,
            first_contact = first_contact + excluded.first_contact, resolved = resolved + excluded.resolved,
            resolved_level1 = resolved_level1 + excluded.resolved_level1,
            within_deadline = within_deadline + excluded.within_deadline,
            resolution_ms = resolution_ms + excluded.resolution_ms,
            resolution_level1_ms = resolution_level1_ms + excluded.resolution_level1_ms;
END;

-- The same for the calls that reached the agent queue, by hour of start.
CREATE TABLE call_stats (
    service   TEXT    NOT NULL,
    hour      INTEGER NOT NULL,   -- start_ns / 3600e9
    queued    INTEGER NOT NULL,
    abandoned INTEGER NOT NULL,
    PRIMARY KEY (service, hour)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER calls_stats_insert AFTER INSERT ON calls WHEN NEW.queue_outcome <> 'none'
BEGIN
    INSERT INTO call_stats (service, hour, queued, abandoned)
    VALUES (NEW.service, NEW.start_ns / 3600000000000, 1, NEW.queue_outcome = 'abandoned')
        ON CONFLICT (service, hour) DO UPDATE SET queued = queued + excluded.queued, abandoned = abandoned + excluded.abandoned;
END;

CREATE TRIGGER calls_stats_update AFTER UPDATE OF service, queue_outcome, start_ns ON calls
WHEN OLD.service IS NOT NEW.service OR OLD.queue_outcome IS NOT NEW.queue_outcome OR OLD.start_ns IS NOT NEW.start_ns
BEGIN
    INSERT INTO call_stats (service, hour, queued, abandoned)
    SELECT OLD.service, OLD.start_ns / 3600000000000, -1, -(OLD.queue_outcome = 'abandoned')
    WHERE OLD.queue_outcome <> 'none'
        ON CONFLICT (service, hour) DO UPDATE SET queued = queued + excluded.queued, abandoned = abandoned + excluded.abandoned;
    INSERT INTO call_stats (service, hour, queued, abandoned)
    SELECT NEW.service, NEW.start_ns / 3600000000000, 1, NEW.queue_outcome = 'abandoned'
    WHERE NEW.queue_outcome <> 'none'
        ON CONFLICT (service, hour) DO UPDATE SET queued = queued + excluded.queued, abandoned = abandoned + excluded.abandoned;
END;

CREATE TRIGGER tickets_no_delete BEFORE DELETE ON tickets
BEGIN
    SELECT RAISE(ABORT, 'tickets are never deleted');
END;

-- The history: append-only. A correction is a new row (kind 'correction')
-- whose supersedes names the event it replaces; nothing is updated or
-- deleted, which the triggers enforce.
CREATE TABLE ticket_events (
    id         INTEGER NOT NULL PRIMARY KEY,
    ticket     TEXT    NOT NULL REFERENCES tickets (number) DEFERRABLE INITIALLY DEFERRED,
    at_ns      INTEGER NOT NULL,
    actor      TEXT    NOT NULL CHECK (actor <> ''),
    kind       TEXT    NOT NULL CHECK (kind IN ('created', 'note', 'classified', 'prioritized',
                   'escalated', 'assigned', 'status', 'resolved', 'closed', 'reopened',
                   'article_cited', 'recording', 'rating', 'correction')),
    data       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    supersedes INTEGER REFERENCES ticket_events (id),
    CHECK ((kind = 'correction') = (supersedes IS NOT NULL))
) STRICT;

CREATE INDEX ticket_events_ticket ON ticket_events (ticket, id);

CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events
BEGIN
    SELECT RAISE(ABORT, 'ticket history is append-only: add a correction instead');
END;

CREATE TRIGGER ticket_events_no_delete BEFORE DELETE ON ticket_events
BEGIN
    SELECT RAISE(ABORT, 'ticket history is append-only: add a correction instead');
END;

-- Transcripts: one row per turn, written as the turn happens, keyed by call
-- id (the turns of a call exist before any ticket does). Append-only too.
CREATE TABLE transcript_turns (
    seq         INTEGER NOT NULL PRIMARY KEY,
    call_id     TEXT    NOT NULL CHECK (call_id <> ''),
    at_ns       INTEGER NOT NULL,
    speaker     TEXT    NOT NULL CHECK (speaker IN ('ivr', 'caller', 'agent')),
    text        TEXT    NOT NULL,                    -- personal data: never logged
    mode        TEXT    NOT NULL CHECK (mode IN ('speech', 'dtmf', 'none')),
    confidence  REAL    NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    interrupted INTEGER NOT NULL CHECK (interrupted IN (0, 1))
) STRICT;

CREATE INDEX transcript_turns_call ON transcript_turns (call_id, seq);

CREATE TRIGGER transcript_turns_no_update BEFORE UPDATE ON transcript_turns
BEGIN
    SELECT RAISE(ABORT, 'transcripts are append-only');
END;

CREATE TRIGGER transcript_turns_no_delete BEFORE DELETE ON transcript_turns
BEGIN
    SELECT RAISE(ABORT, 'transcripts are append-only');
END;
