// Package subscription implements R4 Subscriptions that push: rest-hook
// channels whose criteria are FHIR searches.
//
// A Subscription written through the API is checked here (Service):
// criteria that the search engine parses, a rest-hook channel to an https
// endpoint (http only on loopback unless configured), payload
// application/fhir+json or none; the server owns status and error. It is
// stored with the grant of the client that wrote it, the store.Access that
// client has on the searched type, so notifications carry only what it may
// read.
//
// The Runner does the rest, in one vidda instance at a time (the holder of
// the store's Feed lock): it handshakes requested subscriptions (requested
// → active, or error), matches the store's change feed against the
// criteria of active ones, writes matches to the outbox in the same
// transaction that moves the feed's cursor, and delivers the outbox with
// retries and exponential back-off, marking a subscription error after
// Config.ErrorAfter failures and active again on the next success. Every
// step is in PostgreSQL, so a restart resumes where it stopped; delivery
// is at least once, and each notification carries an event id that stays
// the same across attempts (Bundle.id and X-Vidda-Event-Id) for receivers
// to deduplicate on.
//
// It imports fhir, fhir/search and fhir/store.
package subscription
