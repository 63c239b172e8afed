-- People who sign in (internal/auth): users with an argon2id password hash
-- and an optional TOTP second factor, the per-account lockout state, and
-- server-side sessions.
--
-- A session row holds only the SHA-256 of the cookie's token: a copy of
-- this table does not let anyone in. Revoking a session deletes its row.
-- last_seen is deliberately not indexed, so the once-a-minute touch that
-- slides the idle timeout is a HOT update that rewrites no index.

-- +goose Up
CREATE TABLE auth_user (
    id                  text        PRIMARY KEY,    -- UUID v7
    username            text        NOT NULL,       -- stored lower case
    role                text        NOT NULL CHECK (role IN ('admin', 'clinician', 'nurse', 'patient')),
    patient_id          text,                       -- the user's own Patient (role patient)
    practitioner_id     text,                       -- the Practitioner a staff user acts as
    password_hash       text        NOT NULL,       -- PHC string, $argon2id$v=19$m=...,t=...,p=...$salt$hash
    totp_secret         text,                       -- base32 RFC 6238 secret; NULL: no second factor
    totp_last_step      bigint      NOT NULL DEFAULT 0, -- newest time step accepted: a code is never used twice
    disabled            boolean     NOT NULL DEFAULT false,
    failed_attempts     integer     NOT NULL DEFAULT 0, -- consecutive failed sign-ins
    locked_until        timestamptz,
    created_at          timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL,
    CHECK (role <> 'patient' OR patient_id IS NOT NULL)
);
CREATE UNIQUE INDEX auth_user_username_idx ON auth_user (username);

CREATE TABLE auth_session (
    id         text        PRIMARY KEY,             -- UUID v7, safe to log and show
    token_hash bytea       NOT NULL UNIQUE,         -- SHA-256 of the cookie's token
    user_id    text        NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    csrf_token text        NOT NULL,                -- synchronizer token for this session's forms
    created_at timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,                -- slides the idle timeout, touched at most once a minute
    expires_at timestamptz NOT NULL                 -- absolute timeout
);
CREATE INDEX auth_session_user_idx ON auth_session (user_id);
CREATE INDEX auth_session_expires_idx ON auth_session (expires_at);

-- +goose Down
DROP TABLE auth_session;
DROP TABLE auth_user;
