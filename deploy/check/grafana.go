package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// The Grafana dashboard (deploy/grafana/vidda.json) must query metrics
// vidda defines: a name the sources do not define is a problem, so that a
// renamed metric does not leave a panel silently empty.

var (
	metricRe  = regexp.MustCompile(`\b(vidda_[a-z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+)\b`)
	literalRe = regexp.MustCompile(`"([a-z0-9_]+)"`)
)

// Histogram series and the Go and process collectors' names need no
// definition in vidda's sources.
var (
	seriesSuffix = regexp.MustCompile(`_(bucket|sum|count)$`)
	fromClient   = regexp.MustCompile(`^(go_|process_)`)
)

func (c *checker) checkDashboard() {
	const rel = "deploy/grafana/vidda.json"
	body := c.read(rel)
	if body == "" {
		return
	}
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal([]byte(body), &dash); err != nil || len(dash.Panels) == 0 {
		c.failf(rel, "not a Grafana dashboard with panels: %v", err)
		return
	}
	defined := c.metricLiterals()
	var missing []string
	seen := map[string]bool{}
	for _, m := range metricRe.FindAllString(body, -1) {
		name := seriesSuffix.ReplaceAllString(m, "")
		if seen[name] || fromClient.MatchString(name) {
			continue
		}
		seen[name] = true
		if !defined(name) {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		c.failf(rel, "queries %s, which vidda does not define", m)
	}
}

// metricLiterals returns whether a metric name is defined in the Go
// sources: as one string literal, or as a literal prefix ending in "_"
// and the rest as a literal in the same file ("vidda_sfu_" + "rooms").
func (c *checker) metricLiterals() func(string) bool {
	whole := map[string]bool{}
	var split []map[string]bool // per file with a prefix literal
	_ = filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.root, p)
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && rel != "." || rel == "deploy" || rel == "tools" || rel == "bin" || rel == "cmd/viddabench") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lits := map[string]bool{}
		prefixed := false
		for _, m := range literalRe.FindAllStringSubmatch(string(b), -1) {
			lits[m[1]] = true
			if strings.HasPrefix(m[1], "vidda_") {
				whole[m[1]] = true
				prefixed = prefixed || strings.HasSuffix(m[1], "_")
			}
		}
		if prefixed {
			split = append(split, lits)
		}
		return nil
	})
	return func(name string) bool {
		if whole[name] {
			return true
		}
		for _, lits := range split {
			for l := range lits {
				if strings.HasPrefix(l, "vidda_") && strings.HasSuffix(l, "_") && strings.HasPrefix(name, l) && lits[name[len(l):]] {
					return true
				}
			}
		}
		return false
	}
}
