#!/usr/bin/env bash
# Pinned admission benchmark (the method of issue 10): the release binary serves
# `webhook --offline` over TLS on core 0, wrk (one thread, keep-alive) loads it from
# core 1. For each concurrency: a fresh server, 2 s warm-up, then the measured run.
# Prints req/s, p50/p99/p99.9, server CPU µs per review (utime+stime from
# /proc/PID/stat over the measured run) and peak RSS (VmHWM).
#
# Needs: wrk, openssl, curl, taskset (Debian: apt-get install wrk openssl curl util-linux).
# Knobs (environment):
#   BODY      review to post (default benches/data/admission-review-update.json)
#   ENDPOINT  path (default /validate)
#   CONNS     concurrencies (default "1 16 64")
#   DURATION  measured seconds (default 10); WARMUP seconds (default 2)
#   SERVER_CPU / CLIENT_CPU  cores for taskset (default 0 / 1)
#   BIN       binary to run; set it (or SKIP_BUILD=1) to skip `cargo build --release`
#   PORT      webhook port (default 19443; the probe port is PORT+1)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
body=${BODY:-$repo/benches/data/admission-review-update.json}
endpoint=${ENDPOINT:-/validate}
conns=${CONNS:-"1 16 64"}
duration=${DURATION:-10}
warmup=${WARMUP:-2}
server_cpu=${SERVER_CPU:-0}
client_cpu=${CLIENT_CPU:-1}
port=${PORT:-19443}
probe_port=$((port + 1))
lua=$repo/benches/data/post.lua

for tool in wrk openssl curl taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $tool)" >&2; exit 1; }
done

if [[ -z "${BIN:-}" ]]; then
    bin=$repo/target/release/dittofs-operator
    if [[ -z "${SKIP_BUILD:-}" ]]; then
        (cd "$repo" && cargo build --release --locked --bin dittofs-operator)
    fi
else
    bin=$BIN
fi

work=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

start_server() {
    taskset -c "$server_cpu" "$bin" --log-format text webhook --offline \
        --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" \
        --listen "127.0.0.1:$port" --probe-listen "127.0.0.1:$probe_port" \
        --shutdown-delay 0s >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 200); do
        if curl -fsS "http://127.0.0.1:$probe_port/readyz" >/dev/null 2>&1; then
            return
        fi
        sleep 0.05
    done
    echo "server not ready; log:" >&2
    cat "$work/server.log" >&2
    exit 1
}

stop_server() {
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# utime + stime of the server, in clock ticks.
cpu_ticks() {
    # Field 2 (comm) is parenthesised and may hold spaces: count from after it.
    local stat
    stat=$(<"/proc/$server_pid/stat")
    stat=${stat##*) }
    set -- $stat
    echo $(( ${12} + ${13} ))
}

hwm_kib() {
    awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status"
}

ticks_per_second=$(getconf CLK_TCK)
url="https://127.0.0.1:$port$endpoint"

start_server
echo "# answer to $(basename "$body") on $endpoint:"
curl -sk -H 'Content-Type: application/json' --data-binary "@$body" "$url"
echo
stop_server

echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
echo "# server on core $server_cpu, wrk on core $client_cpu, ${warmup} s warm-up, ${duration} s measured"
echo "| concurrency | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/review | peak RSS MiB | errors | non-2xx |"
echo "|---|---|---|---|---|---|---|---|---|"
for c in $conns; do
    start_server
    BODY=$body taskset -c "$client_cpu" wrk -t1 -c"$c" -d"${warmup}s" -s "$lua" "$url" >/dev/null
    before=$(cpu_ticks)
    result=$(BODY=$body taskset -c "$client_cpu" wrk -t1 -c"$c" -d"${duration}s" -s "$lua" "$url" | grep '^RESULT')
    after=$(cpu_ticks)
    hwm=$(hwm_kib)
    stop_server
    field() { sed -n "s|.* $1=\([^ ]*\).*|\1|p" <<<"$result"; }
    requests=$(field requests)
    awk -v c="$c" -v rps="$(field req/s)" -v p50="$(field p50_ms)" -v p99="$(field p99_ms)" \
        -v p999="$(field p999_ms)" -v req="$requests" -v ticks=$((after - before)) \
        -v hz="$ticks_per_second" -v hwm="$hwm" -v err="$(field errors)" -v non2xx="$(field non2xx)" \
        'BEGIN { printf "| %d | %d | %.3f | %.3f | %.3f | %.1f | %.1f | %d | %d |\n",
                 c, rps, p50, p99, p999, (req > 0 ? ticks / hz * 1e6 / req : 0), hwm / 1024, err, non2xx }'
done
