#!/bin/bash
# The archive's cost (issue #3): builds Parley's example host from several source
# trees and runs xmppbench's msg mode (max rate, then 5,000 msg/s) against each,
# interleaved round by round (A B C, A B C, ...) so that contention from other
# work on the machine hits every variant alike. Every run starts the server on a
# fresh data directory with 100 users. Loopback only, own ports (36222/36223/36280)
# and directories, so it does not disturb ../shared/bench's servers.
# Usage: bench/archive_compare.sh OUTDIR ROUNDS name=tree [name=tree ...]
# Environment: MODES (default "max rate5000"), DUR (default 20s), PPROF=1 takes
# a 10 s CPU profile of each max-rate run (host -pprof-addr 127.0.0.1:36290).
#   e.g. bench/archive_compare.sh /tmp/cmp 2 before=/tmp/before after=. off=/tmp/off
set -u
OUT=${1:?OUTDIR}; ROUNDS=${2:?ROUNDS}; shift 2
XB=${XB:-/tmp/xb-bin/xmppbench}
BASE=${XB_CMP_DIR:-/tmp/xb-archive-compare}
PORT=36222
mkdir -p "$OUT" "$BASE"
python3 - "$BASE/users.json" <<'PY'
import json, sys
users = [{"address": f"user{i}@localhost", "name": f"User {i}", "password": "benchpass"} for i in range(1, 101)]
json.dump({"users": users, "aliases": {}}, open(sys.argv[1], "w"))
PY
names=()
for spec in "$@"; do
  name=${spec%%=*}; tree=${spec#*=}
  (cd "$tree" && go build -o "$BASE/host-$name" ./examples/host) || { echo "build failed: $tree"; exit 1; }
  if "$BASE/host-$name" -h 2>&1 | grep -q -- -read-rate; then
    # A build with the client read-rate limit: measure it with the limit
    # off, as the anchors' limits are (a wrapper keeps the run line alike
    # for every build).
    mv "$BASE/host-$name" "$BASE/host-$name.bin"
    printf '#!/bin/sh\nexec "%s" -read-rate -1 "$@"\n' "$BASE/host-$name.bin" > "$BASE/host-$name"
    chmod +x "$BASE/host-$name"
  fi
  echo "$name: $(cd "$tree" && git rev-parse --short HEAD 2>/dev/null || echo "$tree")" >> "$OUT/builds.txt"
  names+=("$name")
done
run() { # name mode args...
  local name=$1 mode=$2; shift 2
  rm -rf "$BASE/data"
  "$BASE/host-$name" -domain localhost -data "$BASE/data" -users "$BASE/users.json" -domain-roster=false \
    -xmpp-addr 127.0.0.1:$PORT -xmpps-addr 127.0.0.1:36223 -http-addr 127.0.0.1:36280 ${PPROF:+-pprof-addr 127.0.0.1:36290} > "$BASE/server-$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q "SCRAM credentials ready" "$BASE/server-$name.log" 2>/dev/null && break; sleep 0.2; done
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.2; done
  {
    echo "== $(date -u +%H:%M:%S) $name $mode: $XB msg $* --addr 127.0.0.1:$PORT --pid $pid --label $name"
    echo "load: $(cat /proc/loadavg); others: $(pgrep -fa 'xmppbench|go test|\.test ' | grep -v "$XB" | cut -c1-100 | tr '\n' ';')"
    local cpid=
    if [ -n "${PPROF:-}" ] && [ "$mode" = max ]; then
      (sleep 5; curl -s -o "$OUT/cpu-$name-$(date -u +%H%M%S).pprof" "http://127.0.0.1:36290/debug/pprof/profile?seconds=10") &
      cpid=$!
    fi
    timeout 120 "$XB" msg "$@" --addr 127.0.0.1:$PORT --pid $pid --label "$name"
    [ -n "$cpid" ] && wait "$cpid"
  } >> "$OUT/$name-$mode.txt" 2>&1
  tail -1 "$OUT/$name-$mode.txt" | sed "s/^/{\"variant\":\"$name\",\"mode\":\"$mode\",\"run\":/; s/\$/}/" >> "$OUT/results.jsonl"
  kill $pid; wait $pid 2>/dev/null
}
MODES=${MODES:-max rate5000} # MODES=max: max rate only
DUR=${DUR:-20s}
for r in $(seq "$ROUNDS"); do
  case " $MODES " in *" max "*) for n in "${names[@]}"; do run "$n" max -p 50 --duration "$DUR"; done ;; esac
  case " $MODES " in *" rate5000 "*) for n in "${names[@]}"; do run "$n" rate5000 -p 50 --duration "$DUR" --rate 5000; done ;; esac
done
python3 "$(dirname "$0")/archive_summary.py" "$OUT" > "$OUT/table.md"
echo "results: $OUT"
