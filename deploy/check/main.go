// Command check checks vidda's deployment files against its sources, for
// machines without Docker or a cluster (deploy/check.sh runs it in CI):
//
//   - every YAML file under deploy/ parses;
//   - every VIDDA_ variable the files set is one vidda reads; a variable
//     vidda binds that the README's table lacks is a warning (a problem
//     with -strict: while several people add variables, the table trails);
//   - the Dockerfile builds the main package and version variable that
//     exist, with the Go of go.mod, statically, as a non-root image that
//     exposes vidda's default ports;
//   - compose.yaml runs two or more vidda instances with distinct instance
//     ids on one database and one broker, behind a Caddy that checks
//     /readyz and whose upstreams are those instances, with Mosquitto
//     asking routes vidda serves;
//   - deploy/k8s runs two or more replicas with VIDDA_INSTANCE_ID from the
//     pod name, probes on routes vidda serves and on the port it listens
//     on, and selectors that match the pods;
//   - deploy/grafana/vidda.json queries only metrics vidda defines.
//
// Usage: go run . [-strict] [repository root] (default ../..). It is its
// own module so that its YAML parser stays out of vidda's dependencies.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

func main() {
	strict := flag.Bool("strict", false, "a variable missing from the README's table is a problem, not a warning")
	flag.Parse()
	root := "../.."
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	c := &checker{root: root, strict: *strict}
	c.run()
	for _, w := range c.warnings {
		fmt.Fprintln(os.Stderr, "deploy/check: warning:", w)
	}
	for _, p := range c.problems {
		fmt.Fprintln(os.Stderr, "deploy/check:", p)
	}
	if len(c.problems) > 0 {
		fmt.Fprintf(os.Stderr, "deploy/check: %d problems\n", len(c.problems))
		os.Exit(1)
	}
	fmt.Printf("deploy/check: %d files consistent with the sources (%d variables known, http %s, mqtt %s, turn %s/udp)\n",
		c.files, len(c.known), c.httpPort, c.mqttPort, c.turnPort)
}

// checker holds what the sources say and the problems found.
type checker struct {
	root     string
	strict   bool
	problems []string
	warnings []string
	files    int

	known    map[string]bool // VIDDA_ variables named in the Go sources
	bound    []string        // bound to a flag by internal/config
	httpPort string
	mqttPort string
	turnPort string
	routes   map[string]bool // paths vidda serves that the deployment uses
}

func (c *checker) failf(file, format string, args ...any) {
	c.problems = append(c.problems, file+": "+fmt.Sprintf(format, args...))
}

func (c *checker) path(rel string) string { return filepath.Join(c.root, rel) }

func (c *checker) read(rel string) string {
	b, err := os.ReadFile(c.path(rel))
	if err != nil {
		c.failf(rel, "%v", err)
		return ""
	}
	c.files++
	return string(b)
}

func (c *checker) run() {
	c.learnSources()
	if len(c.problems) > 0 {
		return // nothing to compare with
	}
	c.checkReadme()
	c.checkYAMLParses()
	c.checkDockerfile()
	c.checkCompose()
	c.checkK8s()
	c.checkScripts()
	c.checkDashboard()
}

var (
	varRe   = regexp.MustCompile(`VIDDA_[A-Z0-9_]+`)
	quoted  = regexp.MustCompile(`"(VIDDA_[A-Z0-9_]+)"`)
	bindRe  = regexp.MustCompile(`cs\.(?:String|Secret|Int|Bool|Duration)\(&[^,]+,\s*"[^"]*",\s*"(VIDDA_[A-Z0-9_]+)"`)
	httpDef = regexp.MustCompile(`Addr:\s*"[^"]*:(\d+)"`)
	mqttDef = regexp.MustCompile(`DefaultListen\s*=\s*"[^"]*:(\d+)"`)
	turnDef = regexp.MustCompile("`VIDDA_TURN_LISTEN`[^|]*\\|\\s*`[^`]*:(\\d+)`")
)

