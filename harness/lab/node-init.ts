/**
 * The command of a node's container (under the engine's init, docker-init): it sleeps until the
 * container is told to stop, then shuts the node down the way a machine shuts down.
 *
 * A node's programs (agent, controller, conntrackd, the harness's helper) are started by `docker
 * exec`, so they are not the command's children: with a plain `sleep infinity` as the command, a
 * `docker stop` ends the sleep at once, the engine's init exits, and the kernel SIGKILLs every
 * program; no program ever saw the SIGTERM of a clean stop. Then the kernel tears the network
 * namespace down while its links are still up, and tears nftables down first: a segment of a
 * far end addressed to a floating IP the node held, arriving in that window, met neither the NAT
 * binding nor the rules, reached the node's own TCP stack and was answered with an RST from the
 * floating IP, which reset a connection the new holder had taken over with its replicated binding
 * (run 195: long-lived-tcp.test.ts's clean stop, an RST from 192.168.1.100 3 ms after the last
 * segment the stopped holder forwarded). A real machine keeps its conntrack table and rules until
 * its NICs go dark at power-off.
 *
 * So on SIGTERM (or SIGINT) this init shuts the node down in the order a machine's init does: it
 * sends SIGTERM to each of the node's top-level programs (those `docker exec` started, whose parent
 * is outside the container: 0, and orphans the engine's init adopted: 1), and lets each stop its
 * own children (the agent its conntrackd and nft sessions); a process that becomes top-level later
 * (its parent exited without ending it) or starts later gets its SIGTERM then. Once no process is
 * left (the engine's init, this one and zombies aside) it sets every link but the loopback down
 * (power-off: nothing more leaves or arrives while the kernel still has its state) and exits, 0
 * only if every link went down; that ends the container. It waits as long as that takes: the grace
 * and what follows it are the caller's (Faults.stop). Only for node containers: it signals processes
 * of the container's own PID namespace by id, never of a container sharing the host's (the wirer).
 *
 * POSIX sh (dash); the scan of /proc uses builtins only (the 20 ms `sleep` between scans is waited
 * for before the next one).
 */
export const NODE_INIT_SCRIPT = `
down() {
  trap '' TERM INT
  kill "$idle" 2>/dev/null
  sent=' '
  while :; do
    left=
    for d in /proc/[0-9]*; do
      p=\${d#/proc/}
      if [ "$p" = 1 ] || [ "$p" = $$ ]; then continue; fi
      { read -r s < "$d/stat"; } 2>/dev/null || continue
      set -- \${s##*) }
      [ "$1" = Z ] && continue
      left=$p
      case "$sent" in *" $p "*) continue ;; esac
      if [ "$2" = 0 ] || [ "$2" = 1 ]; then
        kill -TERM "$p" 2>/dev/null
        sent="$sent$p "
      fi
    done
    [ -z "$left" ] && break
    sleep 0.02
  done
  rc=0
  for l in /sys/class/net/*; do
    n=\${l##*/}
    [ "$n" = lo ] || ip link set dev "$n" down || rc=1
  done
  exit $rc
}
trap down TERM INT
sleep infinity &
idle=$!
wait
`;

/** The node container's command: NODE_INIT_SCRIPT. */
export const NODE_INIT_COMMAND: readonly string[] = Object.freeze(['sh', '-c', NODE_INIT_SCRIPT, 'egresslab-node-init']);
