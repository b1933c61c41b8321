#!/usr/bin/env bash
# End-to-end benchmark against the real tansu broker and VictoriaMetrics (started here,
# see scripts/services.sh). For each format (JSON, protobuf) and run it loads RECORDS
# simulated readings with `citysense simulate`, then measures in the same run:
#   (a) the raw consume rate of a bare rdkafka consumer on the same topics (the physical
#       limit of this broker and client on this machine: examples/raw_consume.rs), and
#   (b) citysense's end-to-end rate, first record consumed → last window acknowledged by
#       VictoriaMetrics (examples/pipeline_bench.rs),
# and prints min/median/max of each and the ratio (b)/(a);
#   (b') with BENCH_DISCARD=1, the same as (b) on the same topics with the store replaced by one
#       that acknowledges every write and keeps nothing (examples/discard_store.rs): citysense's
#       rate without VictoriaMetrics' ingestion on the same two cores; then
#   (c) the alert latency at a steady input rate: closing record produced → alert event read
#       from the alerts topic, p50/p99/max (examples/alert_latency.rs), each run on a fresh broker.
# Results go to target/bench/results.md; copy them into BENCHMARKS.md.
#   BENCH_RECORDS (default 2000000)  BENCH_RUNS (3)  BENCH_SENSORS (10000)  BENCH_FORMATS ("json protobuf")
#   BENCH_WARMUP (1: an unrecorded run 0 first)  BENCH_ALERT_RATE (50000 readings/s)  BENCH_ALERT_SECONDS (150)  BENCH_ALERT_RUNS (BENCH_RUNS; 0 skips (c))
#   CITYSENSE_SECTION__FIELD overrides reach the pipeline (e.g. CITYSENSE_PIPELINE__CHECKPOINT_INTERVAL=1h).
#   BENCH_PERF=1 records a perf profile of each citysense run under target/bench/.
#   BENCH_DISCARD=1 adds run (b') to every run.
#   BENCH_DISCARD_B="VAR=value …" adds a second run (b'') with these environment settings
#       on the same topics, in alternating order with (b'): an A/B in the same run (e.g.
#       BENCH_DISCARD_B="CITYSENSE_TOPICS__PM25__FORMAT=protobuf" or "MIMALLOC_ALLOW_THP=1").
#   BENCH_RULES=1 runs citysense with deploy/rules.toml (alert events to $prefix.alerts);
#       BENCH_DISCARD_B="BENCH_RULES=1" measures what the rules cost, in the same run.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/services.sh"
cd "$ROOT"

RECORDS="${BENCH_RECORDS:-2000000}"
RUNS="${BENCH_RUNS:-3}"
SENSORS="${BENCH_SENSORS:-10000}"
OUT="$ROOT/target/bench"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

log "Building release binaries"
cargo build --release --locked --quiet --bin citysense --example raw_consume --example pipeline_bench --example alert_latency \
    --example discard_store
BIN="$ROOT/target/release"

[ -n "${BENCH_DISCARD_B:-}" ] && BENCH_DISCARD=1
if [ "${BENCH_DISCARD:-0}" = 1 ]; then
    DISCARD_PORT="$(free_port)"
    "$BIN/examples/discard_store" "$DISCARD_PORT" >>"$OUT/discard-store.log" 2>&1 &
    PIDS+=("$!")
    wait_for discard_store 30 port_open "$DISCARD_PORT"
    DISCARD_URL="http://127.0.0.1:$DISCARD_PORT"
fi

# CPU seconds (user + system) used so far by tansu and VictoriaMetrics, services.sh's first
# two processes, from /proc/PID/stat in ticks of 1/100 s.
services_cpu() {
    for pid in "${PIDS[0]}" "${PIDS[1]}"; do
        awk '{ sub(/^.*\) /, ""); print ($12 + $13) / 100 }' "/proc/$pid/stat"
    done | paste -sd' '
}
services_cpu_since() {
    paste -d' ' <(echo "$1" | tr ' ' '\n') <(services_cpu | tr ' ' '\n') | awk '{ d[NR] = $2 - $1 } END { printf "tansu %.1f, VictoriaMetrics %.1f", d[1], d[2] }'
}

create_topic() { "$TANSU" topic create "$1" --partitions "$2" --broker "tcp://${3:-$CITYSENSE_TEST_KAFKA}" >/dev/null; }

