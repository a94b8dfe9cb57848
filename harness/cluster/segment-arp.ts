/**
 * The ARP owner of floating IPs on the node segment, seen from the router: evidence from outside the
 * nodes of which node answers for an IP (the gateway scenarios after a failover, the diagnostics
 * test while artifacts are collected).
 */
import type { Lab } from '../lab/lab.js';
import { startProcess, stopProcess } from '../lab/process.js';
import { type DecodedPacket, describePacket } from '../pcap/pcap.js';
import { ROUTER } from '../topology/plan.js';
import { pollUntil } from '../util/poll.js';

/** The router's interface on the node segment (harness/topology/plan.ts). */
const ROUTER_SEGMENT_IF = 'eth-nodes';

/** What segmentArp saw: `during`'s result and every claim of the asked IPs. */
export interface SegmentArp<T> {
  result: T;
  /** For each asked IP: the sender MACs of every ARP frame on the segment that claimed it (replies, gratuitous ARP). */
  claims: Record<string, string[]>;
  /** Every ARP frame the router's segment interface saw, described. */
  frames: string[];
}

/**
 * Who announces `ips` on the node segment, seen from the router: a capture of every ARP frame on
 * the router's segment interface while `during` runs, then the router broadcasts who-has for each
 * IP (`arping -b`: every request broadcast, so whoever holds the IP answers each one) before the
 * capture stops. A node that still held (or re-announced) an IP would show up with its MAC.
 */
export async function segmentArp<T>(lab: Lab, ips: readonly string[], during: () => Promise<T>, requests = 2): Promise<SegmentArp<T>> {
  const cap = await lab.capture(ROUTER, ROUTER_SEGMENT_IF, { filter: 'arp' });
  let result: T;
  try {
    result = await during();
    for (const ip of ips) {
      await lab.exec(ROUTER, ['arping', '-b', '-c', String(requests), '-w', String(requests + 2), '-I', ROUTER_SEGMENT_IF, ip], {
        check: false,
        timeoutMs: (requests + 10) * 1000,
      });
    }
  } catch (e) {
    await cap.stop().catch(() => undefined);
    throw e;
  }
  const { packets } = await cap.stop();
  const claims: Record<string, string[]> = {};
  for (const ip of ips) claims[ip] = [...new Set(packets.filter((p) => p.arp?.senderIp === ip).map((p) => p.arp!.senderMac.toLowerCase()))].sort();
  return { result, claims, frames: packets.map((p) => `${p.srcMac} > ${p.dstMac} ${describePacket(p)}`) };
}

/** One ARP claim of an IP seen on the segment: when (ms) and by which MAC. */
export interface ArpClaim {
  t: number;
  mac: string;
}

/**
 * The moments at which two different MACs both answered for one IP (pure): once a second MAC has
 * claimed the IP, every claim by a MAC that claimed it first, later than one asking period before
 * the second one's first claim, is a moment with two owners (the same request answered twice, or
 * the old owner answering again after the new one took over). Times are relative to the first claim.
 */
export function overlappingClaims(claims: readonly ArpClaim[], periodMs: number): string[] {
  const sorted = [...claims].sort((a, b) => a.t - b.t);
  if (!sorted.length) return [];
  const t0 = sorted[0]!.t;
  const first = new Map<string, number>();
  for (const c of sorted) if (!first.has(c.mac)) first.set(c.mac, c.t);
  const out: string[] = [];
  for (const [a, firstA] of first) {
    for (const [b, firstB] of first) {
      if (a === b || firstA > firstB) continue;
      for (const c of sorted) {
        if (c.mac === a && c.t > firstB - periodMs) {
          out.push(`${a} answered at ${Math.round(c.t - t0)} ms, ${b} had answered at ${Math.round(firstB - t0)} ms`);
        }
      }
    }
  }
  return out;
}

/** A who-has loop running in a lab container (startArpAsker). */
export interface ArpAsker {
  /** How many who-has requests it has sent so far. */
  asked(): Promise<number>;
  /** Waits until it has sent `n` more than now (deadline: `timeoutMs`). */
  askMore(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a managed process in `where` that broadcasts one who-has for `ip` on `iface` every
 * `everyMs` (one `arping -b -c 1` each, as iputils' arping paces in whole seconds; broadcast, so
 * every host that answers for the IP answers each one) and counts them in a file: the split-brain
 * scenarios' observer. Stop it in a `finally`.
 */
export async function startArpAsker(lab: Lab, o: { where: string; iface: string; ip: string; everyMs: number; name: string }): Promise<ArpAsker> {
  const counter = `/run/${o.name}-asked`;
  await startProcess(lab, { container: o.where, label: o.where }, o.name, [
    'sh',
    '-c',
    `rm -f ${counter}; while :; do arping -b -q -c 1 -w 1 -I ${o.iface} ${o.ip} & echo >> ${counter}; sleep ${o.everyMs / 1000}; done`,
  ]);
  const asked = async () => {
    const r = await lab.exec(o.where, ['sh', '-c', `wc -l < ${counter} 2>/dev/null || echo 0`], { check: false });
    return Number(r.stdout.trim()) || 0;
  };
  return {
    asked,
    askMore: async (n, timeoutMs = 30_000) => {
      const from = await asked();
      await pollUntil(asked, { what: `${n} more who-has for ${o.ip} from ${o.where}`, timeoutMs, intervalMs: 100, accept: (k) => k >= from + n });
    },
    stop: () => stopProcess(lab, o.where, o.name),
  };
}

/**
 * Every claim of `ip` in a capture, in order: each ARP frame whose sender is `ip` (a reply, an
 * announcement, or a request made from it: a receiver's neighbour cache takes the sender's MAC for
 * `ip` from any of them), as segmentArp counts them. Probes (sender 0.0.0.0) claim nothing.
 */
export function arpClaimsOf(packets: readonly DecodedPacket[], ip: string): ArpClaim[] {
  return packets.filter((p) => p.arp?.senderIp === ip).map((p) => ({ t: p.t, mac: p.arp!.senderMac.toLowerCase() }));
}
