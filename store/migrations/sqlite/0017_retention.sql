-- 0017: archive, retention and erasure (docs/retention.md).
--
-- The archive is a column, not a table: a closed ticket past the
-- configured period gets archived_ns; the working queue, the lists and the
-- console's search read partial indexes of the tickets WHERE archived_ns IS
-- NULL, and the archive search the partial index of the others. A table
-- would mean moving rows out of tickets, which the history, the
-- transcripts, the e-mails and the outbox reference and which is never
-- deleted (tickets_no_delete); a reopened ticket would have to move back.
-- With a column, a reopen clears it in the same UPDATE that writes the
-- reopened state.
ALTER TABLE tickets ADD COLUMN archived_ns INTEGER;
-- Legal hold: the fold of the hold/unhold events of the history (a "note"
-- event whose data.hold is "on" or "off"), materialized like the rest of
-- the row. Retention and erasure never touch a held ticket.
ALTER TABLE tickets ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0 CHECK (legal_hold IN (0, 1));
-- When the retention job (or an erasure) removed the ticket's recordings,
-- transcript texts and personal data; NULL while not done. A reopen clears
-- them, so that what is added after it is removed in its turn.
ALTER TABLE tickets ADD COLUMN purged_recording_ns INTEGER;
ALTER TABLE tickets ADD COLUMN purged_transcript_ns INTEGER;
ALTER TABLE tickets ADD COLUMN purged_personal_ns INTEGER;

-- The working tickets (not archived): the queue, the lists, the search.
CREATE INDEX tickets_active ON tickets (created_ns DESC) WHERE archived_ns IS NULL;
CREATE INDEX tickets_active_status ON tickets (status, created_ns DESC) WHERE archived_ns IS NULL;
CREATE INDEX tickets_active_provider ON tickets (provider, status, created_ns DESC) WHERE archived_ns IS NULL;
-- The archive search.
CREATE INDEX tickets_archive ON tickets (provider, created_ns DESC) WHERE archived_ns IS NOT NULL;
-- The retention job's candidates: closed tickets not under hold, by closing.
CREATE INDEX tickets_retention ON tickets (closed_ns) WHERE closed_ns IS NOT NULL AND legal_hold = 0;

-- The history stays append-only, except for the anonymization: an UPDATE
-- of an event is refused unless every column but data is unchanged and
-- data differs only in its "caller" (blanked to "") and "personal"
-- (blanked to {}) members, each present exactly when it was before. The
-- tamper-evident chain over the history leaves these two members out of
-- what it hashes, so the anonymization keeps it valid.
DROP TRIGGER ticket_events_no_update;
CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events
WHEN NOT (NEW.id IS OLD.id AND NEW.ticket IS OLD.ticket AND NEW.at_ns IS OLD.at_ns AND NEW.actor IS OLD.actor
      AND NEW.kind IS OLD.kind AND NEW.supersedes IS OLD.supersedes AND json_valid(NEW.data)
      AND json_remove(NEW.data, '$.caller', '$.personal') IS json_remove(OLD.data, '$.caller', '$.personal')
      AND json_type(NEW.data, '$.caller') IS json_type(OLD.data, '$.caller')
      AND (json_type(NEW.data, '$.caller') IS NULL OR json_extract(NEW.data, '$.caller') = '')
      AND json_type(NEW.data, '$.personal') IS json_type(OLD.data, '$.personal')
      AND (json_type(NEW.data, '$.personal') IS NULL OR json_extract(NEW.data, '$.personal') = '{}'))
BEGIN
    SELECT RAISE(ABORT, 'ticket history is append-only: add a correction instead (only data.caller and data.personal may be blanked)');
END;

-- Transcripts stay append-only, except that a turn's text may be replaced
-- by the marker [șters] (everything else of the turn unchanged): the
-- turns, their times, speakers and modes stay for the call's timeline.
DROP TRIGGER transcript_turns_no_update;
CREATE TRIGGER transcript_turns_no_update BEFORE UPDATE ON transcript_turns
WHEN NOT (NEW.seq IS OLD.seq AND NEW.call_id IS OLD.call_id AND NEW.at_ns IS OLD.at_ns AND NEW.began_ns IS OLD.began_ns
      AND NEW.speaker IS OLD.speaker AND NEW.mode IS OLD.mode AND NEW.confidence IS OLD.confidence
      AND NEW.interrupted IS OLD.interrupted AND NEW.cut IS OLD.cut AND NEW.text = '[șters]')
BEGIN
    SELECT RAISE(ABORT, 'transcripts are append-only (a text may only be erased to [șters])');
END;
