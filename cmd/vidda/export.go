package main

import (
	"log/slog"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/bulk"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/internal/httpapi"
)

// exportSettings are the serve flags of FHIR Bulk Data export.
type exportSettings struct {
	cfg bulk.Config
}

func bindExport(cs *config.Set, x *exportSettings) {
	x.cfg = bulk.DefaultConfig()
	cs.String(&x.cfg.Dir, "export-dir", "VIDDA_EXPORT_DIR", x.cfg.Dir, "directory of $export files (shared storage when several instances serve downloads)")
	cs.Duration(&x.cfg.TTL, "export-ttl", "VIDDA_EXPORT_TTL", x.cfg.TTL, "how long a finished export's files are kept")
	cs.Int(&x.cfg.Workers, "export-workers", "VIDDA_EXPORT_WORKERS", x.cfg.Workers, "exports this instance runs at once")
	cs.Int(&x.cfg.MaxFileResources, "export-file-resources", "VIDDA_EXPORT_FILE_RESOURCES", x.cfg.MaxFileResources, "resources per export file before the next one starts")
}

func (x *exportSettings) validate() error { return x.cfg.Validate() }

// exporter runs this instance's share of the export jobs as instance; its
// runs end in the audit trail when audit is set.
func (x *exportSettings) exporter(st *store.Store, types *fhir.Registry, params *search.Registry, instance string, rec httpapi.AuditRecorder, log *slog.Logger) *bulk.Exporter {
	cfg := x.cfg
	cfg.Owner = instance
	if rec != nil {
		cfg.Finished = httpapi.ExportAudit(rec)
	}
	return bulk.New(st, types, params, cfg, log)
}
