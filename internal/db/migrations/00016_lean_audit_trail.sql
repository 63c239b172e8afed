-- A lean audit trail. An AuditEvent row used to hold the resource's whole
-- JSON (about 1.4 KB, compressed by TOAST on every insert) and its token
-- arrays: about 2.1 KB of WAL per audited request, and on this project's
-- 2-core reference machine the audit trail cost a read by id more than the
-- read itself (viddabench http, step 7). Now each access is one narrow row
-- of what happened (audit_record: who, what, which patient, when, from
-- where, how it ended), and the AuditEvent a FHIR client reads is rendered
-- from it by the auditevent view, with the columns fhir/search expects.
-- Nothing is lost: the rendering is the same resource the writer used to
-- store (internal/audit tests check every kind against fhir/search's own
-- extraction and against a golden file taken from the old writer), and the
-- AuditEvents stored before this migration move into audit_record with
-- their JSON as it was (stored) and their search columns.

-- +goose Up

-- The token keys fhir/search indexes a coding under (search.TokenKeys).
-- +goose StatementBegin
CREATE FUNCTION vidda_token_keys(system text, code text) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN coalesce(system, '') = '' AND coalesce(code, '') = '' THEN '{}'::text[]
        WHEN coalesce(code, '') = '' THEN ARRAY[system || '|*']
        WHEN coalesce(system, '') = '' THEN ARRAY['|' || code, '*|' || code]
        ELSE ARRAY[system || '|' || code, '*|' || code, system || '|*']
    END
$$;
-- +goose StatementEnd

