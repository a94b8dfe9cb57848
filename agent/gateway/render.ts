/**
 * Pure rendering of the gateway datapath of one node (see docs/gateway.md):
 *
 *   - ONE nft transaction (`nft -f -`) re-creating `table ip egresslab_gw` and `table arp
 *     egresslab_gw` whole (flush-and-recreate, as agent/masq/render.ts): every mark, drop, SNAT and
 *     guard decision changes in the same kernel commit, so no packet sees half a change;
 *   - `ip rule` / `ip route` commands for the per-gateway routing tables (diffed against the
 *     kernel's current state, idempotent);
 *   - `ip addr` commands for the floating IPs this node owns.
 *
 * table ip egresslab_gw
 *   set podcidrs            this node's pod CIDRs
 *   set clusterpods         every pod CIDR of the cluster (this node's and its peers')
 *   set pN_src/pN_all/pN_dst  policy N (pN: p_<its name>, policySetPrefix): matched pod IPs here / everywhere, destinationCIDRs
 *   chain prerouting   filter, prerouting, mangle-10 (-160):
 *       iifname <uplink> ip saddr @pN_all ip daddr @pN_dst  mark |= forward-ok   (holder only)
 *       iifname <uplink> ip saddr @pN_dst ip daddr @pN_src <mid-stream, no entry> return  (routed pairs)
 *       iifname <uplink> ip daddr @podcidrs ip saddr != @clusterpods <mid-stream, no entry> drop   (no NAT would see the answers)
 *       iifname <uplink> return                                  then pod traffic only
 *       ip saddr vmap { <isolated pod> : jump np_K }          NetworkPolicy egress FIRST
 *       ip saddr @pN_src ip daddr @pN_dst  mark->holder  accept | mark bypass accept | drop
 *   chain np_K          ct established,related return; allowed -> return; else drop
 *   chain egress_snat   nat, postrouting, srcnat-10 (90): holder only:
 *       oifname <uplink> meta mark & 0xff0000 == 0 ip saddr @pN_all ip daddr @pN_dst snat to <egressSourceIP>
 *   chain guard         filter, postrouting, srcnat+10 (110): after every NAT:
 *       oifname <uplink> ct direction original ct original ip saddr @pN_all ct original ip daddr @pN_dst jump pN_guard
 *       ct state invalid,untracked ip saddr @pN_all ip daddr @pN_dst jump pN_guard   (no entry: no NAT either)
 *   chain pN_guard      ip saddr <egressSourceIP> accept (holder) | mark + rt nexthop holder accept |
 *                       mark == holder's index, source untouched accept (towards the holder) | drop
 *   chain hairpin       filter, prerouting, raw (-300), before conntrack (every node, any floating IP):
 *       iifname <uplink> ip daddr { <floating IPs> } fib daddr type != local notrack   (not held here)
 *   chain input         filter, input: ip daddr { <floating IPs> } tcp/udp drop (held or being released)
 * forward fence (ip rules, one per other node's pod CIDR; a routing decision, so it holds even
 *   when every nft hook is gone):
 *       pref 990 from <peer pod CIDR> fwmark 0/0x1000 iif <uplink> lookup 7100
 *       table 7100: blackhole default; throw <this node's pod CIDRs> (pod-to-pod goes on to main)
 * table arp egresslab_gw  (ARP fence, a kernel dead-man switch)
 *   set floating        every floating IP of the gateway
 *   set alive           owned IPs, with a 1 s timeout the agent refreshes every 200 ms
 *   chain output        arp saddr ip @floating arp saddr ip != @alive drop
 */
import { createHash } from 'node:crypto';
import { EGRESS_GW_BYPASS_MARK, EGRESS_GW_BYPASS_MASK } from '../masq/constants.js';
import { coveringCidrList, formatIPv4, maskOf, overlaps, parseCidr4 } from '../../lib/net/addresses.js';
import {
  BOOT_GUARD_TABLE,
  ARP_ALIVE_TIMEOUT_MS,
  GW_FENCE_PREF,
  GW_FENCE_TABLE,
  GW_FORWARD_OK_MARK,
  GW_MARK_MASK,
  GW_TABLE,
  GW_TABLE_BASE,
  GW_MAX_INDEX,
  PRIO_GUARD,
  PRIO_PREROUTING,
  PRIO_SNAT,
} from './constants.js';
import type { GatewayPlan, PolicyPlan } from './model.js';
import { ipBatchLine, type IpOp, type IpRule } from '../host/host.js';
import type { NetpolAllow, NetpolPod } from './netpol.js';

export interface RenderOptions {
  /** the node's L2 interface (carries the node IP; floating IPs go there). Default eth0 */
  uplink?: string;
  tableName?: string;
  /** timeout of @alive elements (ms; 0: no element, every floating IP fenced) */
  aliveTimeoutMs?: number;
}

/** A policy-routing rule (the host's IpRule: `pref P [from CIDR] [iif DEV] fwmark M/MASK table T`). */
export type RuleSpec = IpRule;

export interface RouteSpec {
  table: number;
  via: string;
  dev: string;
}

export interface RenderedGateway {
  ruleset: string;
  rules: RuleSpec[];
  routes: RouteSpec[];
  /** the forward fence's table: `throw` these (this node's pod CIDRs), blackhole the rest */
  fenceThrow: string[];
  /** floating IPs to own, "a.b.c.d/32" */
  addresses: string[];
  ruleCount: number;
}

export const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;
const hex8 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;

function comment(s: string): string {
  return `comment "${s.replace(/["\\\n\r]/g, ' ').slice(0, 120)}"`;
}

function elements(list: readonly string[]): string {
  return list.length ? ` elements = { ${list.join(', ')} }` : '';
}

function fmtMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function dropTable(fam: 'ip' | 'arp', name: string): string {
  return `table ${fam} ${name} {}\ndelete table ${fam} ${name}\n`;
}

/**
 * NetworkPolicy allow lists are named sets of the table (np_<pod IP>_<allow>_<what>), not sets written
 * inline in the rules: an inline set is a new set on every apply, and on the kernel of these
 * machines an interval set created in a transaction misses lookups for a moment after the new rules
 * go live (agent/host/nft-replace.ts): an allowed connection's first packet was dropped by the chain's
 * final drop whenever its node applied anything at that moment. A named set is kept and refilled in
 * place when the table is (its elements change, the set does not); named after the pod's address and
 * the rule's position among its allows (np_<a_b_c_d>_<rule>_…), so pods coming and going keep every
 * other pod's sets, and peers' addresses changing only refill them.
 */
function netpolSet(sets: string[], name: string, type: 'ipv4_addr' | 'inet_service', list: readonly string[]): string {
  sets.push(`set ${name} { type ${type}; flags interval;${elements(list)} }`);
  return `@${name}`;
}

