-- FHIR resources: one table per type holding the current version, with typed
-- columns for its search parameters (declared in fhir/search), and a
-- <type>_history table holding every earlier version. Every version is kept;
-- a create writes one row, not two (Observation is the hot path), and an
-- update or delete moves the replaced version into history. A deleted
-- resource keeps its row with deleted = true and content NULL.
--
-- Token columns are text[] of "system|code", "*|code" (any system) and
-- "system|*" (any code) entries, searched with @> / && through a GIN index.
-- content is text, not jsonb: reads, searches and exports serve the bytes
-- the client sent (plus id and meta) exactly; jsonb would reorder members
-- and drop duplicates. Searching uses the typed columns, never the JSON.
-- patient_id is the Patient compartment the resource belongs to (NULL: none).

-- +goose Up
CREATE TABLE patient (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    identifier   text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX patient_identifier_idx ON patient USING gin (identifier);

CREATE TABLE practitioner (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    identifier   text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX practitioner_identifier_idx ON practitioner USING gin (identifier);

CREATE TABLE organization (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    identifier   text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX organization_identifier_idx ON organization USING gin (identifier);

CREATE TABLE device (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    identifier   text[]      NOT NULL DEFAULT '{}',
    status       text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX device_identifier_idx ON device USING gin (identifier);
CREATE INDEX device_patient_idx ON device (patient_id);

CREATE TABLE observation (
    id              text PRIMARY KEY,
    version_id      bigint      NOT NULL,
    last_updated    timestamptz NOT NULL,
    deleted         boolean     NOT NULL DEFAULT false,
    patient_id      text,
    content         text,
    code            text[]      NOT NULL DEFAULT '{}',
    category        text[]      NOT NULL DEFAULT '{}',
    status          text[]      NOT NULL DEFAULT '{}',
    subject         text[]      NOT NULL DEFAULT '{}',
    device          text[]      NOT NULL DEFAULT '{}',
    identifier      text[]      NOT NULL DEFAULT '{}',
    date_start      timestamptz,
    date_end        timestamptz
);
-- "this patient's readings, newest first" and date ranges per patient.
CREATE INDEX observation_patient_date_idx ON observation (patient_id, date_start DESC, id);
CREATE INDEX observation_code_idx ON observation USING gin (code);
CREATE INDEX observation_identifier_idx ON observation USING gin (identifier);
CREATE INDEX observation_device_idx ON observation USING gin (device);

CREATE TABLE patient_history (
    id text NOT NULL, version_id bigint NOT NULL, last_updated timestamptz NOT NULL,
    deleted boolean NOT NULL DEFAULT false, patient_id text, content text,
    PRIMARY KEY (id, version_id)
);
CREATE TABLE practitioner_history (LIKE patient_history INCLUDING ALL);
CREATE TABLE organization_history (LIKE patient_history INCLUDING ALL);
CREATE TABLE device_history (LIKE patient_history INCLUDING ALL);
CREATE TABLE observation_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX patient_history_updated_idx ON patient_history (last_updated DESC);
CREATE INDEX practitioner_history_updated_idx ON practitioner_history (last_updated DESC);
CREATE INDEX organization_history_updated_idx ON organization_history (last_updated DESC);
CREATE INDEX device_history_updated_idx ON device_history (last_updated DESC);
CREATE INDEX observation_history_updated_idx ON observation_history (last_updated DESC);

-- +goose Down
DROP TABLE observation_history, device_history, organization_history, practitioner_history, patient_history;
DROP TABLE observation, device, organization, practitioner, patient;
