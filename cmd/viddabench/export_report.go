package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

type exportConfig struct {
	Vidda        string `json:"vidda"`
	Observations int    `json:"observations"`
	Patients     int    `json:"patients"`
}

// exportRun is vidda's export, kick-off to manifest.
type exportRun struct {
	Resources       int64   `json:"resources"`
	Files           int     `json:"files"`
	MiB             float64 `json:"mib"`
	Seconds         float64 `json:"seconds"`
	PerSecond       float64 `json:"resources_per_second"`
	DownloadSeconds float64 `json:"download_seconds"`
}

type exportReport struct {
	Machine  machine      `json:"machine"`
	Postgres pgInfo       `json:"postgres"`
	Config   exportConfig `json:"config"`
	Load     searchLoad   `json:"load"`
	// CopyBefore and CopyAfter are COPY ... TO STDOUT before and after
	// the export; the export is compared with the faster.
	CopyBefore copyRun   `json:"copy_before"`
	CopyAfter  copyRun   `json:"copy_after"`
	Export     exportRun `json:"export"`
	VsCopy     float64   `json:"export_vs_copy"`
	// RSS of vidda serve before the kick-off, its peak while the export
	// ran (sampled every 100 ms) and after it.
	RSSBeforeKiB int64    `json:"rss_before_kib"`
	RSSPeakKiB   int64    `json:"rss_peak_kib"`
	RSSAfterKiB  int64    `json:"rss_after_kib"`
	LoadAtEnd    string   `json:"loadavg_at_end"`
	Verified     string   `json:"verified"`
	Missed       []string `json:"targets_missed"`
	Problems     []string `json:"problems"`
	ServerLog    string   `json:"server_log,omitempty"`
}

func (r *exportReport) addProblem(p string)   { r.Problems = append(r.Problems, p) }
func (r *exportReport) problemList() []string { return r.Problems }

func (r *exportReport) copyRate() float64 { return max(r.CopyBefore.PerSecond, r.CopyAfter.PerSecond) }

func (r *exportReport) judge() {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		r.LoadAtEnd = strings.Join(f[:min(3, len(f))], " ")
	}
	if r.Export.Resources == 0 {
		return
	}
	if c := r.copyRate(); c > 0 {
		r.VsCopy = r.Export.PerSecond / c
	}
	if r.Export.PerSecond < targetExportRate {
		r.Missed = append(r.Missed, fmt.Sprintf("export: %.0f resources/s (target ≥ %d)", r.Export.PerSecond, targetExportRate))
	}
	if r.VsCopy < targetExportVsCopy {
		r.Missed = append(r.Missed, fmt.Sprintf("export: %.2f× COPY's rate (target ≥ %.1f×)", r.VsCopy, targetExportVsCopy))
	}
	if grow := float64(r.RSSPeakKiB-r.RSSBeforeKiB) / 1024; grow > targetExportRSSMiB {
		r.Missed = append(r.Missed, fmt.Sprintf("RSS grew %.0f MiB during the export (target ≤ %d MiB)", grow, targetExportRSSMiB))
	}
}

func (r *exportReport) write(w io.Writer, asJSON bool) error {
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
	fmt.Fprintf(&b, "viddabench export\n\nMachine     %d CPUs, %s, %.1f GiB RAM, load %s at start, %s at end, %s/%s, %s\n",
		m.CPUs, m.CPUModel, float64(m.MemTotalKiB)/(1<<20), m.LoadAvg, r.LoadAtEnd, m.OS, m.Arch, m.Go)
	fmt.Fprintf(&b, "PostgreSQL  %s (fsync %s, synchronous_commit %s), database %s\n", r.Postgres.Version, r.Postgres.Fsync, r.Postgres.SynchronousCommit, r.Postgres.Database)
	l := r.Load
	fmt.Fprintf(&b, "\nLoad        %d Observations of %d Patients (%s) in %.1f s; table %.0f MiB\n", l.Observations, l.Patients, l.Method, l.CopyS, l.TableMiB)
	for _, c := range []struct {
		name string
		run  copyRun
	}{{"before", r.CopyBefore}, {"after", r.CopyAfter}} {
		if c.run.Rows > 0 {
			fmt.Fprintf(&b, "COPY %-6s %d rows, %.0f MiB in %.2f s = %.0f rows/s  (COPY (SELECT content FROM observation) TO STDOUT, into a counting sink)\n",
				c.name, c.run.Rows, c.run.MiB, c.run.Seconds, c.run.PerSecond)
		}
	}
	x := r.Export
	if x.Resources > 0 {
		fmt.Fprintf(&b, "\nExport      %d Observations in %d ndjson files, %.0f MiB, kick-off to manifest %.2f s = %.0f resources/s (%.2f× COPY's best)\n",
			x.Resources, x.Files, x.MiB, x.Seconds, x.PerSecond, r.VsCopy)
		fmt.Fprintf(&b, "            download and line-by-line check over HTTP: %.1f s\n", x.DownloadSeconds)
		fmt.Fprintf(&b, "vidda RSS   %.0f MiB before, %.0f MiB peak during, %.0f MiB after\n",
			float64(r.RSSBeforeKiB)/1024, float64(r.RSSPeakKiB)/1024, float64(r.RSSAfterKiB)/1024)
	}
	if r.Verified != "" {
		fmt.Fprintf(&b, "Verified    %s\n", r.Verified)
	}
	if len(r.Missed) > 0 {
		fmt.Fprintf(&b, "\nTargets missed:\n  - %s\n", strings.Join(r.Missed, "\n  - "))
	} else if x.Resources > 0 {
		fmt.Fprintf(&b, "\nAll targets met (≥ %d resources/s, ≥ %.1f× COPY, RSS growth ≤ %d MiB).\n", targetExportRate, targetExportVsCopy, targetExportRSSMiB)
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "\nProblems:\n  - %s\n", strings.Join(r.Problems, "\n  - "))
	}
	if r.ServerLog != "" {
		fmt.Fprintf(&b, "\nvidda serve log (tail):\n%s\n", r.ServerLog)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
