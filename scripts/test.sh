#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds the release and the
# AddressSanitizer+UndefinedBehaviorSanitizer configurations and runs every test in both.
#   scripts/test.sh [release|asan|dev ...]     (default: release asan)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
presets=("$@")
if ((${#presets[@]} == 0)); then presets=(release asan); fi

status=0
for p in "${presets[@]}"; do
  echo "=== $p: configure and build" >&2
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  echo "=== $p: test" >&2
  if ! ctest --preset "$p"; then status=1; fi
done
exit $status
