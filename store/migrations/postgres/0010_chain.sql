-- 0010: the tamper-evident chain over the audit log and the ticket history;
-- see sqlite/0018_chain.sql. Appends to one chain take turns under a
-- transaction-level advisory lock (package tickets, chain.go).
CREATE TABLE chain_links (
    chain    text   NOT NULL CHECK (chain <> ''),
    seq      bigint NOT NULL CHECK (seq >= 1),
    source   text   NOT NULL CHECK (source IN ('audit', 'event')),
    row_id   bigint NOT NULL,
    row_hash text   NOT NULL CHECK (length(row_hash) = 64),
    hash     text   NOT NULL CHECK (length(hash) = 64),
    PRIMARY KEY (chain, seq)
);

CREATE INDEX chain_links_row ON chain_links (source, row_id);

CREATE TRIGGER chain_links_append_only BEFORE UPDATE OR DELETE ON chain_links
    FOR EACH ROW EXECUTE FUNCTION refuse('the audit chain is append-only');
CREATE TRIGGER chain_links_no_truncate BEFORE TRUNCATE ON chain_links
    FOR EACH STATEMENT EXECUTE FUNCTION refuse('the audit chain is append-only');

CREATE TABLE chain_backfill (
    id         integer NOT NULL PRIMARY KEY CHECK (id = 1),
    audit_max  bigint  NOT NULL,
    events_max bigint  NOT NULL,
    done_ns    bigint  NOT NULL DEFAULT 0
);

INSERT INTO chain_backfill (id, audit_max, events_max)
SELECT 1, coalesce((SELECT max(id) FROM audit), 0), coalesce((SELECT max(id) FROM ticket_events), 0);
