-- 0001: the line's database on PostgreSQL, as SQLite has it after its
-- migration 0010: the same tables, columns, rules and roll-ups, in
-- PostgreSQL's words. Who owns which table is in docs/tickets.md; the
-- knowledge base's index is not here (each engine keeps it in a local
-- SQLite file, its articles ship with the flows), its misses are.
--
-- Times are bigint nanoseconds since the Unix epoch (UTC); NULL means "not
-- yet". Flags are smallint 0/1, as on SQLite, so the same SQL reads both.
-- JSON is kept as text (the same bytes on both backends) and must parse.
--
-- The three logs that live readers follow (call_events, transcript_turns,
-- ticket_events) carry the id of the transaction that wrote each row
-- (xid): on PostgreSQL rows commit out of id order, and a reader that
-- takes only the rows of transactions older than every transaction still
-- running (pg_snapshot_xmin) never skips one that commits late.

-- Calls (package tickets): call records and the per-call event log.
CREATE TABLE calls (
    id            text     NOT NULL PRIMARY KEY,
    telephony     text     NOT NULL,
    caller        text     NOT NULL,           -- personal data: never logged raw
    called        text     NOT NULL,
    start_ns      bigint   NOT NULL,
    answer_ns     bigint,
    end_ns        bigint,
    end_reason    text     NOT NULL DEFAULT '',
    codec         text     NOT NULL DEFAULT '',
    dtmf          text     NOT NULL DEFAULT '',
    recording     text     NOT NULL DEFAULT '',
    packets_in    bigint   NOT NULL DEFAULT 0,
    packets_out   bigint   NOT NULL DEFAULT 0,
    packets_lost  bigint   NOT NULL DEFAULT 0,
    packets_late  bigint   NOT NULL DEFAULT 0,
    service       text     NOT NULL DEFAULT '',
    queue_outcome text     NOT NULL DEFAULT 'none'
                  CHECK (queue_outcome IN ('none', 'answered', 'abandoned')),
    active_ns     bigint,
    engine        text     NOT NULL DEFAULT ''           -- the engine that took the call
);

CREATE INDEX calls_start ON calls (start_ns DESC, id DESC);
CREATE INDEX calls_open ON calls (id) WHERE end_ns IS NULL;
CREATE INDEX calls_queue ON calls (service, start_ns, queue_outcome) WHERE queue_outcome <> 'none';

CREATE TABLE call_events (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id text   NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    at_ns   bigint NOT NULL,
    kind    text   NOT NULL,
    detail  text   NOT NULL DEFAULT '',
    xid     bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)
);

CREATE INDEX call_events_call ON call_events (call_id, at_ns, seq);
CREATE INDEX call_events_xid ON call_events (xid, seq);

-- Tickets (package tickets): the materialized state, its append-only
-- history, the hourly roll-ups behind the indicators and ratings.
CREATE TABLE tickets (
    number         text     NOT NULL PRIMARY KEY CHECK (number ~ '^[0-9]{8}$'),
    channel        text     NOT NULL CHECK (channel IN ('phone', 'email', 'portal')),
    caller         text     NOT NULL DEFAULT '',      -- personal data: never logged raw
    lang           text     NOT NULL DEFAULT 'ro',
    service        text     NOT NULL CHECK (service IN ('identity_card', 'passport', 'portal_account',
                       'online_request', 'request_status', 'driving_licence', 'support_service', 'other')),
    classification text     NOT NULL DEFAULT '',
    priority       text     NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    level          integer  NOT NULL CHECK (level BETWEEN 1 AND 3),
    status         text     NOT NULL CHECK (status IN ('new', 'in_progress', 'escalated', 'waiting', 'resolved', 'closed')),
    assignee       text     NOT NULL DEFAULT '',
    deadline_ns    bigint   NOT NULL,
    description    text     NOT NULL DEFAULT '',      -- personal data: never logged
    call_id        text     NOT NULL DEFAULT '',
    recording      text     NOT NULL DEFAULT '',
    articles       text     NOT NULL DEFAULT '[]' CHECK (articles::json IS NOT NULL),
    rating         integer  CHECK (rating BETWEEN 1 AND 5),
    created_ns     bigint   NOT NULL,
    updated_ns     bigint   NOT NULL,
    escalated      smallint NOT NULL DEFAULT 0 CHECK (escalated IN (0, 1)),
    resolved_ns    bigint,
    resolved_level integer  CHECK (resolved_level BETWEEN 1 AND 3),
    first_contact  smallint NOT NULL DEFAULT 0 CHECK (first_contact IN (0, 1)),
    closed_ns      bigint,
    last_event     bigint   NOT NULL DEFAULT 0,
    personal       text     NOT NULL DEFAULT '{}' CHECK (personal::json IS NOT NULL)
);

