package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// interpolation is compose's ${NAME}, ${NAME:-default}, ${NAME:?error}.
var interpolation = regexp.MustCompile(`\$\{[^}]*\}`)

// environment returns a compose service's environment, map or list form,
// with every interpolation replaced by "x" (a password, in URLs).
func environment(svc any) map[string]string {
	out := map[string]string{}
	switch e := get(svc, "environment").(type) {
	case map[string]any:
		for k, v := range e {
			out[k] = interpolation.ReplaceAllString(fmt.Sprint(v), "x")
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			out[k] = interpolation.ReplaceAllString(v, "x")
		}
	}
	return out
}

// bindMounts returns a service's host paths (relative to deploy/) by the
// container path they are mounted at.
func bindMounts(svc any) map[string]string {
	out := map[string]string{}
	for _, v := range list(svc, "volumes") {
		s, _ := v.(string)
		parts := strings.Split(s, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], ".") {
			out[parts[1]] = parts[0]
		}
	}
	return out
}

func (c *checker) checkCompose() {
	const rel = "deploy/compose.yaml"
	docs := c.docs(rel)
	if len(docs) != 1 {
		c.failf(rel, "want one YAML document, found %d", len(docs))
		return
	}
	services, _ := get(docs[0], "services").(map[string]any)
	var stageNames []string
	for _, s := range c.dockerStages() {
		stageNames = append(stageNames, s.name)
	}
	var instances []string
	for _, name := range keys(services) {
		svc := services[name]
		for k := range environment(svc) {
			if strings.HasPrefix(k, "VIDDA_") {
				c.usesVar(rel, k)
			}
		}
		if df := str(svc, "build", "dockerfile"); df != "" {
			if filepath.Clean(filepath.Join("deploy", str(svc, "build", "context"), df)) != "deploy/Dockerfile" {
				c.failf(rel, "service %s builds %s, not deploy/Dockerfile", name, df)
			}
			if t := str(svc, "build", "target"); !slices.Contains(stageNames, t) {
				c.failf(rel, "service %s builds target %q, which deploy/Dockerfile does not have", name, t)
			}
			if str(svc, "build", "target") == "vidda" {
				instances = append(instances, name)
			}
		}
		for _, host := range bindMounts(svc) {
			if _, err := os.Stat(c.path(filepath.Join("deploy", host))); err != nil {
				c.failf(rel, "service %s mounts %s, which does not exist", name, host)
			}
		}
	}
	if len(instances) < 2 {
		c.failf(rel, "want at least two vidda instances (services built with target vidda), found %v", instances)
		return
	}
	c.checkInstances(rel, services, instances)
	c.checkCaddy(rel, services, instances)
	c.checkMosquitto(services)
}

func imageOf(svc any) string { return str(svc, "image") }

// checkInstances wants distinct instance ids on one database and one broker.
func (c *checker) checkInstances(rel string, services map[string]any, instances []string) {
	ids := map[string]string{}
	var dbURL, mqttURL string
	turn := false
	for _, name := range instances {
		env := environment(services[name])
		id := env["VIDDA_INSTANCE_ID"]
		if id == "" {
			c.failf(rel, "%s has no VIDDA_INSTANCE_ID", name)
		} else if other, dup := ids[id]; dup {
			c.failf(rel, "%s and %s share VIDDA_INSTANCE_ID %s", name, other, id)
		}
		ids[id] = name
		if dbURL == "" {
			dbURL, mqttURL = env["VIDDA_DATABASE_URL"], env["VIDDA_MQTT_URL"]
		}
		if env["VIDDA_DATABASE_URL"] != dbURL || env["VIDDA_MQTT_URL"] != mqttURL {
			c.failf(rel, "%s does not share the database and broker of the other instances", name)
		}
		if p := port(env["VIDDA_HTTP_ADDR"]); p != c.httpPort {
			c.failf(rel, "%s listens on port %q, want %s", name, p, c.httpPort)
		}
		for _, p := range list(services[name], "ports") {
			s := fmt.Sprint(p)
			if strings.HasSuffix(s, ":"+c.turnPort+"/udp") {
				turn = true
			}
		}
	}
	if !turn {
		c.failf(rel, "no instance publishes the TURN port %s/udp", c.turnPort)
	}
	if db := hostOf(dbURL); !strings.HasPrefix(imageOf(services[db]), "postgres:15") {
		c.failf(rel, "VIDDA_DATABASE_URL names host %q, want a postgres:15 service", db)
	}
	broker := hostOf(mqttURL)
	if img := imageOf(services[broker]); !strings.Contains(img, "mosquitto") && !strings.Contains(img, "emqx") {
		c.failf(rel, "VIDDA_MQTT_URL names host %q, want a Mosquitto or EMQX service", broker)
	}
}

