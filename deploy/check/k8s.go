package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// k8sDocs are the manifests kustomization.yaml lists, by kind.
type k8sDocs map[string][]map[string]any

func (c *checker) checkK8s() {
	const dir = "deploy/k8s"
	kust := c.docs(dir + "/kustomization.yaml")
	if len(kust) != 1 {
		c.failf(dir, "want one kustomization.yaml")
		return
	}
	listed := map[string]bool{}
	all := k8sDocs{}
	for _, r := range list(kust[0], "resources") {
		file := fmt.Sprint(r)
		listed[file] = true
		for _, d := range c.docs(filepath.Join(dir, file)) {
			all[str(d, "kind")] = append(all[str(d, "kind")], d)
		}
	}
	files, _ := filepath.Glob(c.path(dir + "/*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !listed[b] {
			c.failf(dir, "%s is not listed in kustomization.yaml", b)
		}
	}
	config := map[string]map[string]string{} // ConfigMap and Secret name → entries
	for _, kind := range []string{"ConfigMap", "Secret"} {
		for _, d := range all[kind] {
			entries := map[string]string{}
			for _, field := range []string{"data", "stringData"} {
				m, _ := get(d, field).(map[string]any)
				for k, v := range m {
					entries[k] = fmt.Sprint(v)
					if strings.HasPrefix(k, "VIDDA_") {
						c.usesVar(dir+"/"+strings.ToLower(kind), k)
					}
				}
			}
			config[kind+"/"+str(d, "metadata", "name")] = entries
		}
	}
	workloads := slices.Concat(all["StatefulSet"], all["Deployment"])
	if len(workloads) != 1 {
		c.failf(dir, "want one vidda StatefulSet or Deployment, found %d", len(workloads))
		return
	}
	w := workloads[0]
	labels, _ := get(w, "spec", "template", "metadata", "labels").(map[string]any)
	ports := c.checkPodSpec(dir, get(w, "spec", "template", "spec"), config)
	if r, _ := get(w, "spec", "replicas").(int); r < 2 {
		c.failf(dir, "replicas %d: want at least 2", r)
	}
	if str(w, "kind") == "StatefulSet" {
		governing := str(w, "spec", "serviceName")
		found := false
		for _, s := range all["Service"] {
			found = found || str(s, "metadata", "name") == governing && str(s, "spec", "clusterIP") == "None"
		}
		if !found {
			c.failf(dir, "the StatefulSet's serviceName %q is not a headless Service", governing)
		}
	}
	for _, s := range all["Service"] {
		name := str(s, "metadata", "name")
		c.selects(dir, "Service "+name, get(s, "spec", "selector"), labels)
		for _, p := range list(s, "spec", "ports") {
			if tp := fmt.Sprint(get(p, "targetPort")); ports[tp] == "" {
				c.failf(dir, "Service %s targets port %s, which the container does not declare", name, tp)
			}
		}
	}
	if len(all["PodDisruptionBudget"]) == 0 {
		c.failf(dir, "no PodDisruptionBudget")
	}
	for _, p := range all["PodDisruptionBudget"] {
		c.selects(dir, "PodDisruptionBudget", get(p, "spec", "selector", "matchLabels"), labels)
	}
}

// selects wants every label of selector on the pods.
func (c *checker) selects(dir, what string, selector any, labels map[string]any) {
	sel, _ := selector.(map[string]any)
	if len(sel) == 0 {
		c.failf(dir, "%s selects nothing", what)
	}
	for k, v := range sel {
		if labels[k] != v {
			c.failf(dir, "%s selects %s=%v, which the pods do not carry", what, k, v)
		}
	}
}

// checkPodSpec checks the vidda container and returns its ports, by name
// and by number, as port numbers.
func (c *checker) checkPodSpec(dir string, pod any, config map[string]map[string]string) map[string]string {
	ports := map[string]string{}
	containers := list(pod, "containers")
	if len(containers) == 0 {
		c.failf(dir, "the pod has no container")
		return ports
	}
	ctr := containers[0]
	env := map[string]string{}
	for _, ef := range list(ctr, "envFrom") {
		for kind, field := range map[string]string{"ConfigMap": "configMapRef", "Secret": "secretRef"} {
			if name := str(ef, field, "name"); name != "" {
				entries, ok := config[kind+"/"+name]
				if !ok {
					c.failf(dir, "envFrom names %s %s, which is not among the manifests", kind, name)
				}
				for k, v := range entries {
					env[k] = v
				}
			}
		}
	}
	idFromPod := false
	for _, e := range list(ctr, "env") {
		name := str(e, "name")
		if strings.HasPrefix(name, "VIDDA_") {
			c.usesVar(dir, name)
		}
		env[name] = str(e, "value")
		if name == "VIDDA_INSTANCE_ID" && str(e, "valueFrom", "fieldRef", "fieldPath") == "metadata.name" {
			idFromPod = true
		}
	}
	if !idFromPod {
		c.failf(dir, "VIDDA_INSTANCE_ID does not come from the pod name (downward API metadata.name)")
	}
	if p := port(env["VIDDA_HTTP_ADDR"]); p != c.httpPort {
		c.failf(dir, "VIDDA_HTTP_ADDR %q: want port %s", env["VIDDA_HTTP_ADDR"], c.httpPort)
	}
	for _, p := range list(ctr, "ports") {
		n := fmt.Sprint(get(p, "containerPort"))
		ports[n] = n
		if name := str(p, "name"); name != "" {
			ports[name] = n
		}
	}
	if ports["http"] != c.httpPort {
		c.failf(dir, "the container's http port is %q, vidda listens on %s", ports["http"], c.httpPort)
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		got := str(ctr, probe, "httpGet", "path")
		if got != path || !c.routes[path] {
			c.failf(dir, "%s asks %q, want %s (a route vidda serves)", probe, got, path)
		}
		if p := fmt.Sprint(get(ctr, probe, "httpGet", "port")); ports[p] != c.httpPort {
			c.failf(dir, "%s asks port %s, vidda listens on %s", probe, p, c.httpPort)
		}
	}
	nonRoot := get(pod, "securityContext", "runAsNonRoot") == true || get(ctr, "securityContext", "runAsNonRoot") == true
	if !nonRoot {
		c.failf(dir, "the pod does not require runAsNonRoot")
	}
	if get(ctr, "securityContext", "allowPrivilegeEscalation") == true {
		c.failf(dir, "the container allows privilege escalation")
	}
	return ports
}
