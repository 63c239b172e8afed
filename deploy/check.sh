#!/usr/bin/env bash
# Checks the deployment files without Docker or a cluster (CI runs it).
#   deploy/check.sh [--strict]   (--strict: the README's table must list every variable)
# deploy/check (a Go program, its own module) parses every YAML file and
# compares the Dockerfile, compose.yaml, the Caddyfile, mosquitto.conf and
# k8s/ with vidda's sources (variables, package, ports, routes, wiring).
# Where the tools exist it also asks them: `docker compose config` (needs
# only the client) and `kubectl kustomize` (offline).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
go=${GO:-go}
strict=()
if [ "${1:-}" = "--strict" ]; then strict=(-strict); fi

(cd "$here/check" && "$go" vet ./... && "$go" test -count=1 ./... >/dev/null && "$go" run . "${strict[@]}" "$root")

if docker compose version >/dev/null 2>&1; then
  POSTGRES_PASSWORD=x BROKER_PASSWORD=x PUBLIC_IP=192.0.2.10 VIDEO_TOKEN_KEY=x TURN_SECRET=x docker compose -f "$here/compose.yaml" config --quiet
  echo "deploy/check.sh: docker compose config: ok"
else
  echo "deploy/check.sh: no docker compose here; compose.yaml checked by deploy/check only"
fi
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize "$here/k8s" >/dev/null 2>&1; then
  echo "deploy/check.sh: kubectl kustomize deploy/k8s: ok"
elif command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize "$here/k8s" >/dev/null # show why
else
  echo "deploy/check.sh: no kubectl here; deploy/k8s checked by deploy/check only"
fi
