#!/bin/bash
# Runs the shared suite (run_anchors.sh) with a timestamp on every output line and
# bench/cpu_monitor.py sampling server / generator / foreign CPU once a second, so
# that runs disturbed by other work on a shared machine can be spotted afterwards.
# Usage: bench/run.sh [servers...]   (default: parley prosody ejabberd)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${XB_SUITE:-/work/shared/bench}
TS=$(date -u +%Y%m%dT%H%M%SZ)
MON=/tmp/xb-monitor-$TS.tsv
python3 "$HERE/cpu_monitor.py" "$MON" &
MONPID=$!
cd "$SUITE" && ./run_anchors.sh ${*:-parley prosody ejabberd} 2>&1 | while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done
kill "$MONPID"
echo "cpu monitor: $MON"
