#!/usr/bin/env bash
# Installs the Debian 12 packages libdmscore needs to build and test, when any is missing.
#   scripts/deps.sh [--bench] [--fuzz]
#     --bench adds the peers the benchmarks compare with; --fuzz adds clang and libFuzzer
set -euo pipefail

pkgs=(cmake make g++ ccache pkg-config python3 python3-cryptography python3-yaml python3-cinderclient
      libboost1.81-dev \
      libboost-json1.81-dev libboost-url1.81-dev libssl-dev libsqlite3-dev libpq-dev postgresql libxxhash-dev libcli11-dev libfmt-dev catch2 openssl curl)
for arg in "$@"; do
  case "$arg" in
    --bench) pkgs+=(qemu-utils coreutils wrk) ;;
    --fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
    *) echo "deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
# Node.js runs the OpenAPI validator; any install of node and npm will do.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