function portExpr(ports: NetpolAllow['ports'], base: string, sets: string[]): string[] {
  if (ports === null) return [''];
  const out: string[] = [];
  for (const proto of ['tcp', 'udp', 'sctp'] as const) {
    const rs = ports.filter((p) => p.protocol === proto);
    if (!rs.length) continue;
    if (rs.some((r) => r.from <= 1 && r.to >= 65535)) {
      out.push(` meta l4proto ${proto}`);
      continue;
    }
    // already merged per protocol (netpol.ts mergeRanges): the elements of a named interval set may not overlap
    const items = rs.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`));
    out.push(` meta l4proto ${proto} th dport ${netpolSet(sets, `${base}_${proto}`, 'inet_service', items)}`);
  }
  return out;
}

function destExpr(dests: NetpolAllow['dests'], base: string, sets: string[]): string[] {
  if (dests === null) return [''];
  const out: string[] = [];
  const plain = dests.filter((d) => d.except.length === 0).map((d) => d.cidr);
  // no two elements of a named interval set may overlap ("conflicting intervals"): the covering list
  if (plain.length) out.push(` ip daddr ${netpolSet(sets, `${base}_d`, 'ipv4_addr', coveringCidrList(plain))}`);
  dests
    .filter((x) => x.except.length > 0)
    .forEach((d, m) => out.push(` ip daddr ${d.cidr} ip daddr != ${netpolSet(sets, `${base}_x${m}`, 'ipv4_addr', coveringCidrList(d.except))}`));
  return out;
}

function netpolChain(name: string, pod: NetpolPod, sets: string[]): { text: string; rules: number } {
  const lines = ['ct state established,related return'];
  pod.allows.forEach((a, j) => {
    // named after the pod's address, not its chain's position: a pod added before it keeps its sets
    const base = `np_${pod.ip.replaceAll('.', '_')}_${j}`;
    const ports = portExpr(a.ports, base, sets);
    for (const d of destExpr(a.dests, base, sets)) for (const p of ports) lines.push(`${`${d}${p}`.trim()} return`.trim());
  });
  lines.push(`counter drop ${comment(`networkpolicy egress: not allowed for ${pod.pod} (${pod.policies.join(', ')})`)}`);
  return { text: `\tchain ${name} {\n${lines.map((l) => `\t\t${l}\n`).join('')}\t}\n`, rules: lines.length };
}

/** The suffix of a transition plan's entry for a policy's leaving pairs (transitionPlan). */
const LEAVING = '~leaving';

/**
 * The prefix of a policy's sets and guard chain (`<prefix>_src`, `_all`, `_dst`, `_guard`): named
 * after the policy, not its position among the plan's policies (sorted by name). By position, a
 * policy added or deleted before another renamed every later policy's sets, so that apply created
 * them anew, and an interval set created in a transaction misses lookups for a moment
 * (agent/host/nft-replace.ts): a packet of the later policy's pods that missed its `_dst` set was
 * neither marked for its gateway nor caught by the guard, and left masqueraded with the node IP.
 * A name of lower-case letters, digits, '-' and '.' of up to 63 characters (longer object names
 * are allowed, up to 253) is a valid nft identifier after `p_`; a transition plan's
 * `<name>~leaving` (transitionPlan) writes its `~` as `/`, which no object name has. Any other
 * name, a longer one included, gets `ph_` and a hash of it (the two forms cannot meet).
 */
export function policySetPrefix(name: string): string {
  const m = /^([a-z0-9][a-z0-9.-]{0,62})(~leaving)?$/.exec(name);
  if (m) return `p_${m[1]}${m[2] ? '/leaving' : ''}`;
  return `ph_${createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
}

/**
 * The set prefix of each policy of a plan. A transition plan's `<name>~leaving` entry for a policy
 * that is gone from the plan (deleted: every pair leaves) takes that policy's own prefix: the sets
 * the last table had for it are refilled with the leaving pairs in place, not created next to it
 * (a created interval set misses lookups for a moment, and a leaving pair's packet that missed both
 * the drop and the guard left by its old conntrack entry, un-NATed). Its prefix is
 * `p_<name>/leaving` only while the policy itself is still in the plan (some of its pairs leave).
 */
export function setPrefixes(policies: readonly PolicyPlan[]): (p: PolicyPlan) => string {
  const names = new Set(policies.map((p) => p.name));
  const of = new Map<PolicyPlan, string>();
  for (const p of policies) {
    const base = p.name.endsWith(LEAVING) ? p.name.slice(0, -LEAVING.length) : null;
    of.set(p, policySetPrefix(base !== null && !names.has(base) ? base : p.name));
  }
  return (p) => of.get(p) ?? policySetPrefix(p.name);
}

/**
 * The leaving-pair prefixes (`p_<name>/leaving`) a table declares empty: one per policy of the plan
 * that is not itself a leaving entry and whose leaving entry the plan does not have (that one
 * declares its sets with its pairs).
 */
function standbyLeavingPrefixes(policies: readonly PolicyPlan[]): string[] {
  const names = new Set(policies.map((p) => p.name));
  return policies.filter((p) => !p.name.endsWith(LEAVING) && !names.has(`${p.name}${LEAVING}`)).map((p) => policySetPrefix(`${p.name}${LEAVING}`));
}

function policyPrerouting(p: PolicyPlan, k: string): string {
  const match = `ip saddr @${k}_src ip daddr @${k}_dst`;
  const keep = hex8(~(GW_MARK_MASK | EGRESS_GW_BYPASS_MASK) >>> 0);
  switch (p.action) {
    case 'route':
      return `${match} meta mark set meta mark & ${keep} | ${hex8(p.mark!)} counter accept ${comment(`policy ${p.name}: to gateway ${p.holder} (${p.holderIP})`)}`;
    case 'local':
      return `${match} meta mark set meta mark & ${keep} | ${hex8(EGRESS_GW_BYPASS_MARK)} counter accept ${comment(`policy ${p.name}: gateway is this node, SNAT here`)}`;
    case 'drop':
      return `${match} counter drop ${comment(`policy ${p.name}: fail-closed (${p.reason})`)}`;
  }
}

/** A TCP segment conntrack has no entry for that is not a connection's first (a pure SYN). */
const MID_STREAM = 'ct state new tcp flags & (syn | ack) != syn';

/**
 * The drop of a mid-stream TCP segment from the uplink to one of `own` pod CIDRs that conntrack
 * has no entry for, from anything but the cluster's pods (`clusterPods`: a set reference or an
 * inline set; renderGateway; the boot guard has it too, so nothing is picked up before the agent's
 * first apply either). Null without pod CIDRs.
 */
function pickupDrop(own: readonly string[], uplink: string, daddr: string, clusterPods: string): string | null {
  if (!own.length) return null;
  return `iifname "${uplink}" ip daddr ${daddr} ip saddr != ${clusterPods} ${MID_STREAM} counter drop ${comment('mid-stream segment to a local pod without a conntrack entry: no NAT would judge its answers')}`;
}

/**
 * Every pod CIDR of the cluster, as the elements of an interval set: no two elements may overlap
 * in one ("conflicting intervals"), so a peer's pod CIDR that repeats or contains another would
 * fail the whole transaction.
 */
function clusterPodCidrs(own: readonly string[], peers: readonly string[]): string[] {
  return coveringCidrList([...own, ...peers]);
}

/**
 * On a holder, a reply to one of ITS OWN matched pods arrives addressed to the floating IP and is
 * de-NATed here (nat prerouting, after this chain). One that arrives already de-NATed (addressed
 * to the pod IP) was de-NATed by another kernel that still thinks it holds the IP: a hung (paused)
 * old holder, whose agent stopped but whose kernel keeps forwarding. Picked up here as a new flow
 * (TCP loose pickup), its reply tuple would clash with the binding this node committed for the
 * same connection; NAT then moves its source port, the pod answers the unknown port with an RST,
 * and that RST, SNATed by a holder, resets the connection at the far end. Dropped instead: the far
 * end retransmits to this node once the gratuitous ARP moved the IP. Only non-SYN segments without
 * a conntrack entry (a new inbound connection from a destination to the pod starts with a SYN; an
 * existing one has its entry).
 */
function strayReplyDrop(dst: string, src: string, name: string, uplink: string): string {
  return `iifname "${uplink}" ip saddr ${dst} ip daddr ${src} ${MID_STREAM} counter drop ${comment(`policy ${name}: reply de-NATed by another kernel`)}`;
}

/** strayReplyDrop of a policy of the plan a table was rendered from: its destination and source sets (prefix `k`). */
function strayReplyDropOf(k: string, name: string, uplink: string): string {
  return strayReplyDrop(`@${k}_dst`, `@${k}_src`, name, uplink);
}

/**
 * The same drop, inserted into the CURRENT table just before a node about to take floating IPs
 * commits the replicated bindings (agent/gateway/conntrack-sync.ts commit), for every policy with
 * pods on this node that the current table does not SNAT here. `conntrackd -c` commits the WHOLE
 * external cache: from that commit on, the pods' connections through an IP being taken have their
 * holder binding here while the final ruleset (which renders the drop for a holder) is not in place
 * yet; and, until the purge that ends the commit's shell, so do their connections through an IP
 * held elsewhere, whose replies the holder de-NATs and forwards here: the table's rule for a routed
 * pair lets such a reply be picked up (keep in renderGateway), its reply tuple clashes with the
 * binding, NAT moves its port, and the pod's RST resets the connection at the far end (session 37:
 * node-2's restarted agent re-took 192.168.1.101 while node-1 held .100 for node-2's pod; 3
 * connections of that pod reset in 1 ms, during the commit; the conntrack-sync scenario with every
 * agent restarted, one core busy, 2 runs of 5). Inserted rules go with the table when the final
 * ruleset replaces it. Null when no policy has a pod of this node.
 *
 * `plan` is the plan of the current table (its sets are referenced by name). An agent that has
 * none yet (just restarted) still has connections of its own: the previous agent left the datapath
 * and conntrackd as they were, and its pods' flows go on through the old holder. The rules are then
 * rendered from `next` with the addresses written out, not the table's sets (they belong to the
 * previous agent's plan). Without them (session 36, the same scenario): node-3's agent
 * restarted, its kernel kept de-NATing the replies of node-2's pod and forwarding them to node-2,
 * whose own restarted agent took the IP and committed without the drop; two of the pod's
 * connections were reset at the far end during that commit.
 */
export function renderStrayReplyFence(plan: GatewayPlan | null, opts: { uplink?: string; tableName?: string; next?: GatewayPlan | null } = {}): string | null {
  const uplink = opts.uplink ?? 'eth0';
  if (!IFNAME.test(uplink)) throw new Error(`invalid interface name ${JSON.stringify(uplink)}`);
  const table = opts.tableName ?? GW_TABLE;
  let lines: string[];
  if (plan) {
    const k = setPrefixes(plan.policies);
    lines = plan.policies
      .map((p) => (!p.snatHere && p.localSources.length ? `insert rule ip ${table} prerouting ${strayReplyDropOf(k(p), p.name, uplink)}` : null))
      .filter((x): x is string => x !== null);
  } else if (opts.next)
    lines = opts.next.policies
      .filter((p) => p.localSources.length && p.destinations.length)
      .map(
        (p) => `insert rule ip ${table} prerouting ${strayReplyDrop(`{ ${p.destinations.join(', ')} }`, `{ ${p.localSources.join(', ')} }`, p.name, uplink)}`,
      );
  else lines = [];
  return lines.length ? `${lines.join('\n')}\n` : null;
}

/** The chain that holds the takeover window's drop (renderTakeoverWindow). */
export const TAKEOVER_WINDOW_CHAIN = 'takeover_window';

/**
 * A node taking a floating IP with conntrack sync on gets the replicated bindings of its OWN pods'
 * connections back in two steps: their old entries (made while the flow was routed to the old
 * holder, no NAT binding) are deleted, then the replicated bindings are committed (conntrack-sync.ts
 * commit). A segment of such a connection sent by the pod between the two finds no entry and, by
 * TCP loose pickup, makes a NEW one here, SNATed with the pod's own port; the replicated binding,
 * whose port the old holder may have remapped, can then no longer be committed (same original
 * tuple), and the far end, seeing an unknown port, answers RST: the connection dies (seen: 1 of 20
 * connections of the conntrack-sync scenario, about 1 run in 3). This chain, added with the final
 * ruleset in the same transaction and deleted right after the commit (in the commit's shell),
 * drops those segments instead: non-SYN TCP without an entry, from this node's pods to the
 * destinations of each policy that now SNATs here and has such a pair. The pod retransmits into the
 * committed binding.
 *
 * The re-commit brings the whole external cache in again, so the chain also holds, for every
 * policy with pods here that is NOT SNATed here, the stray-reply drop (renderStrayReplyFence: until
 * the commit's purge, those pods' connections through an IP held elsewhere have a binding here,
 * and a reply the holder de-NATed, picked up, would clash with it). Null when nothing changed (no
 * re-commit) or no rule applies. `uplink` is validated by the caller's renderGateway.
 */
export function renderTakeoverWindow(
  plan: GatewayPlan,
  changed: readonly { src: string; dst: string }[],
  opts: { tableName?: string; uplink?: string } = {},
): string | null {
  const table = opts.tableName ?? GW_TABLE;
  const uplink = opts.uplink ?? 'eth0';
  if (!IFNAME.test(uplink)) throw new Error(`invalid interface name ${JSON.stringify(uplink)}`);
  if (!changed.length) return null;
  const rules: string[] = [];
  const prefixOf = setPrefixes(plan.policies);
  plan.policies.forEach((p) => {
    if (!p.snatHere) {
      if (p.localSources.length) rules.push(strayReplyDropOf(prefixOf(p), p.name, uplink));
      return;
    }
    const srcs = changedSources(p, changed);
    if (!srcs.length) return;
    // the policy's own sets (same table, same transaction): its other pairs were SNATed here
    // before and have their entries, so the wider match costs nothing
    const k = prefixOf(p);
    rules.push(`ip saddr @${k}_src ip daddr @${k}_dst ${MID_STREAM} counter drop ${comment(`policy ${p.name}: takeover window, binding not committed yet`)}`);
    rules.push(replyMadeDrop(k, p.name, srcs));
  });
  return windowChain(table, rules);
}

function windowChain(table: string, rules: readonly string[]): string | null {
  if (!rules.length) return null;
  return `table ip ${table} {\n\tchain ${TAKEOVER_WINDOW_CHAIN} {\n\t\ttype filter hook prerouting priority ${PRIO_PREROUTING}; policy accept;\n${rules.map((r) => `\t\t${r}\n`).join('')}\t}\n}\n`;
}

/**
 * A pod's segment of a connection whose entry here was made by the far end's reply (a routed pair
 * keeps pickup: renderGateway) travels in the entry's REPLY direction, with no NAT binding, and the
 * guard judges the original direction only. Routed, it goes to the holder, which SNATs it. Once the
 * final ruleset of a change makes the pair local (this node SNATs it now), nothing routes or NATs
 * it any more: until the flush of the changed pairs deletes the entry, such segments left the
 * uplink with the pod IP (a leaked PSH,ACK of default/client-1 in a CI run of the conntrack-sync
 * scenario; one of paul/frontend-2 in a full run, when a new policy made its pair local on the node
 * that already held its IP). Dropped while the window lasts: the pod retransmits into the entry its
 * next segment makes after the flush, SNATed.
 */
function replyMadeDrop(k: string, name: string, srcs: readonly string[]): string {
  // only the sources of changed pairs: the policy's other pods' inbound connections keep their answers
  return `ip saddr { ${srcs.join(', ')} } ip daddr @${k}_dst ct direction reply counter drop ${comment(`policy ${name}: entry made by a reply while routed (no NAT), flushed next`)}`;
}

/** The local sources of policy `p` that have a changed pair in it (each once, in `changed`'s order). */
function changedSources(p: PolicyPlan, changed: readonly { src: string; dst: string }[]): string[] {
  const local = new Set(p.localSources);
  const dsts = new Set(p.destinations);
  return [...new Set(changed.filter((c) => local.has(c.src) && dsts.has(c.dst)).map((c) => c.src))];
}

/**
 * The window of a change that makes pairs local WITHOUT a re-commit (conntrack sync off, its commit
 * failed, or no IP taken: a new or edited policy whose IP this node already holds): only the drop of
 * the pods' segments in the reply direction of entries made by a reply (replyMadeDrop), for each
 * policy SNATed here with a changed pair; added with the final ruleset, deleted after the flush of
 * the changed pairs. Null when no such policy.
 */
export function renderChangeoverWindow(plan: GatewayPlan, changed: readonly { src: string; dst: string }[], opts: { tableName?: string } = {}): string | null {
  const rules: string[] = [];
  const prefixOf = setPrefixes(plan.policies);
  plan.policies.forEach((p) => {
    const srcs = p.snatHere ? changedSources(p, changed) : [];
    if (srcs.length) rules.push(replyMadeDrop(prefixOf(p), p.name, srcs));
  });
  return windowChain(opts.tableName ?? GW_TABLE, rules);
}

/** The command that ends the takeover window (deletes its chain). */
export function renderTakeoverWindowEnd(opts: { tableName?: string } = {}): string {
  return `delete chain ip ${opts.tableName ?? GW_TABLE} ${TAKEOVER_WINDOW_CHAIN}\n`;
}

function policyGuard(p: PolicyPlan, k: string): string {
  const lines: string[] = [];
  if (p.snatHere) lines.push(`ip saddr ${p.egressSourceIP} accept`);
  // A marked packet may leave un-NATed only when it is really routed to the holder: if the
  // holder's routing table were missing for a moment, the lookup would fall through to the main
  // table and the packet would reach the router with the pod IP (a leak seen in a kill scenario).
  if (p.action === 'route' && p.mark !== null && p.holderIP) {
    lines.push(`meta mark & ${hex8(GW_MARK_MASK)} == ${hex8(p.mark & GW_MARK_MASK)} rt ip nexthop ${p.holderIP} ip saddr @${k}_all accept`);
  }
  lines.push(`counter drop ${comment(`guard ${p.name}: would leave with a source other than ${p.egressSourceIP}`)}`);
  return `\tchain ${k}_guard {\n${lines.map((l) => `\t\t${l}\n`).join('')}\t}\n`;
}

export function renderGateway(plan: GatewayPlan, opts: RenderOptions = {}): RenderedGateway {
  const uplink = opts.uplink ?? 'eth0';
  if (!IFNAME.test(uplink)) throw new Error(`invalid interface name ${JSON.stringify(uplink)}`);
  const table = opts.tableName ?? GW_TABLE;
  const aliveMs = opts.aliveTimeoutMs ?? ARP_ALIVE_TIMEOUT_MS;
  const t = '\t';
  let ruleCount = 0;
  const prefixOf = setPrefixes(plan.policies);
  let out = `# egresslab egress NAT gateway datapath for node ${plan.node}: one nft transaction\n`;
  out += dropTable('ip', table);
  out += dropTable('arp', table);
  out += `table ip ${table} {\n`;
  out += `${t}${comment(`egresslab egress gateway (${plan.node})`)}\n`;
  out += `${t}set podcidrs { type ipv4_addr; flags interval;${elements(plan.podCIDRs)} }\n`;
  // named, refilled in place like every set here: written inline in its rule, it was a new set at
  // every apply, and a new interval set misses lookups for a moment (agent/host/nft-replace.ts)
  out += `${t}set clusterpods { type ipv4_addr; flags interval;${elements(clusterPodCidrs(plan.podCIDRs, plan.peerPodCIDRs))} }\n`;
  const policySets = (k: string, src: readonly string[], all: readonly string[], dst: readonly string[]) =>
    `${t}set ${k}_src { type ipv4_addr;${elements(src)} }\n` +
    `${t}set ${k}_all { type ipv4_addr;${elements(all)} }\n` +
    `${t}set ${k}_dst { type ipv4_addr; flags interval;${elements(dst)} }\n`;
  for (const p of plan.policies) out += policySets(prefixOf(p), p.localSources, p.allSources, p.destinations);
  // Every policy's leaving sets exist, empty, before any transition needs them: a transition in
  // which some of a policy's pairs leave (a pod relabelled, a destination removed) fills them in
  // place instead of creating them (setPrefixes; a created interval set misses lookups for a moment).
  for (const k of standbyLeavingPrefixes(plan.policies)) out += policySets(k, [], [], []);

  // prerouting: NetworkPolicy, then egress selection (mark / bypass / fail-closed drop)
  // the holder marks what egress_snat will SNAT among the traffic forwarded to it: the forward
  // fence (ip rules) blackholes other nodes' pod traffic forwarded without that mark
  const pre: string[] = plan.policies.flatMap((p) => (p.snatHere ? [strayReplyDropOf(prefixOf(p), p.name, uplink)] : []));
  pre.push(
    ...plan.policies
      .map((p) =>
        p.snatHere
          ? `iifname "${uplink}" ip saddr @${prefixOf(p)}_all ip daddr @${prefixOf(p)}_dst meta mark set meta mark | ${hex8(GW_FORWARD_OK_MARK)} ${comment(`policy ${p.name}: forwarded, SNAT here`)}`
          : null,
      )
      .filter((x): x is string => x !== null),
  );
  // a mid-stream TCP segment from the uplink to a local pod that conntrack has no entry for: TCP
  // loose pickup would make the flow's entry the other way round (original: the far end -> the
  // pod), with no NAT binding, and the pod's answers, in the entry's reply direction, would never
  // meet a NAT chain: they would leave with the pod IP. Kept for a pair a policy routes to a holder
  // (its answers are marked and routed there, SNATed by the holder: the holder's de-NATed replies
  // after this node's entries were flushed, regressions/reply-made-entry-no-leak); a local policy's
  // pair has its own drop above. Dropped for every other pair: seen when a paused holder of a
  // deleted policy's IP came back (chaos seed 627642967): it flushed its pod's pair, the new holder
  // still de-NATed the far end's retransmissions with the binding conntrackd had replicated, and
  // the pod's RSTs reached the internet from the pod IP for 13 s (regressions/
  // paused-holder-deleted-policy). The far end retransmits; the pod's next segment makes its entry.
  // Not from the cluster's pods: pod-to-pod traffic is never NATed, and its connections must
  // survive a flush of a pair (conntrackFlushArgs deletes a 0.0.0.0/0 policy's entries towards the
  // pod from every source) by being picked up again.
  for (const p of plan.policies) {
    const k = prefixOf(p);
    if (p.action === 'route' && p.localSources.length) pre.push(`iifname "${uplink}" ip saddr @${k}_dst ip daddr @${k}_src ${MID_STREAM} return`);
  }
  const pickup = pickupDrop(plan.podCIDRs, uplink, '@podcidrs', '@clusterpods');
  if (pickup) pre.push(pickup);
  pre.push(`iifname "${uplink}" return ${comment('only traffic of local pods')}`, `ip saddr != @podcidrs return`);
  const npChains: string[] = [];
  const npSets: string[] = [];
  if (plan.netpol.pods.length) {
    const vm = plan.netpol.pods.map((pod, k) => `${pod.ip} : jump np_${k}`);
    pre.push(`ip saddr vmap { ${vm.join(', ')} }`);
    plan.netpol.pods.forEach((pod, k) => {
      const c = netpolChain(`np_${k}`, pod, npSets);
      npChains.push(c.text);
      ruleCount += c.rules;
    });
  }
  for (const p of plan.policies) pre.push(policyPrerouting(p, prefixOf(p)));
  out += `${t}chain prerouting {\n${t}${t}type filter hook prerouting priority ${PRIO_PREROUTING}; policy accept;\n`;
  for (const l of pre) out += `${t}${t}${l}\n`;
  out += `${t}}\n`;
  for (const d of npSets) out += `${t}${d}\n`;
  out += npChains.join('');

  // SNAT on the holder, before egresslab_masq (and any other srcnat chain at 100). Only what no
  // earlier policy steered to another holder (routing index 0: this node's own pods' traffic of a
  // local policy, or traffic forwarded here): a pod two policies select, with destinations both
  // list, is decided by the first (gatewayPlan's order, the prerouting's); SNATed by the second
  // here while routed to the first's holder, it left with this node's IP for the first's guard to
  // drop every packet (chaos seed 994173021: paul/frontend-2 on node-2, the holder of egress's
  // 192.168.1.100, in chaos-2 too, 0.0.0.0/0 via node-3: nothing reached 8.8.8.8 for 20 s)
  const steeredAway = `meta mark & ${hex8(GW_MARK_MASK)} == ${hex8(0)}`;
  const snat = plan.policies
    .map((p) =>
      p.snatHere
        ? `oifname "${uplink}" ${steeredAway} ip saddr @${prefixOf(p)}_all ip daddr @${prefixOf(p)}_dst counter snat to ${p.egressSourceIP} ${comment(`policy ${p.name}`)}`
        : null,
    )
    .filter((x): x is string => x !== null);
  out += `${t}chain egress_snat {\n${t}${t}type nat hook postrouting priority ${PRIO_SNAT}; policy accept;\n`;
  for (const l of snat) out += `${t}${t}${l}\n`;
  out += `${t}}\n`;

  // guard: after all NAT, nothing matched leaves the uplink with a wrong source
  out += `${t}chain guard {\n${t}${t}type filter hook postrouting priority ${PRIO_GUARD}; policy accept;\n`;
  out += `${t}${t}oifname != "${uplink}" return\n`;
  for (const k of plan.policies.map(prefixOf))
    out += `${t}${t}ct direction original ct original ip saddr @${k}_all ct original ip daddr @${k}_dst jump ${k}_guard\n`;
  // a packet conntrack has no entry for (a FIN or RST of a flow whose binding this node never got,
  // e.g. after a takeover: state invalid) is neither SNATed nor seen by the rule above: judged by
  // its own addresses (no NAT touched it). Seen in the failover scenario: FIN retransmissions of a
  // pod reached the internet with the pod IP after the holder was killed.
  for (const k of plan.policies.map(prefixOf)) out += `${t}${t}ct state invalid,untracked ip saddr @${k}_all ip daddr @${k}_dst jump ${k}_guard\n`;
  // ... and a local pod's packet conntrack declares invalid that no policy judged (its pair left
  // every policy, or never was in one) is dropped: no NAT ever sees it, so it would leave with the
  // pod IP whatever the masquerade module decided for its flow. Seen after a policy's deletion: the
  // leaving pairs' entries are flushed (transitionPlan), and a segment of the long-lived stream
  // that conntrack could not pick up again (a FIN or RST without an entry, an invalid RST,
  // out of window) reached the internet with the pod IP, retransmitted for seconds, once the
  // policy's own invalid rule above was gone. kube-proxy drops conntrack-invalid traffic likewise.
  out += `${t}${t}ct state invalid ip saddr @podcidrs counter drop ${comment('conntrack-invalid pod packet: no NAT decided its source')}\n`;
  out += `${t}}\n`;
  for (const p of plan.policies) out += policyGuard(p, prefixOf(p));
  // local stack silence: a floating IP is only ever NATed here, nothing listens on it. A reply
  // that conntrack does not de-NAT (its entry not there yet, or judged out of window just after a
  // takeover) would otherwise reach this node's own TCP stack, which answers RST and kills the
  // connection at the far end; dropped instead, the far end retransmits into the right state.
  // Every floating IP, not only the held ones: an IP being released stays on the uplink until the
  // end of the apply that releases it (and the router keeps sending its replies here until the
  // new holder's gratuitous ARP), while this ruleset already no longer SNATs it and the release's
  // flushes and purge delete its bindings. A floating IP that is not on this node is not local,
  // and never reaches input. (The node's own addresses are never in plan.floatingIPs.)
  const silenced = plan.floatingIPs;
  // hairpin: the far end's traffic to a floating IP this node does not hold (a router's ARP entry
  // still pointing here: routers keep them for minutes, and a gratuitous ARP can be lost) is
  // forwarded to the holder, as before, but untracked. Tracked, it left an entry here (original:
  // the far end -> the floating IP) that outlived the hairpin: when this node took the IP later,
  // that entry's original tuple was the reply tuple of the replicated binding of the same
  // connection, which could then not be committed (nor a kept one loaded); the far end's segments
  // met the stray entry, the input rule below dropped them, and the pod's next segment was SNATed
  // to another port (the binding's was taken): the far end answered RST (chaos seed 848038198,
  // scenarios/gateway/stale-router-arp). `fib daddr type`: the kernel's own view of the addresses
  // at the moment, so the take's add of the address is what turns tracking on, no set to update.
  if (plan.floatingIPs.length) {
    out += `${t}chain hairpin {\n${t}${t}type filter hook prerouting priority raw; policy accept;\n`;
    out += `${t}${t}iifname "${uplink}" ip daddr { ${plan.floatingIPs.join(', ')} } fib daddr type != local counter notrack ${comment('floating IP not held here: forwarded to its holder untracked')}\n`;
    out += `${t}}\n`;
    ruleCount += 1;
  }
  if (silenced.length) {
    out += `${t}chain input {\n${t}${t}type filter hook input priority filter; policy accept;\n`;
    out += `${t}${t}ip daddr { ${silenced.join(', ')} } meta l4proto { tcp, udp } counter drop ${comment("floating IP: NATed traffic only, never this node's own stack")}\n`;
    out += `${t}}\n`;
    ruleCount += 1;
  }
  out += `}\n`;
  ruleCount += pre.length + snat.length + 2 + plan.policies.length * 3;

  // ARP fence
  const owned = plan.ownedIPs.map((o) => o.ip);
  out += `table arp ${table} {\n`;
  out += `${t}set floating { type ipv4_addr;${elements(plan.floatingIPs)} }\n`;
  out += `${t}set alive { type ipv4_addr; flags timeout;${elements(aliveMs > 0 ? owned.map((ip) => `${ip} timeout ${fmtMs(aliveMs)}`) : [])} }\n`;
  out += `${t}chain output {\n${t}${t}type filter hook output priority filter; policy accept;\n`;
  out += `${t}${t}arp saddr ip @floating arp saddr ip != @alive counter drop ${comment('ARP fence: floating IP not (or no longer) refreshed by a live agent')}\n`;
  out += `${t}}\n}\n`;
  ruleCount += 1;

  const fence = forwardFence(plan.podCIDRs, plan.peerPodCIDRs, uplink);
  const rules: RuleSpec[] = [...fence.rules, ...plan.routes.map((r) => ({ pref: r.pref, fwmark: r.fwmark, mask: GW_MARK_MASK, table: r.table }))];
  const routes: RouteSpec[] = plan.routes.map((r) => ({ table: r.table, via: r.ip, dev: uplink }));
  return { ruleset: out, rules, routes, fenceThrow: fence.fenceThrow, addresses: plan.ownedIPs.map((o) => `${o.ip}/${o.prefix}`), ruleCount };
}

/**
 * The forward fence of a node (constants.ts GW_FORWARD_OK_MARK): one rule per other node's pod
 * CIDR into GW_FENCE_TABLE, whose `throw` routes are this node's own pod CIDRs. The agent applies
 * it (routingCommands) and keeps the same commands as a boot hook of the node (renderBootFence).
 */
export function forwardFence(ownPodCIDRs: readonly string[], peerPodCIDRs: readonly string[], uplink = 'eth0'): { rules: RuleSpec[]; fenceThrow: string[] } {
  return {
    rules: peerPodCIDRs.map((c) => ({ pref: GW_FENCE_PREF, fwmark: 0, mask: GW_FORWARD_OK_MARK, table: GW_FENCE_TABLE, iif: uplink, from: c })),
    fenceThrow: [...ownPodCIDRs],
  };
}

/**
 * The boot hook's pod guard (nft text, '' for a node without pods): until the agent has programmed
 * the node, what this node's own pods send out of the uplink is dropped unless it goes to another
 * node's pods. A node that boots again finds its pods wired before its agent runs; without the
 * guard, their packets would leave with the pod IP: a pod answers a far end still talking to its
 * old connection (the holder de-NATs the far end's retransmissions to it) with an RST, a new
 * connection's SYN leaves unmasqueraded (chaos seed 1419845312). Forwarded traffic only: the node's
 * own traffic and its pods' traffic to the node are not touched. The agent deletes the table
 * (BOOT_GUARD_TABLE) once its modules have programmed the node (agent/node/agent.ts liftBootGuard).
 */
export function renderBootGuard(ownPodCIDRs: readonly string[], peerPodCIDRs: readonly string[], uplink = 'eth0'): string {
  if (!ownPodCIDRs.length) return '';
  const peers = peerPodCIDRs.length ? ` ip daddr != { ${peerPodCIDRs.join(', ')} }` : '';
  return [
    // idempotent: a second run replaces the table instead of adding a second rule
    `table ip ${BOOT_GUARD_TABLE}`,
    `delete table ip ${BOOT_GUARD_TABLE}`,
    `table ip ${BOOT_GUARD_TABLE} {`,
    '  chain forward {',
    '    type filter hook forward priority filter - 10; policy accept;',
    `    oifname "${uplink}" ip saddr { ${ownPodCIDRs.join(', ')} }${peers} counter drop`,
    '  }',
    '  chain prerouting {',
    `    type filter hook prerouting priority ${PRIO_PREROUTING}; policy accept;`,
    `    ${pickupDrop(ownPodCIDRs, uplink, `{ ${coveringCidrList(ownPodCIDRs).join(', ')} }`, `{ ${clusterPodCidrs(ownPodCIDRs, peerPodCIDRs).join(', ')} }`)}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The forward fence as a node boot hook: a shell script that the node's init runs before its links
 * and pods are wired and before the agent starts (AgentConfig.bootHookDir). A node that boots again faster
 * than its lease expires is still a holder in every peer's routes, and its pods' peers keep
 * sending it their marked traffic; until its agent runs, nothing would SNAT that traffic, and the
 * kernel would forward it with the pod IP. The hook blackholes it from the first packet. The
 * agent rewrites the hook whenever its fence changes (a node joins or leaves) and adopts the rules
 * the hook installed (same preference, table and selectors). The hook also installs the pod guard
 * (renderBootGuard) for the node's own pods, which the agent lifts once it has programmed them.
 */
export function renderBootFence(ownPodCIDRs: readonly string[], peerPodCIDRs: readonly string[], uplink = 'eth0'): string {
  const lines = routingCommands({ ...forwardFence(ownPodCIDRs, peerPodCIDRs, uplink), routes: [] }, { rules: [], tables: [] }).before;
  const guard = renderBootGuard(ownPodCIDRs, peerPodCIDRs, uplink);
  // the guard first (one atomic nft transaction); the ip batch goes on past a line that fails
  // (-force: a rule already there) and the hook then fails with its status
  const body = [
    ...(guard ? ["nft -f - <<'EOF' || exit 1", ...guard.trimEnd().split('\n'), 'EOF'] : []),
    ...(lines.length ? ["ip -force -batch - <<'EOF' || exit 1", ...lines, 'EOF'] : []),
  ];
  return [
    '#!/bin/sh',
    '# Written by the egresslab agent (gateway forward fence and pod guard, agent/gateway/render.ts renderBootFence).',
    '# Runs at node boot, before the agent: forwarded pod traffic of other nodes is dropped until the',
    "# agent marks what it SNATs; this node's pods reach nothing beyond the cluster's pods until the",
    `# agent has programmed their masquerade and egress (it then deletes table ip ${BOOT_GUARD_TABLE}).`,
    ...body,
    'exit 0',
    '',
  ].join('\n');
}

/** Keeps the owned IPs alive in the ARP fence (one small transaction, run every ARP_ALIVE_REFRESH_MS). */
export function renderAliveRefresh(ips: readonly string[], opts: { tableName?: string; aliveTimeoutMs?: number } = {}): string | null {
  const timeout = opts.aliveTimeoutMs ?? ARP_ALIVE_TIMEOUT_MS;
  if (!ips.length || timeout <= 0) return null;
  const ms = fmtMs(timeout);
  return `add element arp ${opts.tableName ?? GW_TABLE} alive { ${ips.map((ip) => `${ip} timeout ${ms} expires ${ms}`).join(', ')} }\n`;
}

export function renderGatewayRemoval(tableName: string = GW_TABLE): string {
  return `# egresslab egress gateway: remove all rules\n${dropTable('ip', tableName)}${dropTable('arp', tableName)}`;
}

// ---------------------------------------------------------------------------------------------
// Policy routing and addresses: diff against the kernel's state (`ip -j ...` output), pure.

/** Our rules/tables are recognised by table number. */
export function isGatewayTable(table: number): boolean {
  return table >= GW_FENCE_TABLE && table <= GW_TABLE_BASE + GW_MAX_INDEX;
}

/** `ip -j ...` output as an array (empty when it is not a JSON array). */
function jsonArray(json: string): unknown[] {
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

/** Parses `ip -j rule show` (iproute2 6.x JSON) into our rules. */
export function parseIpRules(json: string): RuleSpec[] {
  const out: RuleSpec[] = [];
  for (const r of jsonArray(json)) {
    if (typeof r !== 'object' || r === null) continue;
    const o = r as Record<string, unknown>;
    const table = Number(o.table);
    if (!Number.isInteger(table) || !isGatewayTable(table)) continue;
    // iproute2 6.x: "fwmark":"0x10000","fwmask":"0xff0000" (older: "fwmark":"0x10000/0xff0000")
    const fw = typeof o.fwmark === 'string' ? o.fwmark : '';
    const [m, k] = fw.split('/');
    const mask = typeof o.fwmask === 'string' ? o.fwmask : k;
    const rule: RuleSpec = { pref: Number(o.priority), fwmark: Number(m || 0) >>> 0, mask: (mask ? Number(mask) : 0xffffffff) >>> 0, table };
    if (typeof o.iif === 'string') rule.iif = o.iif;
    if (typeof o.src === 'string' && o.src !== 'all') rule.from = `${o.src}/${typeof o.srclen === 'number' ? o.srclen : 32}`;
    out.push(rule);
  }
  return out;
}

export interface RoutingOps {
  /** before the nft transaction: every table a new mark may point at is ready */
  before: IpOp[];
  /** after it: what no mark points at any more */
  after: IpOp[];
}

/** The same as `ip -batch` text (the lab's boot configuration; render-main). */
export interface RoutingCommands {
  before: string[];
  after: string[];
}

const ruleKey = (r: RuleSpec): string => `${r.pref}|${r.fwmark}|${r.mask}|${r.table}|${r.iif ?? ''}|${r.from ?? ''}`;

/** Routing operations (the host runs them as one `ip -batch`). Routes are always replaced (cheap, idempotent, repairs drift). */
export function routingOps(
  desired: { rules: RuleSpec[]; routes: RouteSpec[]; fenceThrow?: string[] },
  current: { rules: RuleSpec[]; tables: number[] },
): RoutingOps {
  const before: IpOp[] = [];
  const after: IpOp[] = [];
  // the fence table first (its rules are added below, after it is complete)
  if (desired.rules.some((r) => r.table === GW_FENCE_TABLE)) {
    for (const c of desired.fenceThrow ?? []) before.push({ op: 'route-throw', table: GW_FENCE_TABLE, cidr: c });
    before.push({ op: 'route-blackhole', table: GW_FENCE_TABLE });
  }
  for (const r of desired.routes) before.push({ op: 'route-replace', table: r.table, via: r.via, dev: r.dev });
  const have = new Set(current.rules.map(ruleKey));
  const want = new Set(desired.rules.map(ruleKey));
  for (const r of desired.rules) if (!have.has(ruleKey(r))) before.push({ op: 'rule-add', rule: r });
  for (const r of current.rules) if (!want.has(ruleKey(r))) after.push({ op: 'rule-del', rule: r });
  const wantTables = new Set([...desired.routes.map((r) => r.table), ...desired.rules.map((r) => r.table)]);
  for (const tb of [...new Set(current.tables)].sort((a, b) => a - b))
    if (isGatewayTable(tb) && !wantTables.has(tb)) after.push({ op: 'route-flush', table: tb });
  return { before, after };
}

/** routingOps as `ip -batch` lines. */
export function routingCommands(
  desired: { rules: RuleSpec[]; routes: RouteSpec[]; fenceThrow?: string[] },
  current: { rules: RuleSpec[]; tables: number[] },
): RoutingCommands {
  const o = routingOps(desired, current);
  return { before: o.before.map(ipBatchLine), after: o.after.map(ipBatchLine) };
}

/** Parses `ip -j -4 addr show dev X` into "ip/prefix" strings. */
export function parseIpAddrs(json: string): string[] {
  const out: string[] = [];
  for (const l of jsonArray(json)) {
    const infos = (l as { addr_info?: unknown }).addr_info;
    for (const a of Array.isArray(infos) ? infos : []) {
      const x = a as { family?: string; local?: string; prefixlen?: number };
      if (x.family === 'inet' && typeof x.local === 'string') out.push(`${x.local}/${x.prefixlen ?? 32}`);
    }
  }
  return out;
}

/**
 * Address changes on the uplink. A present address is removed only if it is a floating IP (of the
 * gateway, or one this agent owned before) that this node must not hold; the node IP never is.
 */
export function addressOps(
  desired: readonly string[],
  current: readonly string[],
  floating: readonly string[],
  nodeIP: string,
  dev: string,
): { add: AddressOp[]; del: AddressOp[] } {
  const ipOf = (s: string): string => s.split('/')[0]!;
  const curIPs = new Map(current.map((c) => [ipOf(c), c]));
  const wantIPs = new Set(desired.map(ipOf));
  const add: AddressOp[] = desired.filter((d) => !curIPs.has(ipOf(d))).map((d) => ({ op: 'address-add', cidr: d, dev }));
  const del: AddressOp[] = [];
  for (const [ip, c] of curIPs) if (ip !== nodeIP && !wantIPs.has(ip) && floating.includes(ip)) del.push({ op: 'address-del', cidr: c, dev });
  return { add, del };
}

export type AddressOp = Extract<IpOp, { op: 'address-add' | 'address-del' }>;

/** addressOps as `ip -batch` lines. */
export function addressCommands(
  desired: readonly string[],
  current: readonly string[],
  floating: readonly string[],
  nodeIP: string,
  dev: string,
): { add: string[]; del: string[] } {
  const o = addressOps(desired, current, floating, nodeIP, dev);
  return { add: o.add.map(ipBatchLine), del: o.del.map(ipBatchLine) };
}

/**
 * conntrack deletions for (source, destination CIDR) pairs whose treatment changed (best effort):
 * the entries the pod's own packets made (original source the pod) AND those a reply made (original
 * source in the destination CIDR, original destination the pod). A node whose pod's flow is routed
 * to a remote holder makes no NAT binding; when its entry was flushed (a treatment change, or an
 * agent's first apply), the first packet of the flow it sees next may be the far end's reply,
 * de-NATed by the holder: loose pickup makes an entry the other way round, which the pod's packets
 * then follow in its reply direction. Harmless while they are routed to the holder (it SNATs them),
 * but NAT is never decided again for an existing entry: once the pair left the policy, the pod's
 * packets left this node with the pod IP for as long as the entry lived (chaos seed 994173003:
 * 3 retransmissions of a stream over 5 s after its pod was relabelled; the node's entry for the
 * stream read `src=8.8.8.8 dst=10.10.10.1`), and a take would fail to commit the flow's replicated
 * binding over it (same tuple). The second deletion also ends connections a host in the destination
 * CIDR opened to the pod; while the pair was steered, their replies were routed to the holder and
 * SNATed there already; a pair that leaves makes new entries that the masquerade decides (a
 * non-masquerade destination, e.g. the VPC, still sees the pod IP).
 */
export function conntrackFlushArgs(pairs: readonly { src: string; dst: string }[]): string[][] {
  return pairs.flatMap(({ src, dst }) => {
    const c = parseCidr4(dst, false);
    if (!c.ok)
      return [
        ['-D', '-s', src],
        ['-D', '-d', src],
      ];
    const ip = dst.split('/')[0]!;
    const m = formatIPv4(maskOf(c.value.prefix));
    return [
      ['-D', '-s', src, '-d', ip, '--mask-dst', m],
      ['-D', '-s', ip, '--mask-src', m, '-d', src],
    ];
  });
}

/**
 * The holder's SNAT of the pairs it forwards for OTHER nodes' pods: `source>destination` ->
 * `<policy>@<egressSourceIP>`, from the first policy SNATing here that lists the pair (the pairs of
 * this node's own pods are `steeredPairs`). NAT is decided on a flow's first packet, so a forwarded
 * flow's entry keeps the IP it was SNATed to when its policy changes while the holder stays: chaos
 * seed 848037965, a policy (egress IP .102, 0.0.0.0/0) deleted while its pod's other policy (.100,
 * 8.8.8.0/24) was held by the same node: the holder's UDP entry kept SNAT to .102, refreshed every
 * 100 ms by the pod's packets, and its guard dropped every one (only .100 allowed) for as long as
 * the flow ran.
 */
export function forwardedSnats(plan: GatewayPlan): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of plan.policies) {
    if (!p.snatHere) continue;
    const local = new Set(p.localSources);
    for (const s of p.allSources) {
      if (local.has(s)) continue;
      for (const d of p.destinations) {
        const k = `${s}>${d}`;
        if (!out.has(k)) out.set(k, `${p.name}@${p.egressSourceIP}`);
      }
    }
  }
  return out;
}

/** A forwarded pair's bindings to an IP that its policy no longer SNATs it to on this holder (staleForwardedBindings). */
export interface StaleForwardedBinding {
  src: string;
  /** the pair's destination CIDR as conntrack takes it: its network address and its dotted mask */
  net: string;
  mask: string;
  /** the IP the bindings are SNATed to (their replies' destination) */
  ip: string;
}

/**
 * The holder's bindings that a plan change leaves wrong: for each forwarded pair SNATed here to an
 * IP under `prev` and no longer to that IP under `next`, the pair's bindings to that IP (not a
 * binding to another IP the pair may also have, made under another policy), when this node still
 * holds that IP after `next` (a released IP's traffic goes to its new holder: what is left here is
 * never used again, and conntrackd's replication is left alone). The next packet makes a new entry
 * under the new rules. A pair newly SNATed here (a take, a new policy) has none: its entries are the
 * replicated bindings a take commits.
 */
export function staleForwardedBindings(prev: ReadonlyMap<string, string> | null, next: GatewayPlan): StaleForwardedBinding[] {
  if (!prev) return [];
  const now = forwardedSnats(next);
  const held = new Set(next.ownedIPs.map((o) => o.ip));
  const out: StaleForwardedBinding[] = [];
  for (const [k, was] of prev) {
    if (now.get(k) === was) continue;
    const ip = was.slice(was.lastIndexOf('@') + 1);
    if (!held.has(ip) || now.get(k)?.endsWith(`@${ip}`)) continue;
    const [src, dst] = k.split('>') as [string, string];
    const c = parseCidr4(dst, false);
    if (c.ok) out.push({ src, net: dst.split('/')[0]!, mask: formatIPv4(maskOf(c.value.prefix)), ip });
  }
  return out;
}

/** `conntrack -D` arguments removing a binding of a source (to a destination CIDR, or to any when `net` is null) to one SNAT IP, and only those (`--reply-dst`: its SNAT IP): staleForwardedBindings, misboundBindings. */
export function bindingDeleteArgs(b: MisboundBinding | StaleForwardedBinding): string[] {
  return ['-D', '-s', b.src, ...(b.net && b.mask ? ['-d', b.net, '--mask-dst', b.mask] : []), '--reply-dst', b.ip];
}

/**
 * `source>destination` -> the floating IP this node SNATs the pair to under `plan` and the policy
 * that decides it: its own pods' pairs SNATed here (steeredPairs, `local`) and the pairs it
 * forwards for other nodes' pods (forwardedSnats). Pairs routed elsewhere or dropped have none.
 */
export function snatIPs(plan: GatewayPlan): Map<string, { ip: string; policy: string }> {
  const out = new Map<string, { ip: string; policy: string }>();
  for (const [k, p] of pairPolicies(plan)) if (p.action === 'local') out.set(k, { ip: p.egressSourceIP, policy: p.name });
  for (const [k, t] of forwardedSnats(plan)) {
    const at = t.lastIndexOf('@');
    if (!out.has(k)) out.set(k, { ip: t.slice(at + 1), policy: t.slice(0, at) });
  }
  return out;
}

/** Committed bindings of a source to a held IP that is not the IP of its flows here (misboundBindings). */
export interface MisboundBinding {
  src: string;
  /** null: every destination (no pair of the source is SNATed here to `ip`) */
  net: string | null;
  mask: string | null;
  /** the IP the bindings are SNATed to (their replies' destination) */
  ip: string;
}

/**
 * Bindings a commit of the replicated bindings may bring in that are wrong although their IP is held
 * here. `conntrackd -c` commits the WHOLE external cache at every commit and replaces an entry with
 * the same original tuple, and the take's purge (foreignBindingPurgeArgs) keeps every binding to an
 * IP held here; a peer may have made one under an older policy of the pair (another egress IP) and
 * stopped before it rebound the pair. Chaos seed 848038283: paul/frontend-2's stream SNATed to
 * 192.168.1.102 by node-1 while a second policy (chaos-2, .102) existed; chaos-2 deleted, node-1
 * paused before it rebound the pair, node-2 took .100 and .102 and committed the .102 binding for a
 * pair its policy now SNATs to .100: its guard dropped every packet of the stream for as long as it
 * ran. For each source of the plan's policies and each floating IP held under `next`:
 *  - no pair of the source is SNATed here to that IP: all of its bindings to the IP (net null);
 *  - otherwise, for each of its pairs SNATed here to another IP, the pair's bindings to the IP,
 *    unless a pair of the source to the IP from an EARLIER policy overlaps the pair's destination
 *    (the ruleset decides a flow by the first policy listing it: there, flows may be the other's).
 * Every commit of a take removes them (all pairs: a pair SNATed here already gets the stale binding
 * back from the next commit just the same).
 */
export function misboundBindings(next: GatewayPlan): MisboundBinding[] {
  const held = next.ownedIPs.map((o) => o.ip);
  if (!held.length) return [];
  const order = new Map(next.policies.map((p, i) => [p.name, i]));
  const pairs = new Map<string, { dst: string; ip: string; order: number }[]>();
  const sources: string[] = [];
  for (const p of next.policies) for (const s of p.allSources) if (!pairs.has(s)) pairs.set(s, []), sources.push(s);
  for (const [k, { ip, policy }] of snatIPs(next)) {
    const [src, dst] = k.split('>') as [string, string];
    pairs.get(src)?.push({ dst, ip, order: order.get(policy) ?? 0 });
  }
  const out: MisboundBinding[] = [];
  for (const src of sources) {
    const mine = pairs.get(src)!;
    for (const ip of held) {
      const toIp = mine.filter((p) => p.ip === ip);
      if (!toIp.length) {
        out.push({ src, net: null, mask: null, ip });
        continue;
      }
      for (const p of mine) {
        if (p.ip === ip) continue;
        const c = parseCidr4(p.dst, false);
        if (!c.ok || toIp.some((q) => q.order < p.order && overlaps(q.dst, p.dst))) continue;
        out.push({ src, net: formatIPv4(c.value.base), mask: formatIPv4(maskOf(c.value.prefix)), ip });
      }
    }
  }
  return out;
}

/** The `conntrack -D` arguments of staleForwardedBindings(prev, next). */
export function forwardedFlushArgs(prev: ReadonlyMap<string, string> | null, next: GatewayPlan): string[][] {
  return staleForwardedBindings(prev, next).map(bindingDeleteArgs);
}

/**
 * (local source, destination) -> how this node treats it: `<policy>:<action>`, with the floating IP
 * for `local` (a binding made to one IP is wrong for another). The holder is left out on purpose: a
 * move between two REMOTE holders keeps the source node's conntrack entry (it has no NAT binding
 * here; the new holder picks the flow up and SNATs it, port preserved).
 */
export function steeredPairs(plan: GatewayPlan): Map<string, string> {
  return treatmentsAfter(null, plan);
}

function treatmentOf(p: PolicyPlan): string {
  return `${p.name}:${p.action}${p.action === 'local' ? `@${p.egressSourceIP}` : ''}`;
}

/** `source>destination` -> the policy that decides it (the first one listing the pair). */
function pairPolicies(plan: GatewayPlan): Map<string, PolicyPlan> {
  const out = new Map<string, PolicyPlan>();
  for (const p of plan.policies)
    for (const s of p.localSources)
      for (const d of p.destinations) {
        const k = `${s}>${d}`;
        if (!out.has(k)) out.set(k, p);
      }
  return out;
}

/** What the conntrack entries of a node's pairs were made under: see `treatmentsAfter`. */
export type Treatments = ReadonlyMap<string, string>;

/**
 * The treatments the conntrack entries of this node's pairs stand for once `next` is committed:
 * `steeredPairs(next)`, except that a pair under a fail-closed drop keeps the treatment it had
 * before. A drop makes no entry (its packets never reach confirmation) and needs none removed (it
 * drops whatever the entry says), so the entries made before it stay right for when the same
 * treatment comes back. Flushing them at the drop lost a fenced holder's own connections: chaos
 * seed 1937633441, node-1 partitioned inbound for 1.6 s, fenced itself (its pods' pairs local ->
 * drop: flushed), came back (drop -> local: flushed again, and no replicated binding to re-commit:
 * conntrackd replicates a holder's bindings to its PEERS); a stream's next segment was picked up
 * as a new flow and SNATed with another port (the far end's retransmissions to the old port had
 * made an entry of their own), the far end answered RST, and the replies it still owed the old
 * connection never reached the pod.
 */
export function treatmentsAfter(prev: Treatments | null, next: GatewayPlan): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, p] of pairPolicies(next)) out.set(k, (p.action === 'drop' ? prev?.get(k) : undefined) ?? treatmentOf(p));
  return out;
}

