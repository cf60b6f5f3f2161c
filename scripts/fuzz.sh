#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a fixed number of inputs,
# starting from the seed corpus in fuzz/corpus. Any finding fails the run and leaves the input
# in build/fuzz/findings/ and the target's whole log in build/fuzz/logs/.
#   scripts/fuzz.sh [RUNS]     (default: 1000000 inputs per target; the targets run at once)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"

scripts/deps.sh --fuzz
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

work=$(mktemp -d /tmp/dmscore-fuzz-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p build/fuzz/findings build/fuzz/logs
pids=()
for t in fuzz_http fuzz_bodies fuzz_sources; do
  kind=${t#fuzz_}
  mkdir -p "$work/$kind"
  echo "=== $t: $runs inputs" >&2
  # -seed fixes the mutation sequence, so a run can be repeated; the corpus grows in $work only.
  build/fuzz/fuzz/$t -runs="$runs" -seed=1 -max_len=4096 -timeout=20 -rss_limit_mb=4096 \
    -dict=fuzz/http.dict -print_final_stats=1 \
    -artifact_prefix="$PWD/build/fuzz/findings/$t-" \
    "$work/$kind" "fuzz/corpus/$kind" >"$work/$t.log" 2>&1 &
  pids+=($!)
done
status=0
i=0
for t in fuzz_http fuzz_bodies fuzz_sources; do
  if wait "${pids[$i]}"; then
    echo "=== $t: $(grep -E '^stat::number_of_executed_units' "$work/$t.log" | awk '{print $2}') inputs, no finding" >&2
  else
    cp "$work/$t.log" "build/fuzz/logs/$t.log"
    echo "=== $t: FINDING (input saved under build/fuzz/findings/, log in build/fuzz/logs/$t.log)" >&2
    # The sanitizer's report whole (stacks of the access, the free and the threads), else the end.
    if grep -q '^==[0-9]*==ERROR' "$work/$t.log"; then
      sed -n '/^==[0-9]*==ERROR/,/^SUMMARY/p' "$work/$t.log" | cut -c1-300 >&2
    else
      grep -v -E '^#[0-9]+|NEW_FUNC' "$work/$t.log" | tail -60 >&2
    fi
    status=1
  fi
  i=$((i + 1))
done
exit $status
