#!/usr/bin/env bash
# Installs (when missing) and starts the services tests and benchmarks run against: a
# tansu broker, VictoriaMetrics and Alertmanager on free loopback ports, stopped again on
# exit. Sourced by scripts/test.sh and scripts/bench.sh; exports CITYSENSE_TEST_KAFKA,
# CITYSENSE_TEST_INFLUX and CITYSENSE_TEST_ALERTMANAGER. A service that does not start
# is a failure, never a skip.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CITYSENSE_CACHE:-$HOME/.cache/citysense}"
TANSU_VERSION="0.6.0"
TANSU_ROOT="$CACHE/tools/tansu-$TANSU_VERSION"
TANSU="$TANSU_ROOT/bin/tansu"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/citysense-test.XXXXXX")"
PIDS=()

log() { printf '[test.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

cleanup() {
    local status=$?
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        for f in "$WORK"/*.log; do
            [ -f "$f" ] && { log "--- last lines of $f"; tail -n 20 "$f" >&2; }
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT INT TERM

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

install_packages() {
    local missing=()
    # chromium + chromium-driver: the dashboard test drives the page in a real browser.
    for pkg in build-essential pkg-config zlib1g-dev victoria-metrics prometheus-alertmanager curl chromium chromium-driver; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "Installing Debian packages: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

install_tansu() {
    if [ -x "$TANSU" ]; then return; fi
    log "Building tansu $TANSU_VERSION (once; cached in $TANSU_ROOT, about 13 minutes on 2 cores)"
    CARGO_TARGET_DIR="$CACHE/tansu-build" cargo install tansu --version "$TANSU_VERSION" --locked \
        --features dynostore,libsql --root "$TANSU_ROOT" >"$WORK/tansu-install.log" 2>&1 \
        || { tail -n 30 "$WORK/tansu-install.log" >&2; fail "cargo install tansu"; }
    rm -rf "$CACHE/tansu-build"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for NAME SECONDS COMMAND...
    local name=$1 seconds=$2; shift 2
    for _ in $(seq 1 $((seconds * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    fail "$name did not become ready within ${seconds}s"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_packages
install_tansu
VICTORIA="$(command -v victoria-metrics || echo /usr/bin/victoria-metrics)"
[ -x "$VICTORIA" ] || fail "victoria-metrics is not installed"

KAFKA_PORT="$(free_port)"
VM_PORT="$(free_port)"

log "Starting tansu on 127.0.0.1:$KAFKA_PORT"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
PIDS+=("$!")
wait_for tansu 30 port_open "$KAFKA_PORT"

log "Starting VictoriaMetrics on 127.0.0.1:$VM_PORT"
"$VICTORIA" -httpListenAddr="127.0.0.1:$VM_PORT" -storageDataPath="$WORK/vm-data" -retentionPeriod=100y \
    -loggerLevel=WARN >"$WORK/victoria-metrics.log" 2>&1 &
PIDS+=("$!")
wait_for victoria-metrics 30 curl -sf "http://127.0.0.1:$VM_PORT/health"

AM_PORT="$(free_port)"
log "Starting Alertmanager on 127.0.0.1:$AM_PORT"
cat >"$WORK/alertmanager.yml" <<'YAML'
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
YAML
ALERTMANAGER="$(command -v prometheus-alertmanager || echo /usr/bin/prometheus-alertmanager)"
"$ALERTMANAGER" --config.file="$WORK/alertmanager.yml" --storage.path="$WORK/am-data" \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address="" --log.level=warn >"$WORK/alertmanager.log" 2>&1 &
PIDS+=("$!")
wait_for alertmanager 30 curl -sf "http://127.0.0.1:$AM_PORT/-/ready"

export CITYSENSE_TEST_ALERTMANAGER="http://127.0.0.1:$AM_PORT"
export CITYSENSE_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"
# Fault tests start (and stop) their own instances of these.
export CITYSENSE_TEST_TANSU_BIN="$TANSU"
export CITYSENSE_TEST_CHROMEDRIVER="$(command -v chromedriver || echo /usr/bin/chromedriver)"
export CITYSENSE_TEST_VICTORIA_BIN="$VICTORIA"
export CITYSENSE_TEST_INFLUX="http://127.0.0.1:$VM_PORT"

