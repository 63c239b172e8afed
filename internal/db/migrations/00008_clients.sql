-- SMART Backend Services clients (internal/auth): EHRs and other systems
-- that obtain access tokens with a private_key_jwt client assertion
-- (client_credentials grant). A client has its public keys inline (jwks)
-- or at a URL it serves (jwks_url), and the system/ scopes it may be
-- granted.
--
-- auth_client_jti remembers every assertion id (jti) until its assertion
-- expires, so a replayed assertion is refused by every instance.

-- +goose Up
CREATE TABLE auth_client (
    client_id  text        PRIMARY KEY,
    name       text        NOT NULL,
    scopes     text[]      NOT NULL,           -- system/ scopes it may be granted
    jwks       text,                           -- inline JWK Set (public keys), or
    jwks_url   text,                           -- where it serves them
    disabled   boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    CHECK ((jwks IS NULL) <> (jwks_url IS NULL))
);

CREATE TABLE auth_client_jti (
    client_id  text        NOT NULL,
    jti        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX auth_client_jti_expires_idx ON auth_client_jti (expires_at);

-- +goose Down
DROP TABLE auth_client_jti;
DROP TABLE auth_client;
