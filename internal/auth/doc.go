// Package auth owns who may do what in vidda: the bearer tokens vidda mints
// and verifies, the SMART on FHIR scopes they carry, and the one policy
// layer, Decide, that rules on every FHIR interaction.
//
// Tokens are JWTs (RFC 9068 "at+jwt") signed with Ed25519 keys kept in
// PostgreSQL by a KeyStore, which rotates them and caches the verification
// keys in memory, so several vidda processes sharing one database mint and
// verify each other's tokens.
//
// Every FHIR request goes through the same two steps: Verify turns the
// token into a Principal, and Decide turns the Principal and the requested
// Action into a Decision (or ErrForbidden). A non-empty Decision.PatientID
// binds the interaction to that patient's compartment; the store enforces it.
//
// An OIDCVerifier also accepts access tokens of an external OpenID Connect
// provider, mapping their claims to the same Principal; an IssuerRouter
// sends each token to the verifier of its issuer, so the HTTP edge sees one
// verifier. Package oidctest runs a stand-in provider for tests.
//
// Sessions, users and audit belong here too, later.
//
// It imports internal/db, pgx, golang-jwt, keyfunc/jwkset (the provider's
// JWKS), x/time/rate and google/uuid only; nothing in it knows about HTTP
// servers or FHIR resources beyond their type names.
package auth
