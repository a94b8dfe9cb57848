/**
 * The ARP owner of floating IPs on the node segment, seen from the router: evidence from outside the
 * nodes of which node answers for an IP (the gateway scenarios after a failover, the diagnostics
 * test while artifacts are collected).
 */
import type { Lab } from '../lab/lab.js';
import { describePacket } from '../pcap/pcap.js';
import { ROUTER } from '../topology/plan.js';

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
