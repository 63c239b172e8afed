-- The outbox trigger of 00012 found a reading's flag at a byte offset after
-- the marker devices writes, so an abnormal Observation that came through
-- the FHIR API (stored as its sender wrote it: any member order, any
-- spacing) never reached the care engine, and neither did a PUT that made a
-- reading abnormal. Device rows keep the cheap byte test (every device
-- reading carries the marker); any other row that mentions an
-- interpretation is read as JSON: the engine is told of it when a top-level
-- interpretation of the v3 system is anything but N, and it decides.

-- +goose Up
DROP TRIGGER vidda_care_outbox ON observation;
-- +goose StatementBegin
-- SQL, not plpgsql, so that the planner inlines it into the WHEN: the
-- ingest path's COPY pays for no function call per row.
CREATE FUNCTION vidda_care_flagged(content text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN content IS NULL THEN false
        WHEN strpos(content, '"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"') > 0
            THEN substr(content, strpos(content, '"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"') + 116, 2) <> 'N"'
        WHEN strpos(content, '"interpretation"') = 0 THEN false
        ELSE jsonb_path_exists(content::jsonb,
            '$.interpretation[*].coding[*] ? (@.system == "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation" && @.code != "N")')
    END
$$;
-- +goose StatementEnd
CREATE TRIGGER vidda_care_outbox AFTER INSERT ON observation FOR EACH ROW
    WHEN (vidda_care_flagged(NEW.content))
    EXECUTE FUNCTION vidda_care_enqueue();
CREATE TRIGGER vidda_care_outbox_update AFTER UPDATE OF content ON observation FOR EACH ROW
    WHEN (NOT NEW.deleted AND vidda_care_flagged(NEW.content) AND NOT vidda_care_flagged(OLD.content))
    EXECUTE FUNCTION vidda_care_enqueue();

-- +goose Down
DROP TRIGGER vidda_care_outbox_update ON observation;
DROP TRIGGER vidda_care_outbox ON observation;
DROP FUNCTION vidda_care_flagged(text);
CREATE TRIGGER vidda_care_outbox AFTER INSERT ON observation FOR EACH ROW
    WHEN (strpos(NEW.content, '"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"') > 0
      AND substr(NEW.content, strpos(NEW.content, '"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"') + 116, 2) <> 'N"')
    EXECUTE FUNCTION vidda_care_enqueue();
