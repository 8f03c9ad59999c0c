-- 0006: what cut a prompt short. An ivr turn the caller interrupted, or
-- that was playing when the call ended, keeps the text heard up to that
-- point (interrupted = 1) and now also says what cut it: 'key' or
-- 'speech' (the caller), 'hangup' (the call ended while it played).
-- '' for every other turn, and for the turns written before this column.

ALTER TABLE transcript_turns ADD COLUMN cut TEXT NOT NULL DEFAULT ''
    CHECK (cut IN ('', 'key', 'speech', 'hangup'));
