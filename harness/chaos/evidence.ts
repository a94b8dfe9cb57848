/**
 * Turning what a chaos run recorded into the evidence the invariants read (issue 15), pure:
 *  - the far end's capture → every probe packet that arrived from the lab (post-NAT source),
 *    attributed to its flow by the probe token in its payload (TCP segments without payload by
 *    their connection's 4-tuple), and every reply that left towards the lab, by the token and
 *    sequence number the reply carries;
 *  - the ARP observer's capture on the node segment → every claim of a watched IP (ARP replies and
 *    gratuitous announcements), with the node owning the sender MAC;
 *  - the final API objects → the gateway status and the policies reported UnknownEgressIP;
 *  - a flow's probe segments (a probe is restarted when its node boots again) → one timeline.
 */
import type { DecodedPacket } from '../pcap/pcap.js';
import type { KubeObject } from '../../lib/kube/types.js';
import type { GatewayStatus } from '../cluster/cluster-status.js';
import { summarizeStream, type Timeline } from '../probe/timeline.js';
import type { ArpReply, EdgePacket, EdgeReply, EdgeReset, FinalApi } from './invariants.js';

/**
 * A flow as the far end knows it: its name, destination and port, protocol, and its probe segments
 * (each probe's token, and what its sequence numbers are shifted by in the flow's merged timeline).
 */
export interface EdgeFlow {
  name: string;
  to: string;
  port: number;
  proto: 'udp' | 'tcp';
  segments: readonly { token: string; seqOffset: number }[];
  /** the sending pod's own IP: a packet that arrives with it comes from that pod */
  podIP?: string;
}

const PROBE_RE = /EGL ([0-9a-f]{16}) (\d+)/g;
const REPLY_RE = /"token":"([0-9a-f]{16})","seq":(\d+)/g;

function payloadText(p: DecodedPacket): string | undefined {
  const b = p.ip?.udp?.payload ?? p.ip?.tcp?.payload;
  return b?.length ? b.toString('latin1') : undefined;
}

/**
 * Probe packets and replies at the far end. A packet towards a flow's destination and port is an
 * EdgePacket of the flow whose token its payload carries; a TCP segment without a token belongs to
 * the flow of its connection (same source, source port, destination and port) when another segment
 * of that connection carried one (a SYN without ACK is marked `syn`, with its ISN: a new connection; a FIN `fin` and an RST `rst`: a closed one; a segment with tokens lists their probe `seqs`), otherwise it is listed with every flow of its protocol to that
 * destination as a candidate (`candidates`: the no-leak check then allows any of their sources) —
 * only the flows of one pod when its source is that pod's own IP (pod IPs are unique). A packet from a
 * flow's destination and port carrying a reply (token, seq) is an EdgeReply; an RST from it on a
 * connection that carried a token is an EdgeReset of that connection's flow (at a pod's interface:
 * the far end aborted the pod's connection, whose local port it names).
 */
export function edgeEvidence(
  packets: readonly DecodedPacket[],
  flows: readonly EdgeFlow[],
): { edgePackets: EdgePacket[]; edgeReplies: EdgeReply[]; edgeResets: EdgeReset[] } {
  const byToken = new Map<string, EdgeFlow>();
  const offsets = new Map<string, number>();
  for (const f of flows) {
    for (const s of f.segments) {
      byToken.set(s.token, f);
      offsets.set(s.token, s.seqOffset);
    }
  }
  const dests = new Set(flows.map((f) => `${f.to}:${f.port}`));
  const conn = (src: string, sport: number, dst: string, dport: number) => `${src}:${sport}>${dst}:${dport}`;
  // first pass: the flow of every TCP connection that carried a token
  const connFlow = new Map<string, string>();
  for (const p of packets) {
    const tcp = p.ip?.tcp;
    if (!tcp || !dests.has(`${p.ip!.dst}:${tcp.dport}`)) continue;
    const text = payloadText(p);
    if (!text) continue;
    for (const m of text.matchAll(PROBE_RE)) {
      const f = byToken.get(m[1]!);
      if (f) connFlow.set(conn(p.ip!.src, tcp.sport, p.ip!.dst, tcp.dport), f.name);
    }
  }
  const edgePackets: EdgePacket[] = [];
  const edgeReplies: EdgeReply[] = [];
  const edgeResets: EdgeReset[] = [];
  for (const p of packets) {
    const ip = p.ip;
    const l4 = ip?.udp ?? ip?.tcp;
    if (!ip || !l4) continue;
    const proto = ip.udp ? 'udp' : 'tcp';
    if (dests.has(`${ip.dst}:${l4.dport}`)) {
      const text = payloadText(p);
      // each token's flow and probe seq (shifted per segment, as the replies')
      const tokens = text
        ? [...text.matchAll(PROBE_RE)].flatMap((m) => {
            const f = byToken.get(m[1]!);
            return f ? [{ f, seq: Number(m[2]) + offsets.get(m[1]!)! }] : [];
          })
        : [];
      const names = [...new Set(tokens.map((x) => x.f.name))];
      const seqsOf = (name: string) => ({ seqs: tokens.filter((x) => x.f.name === name).map((x) => x.seq) });
      const known = proto === 'tcp' ? connFlow.get(conn(ip.src, l4.sport, ip.dst, l4.dport)) : undefined;
      const f = ip.tcp?.flags ?? 0;
      const isSyn = !!ip.tcp && (f & 0x12) === 0x02;
      const syn = {
        ...(isSyn ? { syn: true, ...(ip.tcp!.seq !== undefined ? { isn: ip.tcp!.seq } : {}) } : {}),
        ...(f & 0x01 ? { fin: true } : {}),
        ...(f & 0x04 ? { rst: true } : {}),
      };
      if (names.length) for (const flow of names) edgePackets.push({ t: p.t, flow, src: ip.src, sport: l4.sport, ...syn, ...seqsOf(flow) });
      else if (known) edgePackets.push({ t: p.t, flow: known, src: ip.src, sport: l4.sport, ...syn });
      else {
        const all = flows.filter((f) => f.proto === proto && f.to === ip.dst && f.port === l4.dport);
        const own = all.filter((f) => f.podIP === ip.src);
        const candidates = (own.length ? own : all).map((f) => f.name);
        edgePackets.push({
          t: p.t,
          flow: `(unattributed ${proto} ${own.length ? `from ${ip.src} ` : ''}to ${ip.dst}:${l4.dport})`,
          src: ip.src,
          sport: l4.sport,
          candidates,
          ...syn,
        });
      }
    } else if (dests.has(`${ip.src}:${l4.sport}`)) {
      if (ip.tcp && (ip.tcp.flags ?? 0) & 0x04) {
        const flow = connFlow.get(conn(ip.dst, l4.dport, ip.src, l4.sport));
        if (flow) edgeResets.push({ t: p.t, flow, port: l4.dport });
      }
      const text = payloadText(p);
      if (!text) continue;
      for (const m of text.matchAll(REPLY_RE)) {
        const f = byToken.get(m[1]!);
        if (f) edgeReplies.push({ t: p.t, flow: f.name, seq: Number(m[2]) + offsets.get(m[1]!)!, port: l4.dport, dst: ip.dst });
      }
    }
  }
  return { edgePackets, edgeReplies, edgeResets };
}

