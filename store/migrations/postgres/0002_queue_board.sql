-- 0002: the shared agent queue (package ivr/queue, queue.Shared): where the
-- engines of a line agree on the agents present, the callers waiting and
-- which agent rings for which caller. PostgreSQL decides: a claim locks
-- the agent's row (FOR UPDATE SKIP LOCKED), so no agent is ever offered two
-- calls; every change is announced with NOTIFY ivr_queue. Times are the
-- database's clock, in nanoseconds, so engines' clocks need not agree.
-- SQLite has no such tables: one engine keeps its queue in memory.

-- The engines alive: each refreshes its row; the places and claims of an
-- engine whose row is older than the lease are released by the others.
CREATE TABLE queue_engines (
    engine   text   NOT NULL PRIMARY KEY,
    alive_ns bigint NOT NULL
);

CREATE TABLE queue_agents (
    agent          text     NOT NULL PRIMARY KEY,
    queues         text     NOT NULL,              -- ',level1,level2,' (commas around each)
    contact        text     NOT NULL,
    engine         text     NOT NULL,              -- the engine that took the registration
    until_ns       bigint   NOT NULL,              -- the registration's expiry
    state          text     NOT NULL DEFAULT 'idle' CHECK (state IN ('idle', 'ringing', 'busy')),
    call_id        text     NOT NULL DEFAULT '',   -- the caller it rings for, or talks to
    call_engine    text     NOT NULL DEFAULT '',   -- the engine holding that call
    idle_since_ns  bigint   NOT NULL,
    pause_until_ns bigint   NOT NULL DEFAULT 0     -- rests after a ring nobody answered
);

CREATE INDEX queue_agents_call ON queue_agents (call_id) WHERE call_id <> '';

-- Callers in arrival order (seq), across engines.
CREATE TABLE queue_callers (
    seq       bigint   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue     text     NOT NULL,
    call_id   text     NOT NULL UNIQUE,
    engine    text     NOT NULL,
    joined_ns bigint   NOT NULL,
    ringing   smallint NOT NULL DEFAULT 0 CHECK (ringing IN (0, 1))   -- has agents ringing for it
);

CREATE INDEX queue_callers_queue ON queue_callers (queue, seq);

-- The measured mean talk time per queue (the expected wait).
CREATE TABLE queue_handle (
    queue     text   NOT NULL PRIMARY KEY,
    handle_ns bigint NOT NULL
);
