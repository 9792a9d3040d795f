#!/usr/bin/env bash
# Load benchmark of `tollgate run` against a real Kafka-protocol broker
# (tansu, in memory, on loopback). Not a test: it prints figures for the
# README's performance table.
#
#   benches/load-kafka.sh [EVENTS] [PARTITIONS]     (default 2000000, 4)
#
# STEPS=12 runs only the steps named (default 1234; step 3 needs step 2's
# rate, or PACE=EVENTS_PER_S to pace at that rate instead of half of it); TG_BIN=PATH runs another tollgate binary (A/B runs); TG_PERF=FILE records step 2's `tollgate run` with `perf record -g`; TG_TRACE=FILE keeps step 3's metrics once a second; PIN=1 puts the broker and producers on CPU 0 and Tollgate on CPU 1 (see below).
#
# 1. ceiling: a bare rdkafka consumer reads EVENTS records and does nothing;
# 2. throughput: `tollgate run` consumes the same topic (new group) and
#    scores every event; sustained events/s from the first to the last scored
#    (one event per record, so records/s = events/s);
# 3. latency (on a fresh broker): Tollgate consumes while the producer paces
#    records at half of Tollgate's measured rate; p50/p99 from the record's
#    Kafka timestamp to the record fully processed
#    (tollgate_kafka_end_to_end_seconds), the part inside Tollgate
#    (tollgate_processing_latency_seconds), and the floor: a bare
#    consumer's timestamp-to-receipt at the same rate;
# 4. memory: 10,000 tenants, resident set size once all are scored.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-2000000}"
PARTS="${2:-4}"
STEPS="${STEPS:-1234}"
step() { [[ "$STEPS" == *"$1"* ]]; }
eval "$(scripts/services)"
# Two builds: with `--example` given, cargo would build no binary of `-p tollgate`.
cargo build --release -q -p tollgate --bin tollgate
cargo build --release -q -p tollgate-benches --example kafka_load
TG="${TG_BIN:-target/release/tollgate}"
LOAD=target/release/examples/kafka_load
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# A fresh broker per step: tansu's in-memory engine spends CPU in proportion
# to the batches it already holds (see PACED below), so a step run after
# another would measure the broker's ballast, not Tollgate.
start_broker() {
  if [ -n "${TANSU_PID:-}" ]; then kill "$TANSU_PID"; wait "$TANSU_PID" 2>/dev/null || true; fi
  local port; port=$(free_port)
  broker="127.0.0.1:$port"
  $SIDE "$TOLLGATE_TANSU_BIN" broker --listener-url "tcp://$broker" --advertised-listener-url "tcp://$broker" \
    --storage-engine memory://tansu/ >>"$work/tansu.log" 2>&1 &
  TANSU_PID=$!
  pids+=($TANSU_PID)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
}
# The paced producer's batching (librdkafka properties). With the default
# linger.ms=5, sending each millisecond's due records makes ~800 small
# batches/s, and tansu's CPU grows with every batch it stores (from 10 % to
# a whole core over 30 s at 56k records/s, measured); lingering 25 ms stores
# a fifth as many. The linger is inside the measured latency (the record's
# timestamp is taken when it is handed to the producer).
PACED="${PACED:-linger.ms=25}"
# Tenants in step 3's traffic. With many, the workers' snapshot rounds
# (every `service.snapshot_interval`; TOLLGATE_SERVICE__SNAPSHOT_INTERVAL=10s
# shortens it) show in the latency.
LAT_TENANTS="${LAT_TENANTS:-100}"
# PIN=1: the broker and the producers on CPU 0, Tollgate and the bare
# consumers on CPU 1 — as in a deployment where the broker and the
# producers run elsewhere (Tollgate then sees one core: one worker).
if [ "${PIN:-0}" = 1 ]; then SIDE="taskset -c 0"; OURS="taskset -c 1"; else SIDE=""; OURS=""; fi

