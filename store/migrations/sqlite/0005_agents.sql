-- 0005: SIP agents of the embedded agent queue (ivr/queue).
--
-- An agent is a SIP endpoint (a softphone) that registers with the engine
-- with digest authentication. The password itself is never stored: ha1 is
-- MD5(name ":" realm ":" password), what RFC 2617 digest needs to check a
-- response. queues lists the queues the agent answers, comma-separated
-- (e.g. "level1,level2").

CREATE TABLE sip_agents (
    name       TEXT    NOT NULL PRIMARY KEY
               CHECK (length(name) BETWEEN 1 AND 64),
    realm      TEXT    NOT NULL,
    ha1        TEXT    NOT NULL CHECK (length(ha1) = 32),
    queues     TEXT    NOT NULL DEFAULT '',
    disabled   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_ns INTEGER NOT NULL
) STRICT;
