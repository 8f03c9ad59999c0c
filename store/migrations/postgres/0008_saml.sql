-- 0008: staff who sign in through the government's SAML 2.0 identity
-- provider (MPass); see sqlite/0016_saml.sql.
ALTER TABLE users ADD COLUMN external smallint NOT NULL DEFAULT 0 CHECK (external IN (0, 1));

CREATE TABLE saml_assertions (
    id          text   NOT NULL PRIMARY KEY CHECK (id <> '' AND length(id) <= 256),
    expires_ns  bigint NOT NULL
);

CREATE INDEX saml_assertions_expires ON saml_assertions (expires_ns);