topic() { "$TOLLGATE_TANSU_BIN" topic create "$1" --broker "tcp://$broker" --partitions "$PARTS" >/dev/null; }

metric() { # NAME [ADDR] -> summed value
  curl -s "http://$2/metrics" | awk -v n="$1" '$1==n || index($1, n"{")==1 {s+=$2} END {printf "%.0f\n", s}'
}

# Starts `tollgate run` on TOPIC with a fresh group; sets TG_PID and ADMIN.
start_tollgate() {
  local t="$1" g="$2"
  local admin_port; admin_port=$(free_port)
  ADMIN="127.0.0.1:$admin_port"
  cat >"$work/$g.toml" <<TOML
[service]
model_dir = "$work/models-$g"
[alerts]
path = "$work/alerts-$g.ndjson"
[dead_letter]
path = "$work/dead-$g.ndjson"
[admin]
addr = "$ADMIN"
[admission]
events_per_second = 0
[[inputs]]
name = "load"
source = "kafka"
decode = { format = "auto", tenant = { type = "kafka_key" } }
[inputs.kafka]
bootstrap_servers = "$broker"
topics = ["$t"]
group_id = "$g"
properties = { "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000", "fetch.wait.max.ms" = "50" }
TOML
  $OURS "$TG" run --config "$work/$g.toml" 2>"$work/$g.log" &
  TG_PID=$!
  pids+=($TG_PID)
  for _ in $(seq 100); do curl -sf "http://$ADMIN/healthz" >/dev/null && break; sleep 0.1; done
}

wait_scored() { # N -> prints seconds from first to last scored event
  local n="$1" first="" now c
  while :; do
    c=$(metric tollgate_events_scored_total "$ADMIN")
    now=$(date +%s.%N)
    if [ -z "$first" ] && [ "$c" -gt 0 ]; then first=$now; first_c=$c; fi
    if [ "$c" -ge "$n" ]; then break; fi
    sleep 0.2
  done
  # (When everything was already scored at the first look, the rate is moot.)
  python3 -c "d=max($now-$first,1e-9); print(f'{d:.2f} {($n-$first_c)/d:.0f}')"
}

if step 1 || step 2; then
  start_broker
  echo "== producing $EVENTS events to $PARTS partitions (tansu at $broker)"
  topic bench
  $SIDE "$LOAD" produce "$broker" bench "$EVENTS" 100
fi

ceil_rate=""
if step 1; then
  echo "== 1. broker ceiling: bare consumer"
  ceiling=$($OURS "$LOAD" ceiling "$broker" bench "$EVENTS")
  echo "$ceiling"
  ceil_rate=$(echo "$ceiling" | sed -E 's/.*\(([0-9]+)\/s.*/\1/')
fi

