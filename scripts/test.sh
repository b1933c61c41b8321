#!/usr/bin/env bash
# The test command. On a fresh machine it installs what is missing (Debian packages with
# apt-get; tansu with cargo install, pinned, cached under $CITYSENSE_CACHE), starts a tansu
# broker, VictoriaMetrics and Alertmanager on free loopback ports (scripts/services.sh),
# runs the whole test suite against them, and stops them even when tests fail. Under CI=true a service that does
# not start is a failure, never a skip.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/services.sh"

cd "$ROOT"
log "Running the test suite (broker $CITYSENSE_TEST_KAFKA, time-series store $CITYSENSE_TEST_INFLUX, Alertmanager $CITYSENSE_TEST_ALERTMANAGER)"
cargo check --locked --benches --quiet
cargo test --locked 2>&1 | tee "$WORK/cargo-test.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || fail "cargo test exited with $status"
log "All tests passed"
# One closing line over every test binary (cargo's own last line is the doc tests').
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$WORK/cargo-test.log"
