# Helpers the scripts share; sourced (`. scripts/lib.sh`) from the repository root.

# libmongoc (Debian's build initialises itself when it is loaded, before Parley's code runs)
# keeps performance counters in /dev/shm/mongoc-<pid>, which a killed process leaves
# behind; a later process given the same pid then warns "Falling back to malloc for
# counters" on stderr (seen in CI: a start-up test expects its one line of error).
# Parley never reads the counters.
export MONGOC_DISABLE_SHM=1

# python_venv DIR IMPORTS PACKAGE...: makes sure the venv at DIR can `import IMPORTS`,
# installing PACKAGE... from PyPI into it when it cannot. Debian's python3 has the venv
# module (python3-venv); pyenv's may come first on PATH.
python_venv() {
  local dir=$1 imports=$2; shift 2
  "$dir/bin/python" -c "import $imports" 2>/dev/null && return 0
  echo "$(basename "$0"): installing $* into $dir" >&2
  local py=/usr/bin/python3; [ -x "$py" ] || py=python3
  [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2
}

# swift_build CONFIG [ARGUMENTS...]: `swift build -c CONFIG ARGUMENTS`, without its
# progress lines; stops the script when the build fails.
swift_build() {
  local config=$1; shift
  set +o pipefail
  swift build -c "$config" "$@" 2>&1 | { grep -Ev '^\[[0-9]+/[0-9]+\]|_FILE_OFFSET_BITS|^Building for|^Compiling|^Write' >&2 || true; }
  local status=${PIPESTATUS[0]}
  set -o pipefail
  [ "$status" -eq 0 ] || { echo "$(basename "$0"): build failed" >&2; exit 1; }
}

# free_port: a TCP port nothing listens on now.
free_port() {
  python3 scripts/parley_tools.py free-port
}

# wait_http URL [SECONDS]: returns once URL answers (60 s at most by default).
wait_http() {
  python3 scripts/parley_tools.py wait-http "$@"
}