/**
 * Every claim of one of `ips` the observer saw on the node segment: ARP replies (op 2) whose sender
 * IP is watched, and gratuitous announcements (op 1 with sender IP = target IP). `macs` maps a MAC
 * (lower case) to its node.
 */
export function arpClaims(packets: readonly DecodedPacket[], ips: readonly string[], macs: ReadonlyMap<string, string>): ArpReply[] {
  const watched = new Set(ips);
  const out: ArpReply[] = [];
  for (const p of packets) {
    const a = p.arp;
    if (!a || !watched.has(a.senderIp)) continue;
    if (a.op !== 2 && !(a.op === 1 && a.senderIp === a.targetIp)) continue;
    const mac = a.senderMac.toLowerCase();
    const node = macs.get(mac);
    out.push({ t: p.t, ip: a.senderIp, mac, ...(node ? { node } : {}) });
  }
  return out.sort((a, b) => a.t - b.t);
}

/** The final API state from the gateway status, the EgressNATPolicies and the lab's nodes. */
export function finalApiFrom(gateway: GatewayStatus, policies: readonly KubeObject[], nodes: readonly string[]): FinalApi {
  const unknownEgressIPs: { policy: string; ip: string }[] = [];
  for (const p of policies) {
    const conditions = (p.status as { conditions?: { type?: string; status?: string; reason?: string }[] } | undefined)?.conditions ?? [];
    const ready = conditions.find((c) => c.type === 'Ready');
    if (ready && ready.status !== 'True' && ready.reason === 'UnknownEgressIP')
      unknownEgressIPs.push({ policy: p.metadata.name ?? '?', ip: String((p.spec as { egressSourceIP?: unknown } | undefined)?.egressSourceIP ?? '') });
  }
  return { gateway, nodes: [...nodes], unknownEgressIPs };
}

/**
 * One timeline from a flow's probe segments in time order (its probe is halted before its node goes
 * down and a new one started when the node is back): packets renumbered after the previous
 * segment's last seq (`segments[i].seqOffset`), stream connections renumbered likewise.
 */
export function mergeSegments(parts: readonly Timeline[]): Timeline & { segments: { seqOffset: number; lastSeq: number; start?: number }[] } {
  if (!parts.length) throw new Error('mergeSegments: no segment');
  const first = parts[0]!;
  const packets: Timeline['packets'] = [];
  const unattributed: Timeline['unattributed'] = [];
  const segments: { seqOffset: number; lastSeq: number; start?: number }[] = [];
  let seqOffset = 0;
  let connOffset = 0;
  for (const t of parts) {
    const maxSeq = t.packets.reduce((m, p) => Math.max(m, p.seq), 0);
    const maxConn = t.packets.reduce((m, p) => Math.max(m, p.conn ?? 0), 0);
    for (const p of t.packets) packets.push({ ...p, seq: p.seq + seqOffset, ...(p.conn !== undefined ? { conn: p.conn + connOffset } : {}) });
    unattributed.push(...t.unattributed);
    segments.push({ seqOffset, lastSeq: seqOffset + maxSeq, ...(t.packets[0] ? { start: t.packets[0].t } : {}) });
    seqOffset += maxSeq;
    connOffset += maxConn;
  }
  const merged: Timeline = {
    from: first.from,
    to: first.to,
    proto: first.proto,
    intervalMs: first.intervalMs,
    packets,
    unattributed,
    ...(first.port !== undefined ? { port: first.port } : {}),
  };
  if (parts.some((t) => t.stream) || packets.some((p) => p.conn !== undefined)) merged.stream = summarizeStream(packets);
  return { ...merged, segments };
}
