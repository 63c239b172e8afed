-- Video visits pinned to one instance (signaling/owner.go).
--
-- A visit's room lives in the memory of one vidda process. visit_owner
-- says which: the instance that first handed out a join token for the
-- appointment (or opened its room) claims it with INSERT ... ON CONFLICT
-- and renews lease_until while the room lives or a token it issued may
-- still be used. Another instance answers a join with the owner's
-- base_url; once the lease has expired (the owner died or lost the
-- database) the next join anywhere takes the visit over. An instance that
-- stops deletes its rows, so its visits move at once.

-- +goose Up
CREATE TABLE visit_owner (
    appointment_id text PRIMARY KEY,
    instance_id    text NOT NULL,
    base_url       text NOT NULL,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    lease_until    timestamptz NOT NULL
);
CREATE INDEX visit_owner_instance ON visit_owner (instance_id);

-- +goose Down
DROP TABLE visit_owner;
