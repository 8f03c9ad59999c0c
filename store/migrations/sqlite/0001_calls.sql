-- 0001: call records and the per-call event log.
--
-- Times are INTEGER nanoseconds since the Unix epoch (UTC); NULL means "not
-- yet" (not answered, not ended). Tables are STRICT so a wrong type is an
-- error, not a silent conversion.

CREATE TABLE calls (
    id           TEXT    NOT NULL PRIMARY KEY,
    telephony    TEXT    NOT NULL,
    caller       TEXT    NOT NULL,           -- personal data: never logged raw
    called       TEXT    NOT NULL,
    start_ns     INTEGER NOT NULL,
    answer_ns    INTEGER,
    end_ns       INTEGER,
    end_reason   TEXT    NOT NULL DEFAULT '',
    codec        TEXT    NOT NULL DEFAULT '',
    dtmf         TEXT    NOT NULL DEFAULT '',
    recording    TEXT    NOT NULL DEFAULT '',
    packets_in   INTEGER NOT NULL DEFAULT 0,
    packets_out  INTEGER NOT NULL DEFAULT 0,
    packets_lost INTEGER NOT NULL DEFAULT 0,
    packets_late INTEGER NOT NULL DEFAULT 0
) STRICT;

-- ListCalls: newest first, optionally since a time.
CREATE INDEX calls_start ON calls (start_ns DESC, id DESC);

-- CloseOrphans: only the calls that never ended.
CREATE INDEX calls_open ON calls (id) WHERE end_ns IS NULL;

-- Append-only: rows are inserted, never updated. seq breaks ties between
-- events with the same timestamp so the order of insertion is kept.
CREATE TABLE call_events (
    seq     INTEGER NOT NULL PRIMARY KEY,
    call_id TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    at_ns   INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    detail  TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX call_events_call ON call_events (call_id, at_ns, seq);
