/**
 * Turning what a continuous probe's client recorded and what the responder observed into a
 * per-packet timeline, and the questions failover scenarios ask of it: when did traffic stop, when
 * did it resume, under which source, and did any packet leave with a source it should not have
 * (a leak). Pure.
 */
import { isSyn, type ClientRecord, type Observation, type Proto } from '../inlab/protocol.js';

/** One packet of a continuous probe: send time, answered or not, the sources the far end saw. */
export interface TimelinePacket {
  seq: number;
  /** Send time (ms since the epoch). */
  t: number;
  replied: boolean;
  rttMs?: number;
  /**
   * Sources the responder saw this packet arrive with: its retransmissions and, for TCP, every segment
   * of its connection sent after it (until the connection's next packet).
   */
  observedSources: string[];
  /** The source the reply said (TCP/UDP). */
  replySource?: string;
  /** Stream mode: the source port the reply said the far end saw. */
  replyPort?: number;
  /** Stream mode: the connection that carried the line, its local port, and its break if it broke. */
  conn?: number;
  localPort?: number;
  connectionError?: string;
}

/** A continuous probe's result: every packet in order, plus observations no packet matched. */
export interface Timeline {
  from: string;
  to: string;
  proto: Proto;
  port?: number;
  intervalMs: number;
  packets: TimelinePacket[];
  /**
   * Observations the responder made for this probe that no packet could be matched to (e.g. TCP SYNs
   * after a port change). Other TCP segments: the first one per source and source port only.
   */
  unattributed: Observation[];
  /** Stream mode (one long-lived TCP connection): what happened to the connection(s). */
  stream?: StreamSummary;
}

/** One TCP connection of a stream probe. */
export interface ConnectionSummary {
  conn: number;
  localPort?: number;
  firstSeq: number;
  lastSeq: number;
  sent: number;
  replied: number;
  /** "source:port" the far end saw this connection come from, in order of first appearance. */
  endpoints: string[];
  /** The connection broke: with this error, noticed on the line `brokeAtSeq`. */
  brokeWith?: string;
  brokeAtSeq?: number;
}

/** Stream mode: the connections and whether the one connection survived. */
export interface StreamSummary {
  connections: ConnectionSummary[];
  /**
   * The one connection carried the stream from its first to its last line: never broken, never
   * replaced, the far end always saw the same source IP and port, and the last line was answered.
   */
  survived: boolean;
  /** Why not, in words (empty when it survived). */
  reason: string;
}

/** A run of consecutive lost packets. */
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

