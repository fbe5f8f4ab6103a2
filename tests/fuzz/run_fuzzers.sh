#!/usr/bin/env bash
# Runs every libFuzzer program of a -Dfuzzing=true build for a fixed time over a scratch copy of
# its committed corpus, then prints one line per target and fails if any target crashed, leaked,
# timed out or ran out of memory. Crashing inputs are kept in the artifact directory.
#
# usage: tests/fuzz/run_fuzzers.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]
#   FUZZ_ARTIFACTS  where crashing inputs go (default BUILD_DIR/fuzz-artifacts)
#   FUZZ_ARGS       extra libFuzzer flags (e.g. "-fork=1 -ignore_crashes=1" to keep going)
set -uo pipefail
build=${1:?usage: run_fuzzers.sh BUILD_DIR [SECONDS] [TARGET...]}
seconds=${2:-20}
shift $(( $# >= 2 ? 2 : 1 ))
src=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  # Targets are the fuzz_*.c files that define the libFuzzer entry point (not fuzz_util.c).
  for f in $(grep -l LLVMFuzzerTestOneInput "$src"/fuzz_*.c); do
    t=$(basename "$f" .c)
    targets+=("${t#fuzz_}")
  done
fi
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One thread each: the runs are measured one at a time and must not fight over the cores.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=0
summary=()
for t in "${targets[@]}"; do
  exe=$build/tests/fuzzer-$t
  if [ ! -x "$exe" ]; then
    echo "fuzz: $exe missing (configure with -Dfuzzing=true)" >&2
    exit 2
  fi
  mkdir -p "$work/$t"
  cp "$src/corpus/$t"/* "$work/$t"/
  log=$artifacts/$t.log
  stamp=$work/$t.start
  touch "$stamp"
  # -timeout: one input taking 10 s is a hang; -malloc_limit_mb: a small file must not make
  # the library allocate gigabytes (issue 20); the outer timeout bounds the stage whatever
  # happens inside libFuzzer.
  # shellcheck disable=SC2086
  timeout $(( seconds + 120 )) "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
    ${FUZZ_ARGS:-} "$work/$t" >"$log" 2>&1
  rc=$?
  # With -fork and -ignore_crashes libFuzzer exits 0 after crashes: the inputs it wrote count.
  found=$(find "$artifacts" -maxdepth 1 -newer "$stamp" \( -name "$t-crash-*" -o -name "$t-leak-*" \
          -o -name "$t-timeout-*" -o -name "$t-oom-*" \) | wc -l)
  [ "$rc" -ne 0 ] || [ "$found" -eq 0 ] || rc=1
  execs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  speed=$(grep -m1 -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  # Fork mode (-fork=N) prints no final statistics: its last status line has the totals.
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' <<<"$last" | tr -d '#')
  [ -n "$speed" ] || speed=$(grep -o 'exec/s:* [0-9]*' <<<"$last" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | tail -1)
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | tail -1)
  if [ $rc -eq 0 ]; then
    status=ok
  else
    status="FAILED (exit $rc; see $log)"
    failed=1
  fi
  line=$(printf '%-11s %-6s execs %-9s exec/s %-6s %-10s %-10s' "$t" "${status%% *}" \
         "${execs:-?}" "${speed:-?}" "${cov:-cov: ?}" "${ft:-ft: ?}")
  echo "fuzz: $line"
  [ $rc -eq 0 ] || { echo "fuzz: $t: $status, $found input(s) kept"
                     grep -m3 -E 'ERROR:|runtime error|Test unit written' "$log"; }
  summary+=("$line")
done
echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit $failed
