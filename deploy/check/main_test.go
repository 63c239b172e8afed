package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// copyTree copies what the check reads from src to dst (the Go sources,
// go.mod, the Makefile, the README and deploy/); with link it hard-links
// the files instead.
func copyTree(src, dst string, link bool) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == "bin" || rel == "tools" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		if !d.Type().IsRegular() || !checked(rel) {
			return nil
		}
		if link {
			return os.Link(p, filepath.Join(dst, rel))
		}
		b, err := os.ReadFile(filepath.Clean(p))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
}

// checked reports whether the check reads the file at rel.
func checked(rel string) bool {
	switch {
	case strings.HasSuffix(rel, ".go"), strings.HasPrefix(rel, "deploy"+string(filepath.Separator)):
		return true
	default:
		return slices.Contains([]string{"go.mod", "Makefile", "README.md"}, rel)
	}
}

// tempRoot is a copy of the repository that a test may break a file of
// (with replace, which never writes through the shared links).
func tempRoot(t *testing.T, base string) string {
	t.Helper()
	root := t.TempDir()
	if err := copyTree(base, root, true); err != nil {
		t.Fatal(err)
	}
	return root
}

func replace(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s no longer contains %q: update the test", path, old)
	}
	if err := os.Remove(path); err != nil { // a link: do not write through it
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func check(root string) []string {
	c := &checker{root: root, strict: true}
	c.run()
	return c.problems
}

func TestTheDeploymentFilesAgreeWithTheSources(t *testing.T) {
	for _, p := range check("../..") {
		if !strings.HasPrefix(p, "README.md:") { // the README is the documentation's business
			t.Error(p)
		}
	}
}

func TestEachBrokenPromiseIsReported(t *testing.T) {
	tests := []struct {
		name, file, old, new, want string
	}{
		{"two instances with one id", "deploy/compose.yaml", "VIDDA_INSTANCE_ID: vidda-2", "VIDDA_INSTANCE_ID: vidda-1", "share VIDDA_INSTANCE_ID"},
		{"a variable vidda does not read", "deploy/compose.yaml", "VIDDA_LOG_FORMAT: json", "VIDDA_LOG_FMT: json", "VIDDA_LOG_FMT is not a variable"},
		{"one instance only", "deploy/compose.yaml", "    target: vidda\n", "    target: ops\n", "at least two vidda instances"},
		{"a database that is not PostgreSQL 15", "deploy/compose.yaml", "image: postgres:15", "image: postgres:16", "postgres:15 service"},
		{"a YAML syntax error", "deploy/compose.yaml", "services:\n", "services:\n\t- broken\n", "does not parse"},
		{"a package that does not exist", "deploy/Dockerfile", "./cmd/vidda ", "./cmd/viddax ", "is not a main package"},
		{"a Go other than go.mod's", "deploy/Dockerfile", "FROM golang:1.26", "FROM golang:1.19", "go.mod says"},
		{"a missing TURN port", "deploy/Dockerfile", "EXPOSE 8080 1883 3478/udp", "EXPOSE 8080 1883", "lacks 3478/udp"},
		{"an image running as root", "deploy/Dockerfile", "USER nonroot:nonroot", "USER root", "no non-root USER"},
		{"a binary the entrypoint does not run", "deploy/Dockerfile", "COPY --from=build /out/vidda /vidda\n# In", "COPY --from=build /out/vidda /bin/vidda\n# In", "does not run the binary"},
		{"a proxy checking the wrong path", "deploy/caddy/Caddyfile", "health_uri /readyz", "health_uri /healthz", "does not check /readyz"},
		{"a proxy on the wrong port", "deploy/caddy/Caddyfile", "vidda-2:8080 {\n\t\t\tlb_policy", "vidda-2:9090 {\n\t\t\tlb_policy", "not a vidda instance on port 8080"},
		{"a broker asking a port Caddy does not serve", "deploy/mosquitto/mosquitto.conf", "auth_opt_http_port 9080", "auth_opt_http_port 9081", "not a site of the Caddyfile"},
		{"a broker asking a route vidda does not serve", "deploy/mosquitto/mosquitto.conf", "/mqtt/auth/acl", "/mqtt/acl", "not a route vidda serves"},
		{"an instance id that is not the pod name", "deploy/k8s/statefulset.yaml", "fieldPath: metadata.name", "fieldPath: metadata.uid", "pod name"},
		{"a readiness probe on the wrong path", "deploy/k8s/statefulset.yaml", "path: /readyz", "path: /ready", "readinessProbe asks"},
		{"a single replica", "deploy/k8s/statefulset.yaml", "replicas: 2", "replicas: 1", "want at least 2"},
		{"a PDB selecting other pods", "deploy/k8s/pdb.yaml", "matchLabels:\n      app.kubernetes.io/name: vidda", "matchLabels:\n      app.kubernetes.io/name: vida", "do not carry"},
		{"a manifest kustomize does not apply", "deploy/k8s/kustomization.yaml", "  - pdb.yaml\n", "", "pdb.yaml is not listed"},
		{"a ConfigMap setting an unknown variable", "deploy/k8s/configmap.yaml", "VIDDA_LOG_LEVEL:", "VIDDA_LOGLEVEL:", "VIDDA_LOGLEVEL is not a variable"},
		{"a container port vidda does not listen on", "deploy/k8s/statefulset.yaml", "containerPort: 8080", "containerPort: 8081", "http port is \"8081\""},
	}
	base := t.TempDir()
	if err := copyTree("../..", base, false); err != nil {
		t.Fatal(err)
	}
	baseline := check(base)
	for _, p := range baseline {
		if !strings.HasPrefix(p, "README.md: VIDDA_") { // only a table row missing
			t.Fatalf("the unbroken files already fail, so nothing can be told: %s", p)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := tempRoot(t, base)
			replace(t, filepath.Join(root, tt.file), tt.old, tt.new)
			var added []string
			for _, p := range check(root) {
				if !slices.Contains(baseline, p) {
					added = append(added, p)
				}
			}
			for _, p := range added {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; new problems: %q", tt.want, added)
		})
	}
}
