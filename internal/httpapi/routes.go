package httpapi

import (
	"net/http"
	"slices"
)

// Routes lists what the server answers, as "METHOD /path" with Fiber's
// parameter syntax (GET /fhir/:type/:id), sorted. HEAD routes Fiber adds
// beside every GET are left out. The authorization matrix test walks this
// list: a route without a row there fails it.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.app.GetRoutes(true) {
		if r.Method == http.MethodHead {
			continue
		}
		out = append(out, r.Method+" "+r.Path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// logRoutes writes the route table at debug level when the server starts.
func (s *Server) logRoutes() {
	for _, r := range s.Routes() {
		s.log.Debug("http: route", "route", r)
	}
}
