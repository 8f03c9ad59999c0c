-- 0018: the tamper-evident chain over the audit log and the ticket history
-- (docs/operations.md, "Tamper evidence"; package tickets, chain.go).
--
-- Each audit row and each ticket_events row gets one link: its place (seq)
-- in a chain, the SHA-256 of its canonical form in that chain (row_hash)
-- and the SHA-256 of the previous link's hash followed by row_hash (hash).
-- A chain per provider ("provider:ID": the events of its tickets, the audit
-- rows of its users) and the line's own ("line": every other audit row).
-- The links are written in the transaction of the row they cover; the
-- audit, ticket_events and transcript_turns tables are not changed.
CREATE TABLE chain_links (
    chain    TEXT    NOT NULL CHECK (chain <> ''),
    seq      INTEGER NOT NULL CHECK (seq >= 1),
    source   TEXT    NOT NULL CHECK (source IN ('audit', 'event')),
    row_id   INTEGER NOT NULL,
    row_hash TEXT    NOT NULL CHECK (length(row_hash) = 64),
    hash     TEXT    NOT NULL CHECK (length(hash) = 64),
    PRIMARY KEY (chain, seq)
) STRICT, WITHOUT ROWID;

-- verify: the rows that have no link. Not unique: a row id that SQLite
-- reuses after a delete must not block the engine's writes (verify reports
-- the link whose row changed).
CREATE INDEX chain_links_row ON chain_links (source, row_id);

CREATE TRIGGER chain_links_no_update BEFORE UPDATE ON chain_links
BEGIN
    SELECT RAISE(ABORT, 'the audit chain is append-only');
END;

CREATE TRIGGER chain_links_no_delete BEFORE DELETE ON chain_links
BEGIN
    SELECT RAISE(ABORT, 'the audit chain is append-only');
END;

-- The rows written before this migration are linked once, in id order, by
-- the first write of an engine of this version (package tickets): up to
-- these ids; done_ns is set when that is done. A row above them without a
-- link was not written by the engine.
CREATE TABLE chain_backfill (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    audit_max  INTEGER NOT NULL,
    events_max INTEGER NOT NULL,
    done_ns    INTEGER NOT NULL DEFAULT 0
) STRICT;

INSERT INTO chain_backfill (id, audit_max, events_max)
SELECT 1, coalesce((SELECT max(id) FROM audit), 0), coalesce((SELECT max(id) FROM ticket_events), 0);
