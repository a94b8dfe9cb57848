/**
 * Renders the shell script that wires a lab: run once, inside the lab's "wirer" helper container
 * (host PID namespace, so `nsenter -t PID` reaches every lab container). The script only ever enters
 * lab containers' namespaces; nothing is created in the host's network namespace. Pure.
 */
import { createHash } from 'node:crypto';
import type { LabPlan } from '../topology/plan.js';

/**
 * A stable, locally administered MAC per interface: a node that reboots keeps its MAC (as a real
 * NIC does), so its neighbours' ARP caches stay right.
 */
export function stableMac(container: string, ifname: string): string {
  const h = createHash('sha1').update(`${container}/${ifname}`).digest();
  const bytes = [0x02, h[0]!, h[1]!, h[2]!, h[3]!, h[4]!];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export const LINK_ALIAS_PREFIX = 'egresslab:';

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function heredoc(lines: string[]): string {
  return `<<'EGRESSLAB_EOF'\n${lines.join('\n')}\nEGRESSLAB_EOF`;
}

function sysctlScript(sysctls: Record<string, string>): string {
  return Object.entries(sysctls)
    .map(([k, v]) => `echo ${v} > /proc/sys/${k.replace(/\./g, '/')}`)
    .join('; ');
}

/**
 * The wiring commands alone (no guard): what lives in (or connects to) the containers in scope.
 * `pids` maps each container key of the plan to its main process id on the host. `only` limits the
 * commands to those containers: used to re-wire a node that was restarted (its namespace, links and
 * pods are new).
 *
 * One `nsenter` per container and step, each running one `ip -batch` (a process start costs this
 * kind of machine 5-20 ms; the default lab was ~60 nsenter + ip pairs, 1.4 s of its start):
 *  1. links, from the side that holds the bridge (or the veth's second side): the bridge, then each
 *     veth created straight into its peer's namespace (`netns PID`, so this step never enters a
 *     PID namespace), its alias, its bridge port;
 *  2. per container, one shell in its namespaces (mount and PID too where it has pods, for
 *     /run/netns): its pods (netns, veth, alias in one batch, then each pod's own batch), its
 *     sysctls, then one batch with the aliases of the veth ends step 1 created there and its
 *     addresses, routes and rules.
 */
export function renderWiringCommands(plan: LabPlan, pids: Record<string, number>, labId: string, only?: ReadonlySet<string>): string[] {
  const inScope = (key: string) => !only || only.has(key);
  const pid = (key: string): number => {
    const p = pids[key];
    if (!p) throw new Error(`no pid for lab container ${key}`);
    return p;
  };
  const alias = (key: string) => q(`${LINK_ALIAS_PREFIX}${labId}:${key}`);
  const veths = plan.veths.filter((v) => inScope(v.a.container) || inScope(v.b.container));
  const byContainer = <T>(items: [string, T][]): Map<string, T[]> => {
    const m = new Map<string, T[]>();
    for (const [k, item] of items) m.set(k, [...(m.get(k) ?? []), item]);
    return m;
  };

  // Step 1: links.
  const linkLines = byContainer<string>([
    ...plan.bridges
      .filter((b) => inScope(b.container))
      .flatMap((b): [string, string][] => [
        [b.container, `link add ${b.name} type bridge`],
        [b.container, `link set ${b.name} up`],
      ]),
    ...veths.flatMap((v): [string, string][] => [
      [
        v.b.container,
        `link add ${v.b.ifname} address ${stableMac(v.b.container, v.b.ifname)} type veth peer name ${v.a.ifname} address ${stableMac(v.a.container, v.a.ifname)} netns ${pid(v.a.container)}`,
      ],
      [v.b.container, `link set ${v.b.ifname} alias ${alias(v.b.container)}`],
      ...(v.bridge ? [[v.b.container, `link set ${v.b.ifname} master ${v.bridge} up`] as [string, string]] : []),
    ]),
  ]);
  const out = [...linkLines].map(([key, lines]) => `nsenter -t ${pid(key)} -n ip -batch - ${heredoc(lines)}`);

  // Step 2: each container's own configuration.
  const peerAliases = byContainer<string>(veths.map((v) => [v.a.container, `link set ${v.a.ifname} alias ${alias(v.a.container)}`]));
  const pods = byContainer(plan.pods.filter((p) => !p.hostNetwork && inScope(p.node)).map((p) => [p.node, p]));
  const configs = byContainer(plan.netns.filter((cfg) => inScope(cfg.container)).map((cfg) => [cfg.container, cfg]));
  const keys = [...new Set([...plan.containers.map((c) => c.key), ...peerAliases.keys(), ...pods.keys(), ...configs.keys()])];
  for (const key of keys) {
    const podsHere = pods.get(key) ?? [];
    const cfgs = configs.get(key) ?? [];
    const body: string[] = ['set -eu'];
    if (podsHere.length > 0) {
      body.push(
        `ip -batch - ${heredoc(
          podsHere.flatMap((p) => [
            `netns add ${q(p.netns!)}`,
            `link add ${p.hostVeth} address ${stableMac(p.node, p.hostVeth!)} type veth peer name eth0 address ${stableMac(p.key, 'eth0')} netns ${q(p.netns!)}`,
            `link set ${p.hostVeth} alias ${alias(`${p.node}/${p.key}`)}`,
          ]),
        )}`,
        ...podsHere.filter((p) => p.ip_.length > 0).map((p) => `ip -n ${q(p.netns!)} -batch - ${heredoc(p.ip_)}`),
      );
    }
    const sys = sysctlScript(Object.assign({}, ...cfgs.map((c) => c.sysctls)));
    if (sys) body.push(sys);
    const ipLines = [...(peerAliases.get(key) ?? []), ...cfgs.flatMap((c) => c.ip)];
    if (ipLines.length > 0) body.push(`ip -batch - ${heredoc(ipLines)}`);
    if (body.length === 1) continue;
    const ns = podsHere.length > 0 ? '-m -n -p' : '-n';
    out.push(`nsenter -t ${pid(key)} ${ns} sh -s <<'EGRESSLAB_NS'\n${body.join('\n')}\nEGRESSLAB_NS`);
  }
  return out;
}

/**
 * The whole wiring script, run by `sh -s` in the wirer (host PID namespace): the isolation guard
 * around the wiring commands (renderWiringCommands).
 *
 *  1. Before anything is wired, every container pid's network namespace (`/proc/PID/ns/net`) is
 *     compared with the host's (PID 1's and the engine's, HOST_NETNS_PID): a pid in the host's
 *     namespace (a container started with the host network, or a pid the kernel handed to a host
 *     process after the container died) refuses the run with exit 97; one that cannot be read
 *     (stopped, restarted) with 98. Nothing has been changed then.
 *  2. The host's links, addresses, routes and rules are listed, and a trap runs the guard on every
 *     way out (success, a failed command under `set -e`, HUP/INT/TERM): it lists them again and
 *     refuses (exit 97, naming each) when a link, address, route or rule the plan creates appeared
 *     in the host's namespace (labSignature: bridges too, which carry no alias), or when a host link
 *     carries a lab alias. Otherwise the wiring's own exit status stands.
 */
export function renderWiringScript(plan: LabPlan, pids: Record<string, number>, labId: string, only?: ReadonlySet<string>): string {
  const commands = renderWiringCommands(plan, pids, labId, only);
  const sig = labSignature(plan);
  const sigLines = [
    ...sig.links.map((l) => `link ${l}`),
    ...sig.addresses.map((a) => `addr ${a}`),
    ...sig.routes.map((r) => `route ${r}`),
    ...sig.rules.map((r) => `rule ${r}`),
  ];
  return [
    'set -eu',
    ...HOST_GUARD_FUNCTIONS,
    // one readlink for every container; only when it fails or finds the host, one by one (the message names the container)
    `egl_check_all ${Object.values(pids)
      .map((p) => `/proc/${p}/ns/net`)
      .join(' ')} || {`,
    ...Object.entries(pids).map(([key, p]) => `  egl_check_ns ${q(key)} ${p}`),
    '  :',
    '}',
    'egl_dir=$(mktemp -d)',
    `cat > "$egl_dir/sig" ${heredoc(sigLines)}`,
    `egl_host_state > "$egl_dir/before" || egl_refuse 98 "cannot list the host's network interfaces, addresses, routes and rules (pid $egl_host_pid)"`,
    'trap egl_guard EXIT',
    "trap 'exit 129' HUP",
    "trap 'exit 130' INT",
    "trap 'exit 143' TERM",
    ...commands,
    '',
  ].join('\n');
}

/** What the wiring creates, as the host's listings show it: link names, addresses, route destinations, rule prefs. */
export interface LabSignature {
  links: string[];
  addresses: string[];
  /** destinations as CIDRs (`default` is 0.0.0.0/0, a host route /32) */
  routes: string[];
  rules: string[];
}

/** A route destination as the guard compares it: a CIDR. */
function routeKey(dest: string): string {
  if (dest === 'default') return '0.0.0.0/0';
  return dest.includes('/') ? dest : `${dest}/32`;
}

const ROUTE_TYPES = new Set(['unicast', 'local', 'broadcast', 'multicast', 'throw', 'unreachable', 'prohibit', 'blackhole', 'nat', 'anycast']);

/** The links, addresses, routes and rules the plan's wiring creates (from its `ip -batch` lines). Pure. */
export function labSignature(plan: LabPlan): LabSignature {
  const links = new Set<string>(plan.bridges.map((b) => b.name));
  for (const v of plan.veths) links.add(v.a.ifname).add(v.b.ifname);
  for (const p of plan.pods) if (!p.hostNetwork) links.add(p.hostVeth!).add('eth0');
  const addresses = new Set<string>();
  const routes = new Set<string>();
  const rules = new Set<string>();
  for (const line of [...plan.netns.flatMap((n) => n.ip), ...plan.pods.flatMap((p) => p.ip_)]) {
    const w = line.trim().split(/\s+/);
    if ((w[0] === 'addr' || w[0] === 'address') && w[1] === 'add' && w[2]) addresses.add(w[2].split('/')[0]!);
    else if (w[0] === 'route' && (w[1] === 'add' || w[1] === 'replace' || w[1] === 'append')) {
      const dest = ROUTE_TYPES.has(w[2] ?? '') ? w[3] : w[2];
      if (dest) routes.add(routeKey(dest));
    } else if (w[0] === 'rule' && w[1] === 'add') {
      const pref = /\bpref (\d+)/.exec(line);
      if (pref) rules.add(pref[1]!);
    }
  }
  return { links: [...links], addresses: [...addresses], routes: [...routes], rules: [...rules] };
}

/**
 * Shell snippet naming a process of the Docker engine's own network namespace (the host's network
 * stack the lab must never touch): the engine itself, seen from a container in the host PID
 * namespace. PID 1 is not always readable from there (sandboxed hosts).
 */
export const HOST_NETNS_PID = '$(pidof -s dockerd || pidof -s containerd || echo 1)';

/**
 * The guard's shell functions (POSIX sh, awk). They only read the host: `readlink` of namespace
 * links and `ip ... show` in the engine's network namespace.
 *  - egl_check_ns KEY PID: exit 97 when the pid is in the host's network namespace, 98 when its
 *    namespace cannot be read;
 *  - egl_check_all PATH...: every container's namespace link in one `readlink`; status 1 when one
 *    cannot be read or is the host's (then egl_check_ns, container by container, says which);
 *  - egl_host_state: one line per host link (`link NAME`, and `labalias LINE` for a link with a lab
 *    alias), address (`addr IP DEV`), route (`route DEST LINE`, DEST as a CIDR) and rule
 *    (`rule PREF LINE`);
 *  - egl_guard (the EXIT trap): lists again and reports what is new and the plan's (the first two
 *    fields in $egl_dir/sig), and every lab alias.
 */
const HOST_GUARD_FUNCTIONS: readonly string[] = [
  `egl_host_pid=${HOST_NETNS_PID}`,
  'egl_refuse() { echo "isolation guard: $2" >&2; exit "$1"; }',
  'egl_host_net1=$(readlink /proc/1/ns/net 2>/dev/null || true)',
  'egl_host_net2=$(readlink "/proc/$egl_host_pid/ns/net" 2>/dev/null || true)',
  `[ -n "$egl_host_net1$egl_host_net2" ] || egl_refuse 98 "cannot read the host's network namespace (/proc/1/ns/net, /proc/$egl_host_pid/ns/net): refusing to wire"`,
  'egl_check_ns() {',
  `  egl_ns=$(readlink "/proc/$2/ns/net" 2>/dev/null) || egl_refuse 98 "cannot read /proc/$2/ns/net of lab container $1 (pid $2: stopped or restarted?): refusing to wire"`,
  `  if [ "$egl_ns" = "$egl_host_net1" ] || [ "$egl_ns" = "$egl_host_net2" ]; then egl_refuse 97 "lab container $1 (pid $2) is in the host's network namespace ($egl_ns): refusing to wire"; fi`,
  '}',
  'egl_check_all() {',
  '  egl_nss=$(readlink "$@" 2>/dev/null) || return 1',
  `  case "\n\${egl_nss}\n" in *"\n\${egl_host_net1:-egl-none}\n"* | *"\n\${egl_host_net2:-egl-none}\n"*) return 1 ;; esac`,
  '}',
  'egl_host_state() {',
  '  egl_l=$(nsenter -t "$egl_host_pid" -n ip -o link show) && egl_a=$(nsenter -t "$egl_host_pid" -n ip -o -4 addr show) &&',
  '    egl_r=$(nsenter -t "$egl_host_pid" -n ip -4 route show table all) && egl_u=$(nsenter -t "$egl_host_pid" -n ip -4 rule show) || return 1',
  `  printf '%s\\n' "$egl_l" | awk -F': ' -v p=${q(LINK_ALIAS_PREFIX)} 'NF > 1 { n = $2; sub(/@.*/, "", n); print "link " n; if (index($0, "alias " p)) print "labalias " $0 }'`,
  `  printf '%s\\n' "$egl_a" | awk '{ for (i = 1; i < NF; i++) if ($i == "inet") { a = $(i + 1); sub(/\\/.*/, "", a); print "addr " a " " $2 } }'`,
  `  printf '%s\\n' "$egl_r" | awk 'NF { d = $1; if (d ~ /^(${[...ROUTE_TYPES].join('|')})$/) d = $2; if (d == "default") d = "0.0.0.0/0"; else if (d !~ /\\//) d = d "/32"; print "route " d " " $0 }'`,
  `  printf '%s\\n' "$egl_u" | awk -F: 'NF { print "rule " $1 " " $0 }'`,
  '}',
  'egl_guard() {',
  '  egl_rc=$?',
  '  trap - EXIT HUP INT TERM',
  '  set +e',
  `  egl_now=$(egl_host_state) || egl_refuse 98 "cannot list the host's network interfaces, addresses, routes and rules after wiring (pid $egl_host_pid)"`,
  `  egl_leak=$(printf '%s\\n' "$egl_now" | awk 'FILENAME == ARGV[1] { sig[$1 " " $2] = 1; next } FILENAME == ARGV[2] { old[$0] = 1; next } $1 == "labalias" || (!($0 in old) && (($1 " " $2) in sig)) { printf "%s%s", sep, $0; sep = "; " }' "$egl_dir/sig" "$egl_dir/before" -)`,
  '  rm -rf "$egl_dir"',
  `  if [ -n "$egl_leak" ]; then egl_refuse 97 "the lab changed the host's network namespace (pid $egl_host_pid): $egl_leak$([ "$egl_rc" -eq 0 ] || echo " (the wiring had failed with exit $egl_rc)")"; fi`,
  '  exit "$egl_rc"',
  '}',
];
