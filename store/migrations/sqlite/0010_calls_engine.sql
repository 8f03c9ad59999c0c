-- 0010: the engine that took each call. Several engines may share one
-- database (PostgreSQL); an engine restarting after a crash closes only
-- the calls it left open, and a call record says where its recording is.
-- '' for the calls of a line of one engine and those written before.
ALTER TABLE calls ADD COLUMN engine TEXT NOT NULL DEFAULT '';