CREATE INDEX tickets_created ON tickets (created_ns DESC);
CREATE INDEX tickets_status ON tickets (status, created_ns DESC);
CREATE INDEX tickets_caller ON tickets (caller, created_ns DESC);
CREATE INDEX tickets_call ON tickets (call_id) WHERE call_id <> '';
CREATE INDEX tickets_indicators ON tickets (service, created_ns, channel, resolved_ns,
    resolved_level, deadline_ns, first_contact);
CREATE INDEX tickets_rating ON tickets (created_ns, service, rating) WHERE rating IS NOT NULL;

CREATE TABLE ticket_stats (
    service              text   NOT NULL,
    hour                 bigint NOT NULL,   -- created_ns / 3600e9
    requests             bigint NOT NULL,
    phone                bigint NOT NULL,
    first_contact        bigint NOT NULL,
    resolved             bigint NOT NULL,
    resolved_level1      bigint NOT NULL,
    within_deadline      bigint NOT NULL,
    resolution_ms        bigint NOT NULL,
    resolution_level1_ms bigint NOT NULL,
    PRIMARY KEY (service, hour)
);

CREATE TABLE rating_stats (
    service text   NOT NULL,
    hour    bigint NOT NULL,
    count   bigint NOT NULL,
    sum     bigint NOT NULL,
    PRIMARY KEY (service, hour)
);

