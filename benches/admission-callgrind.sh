#!/usr/bin/env bash
# Instructions per admission review, counted by callgrind: stable on a busy machine,
# where CPU time is not. The release binary serves `webhook --offline` under
# valgrind; counting is switched on only around a wrk run (after a warm-up), so
# start-up, certificate loading and the warm-up are not counted. Prints the
# instructions per review and the functions with the most instructions
# (self cost), the profile summary of docs/benchmarks.md.
#
# Needs: valgrind, wrk, openssl, curl. Knobs (environment): BODY, ENDPOINT, BIN (or
# SKIP_BUILD=1), DURATION (10 s under valgrind), CONNS (1), PORT (19543), TOP (25).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
body=${BODY:-$repo/benches/data/admission-review-update.json}
endpoint=${ENDPOINT:-/validate}
duration=${DURATION:-10}
conns=${CONNS:-1}
port=${PORT:-19543}
probe_port=$((port + 1))
top=${TOP:-25}
lua=$repo/benches/data/post.lua

for tool in valgrind callgrind_control callgrind_annotate wrk openssl curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install valgrind wrk)" >&2; exit 1; }
done
if [[ -z "${BIN:-}" ]]; then
    bin=$repo/target/release/dittofs-operator
    [[ -n "${SKIP_BUILD:-}" ]] || (cd "$repo" && cargo build --release --locked --bin dittofs-operator)
else
    bin=$BIN
fi

work=$(mktemp -d)
pid=
cleanup() {
    [[ -z "$pid" ]] || kill "$pid" 2>/dev/null || true
    if [[ -n "${KEEP_OUT:-}" && -f "$work/callgrind.out" ]]; then cp "$work/callgrind.out" "$KEEP_OUT"; fi
    rm -rf "$work"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out" \
    "$bin" --log-format text webhook --offline \
    --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" \
    --listen "127.0.0.1:$port" --probe-listen "127.0.0.1:$probe_port" --shutdown-delay 0s \
    >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
    curl -fsS "http://127.0.0.1:$probe_port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
url="https://127.0.0.1:$port$endpoint"
BODY=$body wrk -t1 -c"$conns" -d2s -s "$lua" "$url" >/dev/null
callgrind_control -i on "$pid" >/dev/null 2>&1
result=$(BODY=$body wrk -t1 -c"$conns" -d"${duration}s" -s "$lua" "$url" | grep '^RESULT')
callgrind_control -i off "$pid" >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=

requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")
total=$(callgrind_annotate "$work/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "# $(basename "$body") on $endpoint: $requests reviews counted ($result)"
awk -v t="$total" -v r="$requests" 'BEGIN { printf "instructions per review: %.0f\n", t / r }'
echo "# top functions by self instructions (share of the total):"
callgrind_annotate --threshold=100 "$work/callgrind.out" 2>/dev/null \
    | awk '/^-+$/ {sep++; next} sep >= 3 && NF >= 2' | sed 's/ (\.\/[^)]*)//' | head -n "$top"