# One run of citysense against the discarding store on topics $prefix.*, with checkpoints
# and aggregates of its own (`$1` names them), under the environment settings `$2…`.
discard_run() {
    local name="$1"
    shift
    create_topic "$prefix.checkpoints-$name" 1
    create_topic "$prefix.aggregates-$name" 4
    local before result
    before="$(services_cpu)"
    result="$(env "$@" CITYSENSE_TOPICS__CHECKPOINTS="$prefix.checkpoints-$name" CITYSENSE_ROLLUP__TOPIC="$prefix.aggregates-$name" \
        "$BIN/examples/pipeline_bench" "$CITYSENSE_TEST_KAFKA" "$prefix" "$RECORDS" "$DISCARD_URL" 2>>"$OUT/pipeline.log")"
    log "[$format $run/$RUNS] citysense, discarding store ($name${*:+: $*}): $result (store received $(curl -s "$DISCARD_URL/stats"))" >&2
    log "[$format $run/$RUNS] CPU seconds during that run: $(services_cpu_since "$before")" >&2
    echo "$result"
}

# Each alert-latency run gets a broker of its own. tansu's memory store keeps every record
# and its CPU grows with it (0.8 → 1.1 cores at 50 k readings/s over one 130 s run, while
# its memory grew to 1.9 GB), so a broker still holding the throughput runs' topics would
# measure them too.
start_latency_broker() {
    local port
    port="$(free_port)"
    "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >>"$WORK/tansu-latency.log" 2>&1 &
    LATENCY_BROKER_PID=$!
    PIDS+=("$LATENCY_BROKER_PID")
    wait_for tansu 30 port_open "$port"
    LATENCY_BROKER="127.0.0.1:$port"
}

# Run 0 (json, not recorded) warms VictoriaMetrics up: its first write of a series registers
# it, which made whichever run came first up to 2x slower than the next.
for format in ${BENCH_FORMATS:-json protobuf}; do
    first=1
    [ "$format" = "$(echo ${BENCH_FORMATS:-json protobuf} | cut -d' ' -f1)" ] && [ "${BENCH_WARMUP:-1}" = 1 ] && first=0
    for run in $(seq "$first" "$RUNS"); do
        prefix="bench-$format-$run-$$"
        for kind in pm25 dust water charging aggregates; do create_topic "$prefix.$kind" 4; done
        create_topic "$prefix.deadletter" 1
        create_topic "$prefix.checkpoints" 1
        # Used only with BENCH_RULES=1 (e.g. BENCH_DISCARD_B="BENCH_RULES=1").
        create_topic "$prefix.alerts" 1
        create_topic "$prefix.alerts.changelog" 1
        topics="$prefix.pm25,$prefix.dust,$prefix.water,$prefix.charging"
        log "[$format $run/$RUNS] loading $RECORDS readings from $SENSORS sensors"
        "$BIN/citysense" simulate --brokers "$CITYSENSE_TEST_KAFKA" --topics "$topics" --sensors "$SENSORS" \
            --rate 0 --count "$RECORDS" --format "$format" --interval 60s 2>>"$OUT/simulate.log"
        raw="$("$BIN/examples/raw_consume" "$CITYSENSE_TEST_KAFKA" "$topics" "$RECORDS")"
        log "[$format $run/$RUNS] raw consumer: $raw"
        # BENCH_PERF=1: profile citysense's run with perf (report: perf report -i target/bench/perf-*.data).
        profile=()
        [ "${BENCH_PERF:-0}" = 1 ] && profile=(perf record -F 499 -g -o "$OUT/perf-$format-$run.data" --)
        services_cpu_before="$(services_cpu)"
        e2e="$("${profile[@]}" "$BIN/examples/pipeline_bench" "$CITYSENSE_TEST_KAFKA" "$prefix" "$RECORDS" "$CITYSENSE_TEST_INFLUX" 2>>"$OUT/pipeline.log")"
        log "[$format $run/$RUNS] citysense: $e2e"
        # Where the machine's two cores went meanwhile: citysense's own CPU is in its line.
        log "[$format $run/$RUNS] CPU seconds during citysense's run: $(services_cpu_since "$services_cpu_before")"
        discard=null
        discard_b=null
        # Same input topics; checkpoints and aggregates of their own, so that nothing of
        # the run above is restored or rolled up again. With an A/B, odd runs go A first
        # and even runs B first, so that neither always meets the fuller broker.
        if [ -n "${BENCH_DISCARD_B:-}" ] && [ $((run % 2)) = 0 ]; then
            # shellcheck disable=SC2086 # BENCH_DISCARD_B is a list of VAR=value words.
            discard_b="$(discard_run discard-b $BENCH_DISCARD_B)"
        fi
        [ "${BENCH_DISCARD:-0}" = 1 ] && discard="$(discard_run discard)"
        if [ -n "${BENCH_DISCARD_B:-}" ] && [ $((run % 2)) = 1 ]; then
            # shellcheck disable=SC2086
            discard_b="$(discard_run discard-b $BENCH_DISCARD_B)"
        fi
        [ "$run" = 0 ] && continue
        printf '{"format":"%s","run":%s,"raw":%s,"citysense":%s,"discard":%s,"discard_b":%s}\n' "$format" "$run" "$raw" "$e2e" "$discard" "$discard_b" >>"$RESULTS"
    done