-- A ticket row's contribution to the roll-ups, added (sign 1) or taken
-- back (sign -1): the same arithmetic as SQLite's triggers.
CREATE FUNCTION ticket_stats_add(t tickets, sign integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO ticket_stats AS s (service, hour, requests, phone, first_contact, resolved, resolved_level1,
                                   within_deadline, resolution_ms, resolution_level1_ms)
    VALUES (t.service, t.created_ns / 3600000000000, sign,
            sign * (t.channel = 'phone')::int, sign * t.first_contact, sign * (t.resolved_ns IS NOT NULL)::int,
            sign * coalesce((t.resolved_level = 1)::int, 0), sign * coalesce((t.resolved_ns <= t.deadline_ns)::int, 0),
            sign * coalesce((t.resolved_ns - t.created_ns) / 1000000, 0),
            sign * CASE WHEN t.resolved_level = 1 THEN (t.resolved_ns - t.created_ns) / 1000000 ELSE 0 END)
    ON CONFLICT (service, hour) DO UPDATE SET
        requests = s.requests + excluded.requests, phone = s.phone + excluded.phone,
        first_contact = s.first_contact + excluded.first_contact, resolved = s.resolved + excluded.resolved,
        resolved_level1 = s.resolved_level1 + excluded.resolved_level1,
        within_deadline = s.within_deadline + excluded.within_deadline,
        resolution_ms = s.resolution_ms + excluded.resolution_ms,
        resolution_level1_ms = s.resolution_level1_ms + excluded.resolution_level1_ms;
    INSERT INTO rating_stats AS r (service, hour, count, sum)
    SELECT t.service, t.created_ns / 3600000000000, sign, sign * t.rating WHERE t.rating IS NOT NULL
    ON CONFLICT (service, hour) DO UPDATE SET count = r.count + excluded.count, sum = r.sum + excluded.sum;
$$;

CREATE FUNCTION tickets_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF (OLD.service, OLD.created_ns, OLD.channel, OLD.first_contact, OLD.resolved_ns, OLD.resolved_level,
            OLD.deadline_ns, OLD.rating) IS NOT DISTINCT FROM
           (NEW.service, NEW.created_ns, NEW.channel, NEW.first_contact, NEW.resolved_ns, NEW.resolved_level,
            NEW.deadline_ns, NEW.rating) THEN
            RETURN NULL;
        END IF;
        PERFORM ticket_stats_add(OLD, -1);
    END IF;
    PERFORM ticket_stats_add(NEW, 1);
    RETURN NULL;
END $$;

CREATE TRIGGER tickets_stats AFTER INSERT OR UPDATE ON tickets FOR EACH ROW EXECUTE FUNCTION tickets_stats();

CREATE TABLE call_stats (
    service   text   NOT NULL,
    hour      bigint NOT NULL,   -- start_ns / 3600e9
    queued    bigint NOT NULL,
    abandoned bigint NOT NULL,
    PRIMARY KEY (service, hour)
);

CREATE FUNCTION calls_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF (OLD.service, OLD.queue_outcome, OLD.start_ns) IS NOT DISTINCT FROM (NEW.service, NEW.queue_outcome, NEW.start_ns) THEN
            RETURN NULL;
        END IF;
        IF OLD.queue_outcome <> 'none' THEN
            INSERT INTO call_stats AS s (service, hour, queued, abandoned)
            VALUES (OLD.service, OLD.start_ns / 3600000000000, -1, -(OLD.queue_outcome = 'abandoned')::int)
            ON CONFLICT (service, hour) DO UPDATE SET queued = s.queued + excluded.queued, abandoned = s.abandoned + excluded.abandoned;
        END IF;
    END IF;
    IF NEW.queue_outcome <> 'none' THEN
        INSERT INTO call_stats AS s (service, hour, queued, abandoned)
        VALUES (NEW.service, NEW.start_ns / 3600000000000, 1, (NEW.queue_outcome = 'abandoned')::int)
        ON CONFLICT (service, hour) DO UPDATE SET queued = s.queued + excluded.queued, abandoned = s.abandoned + excluded.abandoned;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER calls_stats AFTER INSERT OR UPDATE OF service, queue_outcome, start_ns ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_stats();

-- What may never change: a trigger that refuses with the message given as
-- its argument.
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END $$;

CREATE TRIGGER tickets_no_delete BEFORE DELETE ON tickets
    FOR EACH ROW EXECUTE FUNCTION refuse('tickets are never deleted');
CREATE TRIGGER tickets_no_truncate BEFORE TRUNCATE ON tickets
    FOR EACH STATEMENT EXECUTE FUNCTION refuse('tickets are never deleted');

-- The history: append-only. A correction is a new row (kind 'correction')
-- whose supersedes names the event it replaces.
CREATE TABLE ticket_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket     text   NOT NULL REFERENCES tickets (number) DEFERRABLE INITIALLY DEFERRED,
    at_ns      bigint NOT NULL,
    actor      text   NOT NULL CHECK (actor <> ''),
    kind       text   NOT NULL CHECK (kind IN ('created', 'note', 'classified', 'prioritized',
                   'escalated', 'assigned', 'status', 'resolved', 'closed', 'reopened',
                   'article_cited', 'recording', 'rating', 'correction')),
    data       text   NOT NULL DEFAULT '{}' CHECK (data::json IS NOT NULL),
    supersedes bigint REFERENCES ticket_events (id),
    xid        bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    CHECK ((kind = 'correction') = (supersedes IS NOT NULL))
);

CREATE INDEX ticket_events_ticket ON ticket_events (ticket, id);
CREATE INDEX ticket_events_xid ON ticket_events (xid, id);

CREATE TRIGGER ticket_events_append_only BEFORE UPDATE OR DELETE ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION refuse('ticket history is append-only: add a correction instead');
CREATE TRIGGER ticket_events_no_truncate BEFORE TRUNCATE ON ticket_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse('ticket history is append-only: add a correction instead');

-- Transcripts (package tickets): one row per turn, keyed by call id.
CREATE TABLE transcript_turns (
    seq         bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id     text             NOT NULL CHECK (call_id <> ''),
    at_ns       bigint           NOT NULL,
    speaker     text             NOT NULL CHECK (speaker IN ('ivr', 'caller', 'agent')),
    text        text             NOT NULL,                    -- personal data: never logged
    mode        text             NOT NULL CHECK (mode IN ('speech', 'dtmf', 'none')),
    confidence  double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    interrupted smallint         NOT NULL CHECK (interrupted IN (0, 1)),
    cut         text             NOT NULL DEFAULT '' CHECK (cut IN ('', 'key', 'speech', 'hangup')),
    xid         bigint           NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)
);

CREATE INDEX transcript_turns_call ON transcript_turns (call_id, seq);
CREATE INDEX transcript_turns_xid ON transcript_turns (xid, seq);

