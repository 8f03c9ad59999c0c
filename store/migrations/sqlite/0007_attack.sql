-- 0007: what the line keeps about attacks and crashes.
--
-- sip_lockouts (ivr/queue): agents and source addresses locked out after
-- repeated failed REGISTER digests. target is "agent:NAME" or
-- "address:IP"; the lock holds until until_ns. An administrator lifts it
-- with `ivrctl agents unlock`.
--
-- calls.active_ns (tickets): the last moment the engine knew the call was
-- alive (its latest checkpoint or event), kept while the call goes on; a
-- call a crash left open ends there, not at the next start.

CREATE TABLE sip_lockouts (
    target     TEXT    NOT NULL PRIMARY KEY
               CHECK (target LIKE 'agent:%' OR target LIKE 'address:%'),
    until_ns   INTEGER NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL
) STRICT;

ALTER TABLE calls ADD COLUMN active_ns INTEGER;
