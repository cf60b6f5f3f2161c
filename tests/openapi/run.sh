#!/usr/bin/env bash
# The OpenAPI document against the router and against a real server.
#
#   run.sh DMSCTL_BINARY WORKDIR
#
# 1. Installs the pinned node packages (npm ci) into WORKDIR/npm, from package.json and
#    package-lock.json of this directory; the source tree is not written. An install whose lock
#    file is unchanged is reused.
# 2. Lists the routes src/http/routes/*.cpp register and validates docs/openapi.json with them
#    (validate.mjs): a route added to the router and not documented fails, and so does a
#    documented route the router does not serve.
# 3. Starts `DMSCTL_BINARY serve` on a free loopback port with a fresh data directory (and, when
#    this dmsctl has them, --local-cluster-root and --copy-rate-limit, so that 403 is exercised
#    and clones run long enough for the busy, cancel and 429 checks), runs check_responses.mjs
#    against it, and stops it with SIGTERM (it must exit 0).
# Exits non-zero when any step fails. Needs node (>= 18) and npm; npm ci needs the registry
# unless WORKDIR/npm already holds the install.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 DMSCTL_BINARY WORKDIR" >&2
  exit 2
fi
dmsctl=$1
work=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
spec="$root/docs/openapi.json"
router="$root/src/http/routes"

[ -x "$dmsctl" ] || { echo "run.sh: $dmsctl is not an executable" >&2; exit 2; }
command -v node >/dev/null || { echo "run.sh: node is not installed" >&2; exit 1; }
mkdir -p "$work"
work=$(cd "$work" && pwd)

# ---- node packages
npmdir="$work/npm"
mkdir -p "$npmdir"
if [ ! -d "$npmdir/node_modules" ] || ! cmp -s "$here/package-lock.json" "$npmdir/package-lock.json" ||
  ! cmp -s "$here/package.json" "$npmdir/package.json"; then
  cp "$here/package.json" "$here/package-lock.json" "$npmdir/"
  echo "run.sh: npm ci in $npmdir"
  (cd "$npmdir" && npm ci --no-audit --no-fund --loglevel=error)
fi
# ESM resolves packages from the importing file's directory: run copies that sit beside node_modules.
cp "$here/validate.mjs" "$here/check_responses.mjs" "$npmdir/"

rc=0

# ---- the document against the router
node "$npmdir/validate.mjs" --print-router-routes "$router" >"$work/routes.txt"
echo "run.sh: $(wc -l <"$work/routes.txt") routes in $router"
node "$npmdir/validate.mjs" "$spec" --routes "$work/routes.txt" || rc=1

# ---- the document against a running server
rm -rf "$work/server" "$work/clusters"
mkdir -p "$work/clusters"
password="oapi-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
max_running=2
serve_args=(--listen 127.0.0.1:0 --data-dir "$work/server" --max-running-workflows "$max_running")
check_args=(--max-running-workflows "$max_running")
serve_help=$("$dmsctl" serve --help 2>&1 || true)
if grep -q -- "--local-cluster-root" <<<"$serve_help"; then
  serve_args+=(--local-cluster-root "$work/clusters")
  check_args+=(--local-cluster-root "$work/clusters")
fi
if grep -q -- "--copy-rate-limit" <<<"$serve_help"; then
  serve_args+=(--copy-rate-limit $((16 << 20)))
  check_args+=(--volume-mib 32)
fi
log="$work/server.log"
pid=""
stop_server() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "run.sh: $dmsctl serve ${serve_args[*]}"
DMS_ADMIN_PASSWORD="$password" "$dmsctl" serve "${serve_args[@]}" 2>"$log" &
pid=$!
port=""
for _ in $(seq 1 300); do
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "run.sh: the server did not report its port; its log:" >&2
  cat "$log" >&2
  exit 1
fi
echo "run.sh: dmsctl serve (pid $pid) listens on 127.0.0.1:$port"

node "$npmdir/check_responses.mjs" --base "http://127.0.0.1:$port" --password "$password" \
  --spec "$spec" --data-dir "$work/clusters" "${check_args[@]}" || rc=1

kill -TERM "$pid" 2>/dev/null || true
server_rc=0
wait "$pid" || server_rc=$?
pid=""
if [ "$server_rc" -ne 0 ]; then
  echo "run.sh: dmsctl serve exited $server_rc after SIGTERM" >&2
  rc=1
fi
if grep -qF "$password" "$log"; then
  echo "run.sh: the admin password reached the server log" >&2
  rc=1
fi
if [ "$rc" -ne 0 ]; then
  echo "run.sh: FAILED (server log: $log)" >&2
  tail -n 20 "$log" >&2
else
  echo "run.sh: passed"
fi
exit "$rc"
