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

-- Requests per channel, an indicator of the regulation: the hourly roll-up
-- counts the e-mail and portal requests besides the phone ones (recounted
-- here from the rows; the trigger keeps them from now on).
ALTER TABLE ticket_stats ADD COLUMN email bigint NOT NULL DEFAULT 0, ADD COLUMN portal bigint NOT NULL DEFAULT 0;
UPDATE ticket_stats s SET email = c.email, portal = c.portal
FROM (SELECT service, created_ns / 3600000000000 AS hour,
             count(*) FILTER (WHERE channel = 'email') AS email, count(*) FILTER (WHERE channel = 'portal') AS portal
      FROM tickets GROUP BY 1, 2) c
WHERE c.service = s.service AND c.hour = s.hour;

CREATE OR REPLACE FUNCTION ticket_stats_add(t tickets, sign integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO ticket_stats AS s (service, hour, requests, phone, email, portal, first_contact, resolved, resolved_level1,
                                   within_deadline, resolution_ms, resolution_level1_ms)
    VALUES (t.service, t.created_ns / 3600000000000, sign,
            sign * (t.channel = 'phone')::int, sign * (t.channel = 'email')::int, sign * (t.channel = 'portal')::int,
            sign * t.first_contact, sign * (t.resolved_ns IS NOT NULL)::int,
            sign * coalesce((t.resolved_level = 1)::int, 0), sign * coalesce((t.resolved_ns <= t.deadline_ns)::int, 0),
            sign * coalesce((t.resolved_ns - t.created_ns) / 1000000, 0),
            sign * CASE WHEN t.resolved_level = 1 THEN (t.resolved_ns - t.created_ns) / 1000000 ELSE 0 END)
    ON CONFLICT (service, hour) DO UPDATE SET
        requests = s.requests + excluded.requests, phone = s.phone + excluded.phone,
        email = s.email + excluded.email, portal = s.portal + excluded.portal,
        first_contact = s.first_contact + excluded.first_contact, resolved = s.resolved + excluded.resolved,
        resolved_level1 = s.resolved_level1 + excluded.resolved_level1,
        within_deadline = s.within_deadline + excluded.within_deadline,
        resolution_ms = s.resolution_ms + excluded.resolution_ms,
        resolution_level1_ms = s.resolution_level1_ms + excluded.resolution_level1_ms;
    INSERT INTO rating_stats AS r (service, hour, count, sum)
    SELECT t.service, t.created_ns / 3600000000000, sign, sign * t.rating WHERE t.rating IS NOT NULL
    ON CONFLICT (service, hour) DO UPDATE SET count = r.count + excluded.count, sum = r.sum + excluded.sum;
$$;
