-- vidda_readings (00012) NOTIFYed once per statement that stored readings,
-- for live patient views that were never built: every COPY of the ingest
-- path paid for a transition table, a DISTINCT and a NOTIFY nobody heard.

-- +goose Up
DROP TRIGGER vidda_readings ON observation;
DROP FUNCTION vidda_readings_notify();

-- +goose Down
-- +goose StatementBegin
CREATE FUNCTION vidda_readings_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vidda_readings', p) FROM (SELECT DISTINCT patient_id AS p FROM new_rows WHERE patient_id IS NOT NULL) s;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER vidda_readings AFTER INSERT ON observation REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vidda_readings_notify();
