package httpapi

import (
	"context"
	"net/url"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// Resources is what the FHIR routes need from the store.
type Resources interface {
	Create(ctx context.Context, res *fhir.Resource, a store.Access) (*store.Stored, error)
	CreateIfNoneExist(ctx context.Context, res *fhir.Resource, condition url.Values, a store.Access) (*store.Stored, bool, error)
	Read(ctx context.Context, typ, id string, a store.Access) (*store.Stored, error)
	VRead(ctx context.Context, typ, id string, vid int64, a store.Access) (*store.Stored, error)
	Update(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, a store.Access) (*store.Stored, bool, error)
	Delete(ctx context.Context, typ, id string, a store.Access) (*store.Stored, error)
	History(ctx context.Context, typ, id string, opts store.HistoryOptions, a store.Access) (*store.HistoryPage, error)
	Search(ctx context.Context, q *search.Query, a store.Access) (*store.Page, error)
	LastN(ctx context.Context, q *search.Query, maxPerCode int, a store.Access) ([]store.Stored, error)
}
