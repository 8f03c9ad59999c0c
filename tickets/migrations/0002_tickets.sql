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
