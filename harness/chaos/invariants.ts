/**
 * The chaos explorer's four invariants (issue 15), checked on RECORDED EVIDENCE only — the far
 * end's capture, the ARP replies an observer saw on the node segment, the probes' timelines and the
 * final API objects — never on the system's own opinion of itself. Pure: each checker takes evidence
 * and returns violations {invariant, at, evidence}; harness/chaos/evidence.ts builds the evidence
 * from what a run recorded (harness/chaos/executor.ts).
 */
import type { Timeline, TimelinePacket } from '../probe/timeline.js';
import { segmentLeaks } from '../probe/stream.js';
import { summarize } from '../report/failover.js';
import type { GatewayStatus } from '../cluster/cluster-status.js';

/** The invariants, by name, in order: 1 no-leak, 2 single-arp-owner, 3 convergence, 4 replies-reach-pod. */
export const INVARIANT_NAMES = ['no-leak', 'single-arp-owner', 'convergence', 'replies-reach-pod'] as const;

/** One invariant's name. */
export type InvariantName = (typeof INVARIANT_NAMES)[number];

/** One broken invariant: which, when (ms since the epoch, as the evidence), and the evidence that shows it. */
export interface Violation {
  invariant: InvariantName;
  at: number;
  evidence: Record<string, unknown>;
}

/** A packet the far end's capture saw arrive from the lab (post-NAT source), attributed to a probe flow. */
export interface EdgePacket {
  t: number;
  /** the probe flow it belongs to, e.g. "udp alice/frontend-1 -> 8.8.8.8:7007" */
  flow: string;
  src: string;
  sport?: number;
  /** not attributable to one flow: the flows it may belong to (any of their allowed sources will do) */
  candidates?: string[];
  /** a TCP SYN without ACK: the first segment of a new connection (a new conntrack entry) */
  syn?: boolean;
  /** a SYN's sequence number: its connection's ISN (a retransmitted SYN repeats it; NAT keeps it) */
  isn?: number;
  /** the probe packets (seq) whose token the segment carried */
  seqs?: number[];
  /** a TCP FIN: the sender closed its side of the connection */
  fin?: boolean;
  /** a TCP RST: the sender aborted the connection */
  rst?: boolean;
}

/** The sources a flow may leave with from `from` (inclusive) until `to` (exclusive; absent: the end). */
export interface AllowedWindow {
  flow: string;
  from: number;
  to?: number;
  /** the sources the policies and masquerade rules in force allow (both old and new during a change) */
  sources: readonly string[];
  /**
   * a mixed view (model.ts mixedViewWindows): the change whose value of each watched kind
   * (`policies`, `podLabels`, `nonMasqueradeCIDRs`) the combination took, by its index in the run's
   * changes sorted by time. Invariant 1 allows these sources; invariant 4 does not judge replies
   * addressed to them.
   */
  mixed?: Readonly<Record<string, number>>;
}

/** An ARP reply the observer on the node segment saw: which node (MAC) claimed which IP, when. */
export interface ArpReply {
  t: number;
  ip: string;
  mac: string;
  /** the node owning that MAC, if known */
  node?: string;
}

/** A reply the far end's capture saw leave towards the lab, for packet `seq` of a flow. */
export interface EdgeReply {
  t: number;
  flow: string;
  seq: number;
  /** the port it was sent to (at a pod's interface: its connection's local port) */
  port?: number;
  /** the address it was sent to: at the far end, the source the flow left with (after NAT) */
  dst?: string;
}

/** An RST from a flow's far end on one of its TCP connections (at a pod's interface: `port` is the pod's local port). */
export interface EdgeReset {
  t: number;
  flow: string;
  port: number;
}

/** A continuous probe's timeline, the flow it is, and the sources it must leave with once the schedule settled. */
export interface FlowEvidence {
  flow: string;
  timeline: Timeline;
  /** sources allowed after the last step was undone (the final policies and masquerade rules) */
  finalSources: readonly string[];
  /**
   * whether the final state lets the far end's replies come back (default true): false for a pod IP
   * towards the internet, or a policy whose egress IP no node can hold (fail-closed)
   */
  finalAnswered?: boolean;
  /** the probe's reply timeout (ms): a reply the pod got later is not counted (default: none) */
  timeoutMs?: number;
}

/** The final API state: the served gateway's status, and policies reported UnknownEgressIP. */
export interface FinalApi {
  gateway: GatewayStatus;
  /** the nodes expected Up (every node of the lab) */
  nodes: readonly string[];
  /** policies whose status says UnknownEgressIP, with the egressSourceIP they asked for */
  unknownEgressIPs: { policy: string; ip: string }[];
}

/**
 * When conntrack keeps an established flow's NAT binding, per flow (harness/chaos/model.ts
 * `conntrackRules`): the API changes across which bindings made before them are kept (`keeps`: an
 * ip-masq-agent ConfigMap change, whose agent flushes nothing), and the times at which every binding
 * of the flow ends (`ends`: a policy change flushing the flow's pair, its node killed or stopped).
 */
export interface ConntrackRule {
  flow: string;
  keeps: readonly number[];
  ends: readonly number[];
  /** spans during which what the flow's node sends may be lost after its conntrack made an entry (faults at the switch); none: never */
  lossy?: readonly { from: number; to: number }[];
}

/** Why a packet may keep a source no window allows: its binding, as the far end saw it start. */
export interface KeptBinding {
  /** the first packet of the binding (same flow, post-NAT source and port) at the far end */
  since: number;
  /** the change it was established before and kept across */
  change: number;
}

/**
 * A stream's first segment that left the pod at or after `deadline` (the capture on the pod's own
 * interface), its connection's local port, and the first reply on that connection that reached the
 * pod after it; undefined when its TCP sent nothing after the bound.
 */
function streamFirstTry(
  f: FlowEvidence,
  deadline: number,
  pod: { sent: readonly EdgePacket[]; replies: readonly EdgeReply[] },
): { at: number; sport?: number; answeredAt?: number } | undefined {
  let first: EdgePacket | undefined;
  for (const p of pod.sent) if (p.flow === f.flow && p.t >= deadline && (!first || p.t < first.t)) first = p;
  if (!first) return undefined;
  let answeredAt = Number.POSITIVE_INFINITY;
  for (const r of pod.replies)
    if (r.flow === f.flow && r.t >= first.t && (r.port === undefined || r.port === first.sport) && r.t < answeredAt) answeredAt = r.t;
  const sport = first.sport !== undefined ? { sport: first.sport } : {};
  return answeredAt === Number.POSITIVE_INFINITY ? { at: first.t, ...sport } : { at: first.t, ...sport, answeredAt };
}

