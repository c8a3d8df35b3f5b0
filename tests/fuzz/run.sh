#!/usr/bin/env bash
# run.sh — fuzzes each libFuzzer harness of a -Dfuzz=enabled build for a while, one after
# the other, starting from the committed seeds (tests/fuzz/corpus/NAME) plus what earlier
# runs found (BUILD/fuzz-corpus/NAME). A crash, hang (-timeout), leak or sanitizer report
# stops the run: the input is left as BUILD/fuzz-artifacts/NAME/crash-* (or leak-, timeout-,
# oom-) and the script exits 1. Prints each harness's executions, speed and coverage.
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS_EACH [HARNESS...]
set -euo pipefail
src="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: run.sh BUILD_DIR SECONDS_EACH [HARNESS...]}"
seconds="${2:?usage: run.sh BUILD_DIR SECONDS_EACH [HARNESS...]}"
shift 2
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  harnesses=(safetensors index config processor-config bundle tokenizer-json spm clip-files
             png jpeg)
fi
declare -A dicts=([png]=png.dict [jpeg]=jpeg.dict [spm]=)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
failed=0
for name in "${harnesses[@]}"; do
  exe="$build/tests/fuzz/fuzz-$name"
  corpus="$build/fuzz-corpus/$name"
  artifacts="$build/fuzz-artifacts/$name"
  log="$build/fuzz-artifacts/$name.log"
  mkdir -p "$corpus" "$artifacts"
  dict="${dicts[$name]-json.dict}"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
        -print_final_stats=1 -artifact_prefix="$artifacts/")
  [ -n "$dict" ] && args+=(-dict="$src/$dict")
  status=0
  "$exe" "${args[@]}" "$corpus" "$src/corpus/$name" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  printf '%-17s %4ss  %10s execs  %6s/s  %s\n' "$name" "$seconds" "${execs:-?}" "${speed:-?}" \
    "${cov:-?}"
  if [ $status -ne 0 ]; then
    echo "fuzz-$name failed (exit $status); its log: $log" >&2
    grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5 >&2 || true
    ls "$artifacts" >&2
    failed=1
  fi
done
exit $failed
