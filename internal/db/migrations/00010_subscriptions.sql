-- R4 Subscriptions that push (fhir/subscription).
--
-- subscription is the resource table, like every other (search columns
-- from fhir/search). subscription_state is what vidda keeps beside the
-- resource: whose authority the subscription runs under (the creator's
-- store.Access for the searched type, fixed when a client writes it), the
-- handshake, the delivery failures and back-off, and the event counter.
--
-- The change feed: a statement-level trigger on each searchable table
-- (created by the subscription runner for every type that has a table, so a
-- type added later needs nothing here) records, while a live subscription
-- searches that type, one row per statement: the writing transaction's id
-- (xid8) and the ids it inserted or updated, and NOTIFYs vidda_changes.
-- COPY fires it like INSERT, so device readings are seen too.
--
-- Why transaction ids and not last_updated: last_updated is stamped before
-- the commit, and two writers commit out of that order, so a cursor on
-- (last_updated, id) skips a row that commits late. A transaction id below
-- pg_snapshot_xmin(pg_current_snapshot()) belongs to a transaction that has
-- ended, so every change row below that horizon is final: the matcher reads
-- [cursor, horizon), matches, writes the outbox rows and moves the cursor to
-- the horizon in one transaction. Nothing is missed, nothing matched twice,
-- and a restart resumes at the cursor.
--
-- subscription_event is the outbox: one row per (subscription, resource
-- version) that matched, numbered per subscription, with the id receivers
-- deduplicate on (event_id, derived from the subscription and the version,
-- so a version matched twice has one id); a row is deleted only after a
-- 2xx.

-- +goose Up
CREATE TABLE subscription (
    id             text PRIMARY KEY,
    version_id     bigint      NOT NULL,
    last_updated   timestamptz NOT NULL,
    deleted        boolean     NOT NULL DEFAULT false,
    patient_id     text,
    content        text,
    status         text[]      NOT NULL DEFAULT '{}',
    type           text[]      NOT NULL DEFAULT '{}',
    url            text[]      NOT NULL DEFAULT '{}',
    criteria       text[]      NOT NULL DEFAULT '{}',
    criteria_exact text[]      NOT NULL DEFAULT '{}'
);
CREATE TABLE subscription_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX subscription_history_updated_idx ON subscription_history (last_updated DESC);

CREATE TABLE subscription_state (
    id            text        PRIMARY KEY,          -- the Subscription's id
    resource_type text        NOT NULL,             -- the type its criteria search
    live          boolean     NOT NULL,             -- not off and not deleted: record changes of resource_type
    grant_patient text,                             -- the creator's store.Access.PatientID for resource_type
    grant_care_of text,                             -- ... and its CareOf
    granted_by    text        NOT NULL,             -- the subject who wrote the current version
    activated     boolean     NOT NULL DEFAULT false, -- the handshake of the current version succeeded
    active_since  pg_snapshot,                      -- taken then: changes it saw as committed are older, not notified
    failures      integer     NOT NULL DEFAULT 0,   -- consecutive failed handshakes or deliveries
    next_attempt  timestamptz,                      -- back-off: no attempt before this
    last_error    text,
    events        bigint      NOT NULL DEFAULT 0    -- event numbers handed out
);
CREATE INDEX subscription_state_live_idx ON subscription_state (resource_type) WHERE live;

CREATE TABLE subscription_event (
    subscription_id text        NOT NULL REFERENCES subscription_state (id) ON DELETE CASCADE,
    event_number    bigint      NOT NULL,
    event_id        uuid        NOT NULL,             -- store.EventID: the same for the same version
    resource_type   text        NOT NULL,
    resource_id     text        NOT NULL,
    version_id      bigint      NOT NULL,
    created         timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (subscription_id, event_number),
    UNIQUE (subscription_id, resource_type, resource_id, version_id)
);

CREATE TABLE subscription_change (
    xid           xid8   NOT NULL,
    resource_type text   NOT NULL,
    ids           text[] NOT NULL
);
CREATE INDEX subscription_change_xid_idx ON subscription_change (xid);

CREATE TABLE subscription_cursor (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    position xid8    NOT NULL
);
INSERT INTO subscription_cursor (position) VALUES (pg_snapshot_xmin(pg_current_snapshot()));

-- TG_ARGV[0] is the resource type; "changed" is the statement's transition
-- table (REFERENCING NEW TABLE AS changed).
-- +goose StatementBegin
CREATE FUNCTION vidda_record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM subscription_state WHERE live AND resource_type = TG_ARGV[0]) THEN
        INSERT INTO subscription_change (xid, resource_type, ids)
            SELECT pg_current_xact_id(), TG_ARGV[0], array_agg(id) FROM changed HAVING count(*) > 0;
        PERFORM pg_notify('vidda_changes', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT tgname, tgrelid::regclass AS rel FROM pg_trigger WHERE tgname IN ('vidda_changes_insert', 'vidda_changes_update') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP FUNCTION vidda_record_changes();
DROP TABLE subscription_cursor, subscription_change, subscription_event, subscription_state;
DROP TABLE subscription_history, subscription;
