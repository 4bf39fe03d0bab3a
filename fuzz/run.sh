#!/usr/bin/env bash
# Fuzzes one target for a while, niced, from its corpus (or from seeds/ with SEEDS=1), into
# out/<target>; prints its executions and coverage at the end (docs/fuzzing.md).
#   bash fuzz/run.sh <target> [seconds]
set -euo pipefail
cd "$(dirname "$0")"
target=$1
seconds=${2:-900}
input=corpus/$target
[ "${SEEDS:-}" = 1 ] && input=seeds/$target
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
# The adapter targets compile four components before the fork server answers: on busy cores that
# takes longer than afl's default wait (10 s), so give it 10 minutes.
export AFL_FORKSRV_INIT_TMOUT=${AFL_FORKSRV_INIT_TMOUT:-600000}
# A resumed run (-i -) keeps counting in the same output directory.
[ -d "out/$target/default/queue" ] && [ "${FRESH:-}" != 1 ] && input=-
timeout --preserve-status -s INT "$seconds" nice -n 19 cargo afl fuzz -i "$input" -o "out/$target" "target/release/$target" \
    > "out/$target.log" 2>&1 || true
grep -E '^(execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|edges_found|total_edges|bitmap_cvg|run_time) ' \
    "out/$target/default/fuzzer_stats"