if step 2; then
  echo "== 2. tollgate run: sustained throughput"
  start_tollgate bench tg1
  if [ -n "${TG_PERF:-}" ]; then perf record -q ${TG_PERF_OPTS:--g} -p "$TG_PID" -o "$TG_PERF" 2>/dev/null & perf_pid=$!; fi
  read -r secs rate < <(wait_scored "$EVENTS")
  if [ -n "${TG_PERF:-}" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  kill -TERM "$TG_PID"; wait "$TG_PID" || true
  share=""
  [ -n "$ceil_rate" ] && share=" = $(python3 -c "print(f'{100*$rate/$ceil_rate:.0f}')")% of the ceiling"
  echo "tollgate scored $EVENTS events: ${rate}/s over ${secs} s$share"
fi

if step 3; then
  echo "== 3. latency at half of Tollgate's rate"
  half=${PACE:-$((${rate:?step 3 needs step 2 or PACE} / 2))}
  lat_events=$((half * 30))
  start_broker
  topic latency
  start_tollgate latency tg2
  # Produce only once the consumer holds its partitions: records produced
  # during the group join would wait for it and measure the join, not Tollgate.
  for _ in $(seq 300); do
    [ "$(metric tollgate_kafka_rebalances "$ADMIN")" -ge 1 ] && break
    sleep 0.1
  done
  # TG_TRACE=FILE: the metrics once a second while the traffic runs
  # ("# at EPOCH" before each scrape), to see when latency is spent.
  if [ -n "${TG_TRACE:-}" ]; then
    (while :; do echo "# at $(date +%s.%N)"; curl -s "http://$ADMIN/metrics"; sleep 1; done >"$TG_TRACE") &
    trace_pid=$!
  fi
  $SIDE "$LOAD" produce "$broker" latency "$lat_events" "$LAT_TENANTS" "$half" 2 "$PACED"
  wait_scored "$lat_events" >/dev/null
  if [ -n "${TG_TRACE:-}" ]; then kill "$trace_pid"; fi
  curl -s "http://$ADMIN/metrics" >"$work/latency-metrics"
  kill -TERM "$TG_PID"; wait "$TG_PID" || true
  python3 - "$work/latency-metrics" <<'PY'
import re, sys
def hist(name):
    b = []
    for line in open(sys.argv[1]):
        m = re.match(name + r'_bucket\{.*le="([^"]+)"\} (\S+)', line)
        if m:
            b.append((float('inf') if m.group(1) == '+Inf' else float(m.group(1)), float(m.group(2))))
    b.sort()
    return b
def q(b, p):
    want, prev_le, prev_c = p * b[-1][1], 0.0, 0.0
    for le, c in b:
        if c >= want:
            if le == float('inf'):
                return prev_le
            return prev_le + (le - prev_le) * (want - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
e2e = hist('tollgate_kafka_end_to_end_seconds')
own = hist('tollgate_processing_latency_seconds')
print(f"end-to-end latency over {e2e[-1][1]:.0f} records: p50 {q(e2e, 0.5)*1000:.0f} ms, p99 {q(e2e, 0.99)*1000:.0f} ms"
      f" (inside Tollgate, arrival to scored: p50 {q(own, 0.5)*1000:.1f} ms, p99 {q(own, 0.99)*1000:.1f} ms)")
pause = hist('tollgate_snapshot_pause_seconds')
if pause and pause[-1][1] > 0:
    longest = next(le for le, c in pause if c >= pause[-1][1])
    print(f"snapshot writes: {pause[-1][1]:.0f} pauses, the longest <= {longest*1000:.0f} ms")
PY
  # The floor under that: a bare consumer (no processing) at the same paced
  # rate, from the record's timestamp to its receipt.
  start_broker
  topic floor
  $OURS "$LOAD" stream "$broker" floor "$lat_events" "session.timeout.ms=6000,heartbeat.interval.ms=1000,fetch.wait.max.ms=50" >"$work/floor" &
  floor_pid=$!
  sleep 4
  $SIDE "$LOAD" produce "$broker" floor "$lat_events" "$LAT_TENANTS" "$half" 2 "$PACED" >/dev/null
  wait "$floor_pid"
  echo "floor, bare consumer at the same rate: $(cat "$work/floor")"
fi

if step 4; then
  echo "== 4. resident memory with 10,000 tenants"
  start_broker
  topic tenants
  $SIDE "$LOAD" produce "$broker" tenants 1000000 10000 0 3 >/dev/null
  start_tollgate tenants tg3
  wait_scored 1000000 >/dev/null
  echo "tollgate RSS with 10,000 tenants: $(awk '/VmRSS/{printf "%.0f MiB", $2/1024}' /proc/$TG_PID/status) (peak $(awk '/VmHWM/{printf "%.0f MiB", $2/1024}' /proc/$TG_PID/status)); tenants resident: $(metric tollgate_tenants_resident "$ADMIN")"
  kill -TERM "$TG_PID"; wait "$TG_PID" || true
fi
