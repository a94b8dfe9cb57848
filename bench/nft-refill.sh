#!/bin/sh
# Bench (issue 10's leak, agent/host/nft-replace.ts): does an nftables interval set miss lookups
# while its table is re-applied? In a container of the lab's base image (--network none, NET_ADMIN
# only, removed at the end), a UDP flood to 10.1.2.3 over lo passes a rule `ip daddr @s meta mark
# set 1` while the table is re-applied in a loop, and a second table that is never touched counts
# the flood's packets that came out unmarked (missed) and marked. Two ways, side by side:
#   recreate: "table {}; delete table; table { set s {...}; chain ... }"   (what the renderers write)
#   refill:   "table {}; flush table; flush set s; table { ... }"          (what the agent commits)
#   anonymous: "table {}; flush table; table { chain ... ip daddr { ... } }" (the refill of a rule
#              whose interval set is written inline: a new anonymous set on every apply)
# Usage: sh bench/nft-refill.sh [seconds per way, default 20]
set -eu
SECS=${1:-20}
IMAGE=${EGRESSLAB_IMAGE:-$(docker images --format '{{.Repository}}:{{.Tag}}' 'egresslab-base' | head -1)}
[ -n "$IMAGE" ] || { echo "no egresslab-base image: run bin/setup (or egresslab image) first" >&2; exit 2; }
run() {
  docker run --rm --network none --cap-add NET_ADMIN --label egresslab.bench=nft-refill -e MODE="$1" -e SECS="$SECS" "$IMAGE" sh -c '
set -e
ip link set lo up; ip addr add 10.1.2.3/32 dev lo
DEF="table ip t {
  set s { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 172.16.0.0/12 } }
  chain out { type filter hook output priority 0; policy accept;
    ip daddr @s meta mark set 0x1
  }
}"
[ "$MODE" = anonymous ] && DEF="table ip t {
  chain out { type filter hook output priority 0; policy accept;
    ip daddr { 10.0.0.0/8, 172.16.0.0/12 } meta mark set 0x1
  }
}"
printf "%s\n" "table ip probe {" "  chain out2 { type filter hook output priority 10; policy accept;" \
  "    ip daddr 10.1.2.3 udp dport 9 meta mark != 0x1 counter comment \"missed\"" \
  "    ip daddr 10.1.2.3 udp dport 9 meta mark 0x1 counter comment \"marked\"" "  }" "}" | nft -f -
printf "%s\n" "$DEF" | nft -f -
if [ "$MODE" = refill ]; then HEAD="table ip t {}
flush table ip t
flush set ip t s"; elif [ "$MODE" = anonymous ]; then HEAD="table ip t {}
flush table ip t"; else HEAD="table ip t {}
delete table ip t"; fi
node -e "const s=require(\"dgram\").createSocket(\"udp4\"); const b=Buffer.alloc(8); const t0=Date.now();
(function go(){ for(let i=0;i<200;i++) s.send(b,9,\"10.1.2.3\"); if(Date.now()-t0<$SECS*1000) setImmediate(go); else setTimeout(()=>process.exit(0),200); })();" &
P=$!
n=0; while kill -0 $P 2>/dev/null; do printf "%s\n%s\n" "$HEAD" "$DEF" | nft -f -; n=$((n+1)); done
missed=$(nft list table ip probe | sed -n "s/.*packets \([0-9]*\).*missed.*/\1/p")
marked=$(nft list table ip probe | sed -n "s/.*packets \([0-9]*\).*marked.*/\1/p")
echo "$MODE $n $missed $marked"'
}
echo "nft-refill: kernel $(uname -r), image $IMAGE, ${SECS} s per way"
printf '%-9s %10s %10s %12s\n' way applies missed "packets"
for mode in recreate refill anonymous; do
  set -- $(run $mode)
  printf '%-9s %10s %10s %12s\n' "$1" "$2" "$3" "$(( $3 + $4 ))"
done
