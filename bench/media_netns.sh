#!/bin/bash
# bench/media_netns.sh OUTDIR [ROUNDS]: Parley's SFU against janus, with
# janus in a network namespace of its own (libnice gathers no candidates
# on the loopback interface), joined to the host's by a veth pair:
# 10.77.0.1 (pbench0) on the host, 10.77.0.2 (pbench1) in the namespace
# "parleybench". No other address is targeted. Needs root, Debian's janus,
# nsenter (util-linux).
#
# Each round runs, in an order that alternates between rounds:
#   parley-lo    BenchmarkForwardPion on 127.0.0.1 (SFU and clients)
#   parley-veth  BenchmarkForwardPion with the SFU's process in the
#                namespace on 10.77.0.2, its clients' process on the host
#                on pbench0
#   janus        BenchmarkJanusVideoRoom: janus in the namespace, its REST
#                API and media on 10.77.0.2, the clients on pbench0
# The namespace is deleted at the end, whatever happens.
set -euo pipefail
OUT=${1:?usage: bench/media_netns.sh OUTDIR [ROUNDS]}
ROUNDS=${2:-2}
NS=parleybench HOST_IF=pbench0 NS_IF=pbench1 HOST_IP=10.77.0.1 NS_IP=10.77.0.2
SUBS=${SUBS:-10|50|100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

WORK=$(mktemp -d)
JANUS_PID=
cleanup() {
	if [ -n "$JANUS_PID" ]; then kill "$JANUS_PID" 2>/dev/null || true; wait "$JANUS_PID" 2>/dev/null || true; fi
	ip netns del "$NS" 2>/dev/null || true # takes the veth pair with it
	rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "$NS_IF" netns "$NS"
ip addr add "$HOST_IP/24" dev "$HOST_IF"
ip link set "$HOST_IF" up
ip -n "$NS" addr add "$NS_IP/24" dev "$NS_IF"
ip -n "$NS" link set "$NS_IF" up
ip -n "$NS" link set lo up

# janus: Debian's configuration, every plugin but the video room and every
# transport but HTTP off, the REST API on the namespace's address only.
CFG=$WORK/janus-cfg
cp -r /etc/janus "$CFG"
plugins=$(cd /usr/lib/x86_64-linux-gnu/janus/plugins && ls lib*.so | grep -v videoroom | paste -sd,)
transports=$(cd /usr/lib/x86_64-linux-gnu/janus/transports && ls lib*.so | grep -v http | paste -sd,)
sed -i -e "s|configs_folder = .*|configs_folder = \"$CFG\"|" \
	-e "s|^\t#disable = \"libjanus_voicemail.so,libjanus_recordplay.so\"|\tdisable = \"$plugins\"|" \
	-e "s|^\t#disable = \"libjanus_rabbitmq.so\"|\tdisable = \"$transports\"|" \
	-e "s|^\t#ice_enforce_list = .*|\tice_enforce_list = \"$NS_IF\"|" "$CFG/janus.jcfg"
sed -i -e "s|^\tport = 8088.*|\tport = 18088|" -e "s|^\t#ip = \"192.168.0.1\".*|\tip = \"$NS_IP\"|" "$CFG/janus.transport.http.jcfg"
diff -r /etc/janus "$CFG" >"$OUT/janus-config.diff" || true
ip netns exec "$NS" janus -F "$CFG" >"$WORK/janus.log" 2>&1 &
JANUS_PID=$!
for _ in $(seq 50); do
	curl -sf "http://$NS_IP:18088/janus/info" >/dev/null && break
	sleep 0.2
done
curl -sf "http://$NS_IP:18088/janus/info" | grep -m1 '"version_string"' >"$OUT/janus-version.txt"

BIN=$WORK/media.test
(cd "$ROOT" && go test -c -o "$BIN" ./media)
git -C "$ROOT" rev-parse --short HEAD >"$OUT/commit.txt"

load() {
	echo "$1 $(date -u) load $(cut -d' ' -f1-4 /proc/loadavg)" \
		"$HOST_IF rx $(cat /sys/class/net/$HOST_IF/statistics/rx_bytes) tx $(cat /sys/class/net/$HOST_IF/statistics/tx_bytes) bytes"
	pgrep -fa 'go test|xmppbench|\.test |chromium|janus' | grep -v "$BIN" | cut -c1-160 || true
}
bench() { # name
	case $1 in
	parley-lo)
		(cd "$ROOT/media" && "$BIN" -test.run xxx -test.bench "ForwardPion/subs=($SUBS)\$" -test.benchtime 1x) ;;
	parley-veth)
		(cd "$ROOT/media" && ip netns exec "$NS" env MEDIA_BENCH_SFU_IP=$NS_IP MEDIA_BENCH_CLIENT_IFACE=$HOST_IF \
			MEDIA_BENCH_CHILD_NETNS=/proc/$$/ns/net "$BIN" -test.run xxx -test.bench "ForwardPion/subs=($SUBS)\$" -test.benchtime 1x) ;;
	janus)
		(cd "$ROOT/media" && PARLEY_JANUS_URL=http://$NS_IP:18088/janus PARLEY_JANUS_PID=$JANUS_PID \
			PARLEY_JANUS_SUBS=${SUBS//|/,} MEDIA_BENCH_CLIENT_IFACE=$HOST_IF \
			"$BIN" -test.run xxx -test.bench JanusVideoRoom -test.benchtime 1x) ;;
	esac
}
# What janus offers: its answer to the publisher, and its candidates.
(cd "$ROOT/media" && PARLEY_JANUS_URL=http://$NS_IP:18088/janus PARLEY_JANUS_PID=$JANUS_PID PARLEY_JANUS_SUBS=1 \
	PARLEY_JANUS_DEBUG=1 MEDIA_BENCH_CLIENT_IFACE=$HOST_IF \
	"$BIN" -test.run xxx -test.bench JanusVideoRoom -test.benchtime 1x -test.v) >"$OUT/janus-answer.txt" 2>&1

for r in $(seq "$ROUNDS"); do
	order="parley-lo parley-veth janus"
	[ $((r % 2)) -eq 0 ] && order="janus parley-veth parley-lo"
	f=$OUT/round$r.txt
	: >"$f"
	for b in $order; do
		load "start $b" >>"$f"
		bench "$b" 2>&1 | tee -a "$f"
	done
	load end >>"$f"
done
grep -v "Failed to add some remote candidates" "$WORK/janus.log" | head -100 >"$OUT/janus-log-head.txt" || true
