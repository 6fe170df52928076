#!/usr/bin/env bash
# Matrix Synapse for the side-by-side benchmark (scripts/bench --peer synapse): installs
# matrix-synapse from PyPI into .data/venv-synapse, makes a fresh PostgreSQL database on
# Parley's own PostgreSQL (scripts/services), writes a config with every rate limit raised
# and registration open on loopback, and runs it.
#   bench/synapse.sh start PORT     starts it in the background, waits until it answers
#   bench/synapse.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
DIR=.data/synapse
VENV=.data/venv-synapse
stop_synapse() {
  # setsid may fork: find the server by its command line, not by the launcher's pid.
  pkill -f "synapse.app.homeserver --config-path $(pwd)/$DIR/homeserver.yaml" 2>/dev/null || true
  for _ in $(seq 1 50); do
    pgrep -f "synapse.app.homeserver --config-path $(pwd)/$DIR/homeserver.yaml" >/dev/null || break
    sleep 0.2
  done
  rm -f "$DIR/synapse.pid"
}

case "${1:-}" in
  start)
    PORT=${2:?port}
    stop_synapse
    python_venv "$VENV" synapse "matrix-synapse[postgres]"
    eval "$(./scripts/services env)"
    PG_PORT=$(echo "$PARLEY_POSTGRES_URL" | sed -E 's#.*:([0-9]+)/.*#\1#')
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "DROP DATABASE IF EXISTS synapse_bench" >/dev/null
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc \
      "CREATE DATABASE synapse_bench ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0" >/dev/null
    rm -rf "$DIR"; mkdir -p "$DIR"
    ABS=$(cd "$DIR" && pwd)
    (cd "$DIR" && "../../$VENV/bin/python" -m synapse.app.homeserver --server-name bench.local \
      --config-path "$ABS/generated.yaml" --generate-config --report-stats=no --data-directory "$ABS" >/dev/null)
    # The generated file holds the keys and secrets; the rest is set here.
    "$VENV/bin/python" - "$DIR/generated.yaml" "$DIR/homeserver.yaml" "$PORT" "$PG_PORT" "$ABS" <<'PY'
import sys, yaml
source, target, port, pg_port, folder = sys.argv[1:]
config = yaml.safe_load(open(source))
unlimited = {"per_second": 1000000, "burst_count": 1000000}
config.update({
    "listeners": [{"port": int(port), "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                   "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
    "database": {"name": "psycopg2", "args": {"user": "postgres", "host": "127.0.0.1", "port": int(pg_port),
                                              "database": "synapse_bench", "cp_min": 5, "cp_max": 10}},
    "log_config": f"{folder}/log.yaml",
    "enable_registration": True, "enable_registration_without_verification": True,
    "use_presence": False, "suppress_key_server_warning": True, "trusted_key_servers": [],
    # Rate limits raised for the test.
    "rc_message": unlimited, "rc_registration": unlimited,
    "rc_login": {"address": unlimited, "account": unlimited, "failed_attempts": unlimited},
    "rc_joins": {"local": unlimited, "remote": unlimited}, "rc_joins_per_room": unlimited,
    "rc_invites": {"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
    "rc_room_creation": unlimited,
})
yaml.safe_dump(config, open(target, "w"))
PY
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
    stop_synapse
    ;;
  *) echo "usage: bench/synapse.sh start PORT | stop" >&2; exit 2 ;;
esac
