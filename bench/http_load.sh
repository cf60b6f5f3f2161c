#!/usr/bin/env bash
# Load on the HTTP façade with wrk, side by side with this machine's ceiling (bench/beast_ceiling:
# a minimal Beast server answering a fixed JSON body). Both get the same wrk runs.
#   bench/http_load.sh [SECONDS_PER_RUN] [CONNECTIONS] [RSS_SECONDS]
# defaults: 20 s per run, 64 connections, then a 300 s run sampling dmsctl serve's RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20} conns=${2:-64} rss_secs=${3:-300}

scripts/deps.sh --bench
cmake --preset release >/dev/null
cmake --build --preset release --target dmsctl beast_ceiling >/dev/null

work=$(mktemp -d /var/tmp/dmscore-load.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; rm -rf "$work"' EXIT
export DMSCTL_CONFIG=$work/config.json DMS_ADMIN_PASSWORD=load-bench-password
dmsctl=build/release/dmsctl

$dmsctl serve --listen 127.0.0.1:0 --data-dir "$work/data" 2>"$work/serve.log" &
serve_pid=$!
pids+=($serve_pid)
until grep -q 'listening on' "$work/serve.log"; do sleep 0.1; done
endpoint=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)
echo "$DMS_ADMIN_PASSWORD" | $dmsctl login --endpoint "$endpoint" --password-stdin 2>/dev/null
for c in a b; do $dmsctl attach cluster "file://$work/$c" --name "$c" --wait --no-progress 2>/dev/null; done
wf=$($dmsctl list workflows -o name | head -1 | cut -d/ -f2)
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["contexts"]["default"]["token"])' "$DMSCTL_CONFIG")

build/release/bench/beast_ceiling 0 2 >"$work/ceiling.log" &
pids+=($!)
until grep -q 'listening on' "$work/ceiling.log"; do sleep 0.1; done
ceiling="http://127.0.0.1:$(awk '{print $3}' "$work/ceiling.log")"

run() {  # name url
  local out
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $token" "$2")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  printf '%-34s %10s req/s  p50 %8s  p99 %8s  %s\n' "$1" "$rps" "$p50" "$p99" "${errs:-no errors}"
  printf '%s\t%s\n' "$1" "$rps" >>"$work/results.tsv"
}

echo "wrk -t2 -c$conns -d${secs}s, each target in turn (2 cores shared by wrk and the server)"
run "ceiling: fixed JSON body" "$ceiling/"
run "GET /api/v1/workflows/{id}" "$endpoint/api/v1/workflows/$wf"
run "GET /api/v1/clusters" "$endpoint/api/v1/clusters"
run "ceiling: fixed JSON body (again)" "$ceiling/"
python3 - "$work" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1] + "/results.tsv")]
r = {name: float(rps or 0) for name, rps in rows}
ceil = max(v for k, v in r.items() if k.startswith("ceiling"))
for k, v in r.items():
    if not k.startswith("ceiling"):
        print(f"{k:34s} {v / ceil:.2f} of the better ceiling run")
PY

if ((rss_secs > 0)); then
  echo "RSS of dmsctl serve under load for ${rss_secs}s (GET /api/v1/workflows/{id}):"
  wrk -t2 -c"$conns" -d"${rss_secs}s" -H "Authorization: Bearer $token" \
    "$endpoint/api/v1/workflows/$wf" >"$work/long.txt" &
  wrk_pid=$!
  for ((t = 0; t <= rss_secs; t += 30)); do
    printf '  t=%4ds  RSS %6d KiB\n' "$t" "$(awk '/VmRSS/ {print $2}' /proc/$serve_pid/status)"
    sleep 30
  done
  wait $wrk_pid || true
  awk '/Requests\/sec|Non-2xx|Socket errors/' "$work/long.txt"
fi
