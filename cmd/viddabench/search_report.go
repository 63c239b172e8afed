package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

type searchConfig struct {
	Vidda        string  `json:"vidda"`
	Observations int     `json:"observations"`
	Patients     int     `json:"patients"`
	Many         int     `json:"clients"`
	DurationS    float64 `json:"phase_seconds"`
}

// searchResult is one shape with some clients, on both sides.
type searchResult struct {
	Shape   string  `json:"shape"`
	Clients int     `json:"clients"`
	Vidda   summary `json:"vidda"`
	Base    summary `json:"baseline"`
	P50x    float64 `json:"p50_vs_baseline"` // vidda's p50 ÷ the baseline's
	QPSx    float64 `json:"qps_vs_baseline"` // the baseline's queries/s ÷ vidda's
}

type searchReport struct {
	Machine   machine        `json:"machine"`
	Postgres  pgInfo         `json:"postgres"`
	Config    searchConfig   `json:"config"`
	Load      searchLoad     `json:"load"`
	Verified  []string       `json:"verified"`
	WarmS     float64        `json:"warm_seconds"` // every shape once per patient, untimed
	Results   []searchResult `json:"results"`
	RSSKiB    int64          `json:"vidda_rss_kib"`
	Missed    []string       `json:"targets_missed"`
	Problems  []string       `json:"problems"`
	ServerLog string         `json:"server_log,omitempty"`
	// Plans are --explain's plans of vidda's page queries.
	Plans []searchPlan `json:"plans,omitempty"`
	// KeptDatabase is the URL of the database --keep left behind.
	KeptDatabase string `json:"kept_database,omitempty"`
}

func (r *searchReport) addProblem(p string)   { r.Problems = append(r.Problems, p) }
func (r *searchReport) problemList() []string { return r.Problems }

// judge lists the targets missed (not problems) and the failed requests
// (problems).
func (r *searchReport) judge() {
	if r.Load.Observations > 0 {
		perMillion := r.Load.CopyS * 1e6 / float64(r.Load.Observations)
		if perMillion > targetSearchLoadS {
			r.Missed = append(r.Missed, fmt.Sprintf("load: %.0f s per million rows (target ≤ %.0f s)", perMillion, targetSearchLoadS))
		}
	}
	for _, x := range r.Results {
		for _, side := range []struct {
			name string
			s    summary
		}{{"vidda", x.Vidda}, {"baseline", x.Base}} {
			if side.s.Errors > 0 {
				r.Problems = append(r.Problems, fmt.Sprintf("%s, %d clients, %s: %d failed, first: %s", x.Shape, x.Clients, side.name, side.s.Errors, side.s.FirstError))
			}
		}
		if x.Clients == 1 {
			if x.Vidda.P50ms > targetSearchP50ms || x.Vidda.P99ms > targetSearchP99ms {
				r.Missed = append(r.Missed, fmt.Sprintf("%s, 1 client: p50 %.2f ms, p99 %.2f ms (targets ≤ %.0f, ≤ %.0f)", x.Shape, x.Vidda.P50ms, x.Vidda.P99ms, targetSearchP50ms, targetSearchP99ms))
			}
		} else if x.Vidda.PerSecond < targetSearchQPS {
			r.Missed = append(r.Missed, fmt.Sprintf("%s, %d clients: %.0f queries/s (target ≥ %d)", x.Shape, x.Clients, x.Vidda.PerSecond, targetSearchQPS))
		}
		if x.P50x > targetSearchFactor {
			r.Missed = append(r.Missed, fmt.Sprintf("%s, %d clients: p50 %.1f× the baseline's (target ≤ %.0f×)", x.Shape, x.Clients, x.P50x, targetSearchFactor))
		}
	}
}

func (r *searchReport) write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		return nil
	}
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "viddabench search\n\nMachine     %d CPUs, %s, %.1f GiB RAM, load %s, %s/%s, %s\n", m.CPUs, m.CPUModel, float64(m.MemTotalKiB)/(1<<20), m.LoadAvg, m.OS, m.Arch, m.Go)
	fmt.Fprintf(&b, "PostgreSQL  %s (fsync %s, synchronous_commit %s), database %s\n", r.Postgres.Version, r.Postgres.Fsync, r.Postgres.SynchronousCommit, r.Postgres.Database)
	l := r.Load
	fmt.Fprintf(&b, "\nLoad        %d Patients through the store in %.1f s\n", l.Patients, l.PatientsS)
	fmt.Fprintf(&b, "            %d Observations (store.IngestRows rows, %s, %d connections) in %.1f s = %.0f rows/s\n", l.Observations, l.Method, l.Loaders, l.CopyS, l.RowsPerSecond)
	fmt.Fprintf(&b, "            VACUUM ANALYZE %.1f s; table %.0f MiB, indexes %.0f MiB\n", l.VacuumS, l.TableMiB, l.IndexMiB)
	if len(r.Verified) > 0 {
		fmt.Fprintf(&b, "\nSame ids    %s\n", strings.Join(r.Verified, "; "))
	}
	if r.WarmS > 0 {
		fmt.Fprintf(&b, "Warm-up     every shape once per patient through the baseline, untimed: %.1f s\n", r.WarmS)
	}
	if len(r.Results) > 0 {
		fmt.Fprintf(&b, "\n%-22s %7s | %8s %8s %8s | %8s %8s %8s | %6s %6s\n", "query (phase "+fmt.Sprint(r.Config.DurationS)+" s)", "clients",
			"p50 ms", "p99 ms", "q/s", "base p50", "base p99", "base q/s", "p50 ×", "q/s ÷")
		for _, x := range r.Results {
			fmt.Fprintf(&b, "%-22s %7d | %8.2f %8.2f %8.0f | %8.2f %8.2f %8.0f | %6.1f %6.1f\n", x.Shape, x.Clients,
				x.Vidda.P50ms, x.Vidda.P99ms, x.Vidda.PerSecond, x.Base.P50ms, x.Base.P99ms, x.Base.PerSecond, x.P50x, x.QPSx)
		}
		fmt.Fprintln(&b, "(d) times each page; \"p50 ×\" is vidda's p50 ÷ the baseline's, \"q/s ÷\" the baseline's queries/s ÷ vidda's.")
	}
	for _, p := range r.Plans {
		fmt.Fprintf(&b, "\nPlans of %s (%s)\n  generic:\n%s\n  custom:\n%s\n", p.Shape, p.Query, indent(p.Generic, "    "), indent(p.Custom, "    "))
	}
	if r.RSSKiB > 0 {
		fmt.Fprintf(&b, "vidda RSS   %.0f MiB after the searches\n", float64(r.RSSKiB)/1024)
	}
	if len(r.Missed) > 0 {
		fmt.Fprintf(&b, "\nTargets missed:\n  - %s\n", strings.Join(r.Missed, "\n  - "))
	} else if len(r.Results) > 0 {
		fmt.Fprintln(&b, "\nAll targets met.")
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "\nProblems:\n  - %s\n", strings.Join(r.Problems, "\n  - "))
	}
	if r.ServerLog != "" {
		fmt.Fprintf(&b, "\nvidda serve log (tail):\n%s\n", r.ServerLog)
	}
	if r.KeptDatabase != "" {
		fmt.Fprintf(&b, "\nKept database (--keep; drop it when done): %s\n", r.KeptDatabase)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// indent puts prefix before every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
