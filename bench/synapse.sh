#!/usr/bin/env bash
# Matrix Synapse for the side-by-side benchmark (scripts/bench --peer synapse): installs
# matrix-synapse from PyPI into .data/venv-synapse, makes a fresh PostgreSQL database on
# Parley's own PostgreSQL (scripts/services), writes a config with every rate limit raised
# and registration open on loopback, and runs it.
#   bench/synapse.sh start PORT     starts it in the background, waits until it answers
#   bench/synapse.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.data/synapse
VENV=.data/venv-synapse
case "${1:-}" in
  start)
    PORT=${2:?port}
    if ! "$VENV/bin/python" -c 'import synapse' 2>/dev/null; then
      echo "bench: installing matrix-synapse into $VENV" >&2
      PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
      "$PY" -m venv "$VENV"
      "$VENV/bin/pip" install -q --disable-pip-version-check "matrix-synapse[postgres]" >&2
    fi
    eval "$(./scripts/services env)"
    PG_PORT=$(echo "$PARLEY_POSTGRES_URL" | sed -E 's#.*:([0-9]+)/.*#\1#')
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS synapse_bench" >/dev/null
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc \
      "CREATE DATABASE synapse_bench ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0" >/dev/null
    rm -rf "$DIR"; mkdir -p "$DIR"
    ABS=$(cd "$DIR" && pwd)
    (cd "$DIR" && "../../$VENV/bin/python" -m synapse.app.homeserver --server-name bench.local \
      --config-path "$ABS/generated.yaml" --generate-config --report-stats=no --data-directory "$ABS" >/dev/null)
    # The generated file holds the keys and secrets; what follows overrides the rest (the
    # YAML loader keeps the last value of a repeated key).
    cat "$DIR/generated.yaml" > "$DIR/homeserver.yaml"
    cat >> "$DIR/homeserver.yaml" <<YAML
listeners:
  - port: $PORT
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: psycopg2
  args:
    user: postgres
    host: 127.0.0.1
    port: $PG_PORT
    database: synapse_bench
    cp_min: 5
    cp_max: 10
log_config: "$ABS/log.yaml"
enable_registration: true
enable_registration_without_verification: true
use_presence: false
suppress_key_server_warning: true
trusted_key_servers: []
rc_message: {per_second: 1000000, burst_count: 1000000}
rc_registration: {per_second: 1000000, burst_count: 1000000}
rc_login:
  address: {per_second: 1000000, burst_count: 1000000}
  account: {per_second: 1000000, burst_count: 1000000}
  failed_attempts: {per_second: 1000000, burst_count: 1000000}
rc_joins:
  local: {per_second: 1000000, burst_count: 1000000}
  remote: {per_second: 1000000, burst_count: 1000000}
rc_joins_per_room: {per_second: 1000000, burst_count: 1000000}
rc_invites:
  per_room: {per_second: 1000000, burst_count: 1000000}
  per_user: {per_second: 1000000, burst_count: 1000000}
  per_issuer: {per_second: 1000000, burst_count: 1000000}
rc_room_creation: {per_second: 1000000, burst_count: 1000000}
YAML
    cat > "$DIR/log.yaml" <<YAML
version: 1
formatters: {precise: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}
handlers: {file: {class: logging.FileHandler, formatter: precise, filename: $ABS/homeserver.log}}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
YAML
    (cd "$DIR" && setsid nohup "../../$VENV/bin/python" -m synapse.app.homeserver --config-path "$ABS/homeserver.yaml" \
      >"$ABS/stdout.log" 2>&1 & echo $! > "$ABS/synapse.pid")
    for _ in $(seq 1 300); do
      if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/_matrix/client/versions', timeout=1)" 2>/dev/null; then
        echo "bench: synapse $("$VENV/bin/pip" show matrix-synapse | sed -n 's/^Version: //p') up on 127.0.0.1:$PORT" >&2
        exit 0
      fi
      sleep 0.2
    done
    echo "bench: synapse did not start; see $DIR/stdout.log and $DIR/homeserver.log" >&2
    tail -20 "$DIR/stdout.log" >&2
    exit 1
    ;;
  stop)
    [ -f "$DIR/synapse.pid" ] && { kill "$(cat "$DIR/synapse.pid")" 2>/dev/null || true; rm -f "$DIR/synapse.pid"; }
    ;;
  *) echo "usage: bench/synapse.sh start PORT | stop" >&2; exit 2 ;;
esac