// learnSources reads the variables, defaults and routes from the Go
// sources and the README.
func (c *checker) learnSources() {
	c.known = map[string]bool{}
	bound := map[string]bool{}
	var sources []string
	err := filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.root, p)
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && rel != "." || rel == "deploy" || rel == "tools" || rel == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			sources = append(sources, p)
		}
		return nil
	})
	if err != nil {
		c.failf(".", "reading the sources: %v", err)
		return
	}
	for _, p := range sources {
		b, err := os.ReadFile(filepath.Clean(p))
		if err != nil {
			c.failf(".", "reading the sources: %v", err)
			return
		}
		for _, m := range quoted.FindAllSubmatch(b, -1) {
			c.known[string(m[1])] = true
		}
		for _, m := range bindRe.FindAllSubmatch(b, -1) {
			bound[string(m[1])] = true
		}
	}
	for v := range bound {
		c.bound = append(c.bound, v)
	}
	sort.Strings(c.bound)
	c.httpPort = c.match("internal/httpapi/server.go", httpDef, "the HTTP default address (DefaultConfig Addr)")
	c.mqttPort = c.match("devices/broker/config.go", mqttDef, "the embedded broker's DefaultListen")
	c.turnPort = c.match("README.md", turnDef, "the VIDDA_TURN_LISTEN row with its default address")
	c.routes = map[string]bool{}
	server := c.read("internal/httpapi/server.go")
	for _, r := range []string{"/healthz", "/readyz"} {
		if strings.Contains(server, `"`+r+`"`) {
			c.routes[r] = true
		}
	}
	mqtt := c.read("internal/httpapi/mqttauth.go")
	if strings.Contains(mqtt, `Group("/mqtt/auth"`) {
		for _, r := range []string{"user", "superuser", "acl"} {
			if strings.Contains(mqtt, `Post("/`+r+`"`) {
				c.routes["/mqtt/auth/"+r] = true
			}
		}
	}
}

func (c *checker) match(rel string, re *regexp.Regexp, what string) string {
	m := re.FindStringSubmatch(c.read(rel))
	if m == nil {
		c.failf(rel, "cannot find %s", what)
		return ""
	}
	return m[1]
}

// checkReadme wants every bound variable in a row of the README's table.
func (c *checker) checkReadme() {
	var rows strings.Builder
	for _, line := range strings.Split(c.read("README.md"), "\n") {
		if strings.HasPrefix(line, "|") {
			rows.WriteString(line + "\n")
		}
	}
	documented := map[string]bool{}
	for _, v := range varRe.FindAllString(rows.String(), -1) {
		documented[v] = true
	}
	for _, v := range c.bound {
		if documented[v] {
			continue
		}
		msg := "README.md: " + v + " is read by vidda but missing from the configuration table"
		if c.strict {
			c.problems = append(c.problems, msg)
		} else {
			c.warnings = append(c.warnings, msg)
		}
	}
}

// usesVar reports a VIDDA_ variable a deployment file sets or reads.
func (c *checker) usesVar(file, v string) {
	if !c.known[v] {
		c.failf(file, "%s is not a variable vidda reads (see the README's table)", v)
	}
}

func (c *checker) checkYAMLParses() {
	for _, rel := range c.yamlFiles() {
		dec := yaml.NewDecoder(strings.NewReader(c.read(rel)))
		for {
			var doc any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				c.failf(rel, "does not parse: %v", err)
				break
			}
		}
	}
}

func (c *checker) yamlFiles() []string {
	var out []string
	_ = filepath.WalkDir(c.path("deploy"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			rel, _ := filepath.Rel(c.root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// docs decodes every document of a YAML file into generic maps.
func (c *checker) docs(rel string) []map[string]any {
	var out []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(c.read(rel)))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if !errors.Is(err, io.EOF) {
				c.failf(rel, "does not parse: %v", err)
			}
			return out
		}
		if doc != nil {
			out = append(out, doc)
		}
	}
}

// get walks nested maps and lists: get(m, "spec", "template", 0).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func port(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return p
}

// instructions are a Dockerfile's lines, continuations joined, comments dropped.
func instructions(text string) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// withoutComments drops # comments of a config file (Caddyfile, shell,
// mosquitto.conf), for the variable check.
func withoutComments(text string) string {
	var b bytes.Buffer
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "#"); i >= 0 && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			line = line[:i]
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func (c *checker) checkScripts() {
	for _, rel := range []string{"deploy/devcluster.sh", "deploy/with-testdb.sh", "deploy/caddy/Caddyfile", "deploy/mosquitto/mosquitto.conf", "deploy/emqx/emqx-auth.hocon"} {
		for _, v := range varRe.FindAllString(withoutComments(c.read(rel)), -1) {
			c.usesVar(rel, v)
		}
	}
}

// hostOf and portOf take a URL's host (a compose service or Kubernetes
// name) and port.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func portOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Port()
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
