package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// ErrOutsideCompartment means a write would put a resource outside the
// patient compartment the caller is restricted to.
var ErrOutsideCompartment = errors.New("resource is outside the caller's patient compartment")

// ErrStillReferenced means a delete would orphan other resources: a
// Patient whose compartment still holds data.
var ErrStillReferenced = errors.New("resource is still referenced by other resources")

// ErrStopped is returned by writes after the store's writer has stopped.
var ErrStopped = errors.New("store is shutting down")

// Config tunes the store.
type Config struct {
	// MaxBatch caps how many concurrent creates share one commit.
	MaxBatch int
	// Writers is how many group-commit writers run at once.
	Writers int
}

// DefaultConfig returns the settings used unless told otherwise.
//
// One writer measured best on two cores (make bench): while it commits, the
// next batch gathers, and more writers only add CPU contention.
func DefaultConfig() Config { return Config{MaxBatch: 256, Writers: 1} }

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.MaxBatch < 1 || c.Writers < 1 {
		return fmt.Errorf("store: MaxBatch and Writers must be at least 1 (got %d, %d)", c.MaxBatch, c.Writers)
	}
	return nil
}

// Access restricts an operation to what the caller may see: the decision of
// the auth policy, passed down from the edge.
type Access struct {
	// PatientID, when set, confines the operation to that patient's
	// compartment: other resources are not found, and writes outside it
	// fail with ErrOutsideCompartment.
	PatientID string
	// CareOf, when set ("Practitioner/<id>"), confines resources of the
	// types in the patient compartment to the compartments of the patients
	// that practitioner cares for (see care.go): others are not found, and
	// writes into other compartments fail with ErrOutsideCompartment.
	CareOf string
}

// Stored is one version of a resource as the store holds it.
type Stored struct {
	Type        string
	ID          string
	VersionID   int64
	LastUpdated time.Time
	Deleted     bool
	// Content is the stored JSON; nil for a deletion.
	Content []byte
	// PatientID is the patient whose compartment the resource is in
	// (patient_id), "" for none; the audit trail records it.
	PatientID string
}

// patientOf is a patient_id column value as Stored.PatientID.
func patientOf(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Store reads and writes FHIR resources in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	types   *fhir.Registry
	params  *search.Registry
	cfg     Config
	log     *slog.Logger
	creates chan *createReq
	done    chan struct{}
}

// New returns a store over pool. Call Run to start its writers before
// creating resources.
func New(pool *pgxpool.Pool, types *fhir.Registry, params *search.Registry, cfg Config, log *slog.Logger) *Store {
	return &Store{
		pool: pool, types: types, params: params, cfg: cfg, log: log,
		creates: make(chan *createReq, cfg.MaxBatch*cfg.Writers),
		done:    make(chan struct{}),
	}
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// newID returns a time-ordered id (UUIDv7), so that inserts append to the
// primary-key index instead of splitting random pages.
func newID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return u.String(), nil
}

// table is the SQL table of a resource type; types come from the registry,
// never from the client, so this is safe to put in SQL text. GROUP is a
// reserved word in SQL, so Group's table is fhir_group (and
// fhir_group_history), unquoted like every other.
func table(typ string) string {
	if typ == "Group" {
		return "fhir_group"
	}
	return strings.ToLower(typ)
}

// now is the server time at the precision meta.lastUpdated shows.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func (s *Store) definition(typ string) (*search.Definition, error) {
	d := s.params.Definition(typ)
	if d == nil || !s.types.Supports(typ) {
		return nil, fmt.Errorf("%s: %w", typ, fhir.ErrUnsupportedType)
	}
	return d, nil
}
