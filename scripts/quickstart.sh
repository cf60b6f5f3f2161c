#!/usr/bin/env bash
# The main job on the embedded defaults: install what is missing, build, open a service with
# two local clusters and perform a real, verified thick clone with visible progress.
#   scripts/quickstart.sh [--size-mib N] [--data-percent P] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target thick_clone_demo dmsctl
exec build/release/examples/thick_clone_demo "$@"
