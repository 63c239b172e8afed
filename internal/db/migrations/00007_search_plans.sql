-- Plans for one patient's Observations (issue 3, make bench-search).
--
-- date_end becomes the last key of the (patient_id, date_start DESC, id
-- DESC) index. It never reorders the index (id is unique), so the index
-- still pages a patient's readings newest first; but the conditions that
-- date prefixes put on date_end (ge, gt, eb, eq, ap, ne: see
-- fhir/store dateSQL) are now checked on the index entries, before the
-- heap is read. "date=ge<30 days ago>" for a patient with 1,000 readings
-- read 1,012 buffers and now reads 116. The entries grow by 8 bytes.
--
-- The index is built while ingestion waits (CREATE INDEX takes a SHARE
-- lock): about 10 s per million Observations on two cores.

-- +goose Up
CREATE INDEX observation_patient_date_end_idx ON observation (patient_id, date_start DESC, id DESC, date_end);
DROP INDEX observation_patient_date_idx;
ALTER INDEX observation_patient_date_end_idx RENAME TO observation_patient_date_idx;

-- +goose Down
CREATE INDEX observation_patient_date_start_idx ON observation (patient_id, date_start DESC, id DESC);
DROP INDEX observation_patient_date_idx;
ALTER INDEX observation_patient_date_start_idx RENAME TO observation_patient_date_idx;
