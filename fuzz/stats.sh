#!/usr/bin/env bash
# The table of docs/fuzzing.md: executions and coverage of every target run into out/.
cd "$(dirname "$0")"
echo "| target | executions | execs/s (last) | run time | corpus | edges found / total | bitmap coverage | crashes | hangs |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
total=0
for stats in out/*/default/fuzzer_stats; do
    t=$(basename "$(dirname "$(dirname "$stats")")")
    get() { awk -v k="$1" '$1 == k { print $3 }' "$stats"; }
    total=$((total + $(get execs_done)))
    echo "| \`$t\` | $(get execs_done) | $(get execs_per_sec) | $(get run_time) s | $(get corpus_count) | $(get edges_found) / $(get total_edges) | $(get bitmap_cvg) | $(get saved_crashes) | $(get saved_hangs) |"
done
echo
echo "Executions in all: $total"
