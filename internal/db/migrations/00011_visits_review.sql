-- The resource tables of nurse review (issue 6: Task, Goal, CarePlan) and
-- video visits (issue 7: Appointment, Encounter). Columns follow
-- fhir/search (token, reference and uri: text[] of keys; date:
-- _start/_end), like every other resource table; the store's schema test
-- checks them against the registry.
--
-- The worklist is live: every insert or update of a Task NOTIFYs
-- vidda_worklist with the Task's patient id (empty when it has none), so
-- the dashboards of every instance hear it (internal/web, LISTEN). NOTIFY
-- is delivered at commit, and not at all on rollback.

-- +goose Up
CREATE TABLE appointment (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    identifier   text[]      NOT NULL DEFAULT '{}',
    actor        text[]      NOT NULL DEFAULT '{}',
    practitioner text[]      NOT NULL DEFAULT '{}',
    status       text[]      NOT NULL DEFAULT '{}',
    date_start   timestamptz,
    date_end     timestamptz
);
CREATE INDEX appointment_patient_idx ON appointment (patient_id, date_start DESC, id DESC);
CREATE INDEX appointment_actor_idx ON appointment USING gin (actor);
CREATE TABLE appointment_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX appointment_history_updated_idx ON appointment_history (last_updated DESC);

CREATE TABLE encounter (
    id           text PRIMARY KEY,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL DEFAULT false,
    patient_id   text,
    content      text,
    identifier   text[]      NOT NULL DEFAULT '{}',
    subject      text[]      NOT NULL DEFAULT '{}',
    status       text[]      NOT NULL DEFAULT '{}',
    class        text[]      NOT NULL DEFAULT '{}',
    type         text[]      NOT NULL DEFAULT '{}',
    appointment  text[]      NOT NULL DEFAULT '{}',
    participant  text[]      NOT NULL DEFAULT '{}',
    date_start   timestamptz,
    date_end     timestamptz
);
CREATE INDEX encounter_patient_idx ON encounter (patient_id, date_start DESC, id DESC);
CREATE INDEX encounter_appointment_idx ON encounter USING gin (appointment);
CREATE TABLE encounter_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX encounter_history_updated_idx ON encounter_history (last_updated DESC);

CREATE TABLE task (
    id               text PRIMARY KEY,
    version_id       bigint      NOT NULL,
    last_updated     timestamptz NOT NULL,
    deleted          boolean     NOT NULL DEFAULT false,
    patient_id       text,
    content          text,
    identifier       text[]      NOT NULL DEFAULT '{}',
    subject          text[]      NOT NULL DEFAULT '{}',
    focus            text[]      NOT NULL DEFAULT '{}',
    status           text[]      NOT NULL DEFAULT '{}',
    priority         text[]      NOT NULL DEFAULT '{}',
    code             text[]      NOT NULL DEFAULT '{}',
    business_status  text[]      NOT NULL DEFAULT '{}',
    owner            text[]      NOT NULL DEFAULT '{}',
    authored_on_start timestamptz,
    authored_on_end   timestamptz,
    modified_start   timestamptz,
    modified_end     timestamptz
);
CREATE INDEX task_patient_idx ON task (patient_id, last_updated DESC, id DESC);
CREATE INDEX task_status_idx ON task USING gin (status);
CREATE INDEX task_focus_idx ON task USING gin (focus);
CREATE TABLE task_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX task_history_updated_idx ON task_history (last_updated DESC);

-- +goose StatementBegin
CREATE FUNCTION vidda_worklist_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vidda_worklist', coalesce(NEW.patient_id, ''));
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER vidda_worklist AFTER INSERT OR UPDATE ON task
    FOR EACH ROW EXECUTE FUNCTION vidda_worklist_notify();

CREATE TABLE goal (
    id                 text PRIMARY KEY,
    version_id         bigint      NOT NULL,
    last_updated       timestamptz NOT NULL,
    deleted            boolean     NOT NULL DEFAULT false,
    patient_id         text,
    content            text,
    identifier         text[]      NOT NULL DEFAULT '{}',
    subject            text[]      NOT NULL DEFAULT '{}',
    lifecycle_status   text[]      NOT NULL DEFAULT '{}',
    achievement_status text[]      NOT NULL DEFAULT '{}',
    category           text[]      NOT NULL DEFAULT '{}',
    target_measure     text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX goal_patient_idx ON goal (patient_id, last_updated DESC, id DESC);
CREATE TABLE goal_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX goal_history_updated_idx ON goal_history (last_updated DESC);

CREATE TABLE careplan (
    id            text PRIMARY KEY,
    version_id    bigint      NOT NULL,
    last_updated  timestamptz NOT NULL,
    deleted       boolean     NOT NULL DEFAULT false,
    patient_id    text,
    content       text,
    identifier    text[]      NOT NULL DEFAULT '{}',
    subject       text[]      NOT NULL DEFAULT '{}',
    status        text[]      NOT NULL DEFAULT '{}',
    intent        text[]      NOT NULL DEFAULT '{}',
    category      text[]      NOT NULL DEFAULT '{}',
    activity_code text[]      NOT NULL DEFAULT '{}',
    care_team     text[]      NOT NULL DEFAULT '{}',
    goal          text[]      NOT NULL DEFAULT '{}',
    date_start    timestamptz,
    date_end      timestamptz
);
CREATE INDEX careplan_patient_idx ON careplan (patient_id, last_updated DESC, id DESC);
CREATE INDEX careplan_status_idx ON careplan USING gin (status);
CREATE TABLE careplan_history (LIKE patient_history INCLUDING ALL);
CREATE INDEX careplan_history_updated_idx ON careplan_history (last_updated DESC);

-- +goose Down
DROP TABLE careplan_history, careplan, goal_history, goal;
DROP TRIGGER vidda_worklist ON task;
DROP FUNCTION vidda_worklist_notify();
DROP TABLE task_history, task, encounter_history, encounter, appointment_history, appointment;
