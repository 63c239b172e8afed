-- The search engine's columns: one or two per search parameter declared in
-- fhir/search (see search.Param.Columns; the store's schema test checks
-- that every declared parameter has its columns here).
--
-- String parameters keep the values normalized (lower case, accents
-- removed) for the default starts-with and :contains searches and as
-- written for :exact. A quantity keeps its value as numeric and its unit
-- as token keys.
--
-- Resources stored before this migration have empty new columns until
-- they are written again; a reindex command is still to come (see README).

-- +goose Up
ALTER TABLE patient
    ADD COLUMN name                 text[] NOT NULL DEFAULT '{}',
    ADD COLUMN name_exact           text[] NOT NULL DEFAULT '{}',
    ADD COLUMN family               text[] NOT NULL DEFAULT '{}',
    ADD COLUMN family_exact         text[] NOT NULL DEFAULT '{}',
    ADD COLUMN given                text[] NOT NULL DEFAULT '{}',
    ADD COLUMN given_exact          text[] NOT NULL DEFAULT '{}',
    ADD COLUMN birthdate_start      timestamptz,
    ADD COLUMN birthdate_end        timestamptz,
    ADD COLUMN gender               text[] NOT NULL DEFAULT '{}',
    ADD COLUMN general_practitioner text[] NOT NULL DEFAULT '{}',
    ADD COLUMN active               text[] NOT NULL DEFAULT '{}';
CREATE INDEX patient_family_idx ON patient ((family[1]));
CREATE INDEX patient_birthdate_idx ON patient (birthdate_start);
CREATE INDEX patient_general_practitioner_idx ON patient USING gin (general_practitioner);

ALTER TABLE practitioner
    ADD COLUMN name       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN name_exact text[] NOT NULL DEFAULT '{}';

ALTER TABLE organization
    ADD COLUMN name       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN name_exact text[] NOT NULL DEFAULT '{}';

ALTER TABLE device
    ADD COLUMN type text[] NOT NULL DEFAULT '{}',
    ADD COLUMN url  text[] NOT NULL DEFAULT '{}';

ALTER TABLE observation
    ADD COLUMN value_quantity      numeric,
    ADD COLUMN value_quantity_unit text[] NOT NULL DEFAULT '{}',
    ADD COLUMN combo_code          text[] NOT NULL DEFAULT '{}',
    ADD COLUMN component_code      text[] NOT NULL DEFAULT '{}',
    ADD COLUMN encounter           text[] NOT NULL DEFAULT '{}',
    ADD COLUMN based_on            text[] NOT NULL DEFAULT '{}';

-- "This patient's readings, newest first", in the order search pages them
-- (date_start DESC, id DESC), and $lastn: per patient and code (the first
-- coding's system|code), newest first.
DROP INDEX observation_patient_date_idx;
CREATE INDEX observation_patient_date_idx ON observation (patient_id, date_start DESC, id DESC);
CREATE INDEX observation_patient_code_date_idx ON observation (patient_id, (code[1]), date_start DESC, id DESC);
CREATE INDEX observation_encounter_idx ON observation USING gin (encounter);

-- +goose Down
DROP INDEX observation_encounter_idx;
DROP INDEX observation_patient_code_date_idx;
DROP INDEX observation_patient_date_idx;
CREATE INDEX observation_patient_date_idx ON observation (patient_id, date_start DESC, id);
ALTER TABLE observation
    DROP COLUMN value_quantity, DROP COLUMN value_quantity_unit, DROP COLUMN combo_code,
    DROP COLUMN component_code, DROP COLUMN encounter, DROP COLUMN based_on;
ALTER TABLE device DROP COLUMN type, DROP COLUMN url;
ALTER TABLE organization DROP COLUMN name, DROP COLUMN name_exact;
ALTER TABLE practitioner DROP COLUMN name, DROP COLUMN name_exact;
DROP INDEX patient_general_practitioner_idx;
DROP INDEX patient_birthdate_idx;
DROP INDEX patient_family_idx;
ALTER TABLE patient
    DROP COLUMN name, DROP COLUMN name_exact, DROP COLUMN family, DROP COLUMN family_exact,
    DROP COLUMN given, DROP COLUMN given_exact, DROP COLUMN birthdate_start, DROP COLUMN birthdate_end,
    DROP COLUMN gender, DROP COLUMN general_practitioner, DROP COLUMN active;
