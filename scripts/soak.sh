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
# SOAK_RESUME=1 adds N runs to those already in the folder (a soak spread over several
# sittings); each run records the commit it tested, which heads its column in the table, and
# go test's exit status when it ended (run-N-ARCH.rc). A run without it was cut short (Ctrl-C,
# a machine taken away): resuming moves it to interrupted/ and runs that number again, so a
# half run never counts as a run.
first=1
if [[ ${SOAK_RESUME:-0} == 1 && -d $dir ]]; then
  last=$(ls "$dir" | sed -n 's/^run-\([0-9]*\)-.*\.json$/\1/p' | sort -n | tail -1)
  if [[ -n $last ]] && ls "$dir"/run-*.rc >/dev/null 2>&1; then
    for j in "$dir/run-$last-"*.json; do
      if [[ ! -f ${j%.json}.rc ]]; then
        mkdir -p "$dir/interrupted"
        mv "$dir/run-$last-"* "$dir/interrupted/"
        echo "soak: run $last was cut short (no $(basename "${j%.json}").rc): moved to $dir/interrupted/, running it again"
        last=$((last - 1))
        break
      fi
    done
  fi
  first=$((${last:-0} + 1))
else
  rm -rf "$dir"
fi
mkdir -p "$dir"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git status --porcelain 2>/dev/null) ]] && commit="$commit+changes"
IFS=, read -r -a arches <<<"${ARCHES:-x86_64,aarch64}"
# Stopped by a signal, the run in progress is cut short whatever go test's status says.
# Exits 130 on SIGINT, 143 on SIGTERM, as the harness does.
stop() {
  trap "" INT TERM
  kill -INT 0
  wait
  rm -f "$dir/run-${i:-0}-"*.rc
  exit "$1"
}
trap 'stop 130' INT
trap 'stop 143' TERM
start=$(date +%s)
for ((i = first; i < first + n; i++)); do
  pids=()
  for a in "${arches[@]}"; do
    echo "$commit" >"$dir/run-$i-$a.commit"
    (
      VMTEST_ARCH=$a go test -json -count=1 -timeout "${SUITES_TIMEOUT:-75m}" ./suites/... >"$dir/run-$i-$a.json" 2>"$dir/run-$i-$a.stderr"
      echo $? >"$dir/run-$i-$a.rc"
    ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  echo "soak: run $i ($((i - first + 1)) of $n this time) done after $(($(date +%s) - start))s"
done
for a in "${arches[@]}"; do
  echo "## $a"
  echo
  go run ./cmd/vmtest-soak $(ls "$dir"/run-*-"$a".json | sort -V)
  echo
done >"$arts/soak.md"
rc=0
grep -q '\*\*flaky\*\*\|\*\*fails\*\*' "$arts/soak.md" && rc=1
cat "$arts/soak.md"
exit "$rc"
