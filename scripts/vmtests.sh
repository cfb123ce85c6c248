#!/usr/bin/env bash
# Runs the VM tests: the harness self-tests (on the host's architecture) and every suite on
# every architecture in ARCHES, all at once: the harness itself bounds how many VMs run on the
# host (harness/slots), so the runs fill the CPUs without overloading them. Each run writes
# its own JUnit file whose test names carry the architecture, and its go test -json stream;
# at the end _artifacts/summary.md (per package counts and wall time, each failure's first
# message and artifact folder, each skip's reason) and, as the last lines, the totals with the
# VMs booted and restored, and one line per failure.
# FOREIGN_SHORT=1 runs the suites of architectures other than the host's with go test -short.
# Each run first builds (or finds in the cache) the stand-in images it needs, so on a new machine
# the host's runs start as soon as the host's image is built, while the other architecture's
# image still builds under qemu-user (20-30 minutes that leave about one core idle: its package
# scripts run one at a time). Runs that need the same image wait on its lock and build it once.
# Usage: scripts/vmtests.sh [selftest] [suites]   (default: both)
set -uo pipefail
cd "$(dirname "$0")/.."
arts=${VMTEST_ARTIFACTS:-$PWD/_artifacts}
export VMTEST_ARTIFACTS=$arts
timeout=${SUITES_TIMEOUT:-75m}
gotestsum=${GOTESTSUM:-$(go env GOPATH)/bin/gotestsum}
IFS=, read -r -a arches <<<"${ARCHES:-x86_64,aarch64}"
# The FIPS stand-in (built for the host's architecture only) gets the FIPS suite, which checks
# the opposite on the standard stand-in.
fips=
[[ ,${FLAVOURS:-standard,fips}, == *,fips,* ]] && fips=1
# A user's own image has one architecture.
[[ -n ${VMTEST_IMAGE:-} ]] && arches=("${VMTEST_ARCH:-$(uname -m)}") fips=
what=("$@")
((${#what[@]})) || what=(selftest suites)
for w in "${what[@]}"; do
  [[ $w == selftest || $w == suites ]] || { echo "vmtests: unknown part $w (use selftest, suites)" >&2; exit 2; }
done
host=$(uname -m)

mkdir -p "$arts"
rm -f "$arts"/junit-*.xml "$arts"/test2json-*.json "$arts/vm-starts.tsv" "$arts/summary.md"
start=$(date +%s)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/vmtest" ./cmd/vmtest || exit
# The host's speed before and after (harness/bench): under TCG the same run has moved by 40%
# with the host alone, so two runs' wall times are compared beside their references.
ref_start=$("$bin/vmtest" host-reference)
names=() pids=()
run() { # name arch flavour "arch:flavour ..." (the images it needs) package...
  local name=$1 arch=$2 standin=$3 images=$4
  shift 4
  (
    # A user's own image (VMTEST_IMAGE) needs no stand-in.
    [[ -n ${VMTEST_IMAGE:-} ]] && images=
    for im in $images; do
      "$bin/vmtest" image build -arch "${im%:*}" -flavour "${im#*:}" 2>&1 >/dev/null | sed -u "s/^/[$name] /"
      if ((PIPESTATUS[0])); then
        echo "[$name] vmtests: no ${im#*:} ${im%:*} stand-in image (its build failed above): not running $*"
        exit 1
      fi
    done
    VMTEST_ARCH=$arch VMTEST_STANDIN=$standin "$gotestsum" --junitfile "$arts/junit-$name.xml" --jsonfile "$arts/test2json-$name.json" --format testname -- \
      -count=1 -timeout "$timeout" "$@" 2>&1 | sed -u "s/^/[$name] /"
    rc=${PIPESTATUS[0]}
    # Test names say the architecture (and a flavour other than the standard stand-in):
    # "x86_64/github.com/.../suites/boot", "x86_64-fips/.../suites/fips".
    label=$arch
    [[ $standin != standard ]] && label=$arch-$standin
    [[ -f $arts/junit-$name.xml ]] && sed -i -e "s|classname=\"|classname=\"$label/|g" \
      -e "s|<testsuite \([^>]*\)name=\"|<testsuite \1name=\"$label/|g" "$arts/junit-$name.xml"
    exit "$rc"
  ) &
  names+=("$name") pids+=($!)
}
for w in "${what[@]}"; do
  case $w in
  selftest)
    # The self-tests run one after another in a binary, each waiting for VM slots beside the
    # suites. One binary took over an hour, two 53 and 60+ minutes; with three, the one led by
    # the broken-guest test (34 min under load) reached 58 minutes (make test, 2026-11-28).
    # Four, balanced by those measured times, keep every chain well inside the bound; a new
    # self-test lands in the first.
    a='^(TestBrokenGuestFailsExactlyTheMatchingChecks|TestStoppedGuestCaughtByHeartbeat|TestSSHDKilledMidCommand|TestBadImageFailsFast|TestInvalidUserDataFailsFast)$'
    b='^(TestAzureTargetRunsOnAFakeCloud|TestRefusalsFailWhenSignaturesAreNotChecked|TestNoQEMUAfterSignals|TestSignalsAtRandomPoints|TestKilledQEMUFailsClearly|TestSSHTargetRunsTheBootSuite)$'
    c='^(TestSavedStateKeyAndIntegrity|TestPanicReportedByPvpanic|TestUnexpectedDenialFailsTheTest)$'
    # TestOtherArchitectureBoots runs alone: it waits for every architecture's image.
    o='^TestOtherArchitectureBoots$'
    all=
    for x in "${arches[@]}"; do all+=" $x:standard"; done
    run "selftest-$host" "$host" standard "$host:standard" -skip "$a|$b|$c|$o" ./harness/selftest/
    run "selftest-arches-$host" "$host" standard "$all" -run "$o" ./harness/selftest/
    run "selftest-a-$host" "$host" standard "$host:standard" -run "$a" ./harness/selftest/
    run "selftest-b-$host" "$host" standard "$host:standard" -run "$b" ./harness/selftest/
    run "selftest-c-$host" "$host" standard "$host:standard" -run "$c" ./harness/selftest/
    ;;
  suites)
    for a in "${arches[@]}"; do
      # FOREIGN_SHORT=1 (make test): an architecture other than the host's runs with -short,
      # leaving out the long tests whose subject it does not change (harness.Long).
      short=()
      [[ ${FOREIGN_SHORT:-0} == 1 && $a != "$host" ]] && short=(-short)
      run "suites-$a" "$a" standard "$a:standard" "${short[@]}" ./suites/...
    done
    # The standard image first: both flavours fill one package cache, so they build in turn.
    [[ -n $fips ]] && run "suites-fips-$host" "$host" fips "$host:standard $host:fips" ./suites/fips/
    ;;
  esac
done
# Ctrl-C or a CI timeout stops every run: the whole process group gets SIGINT, as from a
# terminal, and each test binary stops its own VMs.
trap 'trap "" INT TERM; kill -INT 0; wait; exit 130' INT TERM

rc=0 failedruns=()
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    failedruns+=("${names[$i]}")
    rc=1
  fi
done
wall=$(($(date +%s) - start))
ref_end=$("$bin/vmtest" host-reference)
count() { cat "$arts"/junit-*.xml 2>/dev/null | grep -o "$1" | wc -l; }
tests=$(count '<testcase ') failed=$(count '<failure') skipped=$(count '<skipped')
boots=0 restores=0 saves=0
if [[ -f $arts/vm-starts.tsv ]]; then
  boots=$(awk -F'\t' '$1=="boot"' "$arts/vm-starts.tsv" | wc -l)
  restores=$(awk -F'\t' '$1=="restore"' "$arts/vm-starts.tsv" | wc -l)
  saves=$(awk -F'\t' '$1=="save"' "$arts/vm-starts.tsv" | wc -l)
fi
printf '{"wall_s": %d, "tests": %d, "failed": %d, "skipped": %d, "boots": %d, "restores": %d, "saved_states_built": %d, "host_reference_ms": %d}\n' \
  "$wall" "$tests" "$failed" "$skipped" "$boots" "$restores" "$saves" "$(((ref_start + ref_end) / 2))" >"$arts/vmtests.json"
echo "vmtests: ${wall}s; VMs: $boots booted for real ($saves saved their state for later restores), $restores restored; JUnit: $arts/junit-*.xml"
echo "vmtests: the host's reference time (vmtest host-reference) ${ref_start} ms before, ${ref_end} ms after"
echo "vmtests: $((tests - failed - skipped)) passed, $failed failed, $skipped skipped"
# A run can fail without a failed test (its image did not build, its binary did not compile).
for n in "${failedruns[@]}"; do echo "vmtests: $n failed (its lines start with [$n])"; done
# Last, so that a CI log's tail names every failure with its first message.
go run ./cmd/vmtest-report -o "$arts/summary.md" -starts "$arts/vm-starts.tsv" -wall "$wall" \
  "$arts"/test2json-*.json | sed 's/^/vmtests: /'
exit "$rc"
