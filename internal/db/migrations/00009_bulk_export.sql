-- Group (a monitored cohort) and FHIR Bulk Data export jobs.
--
-- GROUP is a reserved word in SQL, so the Group table is fhir_group (see
-- fhir/store table()). A Group is in no patient compartment: it has many
-- patients, so patient_id stays NULL; its members are the member column.
--
-- export_job is one $export kick-off (fhir/bulk). A job outlives the
-- request that started it and the instance running it: a runner claims a
-- queued or running job by taking a session advisory lock on its id, so a
-- job whose instance died (its session and lock gone) is taken over by
-- the next runner that looks, and two instances never run the same job.
-- Cancelling deletes the row; a runner notices at its next progress
-- update and removes what it wrote. Finished jobs are deleted, with their
-- files, once expires_at passes.

-- +goose Up
CREATE TABLE fhir_group (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    identifier   text[]      NOT NULL DEFAULT '{}',
    member       text[]      NOT NULL DEFAULT '{}',
    type         text[]      NOT NULL DEFAULT '{}',
    actual       text[]      NOT NULL DEFAULT '{}',
    code         text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX fhir_group_identifier_idx ON fhir_group USING gin (identifier);
CREATE INDEX fhir_group_member_idx ON fhir_group USING gin (member);
CREATE TABLE fhir_group_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX fhir_group_history_updated_idx ON fhir_group_history (last_updated DESC);

-- A type-wide export with _since reads last_updated ranges.
CREATE INDEX observation_updated_idx ON observation (last_updated);

CREATE TABLE export_job (
    id               text        PRIMARY KEY,   -- UUID v7, in the status and file URLs
    -- Who asked: only the same subject, client and issuer may poll,
    -- cancel and download.
    subject          text        NOT NULL,
    client_id        text        NOT NULL DEFAULT '',
    issuer           text        NOT NULL DEFAULT '',
    kind             text        NOT NULL CHECK (kind IN ('system', 'patient', 'group')),
    group_id         text,
    request          text        NOT NULL,      -- the kick-off URL, for the manifest
    params           jsonb       NOT NULL,      -- types, _since, _typeFilter, access per type
    status           text        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0, -- runs started; a job that keeps killing its runner fails
    written          bigint      NOT NULL DEFAULT 0, -- resources written so far
    progress         text        NOT NULL DEFAULT '',
    error            text,
    transaction_time timestamptz,
    output           jsonb       NOT NULL DEFAULT '[]', -- [{type, name, count}]
    owner            text,                      -- the instance running it
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    heartbeat_at     timestamptz,
    finished_at      timestamptz,
    expires_at       timestamptz,
    CHECK (kind <> 'group' OR group_id IS NOT NULL)
);
CREATE INDEX export_job_pending_idx ON export_job (created_at) WHERE status IN ('queued', 'running');
CREATE INDEX export_job_expires_idx ON export_job (expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down
DROP TABLE export_job;
DROP INDEX observation_updated_idx;
DROP TABLE fhir_group_history, fhir_group;
