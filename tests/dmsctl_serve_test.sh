#!/usr/bin/env bash
# dmsctl serve: starts, answers over HTTP, stops cleanly on SIGTERM; bad usage exits 2.
#   dmsctl_serve_test.sh DMSCTL
set -u
dmsctl=$1
work=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; cat "$work/err" 2>/dev/null; exit 1; }

"$dmsctl" serve >/dev/null 2>&1; [ $? -eq 2 ] || fail "serve without --data-dir should exit 2"
"$dmsctl" serve --data-dir "$work/d0" --listen nonsense >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad --listen should exit 2"
"$dmsctl" serve --data-dir "$work/d0" --tls-cert x.pem >/dev/null 2>&1; [ $? -eq 2 ] || fail "--tls-cert without --tls-key should exit 2"
"$dmsctl" serve --data-dir "$work/d0" --max-running-workflows 0 >/dev/null 2>&1; [ $? -eq 2 ] || fail "--max-running-workflows 0 should exit 2"
# The data path's options: a host NQN that is not one, an empty nvme-cli, a timeout out of range.
"$dmsctl" serve --data-dir "$work/d0" --host-nqn "not an nqn" 2>"$work/nqn-err" >/dev/null; [ $? -eq 2 ] || fail "a bad --host-nqn should exit 2"
grep -q "host_nqn" "$work/nqn-err" || fail "a bad --host-nqn should be named: $(cat "$work/nqn-err")"
"$dmsctl" serve --data-dir "$work/d0" --host-nqn "nqn.$(head -c 300 /dev/zero | tr '\0' a)" >/dev/null 2>&1; [ $? -eq 2 ] || fail "an oversized --host-nqn should exit 2"
"$dmsctl" serve --data-dir "$work/d0" --nvme-cli "" >/dev/null 2>&1; [ $? -eq 2 ] || fail "an empty --nvme-cli should exit 2"
"$dmsctl" serve --data-dir "$work/d0" --nvme-device-timeout-ms 0 >/dev/null 2>&1; [ $? -eq 2 ] || fail "--nvme-device-timeout-ms 0 should exit 2"
"$dmsctl" serve --help | grep -q -- "--host-nqn" || fail "serve --help does not show --host-nqn"
"$dmsctl" serve --help | grep -q "Example" || fail "serve --help has no example"

DMS_ADMIN_PASSWORD=serve-test-password "$dmsctl" serve --listen 127.0.0.1:0 --data-dir "$work/data" 2>"$work/err" &
pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/err")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || fail "no listening line"
body=$(curl -s "http://127.0.0.1:$port/healthz")
[ "$body" = '{"status":"ok"}' ] || fail "healthz answered '$body'"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/clusters")
[ "$code" = 401 ] || fail "unauthenticated request answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -u admin:serve-test-password -X POST "http://127.0.0.1:$port/api/v1/login")
[ "$code" = 200 ] || fail "login answered $code"
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "exit code $rc after SIGTERM"
grep -q "stopped" "$work/err" || fail "no clean stop"
if grep -q "serve-test-password" "$work/err"; then fail "the password reached the log"; fi
echo "dmsctl serve: ok"
