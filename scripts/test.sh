#!/usr/bin/env bash
# The whole test suite as two pytest sessions side by side (make test; .ci/run calls that):
#   - the system tests (root, network namespaces, BPF, perf, the load generator, the kernel lab),
#     in the foreground, one at a time as they must be;
#   - the offline tests (marker `offline`, tests/conftest.py OFFLINE_MODULES: datasets, analyses,
#     report, notebooks, parsers, docs), beside them: they use the CPU the system tests leave idle
#     while they wait for their runs, and the system tests are built to hold beside a busy neighbour.
# Extra arguments go to both sessions. The last line sums both: "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
work=$(mktemp -d)
trap 'kill "$offline" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

$py -m pytest -q -ra -p no:cacheprovider -m offline --junitxml="$work/offline.xml" "$@" >"$work/offline.out" 2>&1 &
offline=$!
$py -m pytest -q -ra -m "not offline" --junitxml="$work/system.xml" "$@"
rc_system=$?
wait "$offline"
rc_offline=$?
echo
echo "== offline tests (ran beside the tests above)"
cat "$work/offline.out"

# pytest's 5 is "no test selected": fine for one half when arguments narrowed the run
ok() { [ "$1" = 0 ] || [ "$1" = 5 ]; }
$py - "$work/system.xml" "$work/offline.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    for suite in root.iter("testsuite"):
        for key in total:
            total[key] += int(suite.get(key, 0))
failed = total["failures"] + total["errors"]
passed = total["tests"] - failed - total["skipped"]
print(f"\nall tests: {passed} passed, {failed} failed, {total['skipped']} skipped")
PY
if ok "$rc_system" && ok "$rc_offline" && ! { [ "$rc_system" = 5 ] && [ "$rc_offline" = 5 ]; }; then
  exit 0
fi
[ "$rc_system" = 0 ] || [ "$rc_system" = 5 ] && exit "$rc_offline"
exit "$rc_system"