/** A treatment no plan has: the pair's entries are in an unknown state and go at the next change. */
export const UNKNOWN_TREATMENT = '?';

/**
 * What the entries stand for after a commit of `next` that FAILED part way: the pairs it was
 * changing may have entries of either treatment, so they become UNKNOWN_TREATMENT (flushed at the
 * next apply that does not drop them); the others are as before.
 */
export function treatmentsAfterFailure(prev: Treatments | null, next: GatewayPlan): Map<string, string> {
  const out = new Map(prev ?? []);
  for (const { src, dst } of changedPairs(prev, next)) out.set(`${src}>${dst}`, UNKNOWN_TREATMENT);
  return out;
}

/**
 * Pairs whose conntrack entries must go after a plan change: NAT is decided on a flow's first
 * packet, so an entry made under the old treatment would keep it (e.g. a null SNAT binding made
 * while the flow was routed to a remote holder, when the holder becomes this node: the guard would
 * drop the flow until the entry expires). Deleting the entries makes the next packet decide again.
 * `prev` is what the entries stand for: `treatmentsAfter` of the previous commit (null: none).
 */
export function changedPairs(prev: Treatments | null, next: GatewayPlan): { src: string; dst: string }[] {
  const a: Treatments = prev ?? new Map();
  const b = treatmentsAfter(a, next);
  const out: { src: string; dst: string }[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(k) === b.get(k)) continue;
    const [src, dst] = k.split('>') as [string, string];
    out.push({ src, dst });
  }
  return out;
}

