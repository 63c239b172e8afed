#!/usr/bin/env bash
# The local development cluster behind `make run`.
#   deploy/devcluster.sh ensure-postgres   install Debian's postgresql when initdb/pg_ctl are missing
#   deploy/devcluster.sh run               start PostgreSQL under .data/ (unless VIDDA_DATABASE_URL is set),
#                                          migrate, seed the demo clinic, print logins, serve
#   deploy/devcluster.sh stop              stop the cluster under .data/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin/vidda"

have_postgres() {
  command -v pg_ctl >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null
}

ensure_postgres() {
  have_postgres && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL server binaries are missing: run 'sudo apt-get install -y postgresql' or set VIDDA_DATABASE_URL." >&2
    exit 1
  fi
  echo "Installing PostgreSQL (Debian package postgresql)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
}

case "${1:-run}" in
  ensure-postgres)
    ensure_postgres
    ;;
  run)
    if [ -z "${VIDDA_DATABASE_URL:-}" ]; then
      ensure_postgres
      mkdir -p "$root/.data"
      chmod 711 "$root/.data"
      VIDDA_DATABASE_URL=$("$bin" devdb start --dir "$root/.data/pg")
      export VIDDA_DATABASE_URL
      echo "PostgreSQL: $VIDDA_DATABASE_URL (data in .data/pg; stop with deploy/devcluster.sh stop)"
    fi
    export VIDDA_LOG_FORMAT="${VIDDA_LOG_FORMAT:-text}"
    "$bin" migrate
    "$bin" seed --env-file "$root/.data/demo-tokens.env"
    echo "Tokens also in .data/demo-tokens.env (source it: set -a; . .data/demo-tokens.env; set +a)"
    if [ -n "${DEMO_HOMES:-}" ]; then
      # Simulated homes publish through the embedded broker once it listens.
      mqtt="${VIDDA_MQTT_LISTEN:-127.0.0.1:1883}"
      (
        for _ in $(seq 100); do
          (exec 3<>"/dev/tcp/${mqtt%:*}/${mqtt##*:}") 2>/dev/null && break
          sleep 0.2
        done
        exec "$bin" devsim --homes "$DEMO_HOMES" --rate "${DEMO_RATE:-5}" >"$root/.data/devsim.log" 2>&1
      ) &
      echo "Simulating $DEMO_HOMES homes at ${DEMO_RATE:-5} messages/s (devsim; progress in .data/devsim.log)"
    fi
    echo "Starting vidda on http://${VIDDA_HTTP_ADDR:-127.0.0.1:8080}, MQTT on ${VIDDA_MQTT_LISTEN:-127.0.0.1:1883} (Ctrl-C to stop)"
    exec "$bin" serve
    ;;
  stop)
    "$bin" devdb stop --dir "$root/.data/pg"
    ;;
  *)
    echo "usage: $0 ensure-postgres|run|stop" >&2
    exit 2
    ;;
esac
