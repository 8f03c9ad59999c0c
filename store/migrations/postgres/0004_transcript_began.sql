-- 0004: when a turn began. at_ns is when a turn was written (a prompt
-- played to its end or cut, an answer recognized); began_ns is when the
-- prompt started playing or the caller started speaking or pressing keys,
-- so the console's player jumps to the start of a line. 0 when unknown
-- (turns written before this column, the agent's notes).
ALTER TABLE transcript_turns ADD COLUMN began_ns bigint NOT NULL DEFAULT 0;
