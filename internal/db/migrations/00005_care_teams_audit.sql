-- Who may see which patients, and the audit trail.
--
-- CareTeam and PractitionerRole decide which patients a nurse or clinician
-- reaches (internal/auth policy, fhir/store care_access): the members of a
-- patient's active CareTeams, and the practitioners holding an active role
-- at the Organization that manages the patient's record.
--
-- AuditEvent rows are written by vidda itself (internal/audit), never
-- through the API; they have no history table because they never change.

-- +goose Up
ALTER TABLE patient ADD COLUMN organization text[] NOT NULL DEFAULT '{}';
CREATE INDEX patient_organization_idx ON patient USING gin (organization);

CREATE TABLE practitionerrole (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    identifier   text[]      NOT NULL DEFAULT '{}',
    practitioner text[]      NOT NULL DEFAULT '{}',
    organization text[]      NOT NULL DEFAULT '{}',
    role         text[]      NOT NULL DEFAULT '{}',
    active       text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX practitionerrole_practitioner_idx ON practitionerrole USING gin (practitioner);
CREATE TABLE practitionerrole_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX practitionerrole_history_updated_idx ON practitionerrole_history (last_updated DESC);

CREATE TABLE careteam (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    identifier   text[]      NOT NULL DEFAULT '{}',
    subject      text[]      NOT NULL DEFAULT '{}',
    status       text[]      NOT NULL DEFAULT '{}',
    category     text[]      NOT NULL DEFAULT '{}',
    participant  text[]      NOT NULL DEFAULT '{}',
    date_start   timestamptz,
    date_end     timestamptz
);
CREATE INDEX careteam_patient_idx ON careteam (patient_id);
CREATE INDEX careteam_participant_idx ON careteam USING gin (participant);
CREATE TABLE careteam_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX careteam_history_updated_idx ON careteam_history (last_updated DESC);

-- care_access lists (practitioner, patient) pairs: "Practitioner/<id>" may
-- reach the compartment of patient <id>. A CareTeam counts while it is not
-- inactive, suspended or entered-in-error (proposed and active do); a
-- PractitionerRole counts unless active is false.
CREATE VIEW care_access AS
    SELECT m.member AS practitioner, c.patient_id
      FROM careteam c, unnest(c.participant) AS m(member)
     WHERE NOT c.deleted AND c.patient_id IS NOT NULL
       AND NOT c.status && ARRAY['http://hl7.org/fhir/care-team-status|inactive',
                                 'http://hl7.org/fhir/care-team-status|suspended',
                                 'http://hl7.org/fhir/care-team-status|entered-in-error']
    UNION
    SELECT pr.member AS practitioner, p.id AS patient_id
      FROM practitionerrole r, unnest(r.practitioner) AS pr(member), patient p
     WHERE NOT r.deleted AND NOT r.active @> ARRAY['*|false']
       AND NOT p.deleted AND p.organization && r.organization;

CREATE TABLE auditevent (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    date_start   timestamptz,
    date_end     timestamptz,
    type         text[]      NOT NULL DEFAULT '{}',
    subtype      text[]      NOT NULL DEFAULT '{}',
    action       text[]      NOT NULL DEFAULT '{}',
    outcome      text[]      NOT NULL DEFAULT '{}',
    agent        text[]      NOT NULL DEFAULT '{}',
    entity       text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX auditevent_date_idx ON auditevent (date_start DESC, id DESC);
CREATE INDEX auditevent_patient_date_idx ON auditevent (patient_id, date_start DESC, id DESC);
CREATE INDEX auditevent_agent_idx ON auditevent USING gin (agent);
-- An AuditEvent never changes; the history table exists because every
-- resource table has one (history and vread read it).
CREATE TABLE auditevent_history (LIKE patient_history INCLUDING ALL);

-- +goose Down
DROP TABLE auditevent_history, auditevent;
DROP VIEW care_access;
DROP TABLE careteam_history, careteam, practitionerrole_history, practitionerrole;
DROP INDEX patient_organization_idx;
ALTER TABLE patient DROP COLUMN organization;