/**
 * A UDP binding ends when its flow sends nothing with that post-NAT source and port for this long
 * (nf_conntrack_udp_timeout).
 */
export const BINDING_IDLE_MS = 30_000;

/**
 * A TCP binding's: nf_conntrack_tcp_timeout_syn_sent, the state a SYN retransmitted with back-off,
 * or a SYN of a new connection that reuses the port, finds its entry in (conntrack takes it as the
 * same entry); an established entry lives for days. Not exact for every state: a closing entry
 * lasts 10-120 s (CLOSE after an RST 10 s, LAST_ACK 30 s, CLOSE_WAIT 60 s), so a SYN reusing a
 * port 10-120 s after an RST that answered a bare SYN is a new entry the checker still counts as
 * the old binding (narrow: noticed, not modelled). A 30 s bound judged as new bindings, after the ip-masq-agent list was restored,
 * a SYN retransmitted 34 s after the previous one (chaos seed 627642994) and a port reused 40 s
 * after a failed connection (seed 627642987), both still on the un-NATed entry the kernel kept.
 */
export const TCP_BINDING_IDLE_MS = 120_000;

/** A packet at the pod and one at the far end this close in time (and alike: SYN or not, same ISN) are one packet seen twice. */
const POD_COPY_MS = 200;

/** How close to a pod's packet the far end must have seen new connections leave un-NATed for it to have left so (`conntrackKeeps`). */
const BRACKET_MS = 2000;

/** Whether `p` may be a packet of one of `flows` (itself, or one of its candidates when it could not be attributed). */
function mayBeOf(p: EdgePacket, flows: readonly string[]): boolean {
  return (p.candidates ?? [p.flow]).some((f) => flows.includes(f));
}

/** `packets`' SYNs by ISN (a retransmitted SYN repeats it; NAT keeps it). */
function synsByIsn(packets: readonly EdgePacket[]): Map<number, EdgePacket[]> {
  const out = new Map<number, EdgePacket[]>();
  for (const p of packets) {
    if (!p.syn || p.isn === undefined) continue;
    const list = out.get(p.isn);
    if (list) list.push(p);
    else out.set(p.isn, [p]);
  }
  return out;
}

/** The idle bound of the binding of a far-end packet: TCP's when every flow it may be is TCP. */
function bindingIdleMs(p: EdgePacket): number {
  const flows = p.candidates ?? [p.flow];
  return flows.length && flows.every((f) => /^(tcp|stream) /.test(f)) ? TCP_BINDING_IDLE_MS : BINDING_IDLE_MS;
}

function sourcesAt(allowed: readonly AllowedWindow[], flows: readonly string[], t: number): string[] {
  const windows = allowed.filter((w) => flows.includes(w.flow) && w.from <= t && (w.to === undefined || t < w.to));
  return [...new Set(windows.flatMap((w) => w.sources))].sort();
}

/**
 * Which far-end packets keep, from an established binding, a source their windows no longer allow
 * (invariants 1 and 3), from the evidence alone: the packets of one flow with one post-NAT source
 * and port are one binding from its first packet on — a new one after a TCP SYN that follows a
 * segment of another kind (a SYN repeated before any answer is the same connection retransmitting
 * its SYN: conntrack keeps the entry it made), or after BINDING_IDLE_MS without a packet
 * (masquerade is fully-random: a new conntrack entry gets a new port; TCP_BINDING_IDLE_MS for TCP). A packet keeps its binding's
 * source when the binding's first packet arrived before one of its flow's `keeps` changes with a
 * source its windows allowed then, and none of the flow's `ends` came between that first packet
 * and this one. A flow that started after the change, or a new connection, gets nothing from it.
 * A packet the far end could not attribute to one flow (`candidates`: a bare SYN carries no probe
 * token) is judged the same way when its candidates share one rule (one pod to one destination:
 * its TCP probe and its stream), with the windows of all of them; otherwise it gets nothing.
 * `podSent` (a capture on the pods' own interfaces) adds what left the pods and the far end did not
 * see (no copy within POD_COPY_MS) to the groups of the same pod IP and port whose flows it may be:
 * an un-NATed binding starts when its first packet left the pod, also
 * when the far end never saw that packet (chaos seed 627642966: a SYN sent while 0.0.0.0/0 was a
 * non-masquerade CIDR was lost to a partition; its entry stayed, un-NATed, and the SYN of a new
 * connection reusing the port 9 s later, after the list was restored, left with the pod's IP on it).
 * Only the far end's packets are judged; a pod's packet starts a binding of its pod IP only when its
 * windows allowed that source and no other then (in a transition the node may still have NATed it).
 * A NATed binding may start at the pod too: a far-end SYN matched to the pod's copy of it (same ISN)
 * names the pod's port, and the SYNs of that port the far end never saw, lost at the switch just
 * before it (see the loop below; chaos seed 848038139), start its binding with its source and port.
 */
