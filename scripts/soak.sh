#!/usr/bin/env bash
# Runs every suite N times on each architecture in ARCHES (saved booted states make a run cost
# minutes) and writes _artifacts/soak.md: each test's result per run, flaky tests named as
# flaky. Nothing is retried. Exit 1 if any test failed in any run.
# Usage: N=5 scripts/soak.sh
set -uo pipefail
cd "$(dirname "$0")/.."
n=${N:-5}
arts=${VMTEST_ARTIFACTS:-$PWD/_artifacts}
export VMTEST_ARTIFACTS=$arts
dir=$arts/soak
rm -rf "$dir" && mkdir -p "$dir"
IFS=, read -r -a arches <<<"${ARCHES:-x86_64,aarch64}"
trap 'trap "" INT TERM; kill -INT 0; wait; exit 130' INT TERM
start=$(date +%s)
for ((i = 1; i <= n; i++)); do
  pids=()
  for a in "${arches[@]}"; do
    VMTEST_ARCH=$a go test -json -count=1 -timeout "${SUITES_TIMEOUT:-60m}" ./suites/... >"$dir/run-$i-$a.json" 2>"$dir/run-$i-$a.stderr" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  echo "soak: run $i of $n done after $(($(date +%s) - start))s"
done
for a in "${arches[@]}"; do
  echo "## $a"
  echo
  go run ./cmd/vmtest-soak "$dir"/run-*-"$a".json
  echo
done >"$arts/soak.md"
rc=0
grep -q '\*\*flaky\*\*\|\*\*fails\*\*' "$arts/soak.md" && rc=1
cat "$arts/soak.md"
exit "$rc"
