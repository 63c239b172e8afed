// Package httpapi is the HTTP edge: the Fiber app, its middleware (request
// id, recover, access log, metrics, authentication, limits), the FHIR REST
// routes, and the one error handler that turns domain errors into
// OperationOutcomes with the right status.
//
// It is the only package of the API that imports Fiber. Handlers are thin:
// parse the request, ask the policy, call the store, write the response.
// Fiber types never leave this package.
package httpapi
