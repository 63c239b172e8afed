// Package web serves vidda's server-rendered pages: sign-in (GET and POST
// /login), sign-out (POST /logout), the language switch (POST /lang), the
// nurse's dashboard under /app and the patient's own page /me.
//
// The dashboard: /app is the worklist of open Tasks of the patients the
// signed-in practitioner cares for (worklist.go), most urgent first;
// /app/patients/{id} a patient's latest values, SVG trend charts drawn by
// the server with the limits as a band (chart.go), open Tasks with an
// acknowledge form, a video-visit button and the limit (Goal) forms
// (patient.go, actions.go). /app/events is a Server-Sent Events stream fed
// by PostgreSQL LISTEN on vidda_worklist, one connection per process
// (events.go); static/live.js refetches the list (/app/worklist) when it
// says so. Every page works without script but the live updates.
//
// /me tells a patient, in plain words and large type, their readings and
// week, whether the nurse has looked, their upcoming visits and what to
// do when a device goes quiet (me.go).
//
// Everything a page shows is read through the FHIR store with the
// store.Access the one policy (auth.Decide) gives the signed-in user, as
// the API would; every page that reads or writes patient data records an
// AuditEvent. Texts come from one catalog per language (messages/en.json,
// sv.json, nb.json), chosen by the vidda_lang cookie or Accept-Language;
// numbers, dates and times follow the language and the clinic's time
// zone (i18n.go).
//
// Pages are html/template files and static assets embedded with go:embed;
// they load nothing from elsewhere and run no inline script, so a strict
// Content-Security-Policy holds. A signed-in browser carries the session
// cookie auth.SessionCookie; every form that changes state carries the
// session's CSRF token (field csrf), and the sign-in form, which comes
// before any session, a double-submit token of its own.
//
// It may import Fiber, internal/auth, internal/care (the limits, plans and
// Task vocabulary it shows are the engine's), internal/audit, devices (the
// code table: what a measure is), fhir, fhir/store and fhir/search (the
// search parameters, and the one parser of FHIR dates); the session store,
// the FHIR store and the audit recorder are small interfaces it declares,
// which cmd/vidda fills in.
package web
