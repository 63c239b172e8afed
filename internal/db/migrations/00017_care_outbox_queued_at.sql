-- vidda_care_outbox_lag_seconds aged the oldest care_outbox row by its
-- Observation's last_updated, through a join: a reading deleted or updated
-- since it was queued read as younger than it was (its last_updated moved),
-- and one gone from the table was not aged at all, so the lag understated.
-- Each row now says when it was queued: the default, which the trigger's
-- insert (vidda_care_enqueue) takes, is the start of the transaction that
-- stored the reading, or flagged it by an update.
--
-- Rows already waiting get their reading's last_updated when it is older
-- than now (the best the old rows tell), otherwise the migration's time.

-- +goose Up
ALTER TABLE care_outbox ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now();
UPDATE care_outbox b SET queued_at = o.last_updated
    FROM observation o WHERE o.id = b.observation_id AND o.last_updated < b.queued_at;

-- +goose Down
ALTER TABLE care_outbox DROP COLUMN queued_at;
