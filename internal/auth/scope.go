package auth

import (
	"fmt"
	"strings"
)

// ScopeContext is the part of a SMART scope before the slash: whose data
// the scope reaches.
type ScopeContext string

// The SMART scope contexts.
const (
	// ContextPatient reaches the compartment of the patient in context.
	ContextPatient ScopeContext = "patient"
	// ContextUser reaches what the user may see.
	ContextUser ScopeContext = "user"
	// ContextSystem reaches what a backend client was granted.
	ContextSystem ScopeContext = "system"
)

// Perms is a set of SMART v2 permissions (c, r, u, d, s).
type Perms uint8

// The SMART v2 permissions
// (https://build.fhir.org/ig/HL7/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-fhir-resources).
const (
	// PermCreate allows create.
	PermCreate Perms = 1 << iota
	// PermRead allows read, vread and instance history.
	PermRead
	// PermUpdate allows update (and patch).
	PermUpdate
	// PermDelete allows delete.
	PermDelete
	// PermSearch allows search and type or system history.
	PermSearch

	// PermAll is every permission: v2 "cruds", v1 "*".
	PermAll = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
)

// permLetters are the v2 letters in the order the spec writes them.
const permLetters = "cruds"

// Has reports whether p holds every permission in q.
func (p Perms) Has(q Perms) bool { return p&q == q }

// String spells p in SMART v2 form ("rs", "cruds"); "" when empty.
func (p Perms) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Scope is one SMART resource scope: context/ResourceType.permissions.
type Scope struct {
	// Context is patient, user or system.
	Context ScopeContext
	// ResourceType is a FHIR resource type name or "*" for all types.
	ResourceType string
	// Perms are the granted permissions; never empty.
	Perms Perms
}

// String writes s in SMART v2 form, e.g. "patient/Observation.rs".
func (s Scope) String() string {
	return string(s.Context) + "/" + s.ResourceType + "." + s.Perms.String()
}

// Allows reports whether s grants every permission in need on resources of
// type resourceType. A wildcard scope covers every type, including the
// empty type of system-wide interactions; a typed scope covers only its own.
func (s Scope) Allows(resourceType string, need Perms) bool {
	if s.ResourceType != "*" && s.ResourceType != resourceType {
		return false
	}
	return s.Perms.Has(need)
}

// ParseScope parses one SMART resource scope in v1 form
// ("patient/Observation.read", "user/*.*", "system/*.write") or v2 form
// ("patient/Observation.rs", "user/*.cruds"). v1 read means r+s, write
// c+u+d, * all. v2 letters must appear in the order c, r, u, d, s, each at
// most once. v2 granular scopes ("...rs?category=...") are refused rather
// than widened to the whole type. Errors wrap ErrInvalidScope.
func ParseScope(s string) (Scope, error) {
	bad := func(why string) (Scope, error) {
		return Scope{}, fmt.Errorf("%w %q: %s", ErrInvalidScope, truncate(s), why)
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return bad("want context/type.permissions")
	}
	var sc Scope
	switch c := ScopeContext(ctx); c {
	case ContextPatient, ContextUser, ContextSystem:
		sc.Context = c
	default:
		return bad("context must be patient, user or system")
	}
	if strings.ContainsRune(rest, '?') {
		return bad("granular scopes are not supported")
	}
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok {
		return bad("want type.permissions")
	}
	if typ != "*" && !isResourceType(typ) {
		return bad("not a resource type")
	}
	sc.ResourceType = typ
	perms, ok := parsePerms(perm)
	if !ok {
		return bad("permissions must be read, write, * or letters of cruds in order")
	}
	sc.Perms = perms
	return sc, nil
}

// parsePerms reads v1 (read, write, *) or v2 (ordered subset of cruds).
func parsePerms(s string) (Perms, bool) {
	switch s {
	case "read":
		return PermRead | PermSearch, true
	case "write":
		return PermCreate | PermUpdate | PermDelete, true
	case "*":
		return PermAll, true
	case "":
		return 0, false
	}
	var p Perms
	next := 0 // letters before next were used or skipped
	for i := range len(s) {
		j := strings.IndexByte(permLetters[next:], s[i])
		if j < 0 {
			return 0, false
		}
		p |= 1 << (next + j)
		next += j + 1
	}
	return p, true
}

// isResourceType accepts FHIR resource type names: an upper-case ASCII
// letter then letters, at most 64 in all (R4's longest is 34).
func isResourceType(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}
