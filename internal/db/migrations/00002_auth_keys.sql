-- Signing keys for vidda's own access tokens (internal/auth). Keys are
-- Ed25519 (JWT alg EdDSA). Exactly one key is current (retired_at IS NULL)
-- and signs new tokens; a retired key only verifies, until its window
-- (RotateAfter + MaxTokenTTL after retirement) has passed and it is deleted.
-- The private key is dropped at retirement: nothing signs with it again.
-- Rotation is serialised across processes by a transaction-level advisory
-- lock; the partial unique index is the backstop that keeps one current key.

-- +goose Up
CREATE TABLE auth_signing_key (
    kid         text        PRIMARY KEY,            -- RFC 7638 JWK thumbprint
    algorithm   text        NOT NULL CHECK (algorithm = 'EdDSA'),
    private_key bytea,                              -- PKCS#8 DER; NULL once retired
    public_key  bytea       NOT NULL,               -- SubjectPublicKeyInfo DER
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz,
    CHECK (retired_at IS NOT NULL OR private_key IS NOT NULL)
);
CREATE UNIQUE INDEX auth_signing_key_current_idx ON auth_signing_key ((true)) WHERE retired_at IS NULL;

-- +goose Down
DROP TABLE auth_signing_key;
