-- 0003: each console user's language (the console speaks Romanian, with
-- English as the second language; docs/console.md, "Language"). The users
-- there before this column get Romanian, the console's default.
ALTER TABLE users ADD COLUMN lang text NOT NULL DEFAULT 'ro' CHECK (lang IN ('ro', 'en'));
