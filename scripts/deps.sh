#!/usr/bin/env bash
# Installs the Debian 12 packages libdmscore needs to build and test, when any is missing.
#   scripts/deps.sh [--bench]     --bench adds the peers the benchmarks compare with
set -euo pipefail

pkgs=(cmake make g++ ccache pkg-config python3 libboost1.81-dev libboost-json1.81-dev
      libssl-dev libsqlite3-dev libcli11-dev libfmt-dev catch2 openssl curl)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(qemu-utils coreutils)
fi

missing=()
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
