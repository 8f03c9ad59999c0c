-- 0014: queued callbacks (ivr/queue, docs/queue.md "Call me back") and
-- satisfaction survey calls (tickets, below). A
-- caller waiting in a queue who presses 1 keeps their place and is called
-- back through the trunk once it is their turn. A row lives from the key
-- press until the callback is answered (done) or its attempts run out
-- (failed); pending rows are taken up again after a restart, in the order
-- they were created.
CREATE TABLE callbacks (
    id          INTEGER NOT NULL PRIMARY KEY,
    queue       TEXT    NOT NULL CHECK (queue <> ''),
    number      TEXT    NOT NULL CHECK (number <> ''),  -- personal data: shown to agents, never logged
    lang        TEXT    NOT NULL,
    ticket      TEXT    NOT NULL,
    call_id     TEXT    NOT NULL,                      -- the call that asked for it
    state       TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'cancelled')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_reason TEXT    NOT NULL DEFAULT '',           -- the last attempt's result (dialplan/sip OutboundReason)
    created_ns  INTEGER NOT NULL,
    updated_ns  INTEGER NOT NULL
) STRICT;

CREATE INDEX callbacks_pending ON callbacks (state, created_ns);

-- surveys (tickets): the satisfaction survey calls placed after a ticket
-- was resolved, one per ticket; a citizen (number) is called at most once
-- in the configured period. result is the call's outcome: "rated",
-- "no_rating" (answered, no key), or an unanswered attempt's reason.
CREATE TABLE surveys (
    ticket     TEXT    NOT NULL PRIMARY KEY,
    number     TEXT    NOT NULL CHECK (number <> ''),   -- personal data
    result     TEXT    NOT NULL DEFAULT '',              -- '' while the call is placed
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
) STRICT;

CREATE INDEX surveys_number ON surveys (number, created_ns);
CREATE INDEX surveys_created ON surveys (created_ns);
