// Floating-IP allocation (SPEC 2, rules 1-5) as a pure, deterministic function.
//
//   1. an IP may only go to a node whose subnet contains it;
//   2. worker nodes take precedence over control-plane nodes;
//   3. nodes holding no floating IP yet are preferred (spread); among nodes that already hold
//      some, the one holding fewest wins (a natural extension of "spread");
//   4. an IP whose holder is Down (or gone, or no longer contains it) moves to the next node by the
//      same rules;
//   5. an assignment never moves while its holder is Up (no reshuffle when a node comes back).
//
// Ties are broken by node name, and IPs are processed in spec order, so the result depends only on
// the inputs. An IP no node's subnet contains is reported as `NoMatchingSubnet`; one whose only
// candidates are Down is reported as `NoUpNode` (it is then unassigned: an IP is never left on a
// Down node, so the datapath can fail closed instead of pointing at a dead node).
import { cidrContains, ipv4ToInt, isIPv4, parseCidr4, type Cidr4 } from '../../lib/net/addresses.js';

export type NodeRole = 'worker' | 'control-plane';
export type NodeState = 'Up' | 'Down';

export interface AllocNode {
  name: string;
  role: NodeRole;
  /** CIDRs of the L2 segments the node is attached to (e.g. ["192.168.1.0/24"]). */
  subnets: readonly string[];
  state: NodeState;
  /** the node's own addresses (status.addresses): never handed out as a floating IP */
  addresses?: readonly string[];
  /** the routers (default gateways) of its subnets: never handed out as a floating IP either */
  gateways?: readonly string[];
}

export type UnassignableReason = 'InvalidIP' | 'ReservedAddress' | 'NoMatchingSubnet' | 'NoUpNode';

export interface Unassignable {
  ip: string;
  reason: UnassignableReason;
  message: string;
}

export interface Move {
  ip: string;
  from: string | null;
  to: string;
}

export interface Allocation {
  /** ip -> node, only for assigned IPs, keys in spec order. */
  assignments: Record<string, string>;
  unassignable: Unassignable[];
  /** IPs whose holder changed compared with `previous` (new assignments have from=null). */
  moves: Move[];
  /** IPs that were assigned in `previous` and are now unassigned. */
  released: { ip: string; from: string }[];
}

interface PreparedNode {
  node: AllocNode;
  cidrs: Cidr4[];
}

function roleRank(r: NodeRole): number {
  return r === 'worker' ? 0 : 1;
}

/**
 * Why `ip` must never be put on a node's interface, or null: it is a node's own address, the router
 * of a node's subnet, or the network or broadcast address of a node subnet containing it (prefixes
 * up to /30).
 */
function reservedReason(ip: string, nodes: readonly PreparedNode[]): string | null {
  const owner = nodes.find((p) => p.node.addresses?.includes(ip));
  if (owner) return `${ip} is node ${owner.node.name}'s own address`;
  const routed = nodes.find((p) => p.node.gateways?.includes(ip));
  if (routed) return `${ip} is the router (default gateway) of ${routed.cidrs.find((c) => cidrContains(c, ip))?.text ?? `node ${routed.node.name}`}`;
  const n = ipv4ToInt(ip);
  for (const p of nodes) {
    for (const c of p.cidrs) {
      if (c.prefix > 30 || !cidrContains(c, ip)) continue;
      const size = 2 ** (32 - c.prefix);
      if (n === c.base) return `${ip} is the network address of ${c.text}`;
      if (n === c.base + size - 1) return `${ip} is the broadcast address of ${c.text}`;
    }
  }
  return null;
}

export function allocate(floatingIPs: readonly string[], nodes: readonly AllocNode[], previous: Readonly<Record<string, string>> = {}): Allocation {
  const prepared: PreparedNode[] = [...nodes]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((node) => ({
      node,
      cidrs: node.subnets.map((s) => parseCidr4(s, false)).flatMap((p) => (p.ok ? [p.value] : [])),
    }));
  const byName = new Map(prepared.map((p) => [p.node.name, p]));
  const contains = (p: PreparedNode, ip: string): boolean => p.cidrs.some((c) => cidrContains(c, ip));

  const ips: string[] = [];
  const unassignable: Unassignable[] = [];
  for (const ip of floatingIPs) {
    if (ips.includes(ip) || unassignable.some((u) => u.ip === ip)) continue;
    if (!isIPv4(ip)) {
      unassignable.push({ ip, reason: 'InvalidIP', message: `${JSON.stringify(ip)} is not a valid IPv4 address` });
      continue;
    }
    const reserved = reservedReason(ip, prepared);
    if (reserved) {
      unassignable.push({ ip, reason: 'ReservedAddress', message: reserved });
      continue;
    }
    ips.push(ip);
  }

  const result: Record<string, string> = {};
  const held = new Map<string, number>();
  const hold = (ip: string, name: string): void => {
    result[ip] = name;
    held.set(name, (held.get(name) ?? 0) + 1);
  };

  // Rule 5: keep every assignment whose holder is still Up and still contains the IP.
  for (const ip of ips) {
    const prev = previous[ip];
    if (prev === undefined) continue;
    const p = byName.get(prev);
    if (p && p.node.state === 'Up' && contains(p, ip)) hold(ip, prev);
  }

  // Rules 1-4 for the rest, in spec order.
  for (const ip of ips) {
    if (result[ip] !== undefined) continue;
    const inSubnet = prepared.filter((p) => contains(p, ip));
    if (inSubnet.length === 0) {
      unassignable.push({ ip, reason: 'NoMatchingSubnet', message: `no node has a subnet containing ${ip}` });
      continue;
    }
    const up = inSubnet.filter((p) => p.node.state === 'Up');
    if (up.length === 0) {
      unassignable.push({
        ip,
        reason: 'NoUpNode',
        message: `every node whose subnet contains ${ip} is Down (${inSubnet.map((p) => p.node.name).join(', ')})`,
      });
      continue;
    }
    up.sort((a, b) => {
      const r = roleRank(a.node.role) - roleRank(b.node.role);
      if (r !== 0) return r;
      const h = (held.get(a.node.name) ?? 0) - (held.get(b.node.name) ?? 0);
      if (h !== 0) return h;
      return a.node.name < b.node.name ? -1 : a.node.name > b.node.name ? 1 : 0;
    });
    hold(ip, up[0]!.node.name);
  }

  // Present assignments in spec order.
  const assignments: Record<string, string> = {};
  for (const ip of ips) if (result[ip] !== undefined) assignments[ip] = result[ip]!;

  const moves: Move[] = [];
  for (const [ip, to] of Object.entries(assignments)) {
    const from = previous[ip] ?? null;
    if (from !== to) moves.push({ ip, from, to });
  }
  const released: { ip: string; from: string }[] = [];
  for (const [ip, from] of Object.entries(previous)) {
    if (assignments[ip] === undefined) released.push({ ip, from });
  }
  return { assignments, unassignable, moves, released };
}

/** IPs per node (every node present, possibly with an empty list), in spec order. */
export function ipsByNode(assignments: Readonly<Record<string, string>>, nodeNames: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const n of nodeNames) out[n] = [];
  for (const [ip, n] of Object.entries(assignments)) (out[n] ??= []).push(ip);
  return out;
}