export function conntrackKeeps(
  packets: readonly EdgePacket[],
  allowed: readonly AllowedWindow[],
  rules: readonly ConntrackRule[],
  podSent: readonly EdgePacket[] = [],
): (p: EdgePacket) => KeptBinding | undefined {
  const byRule = new Map(rules.map((r) => [r.flow, r]));
  const ruleOf = (p: EdgePacket): { rule: ConntrackRule; flows: string[] } | undefined => {
    const flows = p.candidates ?? [p.flow];
    const rs = flows.map((f) => byRule.get(f));
    if (!rs.length || rs.some((r) => r === undefined)) return undefined;
    const same = (r: ConntrackRule) => r.keeps.join() === rs[0]!.keeps.join() && r.ends.join() === rs[0]!.ends.join();
    return rs.every((r) => same(r!)) ? { rule: rs[0]!, flows } : undefined;
  };
  const kept = new Map<EdgePacket, KeptBinding>();
  type Group = { rule: ConntrackRule; flows: string[]; packets: EdgePacket[] };
  const groups = new Map<string, Group>();
  const bySocket = new Map<string, Group[]>();
  for (const p of packets) {
    const r = ruleOf(p);
    if (!r) continue;
    const k = `${p.flow}|${p.src}|${p.sport ?? ''}`;
    let g = groups.get(k);
    if (!g) {
      g = { ...r, packets: [] };
      groups.set(k, g);
      const socket = `${p.src}|${p.sport ?? ''}`;
      bySocket.set(socket, [...(bySocket.get(socket) ?? []), g]);
    }
    g.packets.push(p);
  }
  // what left the pods and the far end never saw joins every group of its address and port whose
  // flows it may be (the far end and the pod's capture may name one connection differently: a token
  // seen at one end only); a packet the far end saw is judged on the far end's copy
  // SYNs the far end saw that made a new entry (nothing on their address and port in the idle bound
  // before, at either end): the source each tells is what the node did to new connections then
  const socketTimes = new Map<string, number[]>();
  for (const p of [...packets, ...podSent]) {
    const k = `${p.src}|${p.sport ?? ''}`;
    const times = socketTimes.get(k);
    if (times) times.push(p.t);
    else socketTimes.set(k, [p.t]);
  }
  const freshSyns = packets
    .filter((e) => e.syn && !socketTimes.get(`${e.src}|${e.sport ?? ''}`)!.some((t) => t >= e.t - TCP_BINDING_IDLE_MS && t < e.t - POD_COPY_MS))
    .sort((a, b) => a.t - b.t);
  /** whether the node left new connections of `flows` un-NATed around `q` (the SYNs just before and after it, with its source) */
  /** the fresh SYNs that may be of one of `flows` */
  const freshSynsOf = (flows: readonly string[]): EdgePacket[] => freshSyns.filter((e) => mayBeOf(e, flows));
  const unNATedAround = (q: EdgePacket, flows: readonly string[]): boolean => {
    const mine = freshSynsOf(flows);
    const before = mine.filter((e) => e.t < q.t).at(-1);
    const after = mine.find((e) => e.t > q.t);
    return !!before && !!after && before.src === q.src && after.src === q.src && q.t - before.t <= BRACKET_MS && after.t - q.t <= BRACKET_MS;
  };
  /**
   * whether `q` was lost after its node's conntrack made an entry for it (a fault at the switch on its
   * node then: `lossy`) and the far end saw a later packet of its socket (within TCP's idle bound)
   * leave with `q`'s source, the pod IP, while the node NATed these flows' new connections (the fresh
   * SYNs just before and after that packet left with a NATed source these flows' windows allowed
   * then): conntrack decides NAT at an entry's first packet, so only the un-NATed entry `q` made
   * explains it (chaos seed 848038038: a SYN lost in a burst loss while the node still had
   * 8.8.8.0/24 as a non-masquerade CIDR; the SYN of a connection reusing its port 15.6 s later, the
   * list long restored, left with the pod IP). A packet the node itself dropped (a guard, a
   * NetworkPolicy) leaves no entry: without such a fault nothing is explained.
   */
  const reusedUnNATed = (q: EdgePacket, g: Group): boolean => {
    if (!(g.rule.lossy ?? []).some((s) => s.from <= q.t && q.t <= s.to)) return false;
    const mine = freshSynsOf(g.flows);
    const natted = (e: EdgePacket | undefined, around: number): boolean =>
      !!e && e.src !== q.src && Math.abs(e.t - around) <= BRACKET_MS && sourcesAt(allowed, g.flows, e.t).includes(e.src);
    // (a group is one post-NAT source and port: its far-end packets all left with the pod IP)
    const far = g.packets.filter((e) => !fromPod.has(e) && e.src === q.src && e.t > q.t + POD_COPY_MS && e.t - q.t <= TCP_BINDING_IDLE_MS);
    return far.some(
      (later) =>
        natted(mine.filter((e) => e.t < later.t).at(-1), later.t) &&
        natted(
          mine.find((e) => e.t > later.t),
          later.t,
        ),
    );
  };
  // a packet that left the pod joins only when it is known to have left with the pod IP: its windows
  // allowed that source and no other then, or the far end saw the node leave new connections of
  // these flows un-NATed just before and after it (during a transition both the old and the new
  // source are allowed: the node may still have NATed it), or a later packet of its socket left
  // un-NATed while the node NATed new connections (reusedUnNATed); and only when the far end did not see it
  const fromPod = new Set<EdgePacket>();
  const copyOf = (q: EdgePacket, e: EdgePacket) =>
    Math.abs(e.t - q.t) <= POD_COPY_MS && !!e.syn === !!q.syn && (e.isn === undefined || q.isn === undefined || e.isn === q.isn);
  for (const p of podSent) {
    for (const g of bySocket.get(`${p.src}|${p.sport ?? ''}`) ?? []) {
      if (!mayBeOf(p, g.flows) || g.packets.some((e) => !fromPod.has(e) && copyOf(p, e))) continue;
      const now = sourcesAt(allowed, g.flows, p.t);
      if (!now.includes(p.src) || (now.length > 1 && !unNATedAround(p, g.flows) && !reusedUnNATed(p, g))) continue;
      g.packets.push(p);
      fromPod.add(p);
    }
  }
  // a NATed binding whose first packet the far end never saw: the pod's SYN left with a source the
  // node's conntrack chose and was lost at the switch (`lossy`); its entry stayed (SYN_SENT, for
  // TCP_BINDING_IDLE_MS), and a SYN of a new connection on the same pod port found it and left with
  // its source and port (chaos seed 848038139: SYNs masqueraded to the node IP and lost to a
  // partition; the pod reused their ports 21 s and 31 s later, 8.8.8.0/24 by then a non-masquerade
  // CIDR, and both left masqueraded). The far end's SYN is matched to the pod's copy of it (same ISN),
  // which names the pod port; the lost SYNs before it on that port join its group with its source
  // and port, so the binding starts at the first of them, with the sources allowed then. Only when
  // the node treated these flows' other new connections right around it (a connection's SYN before
  // and one after it, within BRACKET_MS, left with a source their windows allowed, not this one;
  // ports are reused here, so not only fresh SYNs, and the next connection may be a reuse too): a node
  // that went on masquerading every new connection is not excused by a lost SYN. A reuse that left
  // with the pod IP is the un-NATed case above.
  const farSynsByIsn = synsByIsn(packets);
  const podSynsByIsn = synsByIsn(podSent);
  const seenAtFarEnd = (q: EdgePacket) => q.isn !== undefined && (farSynsByIsn.get(q.isn) ?? []).some((e) => copyOf(q, e));
  const connectionSyns = [...farSynsByIsn.values()].map((xs) => xs.reduce((a, b) => (b.t < a.t ? b : a))).sort((a, b) => a.t - b.t);
  const lostAtSwitch = (q: EdgePacket) => (q.candidates ?? [q.flow]).every((f) => (byRule.get(f)?.lossy ?? []).some((x) => x.from <= q.t && q.t <= x.to));
  const joined = new Set<EdgePacket>();
  const podBySocket = new Map<string, EdgePacket[]>();
  for (const q of podSent) {
    const k = `${q.src}|${q.sport ?? ''}`;
    const list = podBySocket.get(k);
    if (list) list.push(q);
    else podBySocket.set(k, [q]);
  }
  for (const g of groups.values()) {
    const mine = (q: EdgePacket) => mayBeOf(q, g.flows);
    // (new connections: each SYN's first copy at the far end, whether or not its port was used before)
    const fresh = connectionSyns.filter(mine);
    const treatedRight = (x: EdgePacket, e: EdgePacket) => x.src !== e.src && sourcesAt(allowed, g.flows, x.t).includes(x.src);
    for (const e of [...g.packets]) {
      if (fromPod.has(e) || !e.syn || e.isn === undefined) continue;
      const r = podSynsByIsn.get(e.isn)?.find((q) => Math.abs(q.t - e.t) <= POD_COPY_MS && mine(q));
      if (!r || r.src === e.src) continue;
      // (the next connection may be such a reuse too: one treated right on each side within the bracket)
      const near = fresh.filter((x) => x !== e && Math.abs(x.t - e.t) <= BRACKET_MS && treatedRight(x, e));
      if (!near.some((x) => x.t < e.t) || !near.some((x) => x.t > e.t)) continue;
      // the pod's packets on that port before it (its own SYN's retransmissions aside), latest first,
      // while each is a SYN of these flows that the far end never saw, sent during a fault at the
      // switch on its node (a packet the node dropped itself leaves no entry)
      const before = (podBySocket.get(`${r.src}|${r.sport ?? ''}`) ?? [])
        .filter((q) => q.t < r.t && !(q.syn && q.isn === r.isn) && e.t - q.t <= TCP_BINDING_IDLE_MS)
        .sort((a, b) => b.t - a.t);
      for (const q of before) {
        if (!q.syn || !mine(q) || seenAtFarEnd(q) || !lostAtSwitch(q)) break;
        if (joined.has(q)) continue;
        joined.add(q);
        // into every group of the far end's source and port that it may be (the SYN unattributed, the data the probe's)
        const copy: EdgePacket = { ...q, src: e.src, ...(e.sport !== undefined ? { sport: e.sport } : {}) };
        for (const h of bySocket.get(`${e.src}|${e.sport ?? ''}`) ?? []) {
          if (!mayBeOf(q, h.flows)) continue;
          h.packets.push(copy);
          fromPod.add(copy);
        }
      }
    }
  }
  for (const { rule, flows, packets: g } of groups.values()) {
    g.sort((a, b) => a.t - b.t);
    let since = -Infinity;
    let startAllowed = false;
    let last = -Infinity;
    let lastSyn = false;
    for (const p of g) {
      // a new binding: a new connection's SYN, the idle bound gone by, or the flow's entries deleted since the last packet
      if ((p.syn && !lastSyn) || p.t - last > bindingIdleMs(p) || rule.ends.some((e) => last < e && e <= p.t)) {
        since = p.t;
        startAllowed = sourcesAt(allowed, flows, p.t).includes(p.src);
      }
      last = p.t;
      lastSyn = !!p.syn;
      if (fromPod.has(p) || !startAllowed || sourcesAt(allowed, flows, p.t).includes(p.src)) continue;
      // kept across a change made after the binding began, or one whose transition it began in with
      // the old source (allowed then only by windows opened before the change: the node had not
      // applied it yet)
      const oldSourceAt = (k: number) => {
        const by = allowed.filter((w) => flows.includes(w.flow) && w.from <= since && (w.to === undefined || since < w.to) && w.sources.includes(p.src));
        return by.length > 0 && by.every((w) => w.from < k);
      };
      const change = rule.keeps.find((k) => k <= p.t && (since < k || oldSourceAt(k)));
      if (change === undefined || rule.ends.some((e) => since < e && e <= p.t)) continue;
      kept.set(p, { since, change });
    }
  }
  return (p) => kept.get(p);
}

