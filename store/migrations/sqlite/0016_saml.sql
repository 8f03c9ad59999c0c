-- 0016: staff who sign in through the government's SAML 2.0 identity
-- provider (MPass; docs/console.md, "Signing in with MPass (SAML)").
--
-- users.external = 1: the account was made (or taken over) by a SAML
-- sign-in; it has no usable password (its password column holds a marker
-- that is no argon2id hash), and its role and provider follow the
-- identity provider's assertion at every sign-in.
ALTER TABLE users ADD COLUMN external INTEGER NOT NULL DEFAULT 0 CHECK (external IN (0, 1));

-- The IDs of the assertions already accepted, each kept until the
-- assertion expires: an assertion is accepted once, by any engine of the
-- line (the replay cache is in the database the engines share).
CREATE TABLE saml_assertions (
    id          TEXT    NOT NULL PRIMARY KEY CHECK (id <> '' AND length(id) <= 256),
    expires_ns  INTEGER NOT NULL
) STRICT;

CREATE INDEX saml_assertions_expires ON saml_assertions (expires_ns);