done

ALERT_RESULTS="$OUT/alert-latency.jsonl"
: >"$ALERT_RESULTS"
for run in $(seq 1 "${BENCH_ALERT_RUNS:-$RUNS}"); do
    prefix="latency-$run-$$"
    start_latency_broker
    create_topic "$prefix.pm25" 4 "$LATENCY_BROKER"
    create_topic "$prefix.aggregates" 4 "$LATENCY_BROKER"
    for kind in dust water charging; do create_topic "$prefix.$kind" 1 "$LATENCY_BROKER"; done
    for topic in deadletter checkpoints alerts alerts.changelog; do create_topic "$prefix.$topic" 1 "$LATENCY_BROKER"; done
    log "[alert latency $run] ${BENCH_ALERT_RATE:-50000} readings/s for ${BENCH_ALERT_SECONDS:-150} s (broker $LATENCY_BROKER)"
    latency="$("$BIN/examples/alert_latency" "$LATENCY_BROKER" "$prefix" "${BENCH_ALERT_RATE:-50000}" \
        "${BENCH_ALERT_SECONDS:-150}" "$SENSORS" "$CITYSENSE_TEST_INFLUX" 2>>"$OUT/alert-latency.log")"
    log "[alert latency $run] $latency"
    kill "$LATENCY_BROKER_PID" 2>/dev/null || true
    wait "$LATENCY_BROKER_PID" 2>/dev/null || true
    echo "$latency" >>"$ALERT_RESULTS"
done

python3 - "$RESULTS" "$RECORDS" "$SENSORS" "$ALERT_RESULTS" "${BENCH_DISCARD_B:-}" >"$OUT/results.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]

def by_format(rs):
    """(format, its runs) for each format measured (BENCH_FORMATS may leave one out)."""
    for fmt in ("json", "protobuf"):
        of_format = [r for r in rs if r["format"] == fmt]
        if of_format:
            yield fmt, of_format

def spread(rs, key):
    """min / median / max of a run's rate."""
    v = [r[key]["per_second"] for r in rs]
    return f"{min(v):,.0f} / {statistics.median(v):,.0f} / {max(v):,.0f}"

def ratio(rs, key, base):
    """The median of the per-run ratios of two rates."""
    return statistics.median(r[key]["per_second"] / r[base]["per_second"] for r in rs)

def cpu(rs, key):
    """citysense's CPU seconds in each run."""
    return " / ".join(f"{r[key]['cpu_seconds']:.2f}" for r in rs)

print(f"{sys.argv[2]} readings per run, {sys.argv[3]} sensors, {len(rows)} runs\n")
print("| format | raw consume (rec/s) min / median / max | citysense end to end (rec/s) min / median / max | ratio (median of per-run ratios) |")
print("|---|---|---|---|")
for fmt, rs in by_format(rows):
    print(f"| {fmt} | {spread(rs, 'raw')} | {spread(rs, 'citysense')} | {ratio(rs, 'citysense', 'raw'):.2f} |")
discarded = [r for r in rows if r.get("discard")]
if discarded:
    print("\nThe same topics, the store replaced by one that keeps nothing (BENCH_DISCARD=1):\n")
    print("| format | citysense end to end, store discarding (rec/s) min / median / max | ratio to raw (median of per-run ratios) | citysense CPU s per run |")
    print("|---|---|---|---|")
    for fmt, rs in by_format(discarded):
        print(f"| {fmt} | {spread(rs, 'discard')} | {ratio(rs, 'discard', 'raw'):.2f} | {cpu(rs, 'discard')} |")
compared = [r for r in discarded if r.get("discard_b")]
if compared:
    print(f"\nA/B on the same topics, discarding store, alternating order (B: {sys.argv[5]}):\n")
    print("| format | A rec/s min / median / max | B rec/s min / median / max | B / A (median of per-run ratios) | A CPU s per run | B CPU s per run |")
    print("|---|---|---|---|---|---|")
    for fmt, rs in by_format(compared):
        print(f"| {fmt} | {spread(rs, 'discard')} | {spread(rs, 'discard_b')} | {ratio(rs, 'discard_b', 'discard'):.2f} | {cpu(rs, 'discard')} | {cpu(rs, 'discard_b')} |")
latency = [json.loads(l) for l in open(sys.argv[4]) if l.strip()]
if latency:
    print("\n| run | target rec/s | produced rec/s | alert events | p50 ms | p99 ms | max ms | handed to producer p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(latency, 1):
        print(f"| {i} | {r['target_per_second']:,} | {r['produced_per_second']:,.0f} | {r['alert_events']:,} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r.get('handed_p50_ms', '–')} / {r.get('handed_p99_ms', '–')} |")
PY
cat "$OUT/results.md"
