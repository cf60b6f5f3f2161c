#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, from Debian's packages: a new cluster made by
# initdb as an unprivileged user (postgres when run as root, else the caller), listening only on
# a Unix socket in a private directory, on a port of its own.
#   scripts/test-postgres.sh start DIR   starts it; prints the URL the tests take
#                                        (DMSCORE_TEST_POSTGRES) on stdout
#   scripts/test-postgres.sh stop DIR    stops it and removes DIR
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
  echo "usage: scripts/test-postgres.sh start|stop DIR" >&2
  exit 2
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z "$bindir" ]]; then
  echo "test-postgres.sh: no PostgreSQL server installed (scripts/deps.sh installs it)" >&2
  exit 1
fi

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    chmod 0700 "$dir"
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
    as_owner "$bindir/initdb" -D "$dir/data" -U dms -A trust -E UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1
    # A port of its own: the kernel's pick on loopback, released at once (the server itself
    # listens on the socket directory only).
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -p $port -c listen_addresses='' -c max_connections=400 -c shared_buffers=64MB" \
      start >/dev/null
    # The socket directory must be reachable by the tests' user.
    chmod 0711 "$dir"
    echo "postgresql://dms@/postgres?host=$dir&port=$port"
    ;;
  stop)
    if [[ -d "$dir/data" ]]; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "test-postgres.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
