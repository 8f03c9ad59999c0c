-- 0008: personal data a caller gave the line as a sensitive answer (a
-- national ID number, a phone number, an address), by name: {"cnp": "..."}.
-- Only the agent roles that see personal data are shown it (docs/tickets.md);
-- it is never copied into the description, the transcript or the call log,
-- which hold its masked form only.
ALTER TABLE tickets ADD COLUMN personal TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(personal));
