#!/usr/bin/env bash
# The main job on the embedded defaults, as an operator does it with dmsctl: install what is
# missing, build, start the service, log in, attach two local clusters, create a volume and
# fill it, snapshot it, thick-clone the snapshot onto the other cluster with progress, and
# verify the copy byte for byte.
#   scripts/quickstart.sh [--size-mib N] [--data-percent P] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

size_mib=1024 data_pct=50 dir=/var/tmp/dmscore-demo
while (($#)); do
  case "$1" in
    --size-mib) size_mib=$2; shift 2 ;;
    --data-percent) data_pct=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "quickstart: unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target dmsctl
dmsctl=$root/build/release/dmsctl

rm -rf "$dir"
mkdir -p "$dir"
# The demo keeps its login in its own config file, not in ~/.config/dmsctl.
export DMSCTL_CONFIG=$dir/dmsctl-config.json
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

step "start the service (data in $dir/service)"
"$dmsctl" serve --listen 127.0.0.1:0 --data-dir "$dir/service" 2>"$dir/serve.log" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  endpoint=$(grep -o 'listening on http://[0-9.:]*' "$dir/serve.log" | sed 's/listening on //' || true)
  [[ -n "$endpoint" ]] && break
  kill -0 $serve_pid 2>/dev/null || { cat "$dir/serve.log" >&2; exit 1; }
  sleep 0.1
done
echo "serving on $endpoint; the admin password is in $dir/service/admin-password (mode 0600)" >&2

step "log in"
run "$dmsctl" login --endpoint "$endpoint" --username admin --password-stdin <"$dir/service/admin-password"

step "attach two local clusters"
run "$dmsctl" attach cluster "file://$dir/site-a" --name site-a --wait
run "$dmsctl" attach cluster "file://$dir/site-b" --name site-b --wait
run "$dmsctl" list clusters
site_a=$("$dmsctl" list clusters -o json | python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin)["clusters"] if c["name"]=="site-a"][0])')
site_b=$("$dmsctl" list clusters -o json | python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin)["clusters"] if c["name"]=="site-b"][0])')

step "create a ${size_mib} MiB volume on site-a and write ${data_pct}% of it"
run "$dmsctl" create volume --cluster "$site_a" --name db --size "${size_mib}MiB"
volume=$("$dmsctl" list volumes --cluster "$site_a" -o name | head -1 | cut -d/ -f2)
device=$("$dmsctl" get volume "$volume" --cluster "$site_a" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["volume"]["devicePath"])')
python3 bench/make_test_image.py "$device" "$size_mib" "$data_pct"
echo "wrote $device" >&2

step "snapshot it"
run "$dmsctl" create snapshot --cluster "$site_a" --name db-snap --source-volume "$volume"
snapshot=$("$dmsctl" list snapshots --cluster "$site_a" -o name | head -1 | cut -d/ -f2)

step "thick-clone the snapshot onto site-b, verified"
start=$(date +%s.%N)
run "$dmsctl" clone volume --cluster "$site_a" --snapshot "$snapshot" --dst-cluster "$site_b" \
  --name db-copy --verify --wait -o json >"$dir/clone.json"
end=$(date +%s.%N)
copy=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["workflow"]["result"]["volumeId"])' "$dir/clone.json")
copy_device=$("$dmsctl" get volume "$copy" --cluster "$site_b" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["volume"]["devicePath"])')

step "check the copy byte for byte"
run cmp "$device" "$copy_device"
printf 'source  %s: %s allocated\ncopy    %s: %s allocated\n' \
  "$device" "$(du -h "$device" | cut -f1)" "$copy_device" "$(du -h "$copy_device" | cut -f1)" >&2
python3 - "$size_mib" "$start" "$end" <<'EOF' >&2
import sys
mib, start, end = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
secs = end - start
print(f"thick clone of {mib} MiB (with verification) took {secs:.2f} s: "
      f"{mib / 1024 / secs:.2f} GiB/s logical")
EOF
run "$dmsctl" list workflows -o wide
echo "quickstart: ok. Everything is in $dir; dmsctl's login is in $DMSCTL_CONFIG." >&2
