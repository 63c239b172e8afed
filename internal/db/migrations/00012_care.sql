-- The clinical-review engine (internal/care).
--
-- care_outbox: every Observation stored with an abnormal interpretation
-- gets a row in the same transaction (row trigger; its WHEN clause looks at
-- the Observation-level interpretation only, the first one in the stored
-- JSON, so normal readings cost one strpos and fire nothing). The engine
-- turns rows into worklist Tasks and deletes them afterwards: a crash
-- between the reading's commit and the Task write loses nothing, the row
-- is handled again (and handling is idempotent). NOTIFY vidda_care wakes
-- the engine.
--
-- care_problem: the one open Task per patient and problem ("reading|<LOINC
-- code>", "trend|<rule>", "missed|<LOINC code>"). The primary key makes
-- a second Task for the same problem impossible even if two engines ran.
--
-- vidda_care_limits: a NOTIFY with the patient id on every Goal and
-- CarePlan write, so every instance drops its cached limits of that
-- patient.
--
-- vidda_readings: a NOTIFY with the patient id for each patient with new
-- readings, once per statement (a batch of readings), for live views.
-- NOTIFY is delivered at commit, never on rollback.

-- +goose Up
CREATE TABLE care_outbox (
    seq            bigserial PRIMARY KEY,
    observation_id text NOT NULL,
    patient_id     text
);

CREATE TABLE care_problem (
    patient_id text        NOT NULL,
    problem    text        NOT NULL,
    task_id    text        NOT NULL,
    opened     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, problem)
);

-- +goose StatementBegin
CREATE FUNCTION vidda_care_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO care_outbox (observation_id, patient_id) VALUES (NEW.id, NEW.patient_id);
    PERFORM pg_notify('vidda_care', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- The marker is what devices writes: "interpretation":[{"coding":[{"system":
-- "<v3-ObservationInterpretation>","code":" followed by the code and '"'.
CREATE TRIGGER vidda_care_outbox AFTER INSERT ON observation FOR EACH ROW
    WHEN (strpos(NEW.content, '"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"') > 0
      AND substr(NEW.content, strpos(NEW.content, '"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"') + 116, 2) <> 'N"')
    EXECUTE FUNCTION vidda_care_enqueue();

-- +goose StatementBegin
CREATE FUNCTION vidda_care_limits_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vidda_care_limits', coalesce(NEW.patient_id, ''));
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER vidda_care_limits AFTER INSERT OR UPDATE ON goal
    FOR EACH ROW EXECUTE FUNCTION vidda_care_limits_notify();
CREATE TRIGGER vidda_care_limits AFTER INSERT OR UPDATE ON careplan
    FOR EACH ROW EXECUTE FUNCTION vidda_care_limits_notify();

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

-- +goose Down
DROP TRIGGER vidda_readings ON observation;
DROP FUNCTION vidda_readings_notify();
DROP TRIGGER vidda_care_limits ON careplan;
DROP TRIGGER vidda_care_limits ON goal;
DROP FUNCTION vidda_care_limits_notify();
DROP TRIGGER vidda_care_outbox ON observation;
DROP FUNCTION vidda_care_enqueue();
DROP TABLE care_problem, care_outbox;
