#!/usr/bin/env bash
# Re-record the golden perf files on this machine (root; Debian's linux-perf). The outputs are
# perf's own, unedited; tests/test_perf_parse.py checks the parsers against them.
#   tests/golden/perf/record.sh
set -euo pipefail
cd "$(dirname "$0")"
events=task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions,cache-misses
events+=,LLC-load-misses,L1-dcache-load-misses,sched:sched_switch,sched:sched_wakeup
events+=,irq:softirq_entry,io_uring:io_uring_task_work_run
perf --version >perf-version.txt
uname -r >kernel.txt

run() {  # run WORKLOAD_SECONDS then perf CMD... attached to the workload's threads for 1.2 s
  python3 workload.py 2 & local pid=$!
  sleep 0.4
  timeout -s INT 1.2 perf "$@" -p "$pid" || true
  wait "$pid"
}
run stat -I 500 -x, --per-thread -e "$events" -o stat-interval-per-thread.csv
run stat -I 500 -j --per-thread -e "$events" -o stat-interval-per-thread.json
rm -f profile.data profile.data.old
run record -g -e cpu-clock -F 99 -o profile.data -q
rm -f profile.json
perf data convert -i profile.data --to-json profile.json 2>/dev/null
rm -f profile.data
