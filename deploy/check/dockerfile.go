package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

var (
	goDirective = regexp.MustCompile(`(?m)^go (\d+\.\d+)`)
	goImage     = regexp.MustCompile(`^FROM golang:(\d+\.\d+)`)
	buildOut    = regexp.MustCompile(`go build .*-o (\S+) (\./\S+)`)
	copyFrom    = regexp.MustCompile(`^COPY --from=\S+ (?:--chown=\S+ )?(\S+) (\S+)`)
	entrypoint  = regexp.MustCompile(`^ENTRYPOINT \["([^"]+)"`)
)

// stage is one FROM ... AS name section of the Dockerfile.
type stage struct {
	name  string
	lines []string
}

func stages(text string) []stage {
	var out []stage
	for _, in := range instructions(text) {
		if strings.HasPrefix(in, "FROM ") {
			f := strings.Fields(in)
			name := ""
			if len(f) >= 4 && strings.EqualFold(f[2], "AS") {
				name = f[3]
			}
			out = append(out, stage{name: name})
		}
		if len(out) > 0 {
			out[len(out)-1].lines = append(out[len(out)-1].lines, in)
		}
	}
	return out
}

func (c *checker) dockerStages() []stage { return stages(c.read("deploy/Dockerfile")) }

func (c *checker) checkDockerfile() {
	const rel = "deploy/Dockerfile"
	st := c.dockerStages()
	if len(st) < 2 {
		c.failf(rel, "want a build stage and an image stage, found %d stages", len(st))
		return
	}
	goVersion := goDirective.FindStringSubmatch(c.read("go.mod"))
	var out, pkg string
	for _, in := range st[0].lines {
		if m := goImage.FindStringSubmatch(in); m != nil && goVersion != nil && m[1] != goVersion[1] {
			c.failf(rel, "builds with golang:%s but go.mod says go %s", m[1], goVersion[1])
		}
		if m := buildOut.FindStringSubmatch(in); m != nil {
			out, pkg = m[1], m[2]
			if !strings.Contains(in, "CGO_ENABLED=0") {
				c.failf(rel, "the build is not static (set CGO_ENABLED=0)")
			}
			if !strings.Contains(in, "-X main.version=") || !strings.Contains(c.read("Makefile"), "-X main.version=") {
				c.failf(rel, "the build and the Makefile must both set -X main.version=")
			}
		}
	}
	if pkg == "" {
		c.failf(rel, "no `go build ... -o OUT ./PKG` in the first stage")
		return
	}
	c.checkMainPackage(rel, pkg)
	last := st[len(st)-1]
	for _, s := range st[1:] {
		c.checkImageStage(rel, s, out, s.name == last.name)
	}
}

// checkMainPackage wants pkg to be a main package with a version variable.
func (c *checker) checkMainPackage(rel, pkg string) {
	files, _ := filepath.Glob(filepath.Join(c.path(pkg), "*.go"))
	isMain, hasVersion := false, false
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Clean(f))
		if err != nil {
			continue
		}
		isMain = isMain || regexp.MustCompile(`(?m)^package main$`).Match(b)
		hasVersion = hasVersion || regexp.MustCompile(`(?m)^var version\b`).Match(b)
	}
	if !isMain {
		c.failf(rel, "%s is not a main package", pkg)
	}
	if !hasVersion {
		c.failf(rel, "%s has no `var version` for -X main.version", pkg)
	}
}

// checkImageStage wants the binary built at out copied and run, and the
// server image non-root with vidda's ports.
func (c *checker) checkImageStage(rel string, s stage, out string, server bool) {
	copied, entry, user := "", "", ""
	var exposed []string
	env := map[string]string{}
	for _, in := range s.lines {
		if m := copyFrom.FindStringSubmatch(in); m != nil && m[1] == out {
			copied = m[2]
		}
		if m := entrypoint.FindStringSubmatch(in); m != nil {
			entry = m[1]
		}
		f := strings.Fields(in)
		switch strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "EXPOSE":
			exposed = append(exposed, f[1:]...)
		case "ENV":
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
				if strings.HasPrefix(k, "VIDDA_") {
					c.usesVar(rel, k)
				}
			}
		case "HEALTHCHECK":
			c.failf(rel, "stage %s has a HEALTHCHECK: the orchestrator probes /healthz and /readyz", s.name)
		}
	}
	if copied == "" || entry != copied {
		c.failf(rel, "stage %s: ENTRYPOINT %q does not run the binary built at %s (copied to %q)", s.name, entry, out, copied)
	}
	if !server {
		return
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0:") || user == "0" {
		c.failf(rel, "the image has no non-root USER")
	}
	want := []string{c.httpPort, c.mqttPort, c.turnPort + "/udp"}
	for _, w := range want {
		if !slices.Contains(exposed, w) && !slices.Contains(exposed, w+"/tcp") {
			c.failf(rel, "EXPOSE %v lacks %s", exposed, w)
		}
	}
	if p := port(env["VIDDA_HTTP_ADDR"]); p != c.httpPort {
		c.failf(rel, "ENV VIDDA_HTTP_ADDR=%q: want port %s (vidda's default)", env["VIDDA_HTTP_ADDR"], c.httpPort)
	}
	if p := port(env["VIDDA_MQTT_LISTEN"]); p != c.mqttPort {
		c.failf(rel, "ENV VIDDA_MQTT_LISTEN=%q: want port %s (vidda's default)", env["VIDDA_MQTT_LISTEN"], c.mqttPort)
	}
}
