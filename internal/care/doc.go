// Package care is the clinical-review engine (issue 6): it flags device
// readings by the limits in force for the patient, keeps the nurses'
// worklist of FHIR Tasks, and notices planned measurements that do not
// come.
//
// Limits. The clinic's defaults come from a JSON rules file (Rules;
// rules.json is built in, VIDDA_CARE_RULES names another): per measure
// (LOINC code) low, critical_low, high and critical_high bands, each with
// one comparison that says on which side the limit itself lies ("below":
// 92 leaves 92 normal, "at_or_above": 180 flags 180) and the Task priority
// it asks for; trend rules; late and missed-measurement settings. A
// patient's Goal (lifecycleStatus active, subject the patient,
// target.measure a LOINC code, target.detailRange low/high) replaces the
// normal range of that measure: FHIR ranges are inclusive, so the Goal's
// ends are normal. The default critical bands stay, flagging only values
// outside the Goal's range, and the Goal's bands keep the default
// priorities.
//
// Interpretation. Every device reading is judged before it is stored
// (Interpreter; cmd/vidda connects it to devices.Judge): N, L, H, LL, HH
// (HL7 v3 ObservationInterpretation), or A when a trend rule fires (weight
// gain of more than 2 kg within 72 h, for patients with an active
// CarePlan of category SNOMED 84114007 heart failure). A panel's
// components are judged each (component.interpretation) and the
// Observation carries the worst. A reading is judged by the Goal versions
// in force when it was measured (a version is in force from its
// meta.lastUpdated, and Goal.startDate, until the next version), so a
// gateway's backlog is judged as if it had arrived on time; a reading
// received more than late_after (1 h) after it was measured is also
// tagged meta.tag urn:vidda:reading-flag|late. The Interpreter caches each
// patient's Goal versions and CarePlan categories (one query per patient,
// dropped on NOTIFY vidda_care_limits from any Goal or CarePlan write, and
// after CacheTTL); a trend costs one indexed query per reading it applies
// to. A lookup that fails or is slow (LookupTimeout) falls back to the
// defaults rather than hold up ingestion.
//
// Worklist. Storing a reading flagged other than N puts a row in
// care_outbox in the same transaction (a trigger of migration 00012), so
// a crash between the commit and the Task write loses nothing. The engine
// of one instance (advisory lock "vidda.care", held by a connection of its
// own) turns rows into Tasks: one open Task per patient and problem
// ("reading|<LOINC>", "trend|<rule>", "missed|<LOINC>"; recorded in
// care_problem and in Task.identifier urn:vidda:care-problem). A Task has
// code urn:vidda:care-task|review-reading, focus the first reading, for
// the patient, status requested, intent order, authoredOn, reasonCode the
// measure, and priority from the worst reading (it escalates when a worse
// one comes). Further readings are recorded as Task.input (type
// InputReading, valueReference; see TaskReadings). A closed Task (acknowledged) stays
// closed; the next flagged reading of the problem opens a new one. Task
// ids are chosen by the engine and written as FHIR update-as-create, so a
// retry never makes a second Task. Nurses acknowledge through the FHIR API
// (PUT of the Task with status completed, owner and note) or
// Worklist.Acknowledge.
//
// Missed measurements: see missed.go.
//
// Events for dashboards: NOTIFY vidda_worklist (patient id) on every Task
// write (migration 00011).
//
// It imports fhir and fhir/store (the Store interface is what it needs of
// the store; cmd connects them), fhir/search for its FHIR date parser (the
// one the store indexes dates with), devices for the code table (what a
// measure is: its codes, name and unit; the rules add limits), and pgx for
// its own tables and for the read-only queries of limits, trends and
// missed measurements.
package care