/**
 * Invariant 1: no packet leaves the lab's edge with a source the policies and masquerade rules in
 * force do not allow for its flow. A packet no window of its flow covers is a violation too (the
 * expectation was missing: unknown is not allowed). A packet that could not be attributed to one
 * flow (`candidates`) may have any source allowed to one of its candidates. Leaked packets of one
 * flow with one source less than EPISODE_GAP_MS apart are one violation (`count` packets, the first
 * at `at`, the last at `until`). With `conntrack`, a packet of an established binding may keep its
 * source across a change that keeps bindings (`conntrackKeeps`; `podSent`: what left the pods).
 */
export function checkNoLeak(
  packets: readonly EdgePacket[],
  allowed: readonly AllowedWindow[],
  conntrack: readonly ConntrackRule[] = [],
  podSent: readonly EdgePacket[] = [],
): Violation[] {
  const out: Violation[] = [];
  const open = new Map<string, Violation>();
  const keeps = conntrackKeeps(packets, allowed, conntrack, podSent);
  for (const p of [...packets].sort((a, b) => a.t - b.t)) {
    const sources = sourcesAt(allowed, p.candidates ?? [p.flow], p.t);
    const { leaked } = segmentLeaks([{ t: p.t, src: p.src, sport: p.sport ?? 0, flags: 0 }], sources);
    if (!leaked.length || keeps(p)) continue;
    const key = `${p.flow}|${p.src}`;
    const prev = open.get(key);
    if (prev && p.t - (prev.evidence.until as number) < EPISODE_GAP_MS) {
      prev.evidence.count = (prev.evidence.count as number) + 1;
      prev.evidence.until = p.t;
      continue;
    }
    const v: Violation = {
      invariant: 'no-leak',
      at: p.t,
      evidence: {
        flow: p.flow,
        src: p.src,
        ...(p.sport !== undefined ? { sport: p.sport } : {}),
        allowed: sources,
        ...(p.candidates ? { candidates: p.candidates } : {}),
        count: 1,
        until: p.t,
      },
    };
    open.set(key, v);
    out.push(v);
  }
  return out;
}

