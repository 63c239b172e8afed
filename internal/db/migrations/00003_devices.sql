-- Device ingestion: the idempotency key of a reading (a gateway re-sending
-- after a lost PUBACK must not store it twice), per-device MQTT credentials,
-- and dead letters for input that could not be stored.

-- +goose Up
ALTER TABLE observation ADD COLUMN ingest_key text;
CREATE UNIQUE INDEX observation_ingest_key_idx ON observation (ingest_key);

CREATE TABLE device_credential (
    device_id   text PRIMARY KEY,
    username    text        NOT NULL UNIQUE,
    secret_hash bytea       NOT NULL,
    disabled    boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz
);

CREATE TABLE dead_letter (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    device_id   text        NOT NULL,
    topic       text        NOT NULL,
    payload     bytea       NOT NULL,
    reason      text        NOT NULL,
    detail      text        NOT NULL,
    replayed_at timestamptz
);
CREATE INDEX dead_letter_received_idx ON dead_letter (received_at DESC);
CREATE INDEX dead_letter_device_idx ON dead_letter (device_id, received_at DESC);

-- +goose Down
DROP TABLE dead_letter;
DROP TABLE device_credential;
DROP INDEX observation_ingest_key_idx;
ALTER TABLE observation DROP COLUMN ingest_key;
