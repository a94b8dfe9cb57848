/**
 * Turning what a continuous probe's client recorded and what the responder observed into a
 * per-packet timeline, and the questions failover scenarios ask of it: when did traffic stop, when
 * did it resume, under which source, and did any packet leave with a source it should not have
 * (a leak). Pure.
 */
import type { ClientRecord, Observation, Proto } from '../inlab/protocol.js';

export interface TimelinePacket {
  seq: number;
  /** Send time (ms since the epoch). */
  t: number;
  replied: boolean;
  rttMs?: number;
  /** Sources the responder saw this packet (or its retransmissions) arrive with. */
  observedSources: string[];
  /** The source the reply said (TCP/UDP). */
  replySource?: string;
}

export interface Timeline {
  from: string;
  to: string;
  proto: Proto;
  port?: number;
  intervalMs: number;
  packets: TimelinePacket[];
  /** Observations the responder made for this probe that no packet could be matched to (e.g. TCP SYNs after a port change). */
  unattributed: Observation[];
}

export interface Outage {
  /** First lost packet's send time and last lost packet's send time. */
  start: number;
  end: number;
  /** Time from the last answered packet before the outage to the first answered after it. */
  durationMs: number;
  lost: number;
  firstSeq: number;
  lastSeq: number;
}

export function buildTimeline(
  meta: Omit<Timeline, 'packets' | 'unattributed'>,
  records: ClientRecord[],
  observations: Observation[],
): Timeline {
  const bySeq = new Map<number, TimelinePacket>();
  for (const r of [...records].sort((a, b) => a.seq - b.seq)) {
    const pkt: TimelinePacket = { seq: r.seq, t: r.t, replied: r.replied, observedSources: [] };
    if (r.rttMs !== undefined) pkt.rttMs = r.rttMs;
    if (r.observedSource) pkt.replySource = r.observedSource;
    bySeq.set(r.seq, pkt);
  }
  const byLocalPort = new Map<number, TimelinePacket>();
  for (const r of records) if (r.localPort !== undefined && meta.proto === 'tcp') byLocalPort.set(r.localPort, bySeq.get(r.seq)!);
  const unattributed: Observation[] = [];
  for (const o of observations) {
    let pkt: TimelinePacket | undefined;
    if (o.p === 'udp' && o.pseq !== undefined) pkt = bySeq.get(o.pseq);
    else if (o.p === 'icmp' && o.seq !== undefined) pkt = bySeq.get(o.seq);
    else if (o.p === 'tcp' && o.sport !== undefined) pkt = byLocalPort.get(o.sport);
    if (pkt) {
      if (!pkt.observedSources.includes(o.src)) pkt.observedSources.push(o.src);
    } else unattributed.push(o);
  }
  // Replies say which source the responder saw even when the capture missed it.
  for (const p of bySeq.values()) if (p.replySource && !p.observedSources.includes(p.replySource)) p.observedSources.push(p.replySource);
  return { ...meta, packets: [...bySeq.values()], unattributed };
}

/** Runs of consecutive unanswered packets, with the gap measured between answered packets around them. */
export function outages(t: Timeline): Outage[] {
  const out: Outage[] = [];
  const pk = t.packets;
  let i = 0;
  while (i < pk.length) {
    if (pk[i]!.replied) {
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < pk.length && !pk[j + 1]!.replied) j++;
    const before = i > 0 ? pk[i - 1]! : undefined;
    const after = j + 1 < pk.length ? pk[j + 1]! : undefined;
    out.push({
      start: pk[i]!.t,
      end: pk[j]!.t,
      durationMs: (after?.t ?? pk[j]!.t + t.intervalMs) - (before?.t ?? pk[i]!.t - t.intervalMs),
      lost: j - i + 1,
      firstSeq: pk[i]!.seq,
      lastSeq: pk[j]!.seq,
    });
    i = j + 1;
  }
  return out;
}

/** Count of packets per observed source (a packet seen with two sources counts for both). */
export function sourceCounts(t: Timeline): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const p of t.packets) for (const s of p.observedSources) counts[s] = (counts[s] ?? 0) + 1;
  for (const o of t.unattributed) counts[o.src] = (counts[o.src] ?? 0) + 1;
  return counts;
}

/** Packets (and unattributed observations) seen with a source outside `allowed`. */
export function leaks(t: Timeline, allowed: readonly string[]): { packets: TimelinePacket[]; unattributed: Observation[] } {
  return {
    packets: t.packets.filter((p) => p.observedSources.some((s) => !allowed.includes(s))),
    unattributed: t.unattributed.filter((o) => !allowed.includes(o.src)),
  };
}

/** Share of packets answered. */
export function deliveryRatio(t: Timeline): number {
  return t.packets.length === 0 ? 0 : t.packets.filter((p) => p.replied).length / t.packets.length;
}
