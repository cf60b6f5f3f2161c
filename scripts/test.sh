#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds the release and the
# AddressSanitizer+UndefinedBehaviorSanitizer configurations and runs every test in both, then
# runs each libFuzzer target for a million inputs (clang, ASan + UBSan; scripts/fuzz.sh).
# The store, engine and scale-out tests run against PostgreSQL as well as SQLite: a throwaway
# server from Debian's packages (scripts/test-postgres.sh: initdb as an unprivileged user, a
# private socket directory and port) is started first and removed at the end.
#   scripts/test.sh [release|asan|dev|fuzz ...]     (default: release asan fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
presets=("$@")
if ((${#presets[@]} == 0)); then presets=(release asan fuzz); fi

pgdir=$(mktemp -d /tmp/dmscore-pg.XXXXXX)
trap 'scripts/test-postgres.sh stop "$pgdir"' EXIT
echo "=== PostgreSQL: start a test server" >&2
DMSCORE_TEST_POSTGRES=$(scripts/test-postgres.sh start "$pgdir")
export DMSCORE_TEST_POSTGRES
# Tests that need it fail rather than skip when it is missing.
export DMSCORE_REQUIRE_POSTGRES=1

status=0
for p in "${presets[@]}"; do
  if [[ "$p" == fuzz ]]; then
    echo "=== fuzz: build and run" >&2
    if ! scripts/fuzz.sh; then status=1; fi
    continue
  fi
  echo "=== $p: configure and build" >&2
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  echo "=== $p: test" >&2
  if ! ctest --preset "$p"; then status=1; fi
done
exit $status
