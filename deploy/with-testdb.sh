#!/usr/bin/env bash
# Runs a command with VIDDA_TEST_DATABASE_URL pointing at a throwaway
# PostgreSQL cluster that is removed afterwards. One cluster serves the whole
# `go test ./...` run; each test package creates its own databases in it.
#   deploy/with-testdb.sh [--durable] CMD...
# --durable keeps fsync on (benchmarks must pay for durable commits).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
durable=()
if [ "${1:-}" = "--durable" ]; then durable=(--durable); shift; fi
"$here/devcluster.sh" ensure-postgres
dir=$(mktemp -d /tmp/vidda-testdb.XXXXXX)
chmod 711 "$dir"
bin="$here/../bin/vidda"
cleanup() { "$bin" devdb stop --dir "$dir/pg" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
url=$("$bin" devdb start --dir "$dir/pg" --port 0 --throwaway "${durable[@]}")
export VIDDA_TEST_DATABASE_URL="$url"
export VIDDA_BENCH_DATABASE_URL="$url"
"$@"
