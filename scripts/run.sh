#!/usr/bin/env bash
# The main job behind `make run` (the Makefile ran set-up first; this script sets nothing up):
# `zcrxprof record --rings 4` — all four topologies, 3 repetitions x 10 s, interleaved, the sender
# in its own network namespace — into datasets/, then that dataset's self-contained HTML report.
# Extra arguments go to `zcrxprof record` (e.g. scripts/run.sh --duration 5 --repeat 2).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
dataset=$($py -m zcrxprof record --rings 4 "$@")
echo "dataset: $dataset"
report=$($py -m zcrxprof report "$dataset")
echo "report:  $report"