-- What each kind of access (audit.Kind) reads as: its type, subtype and
-- action. internal/audit checks that this table is its own.
CREATE TABLE audit_kind (
    kind            smallint PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    type_system     text NOT NULL,
    type_code       text NOT NULL,
    type_display    text,
    subtype_system  text,
    subtype_code    text,
    subtype_display text,
    action          text NOT NULL CHECK (action IN ('C', 'R', 'U', 'D', 'E')),
    type_keys       text[] GENERATED ALWAYS AS (vidda_token_keys(type_system, type_code)) STORED,
    subtype_keys    text[] GENERATED ALWAYS AS (vidda_token_keys(subtype_system, subtype_code)) STORED,
    action_keys     text[] GENERATED ALWAYS AS (vidda_token_keys('http://hl7.org/fhir/audit-event-action', action)) STORED
);
INSERT INTO audit_kind (kind, name, type_system, type_code, type_display, subtype_system, subtype_code, subtype_display, action) VALUES
    (0, 'unknown', 'http://dicom.nema.org/resources/ontology/DCM', '110110', 'Patient Record', NULL, NULL, NULL, 'E'),
    (1, 'read', 'http://dicom.nema.org/resources/ontology/DCM', '110110', 'Patient Record', 'http://hl7.org/fhir/restful-interaction', 'read', NULL, 'R'),
    (2, 'vread', 'http://dicom.nema.org/resources/ontology/DCM', '110110', 'Patient Record', 'http://hl7.org/fhir/restful-interaction', 'vread', NULL, 'R'),
    (3, 'search', 'http://dicom.nema.org/resources/ontology/DCM', '110112', 'Query', 'http://hl7.org/fhir/restful-interaction', 'search-type', NULL, 'E'),
    (4, 'history-instance', 'http://dicom.nema.org/resources/ontology/DCM', '110110', 'Patient Record', 'http://hl7.org/fhir/restful-interaction', 'history-instance', NULL, 'R'),
    (5, 'history-type', 'http://dicom.nema.org/resources/ontology/DCM', '110112', 'Query', 'http://hl7.org/fhir/restful-interaction', 'history-type', NULL, 'R'),
    (6, 'create', 'http://dicom.nema.org/resources/ontology/DCM', '110110', 'Patient Record', 'http://hl7.org/fhir/restful-interaction', 'create', NULL, 'C'),
    (7, 'update', 'http://dicom.nema.org/resources/ontology/DCM', '110110', 'Patient Record', 'http://hl7.org/fhir/restful-interaction', 'update', NULL, 'U'),
    (8, 'delete', 'http://dicom.nema.org/resources/ontology/DCM', '110110', 'Patient Record', 'http://hl7.org/fhir/restful-interaction', 'delete', NULL, 'D'),
    (9, 'transaction', 'http://dicom.nema.org/resources/ontology/DCM', '110110', 'Patient Record', 'http://hl7.org/fhir/restful-interaction', 'transaction', NULL, 'E'),
    (10, 'batch', 'http://dicom.nema.org/resources/ontology/DCM', '110110', 'Patient Record', 'http://hl7.org/fhir/restful-interaction', 'batch', NULL, 'E'),
    (11, 'operation', 'http://dicom.nema.org/resources/ontology/DCM', '110112', 'Query', 'http://hl7.org/fhir/restful-interaction', 'operation', NULL, 'E'),
    (12, 'admin-query', 'http://dicom.nema.org/resources/ontology/DCM', '110112', 'Query', NULL, NULL, NULL, 'E'),
    (13, 'admin-change', 'http://dicom.nema.org/resources/ontology/DCM', '110137', 'User Security Attributes Changed', NULL, NULL, NULL, 'E'),
    (14, 'login', 'http://dicom.nema.org/resources/ontology/DCM', '110114', 'User Authentication', 'http://dicom.nema.org/resources/ontology/DCM', '110122', 'Login', 'E'),
    (15, 'logout', 'http://dicom.nema.org/resources/ontology/DCM', '110114', 'User Authentication', 'http://dicom.nema.org/resources/ontology/DCM', '110123', 'Logout', 'E'),
    (16, 'login-failed', 'http://dicom.nema.org/resources/ontology/DCM', '110114', 'User Authentication', 'http://dicom.nema.org/resources/ontology/DCM', '110122', 'Login', 'E'),
    (17, 'export', 'http://dicom.nema.org/resources/ontology/DCM', '110106', 'Export', 'http://hl7.org/fhir/restful-interaction', 'operation', NULL, 'E'),
    (18, 'video-join', 'urn:vidda:audit-event', 'video-visit', 'Video visit', 'urn:vidda:audit-event', 'join', 'Joined a video visit', 'E'),
    (19, 'video-admit', 'urn:vidda:audit-event', 'video-visit', 'Video visit', 'urn:vidda:audit-event', 'admit', 'Admitted a patient from the waiting room', 'E'),
    (20, 'video-leave', 'urn:vidda:audit-event', 'video-visit', 'Video visit', 'urn:vidda:audit-event', 'leave', 'Left a video visit', 'E'),
    (21, 'device-credential-add', 'http://dicom.nema.org/resources/ontology/DCM', '110137', 'User Security Attributes Changed', 'urn:vidda:audit-event', 'device-credential-add', 'Device credentials issued', 'C'),
    (22, 'device-credential-rotate', 'http://dicom.nema.org/resources/ontology/DCM', '110137', 'User Security Attributes Changed', 'urn:vidda:audit-event', 'device-credential-rotate', 'Device credentials rotated', 'U'),
    (23, 'device-credential-disable', 'http://dicom.nema.org/resources/ontology/DCM', '110137', 'User Security Attributes Changed', 'urn:vidda:audit-event', 'device-credential-disable', 'Device credentials disabled', 'D');

-- One row per access and patient. Empty parts are NULL (they cost nothing).
CREATE TABLE audit_record (
    id             text PRIMARY KEY,      -- UUIDv7: time-ordered
    recorded       timestamptz NOT NULL,  -- when it happened, to the millisecond
    kind           smallint NOT NULL,     -- audit_kind
    outcome        smallint NOT NULL CHECK (outcome IN (0, 4, 8, 12)),
    patient_id     text,                  -- the compartment: AuditEvent?patient=
    agent          text[] NOT NULL DEFAULT '{}', -- AuditEvent?agent=
    entity         text[] NOT NULL DEFAULT '{}', -- AuditEvent?entity=
    -- The agent: who acted, as the request said.
    agent_ref      text,                  -- Practitioner/x, Patient/x
    subject        text,
    role           text,
    issuer         text,
    name           text,
    client_id      text,
    token_id       text,                  -- the token's jti, never the token
    address        text,
    address_ip     boolean NOT NULL DEFAULT false,
    -- What was touched.
    resource       text,                  -- Observation/x, unless it is the patient
    version        text,
    entity_patient text,                  -- the patient this row is about
    query          text,
    request_id     text,
    detail         text,
    outcome_desc   text,
    observer       text NOT NULL,         -- the vidda instance that saw it
    stored         text                   -- an AuditEvent stored before 00016, as it was
);
CREATE INDEX audit_record_recorded_idx ON audit_record (recorded, id);
CREATE INDEX audit_record_patient_idx ON audit_record (patient_id, recorded, id);
CREATE INDEX audit_record_agent_idx ON audit_record USING gin (agent);

