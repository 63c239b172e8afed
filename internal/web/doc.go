// Package web serves vidda's server-rendered pages: for now the sign-in
// page (GET and POST /login), sign-out (POST /logout) and the placeholder
// landing pages /app (staff) and /me (patients), with their stylesheet.
//
// Pages are html/template files and static assets embedded with go:embed;
// they load nothing from elsewhere and run no inline script, so a strict
// Content-Security-Policy holds. A signed-in browser carries the session
// cookie auth.SessionCookie; every form that changes state carries the
// session's CSRF token (field csrf), and the sign-in form, which comes
// before any session, a double-submit token of its own.
//
// It may import Fiber, internal/auth, internal/care and fhir; the session
// store and the audit recorder are small interfaces it declares, which
// cmd/vidda fills in.
package web
