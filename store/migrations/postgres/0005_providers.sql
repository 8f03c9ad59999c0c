-- 0005: several public-service providers on one line (docs/providers.md).
-- A provider owns services, dialed numbers, users and tickets; the line
-- always has the provider "default", which owns everything not given to
-- another, so a line of one provider needs no configuration and the rows
-- written before this migration belong to it.
CREATE TABLE providers (
    id         text   NOT NULL PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{0,31}$'),
    name       text   NOT NULL CHECK (name <> ''),
    created_ns bigint NOT NULL
);

INSERT INTO providers (id, name, created_ns) VALUES ('default', 'Default provider', 0);

-- Which provider a service's new requests go to (a service not listed:
-- "default"), and a dialed number's (which wins over the service).
CREATE TABLE provider_services (
    service  text NOT NULL PRIMARY KEY,
    provider text NOT NULL REFERENCES providers (id)
);

CREATE TABLE provider_numbers (
    number   text NOT NULL PRIMARY KEY CHECK (number <> ''),
    provider text NOT NULL REFERENCES providers (id)
);

ALTER TABLE tickets ADD COLUMN provider text NOT NULL DEFAULT 'default' REFERENCES providers (id);
CREATE INDEX tickets_provider ON tickets (provider, created_ns DESC);
CREATE INDEX tickets_provider_indicators ON tickets (provider, service, created_ns, channel, resolved_ns,
    resolved_level, deadline_ns, first_contact);

-- Users belong to a provider, and the national "monitor" role joins the
-- roles.
ALTER TABLE users ADD COLUMN provider text NOT NULL DEFAULT 'default' REFERENCES providers (id);
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('operator', 'specialist', 'administrator', 'supervisor', 'monitor'));

-- A ticket passes to another provider with a "transfer" event.
ALTER TABLE ticket_events DROP CONSTRAINT ticket_events_kind_check;
ALTER TABLE ticket_events ADD CONSTRAINT ticket_events_kind_check
    CHECK (kind IN ('created', 'note', 'classified', 'prioritized', 'escalated', 'assigned', 'status',
                    'resolved', 'closed', 'reopened', 'article_cited', 'recording', 'rating', 'correction', 'transfer'));