var (
	upstreamsRe = regexp.MustCompile(`reverse_proxy\s+([^{\n]+)`)
	siteRe      = regexp.MustCompile(`(?m)^(\S[^{\n]*)\{\s*$`)
)

// checkCaddy wants the proxy's upstreams to be the instances, on vidda's
// port, checked on /readyz.
func (c *checker) checkCaddy(rel string, services map[string]any, instances []string) {
	var file string
	for _, name := range keys(services) {
		if strings.HasPrefix(imageOf(services[name]), "caddy") {
			file = bindMounts(services[name])["/etc/caddy/Caddyfile"]
		}
	}
	if file == "" {
		c.failf(rel, "no caddy service mounting /etc/caddy/Caddyfile")
		return
	}
	caddyRel := filepath.Join("deploy", file)
	text := withoutComments(c.read(caddyRel))
	proxied := map[string]bool{}
	for _, m := range upstreamsRe.FindAllStringSubmatch(text, -1) {
		for _, up := range strings.Fields(m[1]) {
			host, p := up, ""
			if i := strings.LastIndex(up, ":"); i >= 0 {
				host, p = up[:i], up[i+1:]
			}
			if !slices.Contains(instances, host) || p != c.httpPort {
				c.failf(caddyRel, "upstream %s is not a vidda instance on port %s", up, c.httpPort)
			}
			proxied[host] = true
		}
	}
	for _, name := range instances {
		if !proxied[name] {
			c.failf(caddyRel, "instance %s is not behind the proxy", name)
		}
	}
	if !strings.Contains(text, "health_uri /readyz") || !c.routes["/readyz"] {
		c.failf(caddyRel, "the proxy does not check /readyz (or vidda does not serve it)")
	}
}

// caddySitePorts returns the ports of the Caddyfile's http://:PORT sites.
func caddySitePorts(text string) []string {
	var out []string
	for _, m := range siteRe.FindAllStringSubmatch(text, -1) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(m[1]), "http://:"); ok {
			out = append(out, rest)
		}
	}
	return out
}

// checkMosquitto wants the broker's auth plugin to ask routes vidda serves,
// through a service that exists, and to listen where vidda connects.
func (c *checker) checkMosquitto(services map[string]any) {
	var name, file string
	for _, n := range keys(services) {
		if strings.Contains(imageOf(services[n]), "mosquitto") {
			name, file = n, bindMounts(services[n])["/etc/mosquitto/mosquitto.conf"]
		}
	}
	if file == "" {
		return // EMQX or another broker: configured outside this file
	}
	confRel := filepath.Join("deploy", file)
	opts := map[string]string{}
	for _, line := range strings.Split(withoutComments(c.read(confRel)), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			opts[f[0]] = f[1]
		}
	}
	for _, k := range []string{"auth_opt_http_getuser_uri", "auth_opt_http_superuser_uri", "auth_opt_http_aclcheck_uri"} {
		if !c.routes[opts[k]] {
			c.failf(confRel, "%s %s is not a route vidda serves", k, opts[k])
		}
	}
	host := opts["auth_opt_http_host"]
	svc, ok := services[host]
	if !ok {
		c.failf(confRel, "auth_opt_http_host %s is not a compose service", host)
	} else if strings.HasPrefix(imageOf(svc), "caddy") {
		caddy := withoutComments(c.read(filepath.Join("deploy", bindMounts(svc)["/etc/caddy/Caddyfile"])))
		if !slices.Contains(caddySitePorts(caddy), opts["auth_opt_http_port"]) {
			c.failf(confRel, "auth_opt_http_port %s is not a site of the Caddyfile", opts["auth_opt_http_port"])
		}
		if !strings.Contains(caddy, "header_up Authorization") {
			c.failf(confRel, "Caddy does not add the token vidda's /mqtt/auth routes need")
		}
	}
	for _, n := range keys(services) {
		u := environment(services[n])["VIDDA_MQTT_URL"]
		if hostOf(u) == name && portOf(u) != opts["listener"] {
			c.failf(confRel, "listener %s is not the port of VIDDA_MQTT_URL in %s", opts["listener"], n)
		}
	}
}