CREATE TRIGGER transcript_turns_append_only BEFORE UPDATE OR DELETE ON transcript_turns
    FOR EACH ROW EXECUTE FUNCTION refuse('transcripts are append-only');
CREATE TRIGGER transcript_turns_no_truncate BEFORE TRUNCATE ON transcript_turns
    FOR EACH STATEMENT EXECUTE FUNCTION refuse('transcripts are append-only');

-- Users, sessions, audit (package tickets).
CREATE TABLE users (
    name         text     NOT NULL PRIMARY KEY CHECK (name <> '' AND length(name) <= 64),
    role         text     NOT NULL CHECK (role IN ('operator', 'specialist', 'administrator', 'supervisor')),
    password     text     NOT NULL,
    failed       integer  NOT NULL DEFAULT 0,
    locked_until bigint   NOT NULL DEFAULT 0,
    disabled     smallint NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_ns   bigint   NOT NULL
);

CREATE TABLE sessions (
    token_hash bytea  NOT NULL PRIMARY KEY,
    "user"     text   NOT NULL REFERENCES users (name),
    csrf       text   NOT NULL,
    created_ns bigint NOT NULL,
    expires_ns bigint NOT NULL,
    address    text   NOT NULL DEFAULT ''
);

CREATE INDEX sessions_expires ON sessions (expires_ns);
CREATE INDEX sessions_user ON sessions ("user");

CREATE TABLE audit (
    id      bigint   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ns   bigint   NOT NULL,
    "user"  text     NOT NULL,
    action  text     NOT NULL CHECK (action <> ''),
    target  text     NOT NULL DEFAULT '',
    detail  text     NOT NULL DEFAULT '',
    address text     NOT NULL DEFAULT '',
    ok      smallint NOT NULL CHECK (ok IN (0, 1))
);

CREATE INDEX audit_at ON audit (at_ns);
CREATE INDEX audit_user ON audit ("user", at_ns);

CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION refuse('the audit log is append-only');
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION refuse('the audit log is append-only');

-- The notification outbox (package tickets): a resolve event enqueues its
-- notification in the same transaction (trigger below).
CREATE TABLE outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text   NOT NULL,
    ticket     text   NOT NULL,
    payload    text   NOT NULL CHECK (payload::json IS NOT NULL),
    created_ns bigint NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    next_ns    bigint NOT NULL,
    sent_ns    bigint,
    last_error text   NOT NULL DEFAULT ''
);

CREATE INDEX outbox_pending ON outbox (next_ns) WHERE sent_ns IS NULL;

CREATE FUNCTION outbox_on_resolve() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (kind, ticket, payload, created_ns, next_ns)
    SELECT 'ticket.resolved', NEW.ticket,
           json_build_object('event', 'ticket.resolved', 'event_id', NEW.id, 'ticket', NEW.ticket,
                             'channel', t.channel, 'caller', t.caller, 'lang', t.lang, 'service', t.service,
                             'resolved_at_ns', NEW.at_ns, 'resolution', NEW.data::json -> 'text')::text,
           NEW.at_ns, NEW.at_ns
    FROM tickets t WHERE t.number = NEW.ticket;
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_on_resolve AFTER INSERT ON ticket_events
    FOR EACH ROW WHEN (NEW.kind = 'resolved') EXECUTE FUNCTION outbox_on_resolve();

-- SIP agents and their lockouts (package ivr/queue).
CREATE TABLE sip_agents (
    name       text     NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    realm      text     NOT NULL,
    ha1        text     NOT NULL CHECK (length(ha1) = 32),
    queues     text     NOT NULL DEFAULT '',
    disabled   smallint NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_ns bigint   NOT NULL
);

CREATE TABLE sip_lockouts (
    target     text    NOT NULL PRIMARY KEY CHECK (target LIKE 'agent:%' OR target LIKE 'address:%'),
    until_ns   bigint  NOT NULL,
    failures   integer NOT NULL DEFAULT 0,
    created_ns bigint  NOT NULL
);

-- Queries the knowledge base did not answer confidently (package
-- flows/kb), personal data masked.
CREATE TABLE kb_misses (
    lang     text    NOT NULL,
    query    text    NOT NULL,
    count    integer NOT NULL,
    first_ns bigint  NOT NULL,
    last_ns  bigint  NOT NULL,
    PRIMARY KEY (lang, query)
);

CREATE INDEX kb_misses_last ON kb_misses (last_ns DESC);
