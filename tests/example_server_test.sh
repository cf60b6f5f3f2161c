#!/usr/bin/env bash
# An HTTP server example serves /healthz while it runs and exits 0 after stopping.
#   example_server_test.sh EXAMPLE
set -u
example=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
DMS_ADMIN_PASSWORD=example-password "$example" "$work/data" 0 --for-ms 3000 >"$work/out" 2>"$work/err" &
pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/^serving on http:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$work/out")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "FAIL: no port"; cat "$work/err"; exit 1; }
body=$(curl -s "http://127.0.0.1:$port/healthz")
[ "$body" = '{"status":"ok"}' ] || { echo "FAIL: healthz answered '$body'"; exit 1; }
wait $pid || { echo "FAIL: exit code $?"; exit 1; }
grep -q '^stopped$' "$work/out" || { echo "FAIL: did not stop cleanly"; exit 1; }
echo "example server: ok"