/** Violations of one flow less than this apart are one episode (one violation with a count). */
export const EPISODE_GAP_MS = 1000;

/**
 * Invariant 2: never two nodes answering ARP for one floating IP after the fence time. Replies for
 * one IP from different MACs less than `windowMs` apart are a conflict (both were answering at
 * least until the earlier of the two); conflicts less than `windowMs` apart form one episode; an
 * episode longer than `fenceMs` (a handover may overlap that long) is a violation, reported at its
 * start + fenceMs.
 */
export function checkSingleArpOwner(replies: readonly ArpReply[], o: { fenceMs: number; windowMs: number }): Violation[] {
  const out: Violation[] = [];
  const byIp = new Map<string, ArpReply[]>();
  for (const r of replies) byIp.set(r.ip, [...(byIp.get(r.ip) ?? []), r]);
  for (const [ip, rs] of byIp) {
    rs.sort((a, b) => a.t - b.t);
    const conflicts: { t: number; a: ArpReply; b: ArpReply }[] = [];
    for (let j = 1; j < rs.length; j++) {
      for (let i = j - 1; i >= 0 && rs[j]!.t - rs[i]!.t < o.windowMs; i--) {
        if (rs[i]!.mac !== rs[j]!.mac) {
          conflicts.push({ t: rs[j]!.t, a: rs[i]!, b: rs[j]! });
          break;
        }
      }
    }
    let k = 0;
    while (k < conflicts.length) {
      const start = conflicts[k]!.a.t;
      let end = k;
      while (end + 1 < conflicts.length && conflicts[end + 1]!.t - conflicts[end]!.t < o.windowMs) end++;
      // both were answering at least until the earlier reply of each conflicting pair
      const last = Math.max(...conflicts.slice(k, end + 1).map((c) => c.a.t));
      if (last - start > o.fenceMs) {
        const owners = [
          ...new Set(
            conflicts
              .slice(k, end + 1)
              .flatMap((c) => [c.a, c.b])
              .map((r) => r.node ?? r.mac),
          ),
        ].sort();
        out.push({
          invariant: 'single-arp-owner',
          at: start + o.fenceMs,
          evidence: { ip, owners, from: start, until: last, overlapMs: last - start, fenceMs: o.fenceMs },
        });
      }
      k = end + 1;
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

/**
 * Whether a flow's packets after the bound went out, as far as the far end saw, only on a binding
 * conntrack keeps across a change with a source other than the final ones (`kept`): its own
 * packets after the bound all such, and a packet of such a binding (its own or a bare SYN it may
 * have sent: `candidates`) less than its idle bound (BINDING_IDLE_MS, TCP_BINDING_IDLE_MS) before the bound or after it. Its answers then
 * go where that binding says (a pod IP towards the internet: none come back) until the binding
 * ends: NAT is decided on a flow's first packet, as upstream, so its being unanswered is no
 * convergence failure (chaos seed 1419845302: a UDP flow and a stream that
 * began while nonMasqueradeCIDRs held 0.0.0.0/0 kept the pod IP after the list was restored).
 */
function stuckOnKeptBinding(
  f: FlowEvidence,
  deadline: number,
  o: { edgePackets?: readonly EdgePacket[]; kept?: (p: EdgePacket) => KeptBinding | undefined },
): boolean {
  const { edgePackets, kept } = o;
  if (!edgePackets || !kept) return false;
  const old = (p: EdgePacket) => kept(p) !== undefined && !f.finalSources.includes(p.src);
  const mine = edgePackets.filter((p) => (p.candidates ?? [p.flow]).includes(f.flow));
  // the kept binding still alive at the bound (a SYN retransmitted with back-off may fall silent
  // for longer than the bound), and nothing of the flow's own after the bound on another binding
  const olds = mine.filter(old);
  const lastOld = olds.reduce<EdgePacket | undefined>((a, p) => (!a || p.t > a.t ? p : a), undefined);
  return lastOld !== undefined && lastOld.t + bindingIdleMs(lastOld) >= deadline && mine.filter((p) => !p.candidates && p.t >= deadline).every(old);
}

/**
 * Whether a TCP probe's packet (one connection per packet) went out on a binding conntrack keeps
 * with a source other than the final ones (`kept`). Its connection is the one whose first SYN left
 * the pod (`pod.sent`: a new ISN on a flow it may be) from the packet's time (5 ms of slack) to half
 * the probe's interval later — when exactly one did; the far end saw that connection's SYN (same
 * ISN: NAT keeps it) on a kept binding. A new connection that reuses the local port of one whose
 * SYN went out un-NATed while the pod IP was allowed, and was never answered, finds that SYN_SENT
 * entry (TCP_BINDING_IDLE_MS) and leaves with the pod IP again, unanswered (chaos seed 627642966:
 * five of the TCP probe's connections after the list was restored, the rest of them answered, so
 * the flow was not stuck as a whole: `stuckOnKeptBinding`).
 */
function onKeptConnection(
  f: FlowEvidence,
  p: TimelinePacket,
  o: { edgePackets?: readonly EdgePacket[]; kept?: (p: EdgePacket) => KeptBinding | undefined; pod?: { sent: readonly EdgePacket[] } },
): boolean {
  if (!o.edgePackets || !o.kept || !o.pod || f.timeline.proto !== 'tcp' || f.timeline.stream) return false;
  const until = p.t + f.timeline.intervalMs / 2;
  const mine = (e: EdgePacket) => (e.candidates ?? [e.flow]).includes(f.flow);
  const seen = new Set<number>();
  const firstSyns: EdgePacket[] = [];
  for (const e of [...o.pod.sent].sort((a, b) => a.t - b.t)) {
    if (!e.syn || e.isn === undefined || e.t >= until) continue;
    if (!seen.has(e.isn) && e.t >= p.t - 5 && mine(e)) firstSyns.push(e);
    seen.add(e.isn);
  }
  if (firstSyns.length !== 1) return false;
  const own = firstSyns[0]!;
  return o.edgePackets.some((e) => e.syn && e.isn === own.isn && e.sport === own.sport && !f.finalSources.includes(e.src) && o.kept!(e) !== undefined);
}

/**
 * Invariant 3: after the last step is undone (`settledAt`, ms since the epoch), every flow is
 * answered again within `boundMs` and under its final sources — every packet sent after
 * settledAt + boundMs answered (unless the final state says its replies cannot come back:
 * `finalAnswered` false) and seen only with those sources, and at least one such packet (a probe
 * that stopped too early proves nothing) — and the API converged: every node Up, every floating IP
 * assigned, no UnknownEgressIP that the final gateway does not explain (an IP that is not one of its
 * floating IPs explains it). Only the packets of the flow itself count: what the far end saw of
 * other probes' connections to the same address and port (a timeline's `unattributed`) is judged by
 * invariant 1 on the far end's capture, which attributes every segment. With `edgePackets` (the far
 * end's capture, attributed by probe token) the sources are judged on those: a timeline matches TCP
 * segments to its packets by source port only, and two pods' connections to one address and port
 * can share a source port. With `delivered` (a capture on the pods' interfaces), a packet whose
 * reply arrived at the pod counts as answered even when the probe gave up on it first (a probe
 * starved of CPU runs its timeout before it reads the socket). With `kept` (`conntrackKeeps`), a
 * packet of a binding established before a change that keeps bindings may keep its source, and a
 * flow stuck on such a binding may stay unanswered (`stuckOnKeptBinding`), as may a TCP probe's
 * connection that went out on one (`onKeptConnection`). With `pod` (the same
 * captures' packets leaving the pods, and their replies), a stream is judged on its TCP's tries: the
 * first segment it sent at or after the bound must be answered at the pod within `boundMs` of it
 * (were that try lost, TCP's next one would come a retransmission timeout later, and in back-off
 * that timeout has grown to seconds). How long its TCP waited before that try (back-off after a long
 * loss) is not the system's doing: the writes made before it waited in the socket and are judged by
 * it; the writes from it on are judged as every flow's packets are.
 */
export function checkConvergence(
  flows: readonly FlowEvidence[],
  api: FinalApi | undefined,
  o: {
    settledAt: number;
    boundMs: number;
    edgePackets?: readonly EdgePacket[];
    delivered?: Delivered;
    kept?: (p: EdgePacket) => KeptBinding | undefined;
    pod?: { sent: readonly EdgePacket[]; replies: readonly EdgeReply[] };
  },
): Violation[] {
  const out: Violation[] = [];
  const deadline = o.settledAt + o.boundMs;
  for (const f of flows) {
    const delivered = o.delivered?.get(f.flow);
    const firstTry = f.timeline.stream && o.pod ? streamFirstTry(f, deadline, o.pod) : undefined;
    const triedInTime = firstTry?.answeredAt !== undefined && firstTry.answeredAt - firstTry.at <= o.boundMs;
    // a stream's writes made on that try's connection before it waited in its socket (TCP back-off):
    // that try, answered in time on the same connection, judges them; a write that found no
    // connection (a reconnect that failed) did not wait in a socket and is judged itself
    const queued = (p: TimelinePacket) =>
      triedInTime && firstTry!.sport !== undefined && p.t < firstTry!.at && p.localPort === firstTry!.sport && !p.connectionError;
    const after = {
      ...f.timeline,
      packets: f.timeline.packets.filter((p) => p.t >= deadline && !queued(p)).map((p) => (!p.replied && delivered?.has(p.seq) ? { ...p, replied: true } : p)),
      unattributed: [],
    };
    const r = summarize(after, f.finalSources);
    if (r.packets === 0) {
      out.push({
        invariant: 'convergence',
        at: deadline,
        evidence: { flow: f.flow, problem: 'no packet sent after the bound: the probe stopped too early to show convergence', boundMs: o.boundMs },
      });
      continue;
    }
    if (firstTry && f.finalAnswered !== false && !triedInTime && !stuckOnKeptBinding(f, deadline, o)) {
      out.push({
        invariant: 'convergence',
        at: firstTry.at,
        evidence: {
          flow: f.flow,
          problem: "the stream's first segment after the bound was not answered in time (capture on the pod's interface)",
          sentAt: firstTry.at,
          answeredAt: firstTry.answeredAt ?? null,
          boundMs: o.boundMs,
        },
      });
    }
    const unanswered = after.packets.filter((p) => !p.replied && !onKeptConnection(f, p, o));
    if (f.finalAnswered !== false && unanswered.length && !stuckOnKeptBinding(f, deadline, o)) {
      const first = unanswered[0]!;
      out.push({
        invariant: 'convergence',
        at: first.t,
        evidence: {
          flow: f.flow,
          problem: 'unanswered after the bound',
          unanswered: unanswered.length,
          packets: r.packets,
          firstSeq: first.seq,
          boundMs: o.boundMs,
        },
      });
    }
    if (o.edgePackets) {
      const seen = o.edgePackets.filter((p) => p.flow === f.flow && p.t >= deadline);
      const other = seen.filter((p) => !f.finalSources.includes(p.src) && !o.kept?.(p));
      if (other.length) {
        const sources: Record<string, number> = {};
        for (const p of seen) sources[p.src] = (sources[p.src] ?? 0) + 1;
        out.push({
          invariant: 'convergence',
          at: other[0]!.t,
          evidence: {
            flow: f.flow,
            problem: 'seen with a source other than the final ones after the bound (far-end capture)',
            sources,
            expected: f.finalSources,
          },
        });
      }
    } else if (r.leaks && r.leaks.count > 0) {
      const first = r.leaks.packets[0]?.t ?? r.leaks.unattributed[0]!.t;
      out.push({
        invariant: 'convergence',
        at: first,
        evidence: { flow: f.flow, problem: 'seen with a source other than the final ones after the bound', sources: r.sources, expected: f.finalSources },
      });
    }
  }
  if (api) {
    const g = api.gateway;
    const notUp = api.nodes.filter((n) => g.nodes[n] !== 'Up');
    if (notUp.length)
      out.push({
        invariant: 'convergence',
        at: deadline,
        evidence: { problem: 'nodes not Up in the final gateway status', nodes: Object.fromEntries(notUp.map((n) => [n, g.nodes[n] ?? '(absent)'])) },
      });
    const unassigned = g.floatingIPs.filter((ip) => !g.assignments[ip]);
    if (unassigned.length)
      out.push({
        invariant: 'convergence',
        at: deadline,
        evidence: { problem: 'floating IPs not assigned in the final gateway status', ips: unassigned, reasons: g.unassigned },
      });
    const unexplained = api.unknownEgressIPs.filter((u) => g.floatingIPs.includes(u.ip));
    if (unexplained.length)
      out.push({ invariant: 'convergence', at: deadline, evidence: { problem: 'UnknownEgressIP for a floating IP the gateway has', policies: unexplained } });
  }
  return out;
}

/** A span during which a flow's replies may be lost (a fault on its path, a change in transition). */
export interface ReplyExcuse {
  flow: string;
  from: number;
  to: number;
}

/** The (flow, seq) pairs whose reply a capture at the pod's own interface saw arrive. */
export type Delivered = ReadonlyMap<string, ReadonlySet<number>>;

/** The Delivered map of the replies a capture at the pods' interfaces saw. */
export function deliveredOf(podReplies: readonly EdgeReply[]): Map<string, Set<number>> {
  const m = new Map<string, Set<number>>();
  for (const r of podReplies) {
    const s = m.get(r.flow) ?? new Set<number>();
    s.add(r.seq);
    m.set(r.flow, s);
  }
  return m;
}

/**
 * Invariant 4: every reply that left the far end towards the lab for a packet the flow's timeline
 * knows reached the pod. The witness of "reached": with `delivered` (a capture on the pod's own
 * interface), the reply was seen arriving there; without it, the probe marked the packet replied —
 * and then a reply that left the far end too late for the probe to count it (it gave up `timeoutMs`
 * after sending; `transitMs` is the time a reply takes from the far end to the pod) is no evidence
 * of a loss. Replies for packets the timeline does not list are ignored (not this probe's); so are
 * replies that left while an excuse of the flow was in force (a fault on its path may drop them),
 * and, with `allowed`, replies addressed to a source the flow may no longer leave with at that
 * moment (by the windows, when one covers that moment, or a binding conntrack keeps: `kept`): a policy change moved the flow to
 * another source, its old binding is gone by the rules, and the far end's answers to the old source
 * have no way back that the rules allow (delivering them is how a pod's node once let the pod's
 * answers out un-NATed: chaos seed 627642967, regressions/paused-holder-deleted-policy). With
 * `closedAt` (closedAtOf), neither are replies that left the far end after the pod's TCP connection
 * that carried their packet had ended at the pod: it closed it (a FIN or an RST seen leaving the pod
 * on it), or the far end aborted it (an RST from the far end seen arriving at the pod on it: the
 * pod's socket is gone; chaos seed 848038419: a pod relabelled out of its policy retransmitted with
 * the node IP, the far end reset that new tuple, the pod's connection died with it, and the far
 * end's socket of the old tuple went on retransmitting its answer to the egress IP for 25 s, whose
 * binding the holder had flushed with the leaving pair, as it must). The probe
 * closes a connection once it has its answer or has given up waiting for it, and from then on the
 * connection's binding may be gone for good — an RST moves the entry to CLOSE (deleted 10 s later)
 * on every node it passes, and a holder that took the IP without the binding cannot pick the
 * connection up again from a FIN (conntrack's loose pickup takes an ACK, not a FIN or an RST). The
 * copies of a reply sent before the pod closed are judged as any other. Chaos seed 627642974: with
 * the holder (node-1) rate-limited, three connections' bindings never reached the node that took
 * the IP over; the probes gave up and closed, and the far end's retransmissions of its answers ran
 * on 15 s after the last fault.
 * Unreached replies of one flow less than EPISODE_GAP_MS apart are one violation.
 */
export function checkRepliesReachPod(
  replies: readonly EdgeReply[],
  flows: readonly FlowEvidence[],
  o: {
    excuses?: readonly ReplyExcuse[];
    transitMs?: number;
    delivered?: Delivered;
    allowed?: readonly AllowedWindow[];
    kept?: (flow: string, src: string, port: number | undefined) => boolean;
    closedAt?: (flow: string, seq: number) => number | undefined;
  } = {},
): Violation[] {
  const out: Violation[] = [];
  const byFlow = new Map(flows.map((f) => [f.flow, { f, packets: new Map(f.timeline.packets.map((p) => [p.seq, p])) }]));
  const excuses = o.excuses ?? [];
  const transitMs = o.transitMs ?? 0;
  const open = new Map<string, Violation>();
  for (const r of [...replies].sort((a, b) => a.t - b.t)) {
    const e = byFlow.get(r.flow);
    const p = e?.packets.get(r.seq);
    if (!e || !p) continue;
    if (o.delivered) {
      if (o.delivered.get(r.flow)?.has(r.seq)) continue;
    } else {
      if (p.replied) continue;
      if (e.f.timeoutMs !== undefined && r.t + transitMs > p.t + e.f.timeoutMs) continue;
    }
    if (excuses.some((x) => x.flow === r.flow && x.from <= r.t && r.t <= x.to)) continue;
    const allowedNow = o.allowed && r.dst !== undefined ? sourcesAt(o.allowed, [r.flow], r.t) : [];
    if (allowedNow.length && !allowedNow.includes(r.dst!) && !o.kept?.(r.flow, r.dst!, r.port)) continue;
    const closed = o.closedAt?.(r.flow, r.seq);
    if (closed !== undefined && closed <= r.t) continue;
    const prev = open.get(r.flow);
    if (prev && r.t - (prev.evidence.until as number) < EPISODE_GAP_MS) {
      (prev.evidence.seqs as number[]).push(r.seq);
      prev.evidence.until = r.t;
      continue;
    }
    const v: Violation = {
      invariant: 'replies-reach-pod',
      at: r.t,
      evidence: { flow: r.flow, seq: r.seq, sentAt: p.t, replyLeftEdgeAt: r.t, seqs: [r.seq], until: r.t },
    };
    open.set(r.flow, v);
    out.push(v);
  }
  return out;
}

/** Everything the explorer records during one schedule, for `checkInvariants`. */
export interface ChaosEvidence {
  edgePackets: EdgePacket[];
  allowed: AllowedWindow[];
  arpReplies: ArpReply[];
  edgeReplies: EdgeReply[];
  flows: FlowEvidence[];
  finalApi?: FinalApi;
  /** spans during which a flow's replies may be lost (invariant 4) */
  replyExcuses?: ReplyExcuse[];
  /** replies a capture on each probing pod's own interface saw arrive (the witness of "reached the pod") */
  podReplies?: EdgeReply[];
  /** what the same captures saw leave the pods (a stream's segments: its TCP's tries, retransmissions included) */
  podSent?: EdgePacket[];
  /** RSTs from the far end the same captures saw arrive at the pods (a pod's connection the far end aborted) */
  podResets?: EdgeReset[];
  /** when conntrack keeps an established flow's binding (invariants 1 and 3); none: no binding is kept */
  conntrack?: ConntrackRule[];
  /** moments each flow's pod lost every connection it had (its node stopped or killed: model.ts podConnectionEnds) */
  podConnectionEnds?: { flow: string; at: number }[];
}

/** Bounds of the checks: the ARP fence and observation window, when the schedule settled and the convergence bound. */
export interface InvariantOptions {
  fenceMs: number;
  arpWindowMs: number;
  settledAt: number;
  boundMs: number;
  /** the time a reply may take from the far end to the pod (invariant 4; default 0) */
  replyTransitMs?: number;
}

/** Whether the far end saw a kept binding (`conntrackKeeps`) of `flow` leave with `src` and `port`. */
export function keptBindingOf(
  packets: readonly EdgePacket[],
  kept: (p: EdgePacket) => KeptBinding | undefined,
): (flow: string, src: string, port: number | undefined) => boolean {
  const keys = new Set(packets.filter((p) => kept(p)).flatMap((p) => (p.candidates ?? [p.flow]).map((f) => `${f}|${p.src}|${p.sport ?? ''}`)));
  return (flow, src, port) => keys.has(`${flow}|${src}|${port ?? ''}`);
}

/**
 * When the pod's TCP connection that carried each probe packet ended at the pod, by flow and seq:
 * the pod closed it (sent a FIN or an RST on it: `podSent`, a capture at the pod), or the far end
 * aborted it (an RST from the far end arrived at the pod on it: `podResets`, the same capture; the
 * pod's socket is gone from then on). Its connection is the local port of the segment that carried
 * the packet's token, from that segment until a SYN of a new connection on that port.
 */
export function closedAtOf(podSent: readonly EdgePacket[], podResets: readonly EdgeReset[] = []): (flow: string, seq: number) => number | undefined {
  // what happened on one local port: a segment carrying probe packets, a new connection (syn), an end
  type PortEvent = { t: number; flow: string; seqs?: number[]; syn?: boolean; end?: boolean };
  const byPort = new Map<number, PortEvent[]>();
  const add = (port: number, e: PortEvent) => {
    const list = byPort.get(port);
    if (list) list.push(e);
    else byPort.set(port, [e]);
  };
  for (const p of podSent) {
    if (p.sport === undefined) continue;
    add(p.sport, { t: p.t, flow: p.flow, ...(p.seqs ? { seqs: p.seqs } : {}), ...(p.syn ? { syn: true } : {}), ...(p.fin || p.rst ? { end: true } : {}) });
  }
  for (const r of podResets) add(r.port, { t: r.t, flow: r.flow, end: true });
  for (const list of byPort.values()) list.sort((a, b) => a.t - b.t);
  const closed = new Map<string, number>();
  for (const list of byPort.values()) {
    list.forEach((p, i) => {
      if (!p.seqs?.length) return;
      let end: number | undefined;
      for (const q of list.slice(i + 1)) {
        if (q.syn) break;
        if (q.end) {
          end = q.t;
          break;
        }
      }
      if (end === undefined) return;
      for (const seq of p.seqs) {
        const k = `${p.flow}|${seq}`;
        if (!closed.has(k)) closed.set(k, end);
      }
    });
  }
  return (flow, seq) => closed.get(`${flow}|${seq}`);
}

/**
 * When the connection that carried each probe packet ended, by flow and seq: the pod closed it (a FIN
 * or an RST: `closedByPod`, closedAtOf), or the pod lost every connection (`ends`: its node stopped
 * or killed) after the packet was sent — whichever came first.
 */
export function connectionEndOf(
  flows: readonly FlowEvidence[],
  closedByPod: ((flow: string, seq: number) => number | undefined) | undefined,
  ends: readonly { flow: string; at: number }[],
): (flow: string, seq: number) => number | undefined {
  const sentAt = new Map(flows.map((f) => [f.flow, new Map(f.timeline.packets.map((p) => [p.seq, p.t]))]));
  return (flow, seq) => {
    const t = sentAt.get(flow)?.get(seq);
    const lost = t === undefined ? [] : ends.filter((e) => e.flow === flow && e.at >= t).map((e) => e.at);
    const closed = closedByPod?.(flow, seq);
    const all = [...lost, ...(closed !== undefined ? [closed] : [])];
    return all.length ? Math.min(...all) : undefined;
  };
}

/** All four invariants on one run's evidence: every violation, in time order (empty: none broke). */
export function checkInvariants(e: ChaosEvidence, o: InvariantOptions): Violation[] {
  const delivered = e.podReplies ? deliveredOf(e.podReplies) : undefined;
  const kept = conntrackKeeps(e.edgePackets, e.allowed, e.conntrack ?? [], e.podSent);
  return [
    ...checkNoLeak(e.edgePackets, e.allowed, e.conntrack ?? [], e.podSent),
    ...checkSingleArpOwner(e.arpReplies, { fenceMs: o.fenceMs, windowMs: o.arpWindowMs }),
    ...checkConvergence(e.flows, e.finalApi, {
      settledAt: o.settledAt,
      boundMs: o.boundMs,
      edgePackets: e.edgePackets,
      kept,
      ...(delivered ? { delivered } : {}),
      ...(e.podSent && e.podReplies ? { pod: { sent: e.podSent, replies: e.podReplies } } : {}),
    }),
    ...checkRepliesReachPod(e.edgeReplies, e.flows, {
      // replies to a source only a mixed view allows are not judged: by the time they come back the
      // node may have learned the rest of the change (as before mixed views were allowed)
      allowed: e.allowed.filter((w) => !w.mixed),
      kept: keptBindingOf(e.edgePackets, kept),
      ...(e.replyExcuses ? { excuses: e.replyExcuses } : {}),
      ...(o.replyTransitMs !== undefined ? { transitMs: o.replyTransitMs } : {}),
      ...(delivered ? { delivered } : {}),
      ...(e.podSent || e.podConnectionEnds?.length
        ? { closedAt: connectionEndOf(e.flows, e.podSent ? closedAtOf(e.podSent, e.podResets ?? []) : undefined, e.podConnectionEnds ?? []) }
        : {}),
    }),
  ].sort((a, b) => a.at - b.at);
}
