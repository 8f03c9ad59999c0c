-- 0009: archive, retention and erasure (docs/retention.md); the same as
-- SQLite's 0017, whose comments say why.
ALTER TABLE tickets
    ADD COLUMN archived_ns bigint,
    ADD COLUMN legal_hold smallint NOT NULL DEFAULT 0 CHECK (legal_hold IN (0, 1)),
    ADD COLUMN purged_recording_ns bigint,
    ADD COLUMN purged_transcript_ns bigint,
    ADD COLUMN purged_personal_ns bigint;

CREATE INDEX tickets_active ON tickets (created_ns DESC) WHERE archived_ns IS NULL;
CREATE INDEX tickets_active_status ON tickets (status, created_ns DESC) WHERE archived_ns IS NULL;
CREATE INDEX tickets_active_provider ON tickets (provider, status, created_ns DESC) WHERE archived_ns IS NULL;
CREATE INDEX tickets_archive ON tickets (provider, created_ns DESC) WHERE archived_ns IS NOT NULL;
CREATE INDEX tickets_retention ON tickets (closed_ns) WHERE closed_ns IS NOT NULL AND legal_hold = 0;

-- The history: deletes refused as before; an update only when it blanks
-- data.caller to "" and data.personal to {} and changes nothing else.
CREATE FUNCTION ticket_events_anonymize_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    o jsonb := OLD.data::jsonb;
    n jsonb := NEW.data::jsonb;
BEGIN
    IF (NEW.id, NEW.ticket, NEW.at_ns, NEW.actor, NEW.kind, NEW.supersedes, NEW.xid) IS NOT DISTINCT FROM
       (OLD.id, OLD.ticket, OLD.at_ns, OLD.actor, OLD.kind, OLD.supersedes, OLD.xid)
       AND (n - 'caller' - 'personal') = (o - 'caller' - 'personal')
       AND jsonb_typeof(n -> 'caller') IS NOT DISTINCT FROM jsonb_typeof(o -> 'caller')
       AND coalesce(n ->> 'caller', '') = ''
       AND jsonb_typeof(n -> 'personal') IS NOT DISTINCT FROM jsonb_typeof(o -> 'personal')
       AND coalesce(n -> 'personal', '{}'::jsonb) = '{}'::jsonb THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ticket history is append-only: add a correction instead (only data.caller and data.personal may be blanked)';
END $$;

DROP TRIGGER ticket_events_append_only ON ticket_events;
CREATE TRIGGER ticket_events_no_delete BEFORE DELETE ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION refuse('ticket history is append-only: add a correction instead');
CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION ticket_events_anonymize_only();

-- Transcripts: deletes refused; an update only replaces a text by [șters].
CREATE FUNCTION transcript_turns_erase_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.seq, NEW.call_id, NEW.at_ns, NEW.began_ns, NEW.speaker, NEW.mode, NEW.confidence, NEW.interrupted, NEW.cut, NEW.xid)
       IS NOT DISTINCT FROM
       (OLD.seq, OLD.call_id, OLD.at_ns, OLD.began_ns, OLD.speaker, OLD.mode, OLD.confidence, OLD.interrupted, OLD.cut, OLD.xid)
       AND NEW.text = '[șters]' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'transcripts are append-only (a text may only be erased to [șters])';
END $$;

DROP TRIGGER transcript_turns_append_only ON transcript_turns;
CREATE TRIGGER transcript_turns_no_delete BEFORE DELETE ON transcript_turns
    FOR EACH ROW EXECUTE FUNCTION refuse('transcripts are append-only');
CREATE TRIGGER transcript_turns_no_update BEFORE UPDATE ON transcript_turns
    FOR EACH ROW EXECUTE FUNCTION transcript_turns_erase_only();