/**
 * The plan to commit FIRST when (source, destination) pairs leave gateway treatment altogether
 * (policy deleted or narrowed, pod relabelled): their conntrack entries were made while the flow
 * was routed to a holder (no NAT binding) or SNATed here, and NAT is never decided again for an
 * existing entry, so committing the final plan at once would let the next packets leave with the
 * pod IP until the entries are flushed (measured: up to ~500 ms, dozens of packets). The
 * transition plan is the final one plus, after its policies, one fail-closed policy per old policy
 * with leaving pairs (prerouting drop + guard drop): commit it, flush those pairs' entries, then
 * commit the final plan, whose first packet then creates a new entry (masquerade decides again).
 * Null when nothing leaves.
 */
export function transitionPlan(prev: GatewayPlan | null, next: GatewayPlan): GatewayPlan | null {
  if (!prev) return null;
  const still = new Set(steeredPairs(next).keys());
  const extra: PolicyPlan[] = [];
  // a drop policy too: its pairs keep the entries made before the drop (treatmentsAfter)
  for (const p of prev.policies) {
    const srcs = new Set<string>();
    const dsts = new Set<string>();
    for (const s of p.localSources) for (const d of p.destinations) if (!still.has(`${s}>${d}`)) srcs.add(s), dsts.add(d);
    if (!srcs.size) continue;
    const sources = [...srcs];
    extra.push({
      name: `${p.name}${LEAVING}`,
      egressSourceIP: p.egressSourceIP,
      destinations: [...dsts],
      localSources: sources,
      allSources: sources,
      matchedPods: [],
      holder: null,
      holderIP: null,
      action: 'drop',
      mark: null,
      snatHere: false,
      reason: 'leaving the policy: dropped until its conntrack entries are flushed',
    });
  }
  return extra.length ? { ...next, policies: [...next.policies, ...extra] } : null;
}

/** The pairs a transition plan holds back (to flush between the two commits). */
export function leavingPairs(transition: GatewayPlan, next: GatewayPlan): { src: string; dst: string }[] {
  return transition.policies.slice(next.policies.length).flatMap((p) => p.localSources.flatMap((src) => p.destinations.map((dst) => ({ src, dst }))));
}

/** `ip -j route show table all` -> our tables -> "via dev" of their default route. */
export function parseRouteTables(json: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const r of jsonArray(json)) {
    const o = r as { table?: string; dst?: string; gateway?: string; dev?: string };
    const t = Number(o.table);
    if (!Number.isInteger(t) || !isGatewayTable(t)) continue;
    out.set(t, o.dst === 'default' && o.gateway ? `${o.gateway} ${o.dev ?? ''}` : (out.get(t) ?? ''));
  }
  return out;
}
