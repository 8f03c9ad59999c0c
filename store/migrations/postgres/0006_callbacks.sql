-- 0006: queued callbacks (ivr/queue, docs/queue.md "Call me back") and
-- satisfaction survey calls (tickets, below). A
-- caller waiting in a queue who presses 1 keeps their place and is called
-- back through the trunk once it is their turn. A row lives from the key
-- press until the callback is answered (done) or its attempts run out
-- (failed); pending rows are taken up again after a restart, in the order
-- they were created.
CREATE TABLE callbacks (
    id          bigserial NOT NULL PRIMARY KEY,
    queue       text      NOT NULL CHECK (queue <> ''),
    number      text      NOT NULL CHECK (number <> ''),
    lang        text      NOT NULL,
    ticket      text      NOT NULL,
    call_id     text      NOT NULL,
    state       text      NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'cancelled')),
    attempts    integer   NOT NULL DEFAULT 0,
    last_reason text      NOT NULL DEFAULT '',
    created_ns  bigint    NOT NULL,
    updated_ns  bigint    NOT NULL
);

CREATE INDEX callbacks_pending ON callbacks (state, created_ns);

-- surveys (tickets): the satisfaction survey calls placed after a ticket
-- was resolved, one per ticket; a citizen (number) is called at most once
-- in the configured period. result is the call's outcome: "rated",
-- "no_rating" (answered, no key), or an unanswered attempt's reason.
CREATE TABLE surveys (
    ticket     text   NOT NULL PRIMARY KEY,
    number     text   NOT NULL CHECK (number <> ''),
    result     text   NOT NULL DEFAULT '',
    created_ns bigint NOT NULL,
    updated_ns bigint NOT NULL
);

CREATE INDEX surveys_number ON surveys (number, created_ns);
CREATE INDEX surveys_created ON surveys (created_ns);