-- +goose StatementBegin
CREATE FUNCTION vidda_instant(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
-- +goose StatementEnd

-- The FHIR R4 AuditEvent of r (IHE BALP where cheap; see internal/audit).
-- +goose StatementBegin
CREATE FUNCTION vidda_audit_json(r audit_record, k audit_kind) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT json_strip_nulls(json_build_object(
    'resourceType', 'AuditEvent',
    'id', r.id,
    'meta', json_build_object('versionId', '1', 'lastUpdated', vidda_instant(r.recorded)),
    'type', json_build_object('system', k.type_system, 'code', k.type_code, 'display', k.type_display),
    'subtype', CASE WHEN k.subtype_code IS NOT NULL THEN json_build_array(
        json_build_object('system', k.subtype_system, 'code', k.subtype_code, 'display', k.subtype_display)) END,
    'action', k.action,
    'recorded', vidda_instant(r.recorded),
    'outcome', r.outcome::text,
    'outcomeDesc', r.outcome_desc,
    'agent', (SELECT json_agg(a ORDER BY n) FROM (VALUES
        (1, json_build_object(
            -- BALP: the user receives data (IRCP) or authors it (AUT).
            'type', CASE WHEN k.type_code <> '110114' THEN json_build_object('coding', json_build_array(json_build_object(
                'system', 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
                'code', CASE WHEN k.action IN ('C', 'U', 'D') THEN 'AUT' ELSE 'IRCP' END))) END,
            'role', CASE WHEN r.role IS NOT NULL THEN json_build_array(json_build_object('coding', json_build_array(
                json_build_object('system', 'urn:vidda:role', 'code', r.role)))) END,
            'who', CASE WHEN r.agent_ref IS NOT NULL OR r.subject IS NOT NULL THEN json_build_object(
                'reference', r.agent_ref,
                'identifier', CASE WHEN r.subject IS NOT NULL THEN json_build_object(
                    'system', coalesce(r.issuer, 'urn:vidda:subject'), 'value', r.subject) END) END,
            'name', r.name,
            'requestor', true,
            'policy', CASE WHEN r.token_id IS NOT NULL THEN json_build_array(r.token_id) END,
            'network', CASE WHEN r.address IS NOT NULL THEN json_build_object(
                'address', r.address, 'type', CASE WHEN r.address_ip THEN '2' ELSE '1' END) END)),
        (2, CASE WHEN r.client_id IS NOT NULL THEN json_build_object(
            'type', json_build_object('coding', json_build_array(json_build_object(
                'system', 'http://dicom.nema.org/resources/ontology/DCM', 'code', '110150'))),
            'who', json_build_object('identifier', json_build_object('system', 'urn:vidda:oauth-client', 'value', r.client_id)),
            'requestor', false) END)
        ) v(n, a) WHERE a IS NOT NULL),
    'source', json_build_object(
        'observer', json_build_object('identifier', json_build_object('system', 'urn:vidda:instance', 'value', r.observer)),
        'type', json_build_array(json_build_object('system', 'http://terminology.hl7.org/CodeSystem/security-source-type', 'code', '4'))),
    'entity', (SELECT json_agg(e ORDER BY n) FROM (VALUES
        (1, CASE WHEN r.resource IS NOT NULL THEN json_build_object(
            'what', json_build_object('reference', r.resource || coalesce('/_history/' || r.version, '')),
            'type', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/audit-entity-type', 'code', '2'),
            'role', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/object-role', 'code', '4')) END),
        (2, CASE WHEN r.entity_patient IS NOT NULL THEN json_build_object(
            'what', json_build_object('reference', 'Patient/' || r.entity_patient),
            'type', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/audit-entity-type', 'code', '1'),
            'role', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/object-role', 'code', '1')) END),
        (3, CASE WHEN r.query IS NOT NULL THEN json_build_object(
            'type', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/audit-entity-type', 'code', '2'),
            'role', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/object-role', 'code', '24'),
            'query', translate(encode(convert_to(r.query, 'UTF8'), 'base64'), E'\n', '')) END),
        (4, CASE WHEN r.request_id IS NOT NULL OR r.detail IS NOT NULL THEN json_build_object(
            'what', CASE WHEN r.request_id IS NOT NULL THEN json_build_object('identifier', json_build_object('value', r.request_id)) END,
            'type', json_build_object('system', 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType', 'code', 'XrequestId'),
            'description', r.detail) END)
        ) v(n, e) WHERE e IS NOT NULL)
))::text
$$;
-- +goose StatementEnd

-- The AuditEvents stored so far keep their JSON. Their kind is the one
-- whose codes they carry (kinds that differ only in outcome, login and
-- login-failed, index alike), and their outcome the code they carry.
INSERT INTO audit_record (id, recorded, kind, outcome, patient_id, agent, entity, observer, stored)
SELECT a.id, a.date_start,
       coalesce((SELECT k.kind FROM audit_kind k
                  WHERE k.type_keys = a.type AND k.subtype_keys = a.subtype AND k.action_keys = a.action
                  ORDER BY k.kind LIMIT 1), 0),
       coalesce((SELECT substr(o, 3)::smallint FROM unnest(a.outcome) o WHERE o IN ('*|0', '*|4', '*|8', '*|12')), 12),
       a.patient_id, a.agent, a.entity,
       coalesce(a.content::jsonb #>> '{source,observer,identifier,value}', 'vidda'), a.content
  FROM auditevent a;
DROP TABLE auditevent;

-- What fhir/store reads as the AuditEvent table: the same columns as every
-- resource table. It is never written through (internal/auth refuses
-- every change of an AuditEvent; PostgreSQL refuses an INSERT into it).
-- One table and a lookup, so that a search with a limit renders only the
-- rows it returns.
CREATE VIEW auditevent AS
    SELECT r.id, 1::bigint AS version_id, r.recorded AS last_updated, false AS deleted, r.patient_id,
           coalesce(r.stored, vidda_audit_json(r, k)) AS content,
           r.recorded AS date_start, r.recorded + interval '1 millisecond' AS date_end,
           coalesce(k.type_keys, '{}') AS type, coalesce(k.subtype_keys, '{}') AS subtype,
           coalesce(k.action_keys, '{}') AS action,
           vidda_token_keys('http://hl7.org/fhir/audit-event-outcome', r.outcome::text) AS outcome,
           r.agent, r.entity
      FROM audit_record r LEFT JOIN audit_kind k ON k.kind = r.kind;

-- +goose Down
CREATE TABLE auditevent_v1 AS SELECT * FROM auditevent;
DROP VIEW auditevent;
ALTER TABLE auditevent_v1 RENAME TO auditevent;
ALTER TABLE auditevent ADD PRIMARY KEY (id),
    ALTER COLUMN version_id SET NOT NULL, ALTER COLUMN last_updated SET NOT NULL,
    ALTER COLUMN deleted SET NOT NULL, ALTER COLUMN deleted SET DEFAULT false,
    ALTER COLUMN type SET NOT NULL, ALTER COLUMN type SET DEFAULT '{}',
    ALTER COLUMN subtype SET NOT NULL, ALTER COLUMN subtype SET DEFAULT '{}',
    ALTER COLUMN action SET NOT NULL, ALTER COLUMN action SET DEFAULT '{}',
    ALTER COLUMN outcome SET NOT NULL, ALTER COLUMN outcome SET DEFAULT '{}',
    ALTER COLUMN agent SET NOT NULL, ALTER COLUMN agent SET DEFAULT '{}',
    ALTER COLUMN entity SET NOT NULL, ALTER COLUMN entity SET DEFAULT '{}';
CREATE INDEX auditevent_date_idx ON auditevent (date_start DESC, id DESC);
CREATE INDEX auditevent_patient_date_idx ON auditevent (patient_id, date_start DESC, id DESC);
CREATE INDEX auditevent_agent_idx ON auditevent USING gin (agent);
DROP FUNCTION vidda_audit_json(audit_record, audit_kind);
DROP FUNCTION vidda_instant(timestamptz);
DROP TABLE audit_record, audit_kind;
DROP FUNCTION vidda_token_keys(text, text);