/** Builds a Timeline from the client's records and the responder's observations. */
export function buildTimeline(meta: Omit<Timeline, 'packets' | 'unattributed' | 'stream'>, records: ClientRecord[], observations: Observation[]): Timeline {
  const bySeq = new Map<number, TimelinePacket>();
  const isStream = records.some((r) => r.conn !== undefined);
  for (const r of [...records].sort((a, b) => a.seq - b.seq)) {
    const pkt: TimelinePacket = { seq: r.seq, t: r.t, replied: r.replied, observedSources: [] };
    if (r.rttMs !== undefined) pkt.rttMs = r.rttMs;
    if (r.observedSource) pkt.replySource = r.observedSource;
    if (isStream) {
      if (r.observedPort !== undefined) pkt.replyPort = r.observedPort;
      if (r.conn !== undefined) pkt.conn = r.conn;
      if (r.localPort !== undefined) pkt.localPort = r.localPort;
      if (r.connectionError !== undefined) pkt.connectionError = r.connectionError;
    }
    bySeq.set(r.seq, pkt);
  }
  // TCP: a SYN is matched by its source port to the first packet sent on that connection (one
  // connection per packet, or one per stream connection: the latest one opened before the SYN). Any
  // other segment (data, ACK, FIN, RST) belongs to the packet of that connection (same local port)
  // sent last at or before it (+5 ms: the clocks are the same, the order of logging is not), so a
  // segment that leaves mid-stream with another source shows on the packet it carried or followed.
  const firstByLocalPort = new Map<number, TimelinePacket[]>();
  const byLocalPort = new Map<number, TimelinePacket[]>();
  if (meta.proto === 'tcp') {
    const seenConn = new Set<string>();
    for (const r of [...records].sort((a, b) => a.seq - b.seq)) {
      if (r.localPort === undefined) continue;
      const pkt = bySeq.get(r.seq)!;
      const all = byLocalPort.get(r.localPort) ?? [];
      all.push(pkt);
      byLocalPort.set(r.localPort, all);
      const key = `${r.conn ?? `seq${r.seq}`}|${r.localPort}`;
      if (seenConn.has(key)) continue;
      seenConn.add(key);
      const list = firstByLocalPort.get(r.localPort) ?? [];
      list.push(pkt);
      firstByLocalPort.set(r.localPort, list);
    }
    for (const m of [firstByLocalPort, byLocalPort]) for (const list of m.values()) list.sort((a, b) => a.t - b.t || a.seq - b.seq);
  }
  const unattributed: Observation[] = [];
  const unattributedFlows = new Set<string>();
  for (const o of observations) {
    let pkt: TimelinePacket | undefined;
    if (o.p === 'udp' && o.pseq !== undefined) pkt = bySeq.get(o.pseq);
    else if (o.p === 'icmp' && o.seq !== undefined) pkt = bySeq.get(o.seq);
    else if (o.p === 'tcp' && o.sport !== undefined) {
      const list = (isSyn(o) ? firstByLocalPort : byLocalPort).get(o.sport) ?? [];
      pkt = latestAtOrBefore(list, o.t + 5) ?? list[0];
    }
    if (pkt) {
      if (!pkt.observedSources.includes(o.src)) pkt.observedSources.push(o.src);
    } else if (o.p === 'tcp' && !isSyn(o)) {
      // a connection nothing matches carries many segments: one entry per source and port says it
      const flow = `${o.src}|${o.sport ?? '?'}`;
      if (!unattributedFlows.has(flow)) unattributed.push(o);
      unattributedFlows.add(flow);
    } else unattributed.push(o);
  }
  // Replies say which source the responder saw even when the capture missed it.
  for (const p of bySeq.values()) if (p.replySource && !p.observedSources.includes(p.replySource)) p.observedSources.push(p.replySource);
  const packets = [...bySeq.values()];
  const t: Timeline = { ...meta, packets, unattributed };
  if (isStream) t.stream = summarizeStream(packets);
  return t;
}

/** The last packet of `list` (sorted by send time) sent at or before `t`. */
function latestAtOrBefore(list: readonly TimelinePacket[], t: number): TimelinePacket | undefined {
  let lo = 0;
  let hi = list.length; // the first index sent after t
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.t <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? list[lo - 1] : undefined;
}

/** What happened to the connection(s) of a stream probe (pure; packets in seq order). */
export function summarizeStream(packets: readonly TimelinePacket[]): StreamSummary {
  const byConn = new Map<number, ConnectionSummary>();
  for (const p of packets) {
    const n = p.conn ?? 1;
    let c = byConn.get(n);
    if (!c) {
      c = { conn: n, firstSeq: p.seq, lastSeq: p.seq, sent: 0, replied: 0, endpoints: [] };
      byConn.set(n, c);
    }
    c.lastSeq = p.seq;
    c.sent++;
    if (p.localPort !== undefined && c.localPort === undefined) c.localPort = p.localPort;
    if (p.replied) {
      c.replied++;
      if (p.replySource) {
        const ep = `${p.replySource}:${p.replyPort ?? '?'}`;
        if (!c.endpoints.includes(ep)) c.endpoints.push(ep);
      }
    }
    if (p.connectionError && c.brokeWith === undefined) {
      c.brokeWith = p.connectionError;
      c.brokeAtSeq = p.seq;
    }
  }
  const connections = [...byConn.values()].sort((a, b) => a.conn - b.conn);
  const reasons: string[] = [];
  const first = connections[0];
  if (!first) reasons.push('no line was sent');
  if (connections.length > 1) reasons.push(`the stream was carried by ${connections.length} connections (reconnected after a break)`);
  for (const c of connections) {
    if (c.brokeWith) reasons.push(`connection ${c.conn}${c.localPort ? ` (local port ${c.localPort})` : ''} broke with ${c.brokeWith} at line ${c.brokeAtSeq}`);
    if (c.endpoints.length > 1) reasons.push(`connection ${c.conn} was seen from ${c.endpoints.join(' then ')} (NAT binding changed)`);
  }
  const last = packets[packets.length - 1];
  if (last && !last.replied && !reasons.some((r) => r.includes('broke')))
    reasons.push(`the last line (${last.seq}) was not answered: the connection never carried traffic again`);
  if (first && first.replied === 0) reasons.push('no line was ever answered');
  return { connections, survived: reasons.length === 0, reason: reasons.join('; ') };
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
