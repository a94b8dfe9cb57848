import { describe, expect, it } from 'vitest';
import type { DecodedPacket } from '../pcap/pcap.js';
import { TCP_FLAGS } from '../pcap/pcap.js';
import { stableMac } from '../lab/wiring.js';
import type { Timeline } from '../probe/timeline.js';
import { encodeProbe } from '../inlab/protocol.js';
import { arpClaims, edgeEvidence, finalApiFrom, mergeSegments, type EdgeFlow } from './evidence.js';
import { checkInvariants, checkNoLeak, checkRepliesReachPod, checkSingleArpOwner } from './invariants.js';

const TOK_A = 'aaaaaaaaaaaaaaaa';
const TOK_A2 = 'abababababababab';
const TOK_B = 'bbbbbbbbbbbbbbbb';
const FIP = '192.168.1.100';
const flows: EdgeFlow[] = [
  {
    name: 'udp alice/frontend-1 -> 8.8.8.8',
    to: '8.8.8.8',
    port: 7007,
    proto: 'udp',
    segments: [
      { token: TOK_A, seqOffset: 0 },
      { token: TOK_A2, seqOffset: 40 },
    ],
  },
  { name: 'tcp default/client-1 -> 8.8.8.8', to: '8.8.8.8', port: 7007, proto: 'tcp', segments: [{ token: TOK_B, seqOffset: 0 }], podIP: '10.10.10.2' },
  {
    name: 'tcp default/client-3 -> 8.8.8.8',
    to: '8.8.8.8',
    port: 7007,
    proto: 'tcp',
    segments: [{ token: 'dddddddddddddddd', seqOffset: 0 }],
    podIP: '10.10.12.1',
  },
];

const udpOut = (t: number, src: string, tok: string, seq: number): DecodedPacket => ({
  t,
  direction: 'unknown',
  ip: { src, dst: '8.8.8.8', proto: 17, ttl: 62, udp: { sport: 40000, dport: 7007, payload: Buffer.from(encodeProbe(tok, seq)) } },
});
const udpReply = (t: number, dst: string, tok: string, seq: number): DecodedPacket => ({
  t,
  direction: 'unknown',
  ip: {
    src: '8.8.8.8',
    dst,
    proto: 17,
    ttl: 64,
    udp: {
      sport: 7007,
      dport: 40000,
      payload: Buffer.from(`${JSON.stringify({ responder: 'internet', observedSource: dst, observedPort: 40000, token: tok, seq, t })}\n`),
    },
  },
});
/** a segment to the far end; its sequence number is `sport * 10` (a SYN's: its connection's ISN) */
const tcpOut = (t: number, src: string, sport: number, flags: number, payload = ''): DecodedPacket => ({
  t,
  direction: 'unknown',
  ip: { src, dst: '8.8.8.8', proto: 6, ttl: 62, tcp: { sport, dport: 7007, flags, payload: Buffer.from(payload), seq: sport * 10 } },
});

/** a segment from the far end to `dst`:`dport` */
const tcpIn = (t: number, dst: string, dport: number, flags: number): DecodedPacket => ({
  t,
  direction: 'unknown',
  ip: { src: '8.8.8.8', dst, proto: 6, ttl: 64, tcp: { sport: 7007, dport, flags, payload: Buffer.alloc(0), seq: 1 } },
});

describe("a pod's capture: RSTs from the far end", () => {
  it("an RST from the far end on a connection that carried a token is an EdgeReset of its flow, with the pod's local port; one on an unknown connection is none", () => {
    const POD = '10.10.10.2';
    const { edgeResets } = edgeEvidence(
      [
        tcpOut(1000, POD, 35992, TCP_FLAGS.SYN),
        tcpOut(1001, POD, 35992, TCP_FLAGS.ACK | TCP_FLAGS.PSH, encodeProbe(TOK_B, 18)),
        tcpIn(1002, POD, 35992, TCP_FLAGS.ACK),
        tcpIn(4441, POD, 35992, TCP_FLAGS.RST),
        tcpIn(4500, POD, 41000, TCP_FLAGS.RST),
      ],
      flows,
    );
    expect(edgeResets).toEqual([{ t: 4441, flow: 'tcp default/client-1 -> 8.8.8.8', port: 35992 }]);
  });
});

describe('far-end evidence', () => {
  const packets: DecodedPacket[] = [
    udpOut(1000, FIP, TOK_A, 1),
    udpReply(1002, FIP, TOK_A, 1),
    udpOut(5000, FIP, TOK_A2, 1), // the second probe segment of the same flow (after its node booted again)
    udpReply(5002, FIP, TOK_A2, 1),
    tcpOut(2000, '192.168.1.1', 50000, TCP_FLAGS.SYN),
    tcpOut(2001, '192.168.1.1', 50000, TCP_FLAGS.ACK | TCP_FLAGS.PSH, encodeProbe(TOK_B, 3)),
    tcpOut(2002, '192.168.1.1', 50000, TCP_FLAGS.ACK),
    tcpOut(2003, '192.168.1.1', 50000, TCP_FLAGS.FIN | TCP_FLAGS.ACK), // the connection closed
    tcpOut(2004, '192.168.1.1', 50000, TCP_FLAGS.RST), // and aborted
    tcpOut(2100, '10.10.10.2', 50001, TCP_FLAGS.SYN), // a SYN that got no answer: no payload ever
    tcpOut(2200, '192.168.1.7', 50002, TCP_FLAGS.SYN), // and one from a source that is no pod's
    udpOut(3000, '10.10.99.9', 'cccccccccccccccc', 1), // not one of our probes: an unknown token, nobody's
  ];

  it('attributes UDP by token, a TCP connection by the token of its data segment, the rest to every candidate flow; a SYN without ACK marked with its ISN (a new connection), a FIN and an RST too (a closed one), the probe seqs a segment carried; replies by token and seq (shifted per segment), with the address and port they went to', () => {
    const { edgePackets, edgeReplies } = edgeEvidence(packets, flows);
    expect(edgePackets).toEqual([
      { t: 1000, flow: flows[0]!.name, src: FIP, sport: 40000, seqs: [1] },
      { t: 5000, flow: flows[0]!.name, src: FIP, sport: 40000, seqs: [41] },
      { t: 2000, flow: flows[1]!.name, src: '192.168.1.1', sport: 50000, syn: true, isn: 500000 },
      { t: 2001, flow: flows[1]!.name, src: '192.168.1.1', sport: 50000, seqs: [3] },
      { t: 2002, flow: flows[1]!.name, src: '192.168.1.1', sport: 50000 },
      { t: 2003, flow: flows[1]!.name, src: '192.168.1.1', sport: 50000, fin: true },
      { t: 2004, flow: flows[1]!.name, src: '192.168.1.1', sport: 50000, rst: true },
      // its source is client-1's own pod IP: it came from client-1
      {
        t: 2100,
        flow: '(unattributed tcp from 10.10.10.2 to 8.8.8.8:7007)',
        src: '10.10.10.2',
        sport: 50001,
        candidates: [flows[1]!.name],
        syn: true,
        isn: 500010,
      },
      {
        t: 2200,
        flow: '(unattributed tcp to 8.8.8.8:7007)',
        src: '192.168.1.7',
        sport: 50002,
        candidates: [flows[1]!.name, flows[2]!.name],
        syn: true,
        isn: 500020,
      },
      { t: 3000, flow: '(unattributed udp to 8.8.8.8:7007)', src: '10.10.99.9', sport: 40000, candidates: [flows[0]!.name] },
    ]);
    expect(edgeReplies).toEqual([
      { t: 1002, flow: flows[0]!.name, seq: 1, port: 40000, dst: FIP },
      { t: 5002, flow: flows[0]!.name, seq: 41, port: 40000, dst: FIP },
    ]);
  });

  it('a leak in the capture breaks invariant 1: the pod IP of a masqueraded pod, and a node IP where only the egress IP is allowed', () => {
    const { edgePackets } = edgeEvidence(packets, flows);
    const allowed = [
      { flow: flows[0]!.name, from: 0, sources: [FIP] },
      { flow: flows[1]!.name, from: 0, sources: ['192.168.1.1'] },
    ];
    const v = checkNoLeak(edgePackets, allowed);
    expect(v.map((x) => [x.at, x.evidence.src])).toEqual([
      [2100, '10.10.10.2'],
      [2200, '192.168.1.7'],
      [3000, '10.10.99.9'],
    ]);
    const leak = edgeEvidence([udpOut(1500, '192.168.1.1', TOK_A, 2)], flows).edgePackets;
    expect(checkNoLeak(leak, allowed)).toEqual([
      { invariant: 'no-leak', at: 1500, evidence: { flow: flows[0]!.name, src: '192.168.1.1', sport: 40000, allowed: [FIP], count: 1, until: 1500 } },
    ]);
  });

  it('a reply that left the far end for a packet the pod never saw answered breaks invariant 4', () => {
    const tl: Timeline = {
      from: 'alice/frontend-1',
      to: '8.8.8.8',
      proto: 'udp',
      port: 7007,
      intervalMs: 100,
      unattributed: [],
      packets: [
        { seq: 1, t: 1000, replied: true, observedSources: [FIP] },
        { seq: 41, t: 5000, replied: false, observedSources: [FIP] },
      ],
    };
    const { edgeReplies } = edgeEvidence(packets, flows);
    expect(checkRepliesReachPod(edgeReplies, [{ flow: flows[0]!.name, timeline: tl, finalSources: [FIP], timeoutMs: 1000 }], { transitMs: 200 })).toMatchObject(
      [{ invariant: 'replies-reach-pod', at: 5002, evidence: { seq: 41 } }],
    );
  });
});

describe('the ARP observer', () => {
  const macs = new Map(['node-1', 'node-2', 'node-3'].map((n) => [stableMac(n, 'eth0'), n]));
  const router = stableMac('router', 'eth-nodes');
  const reply = (t: number, node: string, ip = FIP): DecodedPacket => ({
    t,
    direction: 'unknown',
    arp: { op: 2, senderIp: ip, senderMac: stableMac(node, 'eth0'), targetIp: '192.168.1.254' },
  });
  const request = (t: number): DecodedPacket => ({ t, direction: 'unknown', arp: { op: 1, senderIp: '192.168.1.254', senderMac: router, targetIp: FIP } });
  const garp = (t: number, node: string): DecodedPacket => ({
    t,
    direction: 'unknown',
    arp: { op: 1, senderIp: FIP, senderMac: stableMac(node, 'eth0'), targetIp: FIP },
  });

  it('keeps the replies and gratuitous announcements for watched IPs, with the node of the sender MAC', () => {
    const claims = arpClaims([request(0), reply(1, 'node-1'), garp(50, 'node-2'), reply(60, 'node-3', '192.168.1.2')], [FIP], macs);
    expect(claims).toEqual([
      { t: 1, ip: FIP, mac: stableMac('node-1', 'eth0'), node: 'node-1' },
      { t: 50, ip: FIP, mac: stableMac('node-2', 'eth0'), node: 'node-2' },
    ]);
  });

  it('two nodes answering for one floating IP for longer than the fence break invariant 2; a handover does not', () => {
    // the router asks every 250 ms; node-1 answers until 3000, node-2 from 1000: both answer for 2 s
    const both: DecodedPacket[] = [];
    for (let t = 0; t <= 4000; t += 250) {
      both.push(request(t));
      if (t <= 3000) both.push(reply(t + 1, 'node-1'));
      if (t >= 1000) both.push(reply(t + 2, 'node-2'));
    }
    const v = checkSingleArpOwner(arpClaims(both, [FIP], macs), { fenceMs: 1000, windowMs: 350 });
    expect(v).toEqual([
      { invariant: 'single-arp-owner', at: 2001, evidence: { ip: FIP, owners: ['node-1', 'node-2'], from: 1001, until: 3001, overlapMs: 2000, fenceMs: 1000 } },
    ]);
    // node-1 stops at 1000, node-2 (its GARP first) takes over at 1100: no overlap
    const handover: DecodedPacket[] = [];
    for (let t = 0; t <= 4000; t += 250) handover.push(request(t), ...(t <= 1000 ? [reply(t + 1, 'node-1')] : [reply(t + 2, 'node-2')]));
    handover.push(garp(1100, 'node-2'));
    expect(checkSingleArpOwner(arpClaims(handover, [FIP], macs), { fenceMs: 1000, windowMs: 350 })).toEqual([]);
    // and the whole check sees it too
    const e = { edgePackets: [], allowed: [], arpReplies: arpClaims(both, [FIP], macs), edgeReplies: [], flows: [] };
    expect(checkInvariants(e, { fenceMs: 1000, arpWindowMs: 350, settledAt: 0, boundMs: 0 }).map((x) => x.invariant)).toEqual(['single-arp-owner']);
  });
});

describe('final API and merged timelines', () => {
  it("UnknownEgressIP from the policies' Ready condition", () => {
    const g = { namespace: 'kube-system', floatingIPs: [FIP], nodes: { 'node-1': 'Up' }, assignments: { [FIP]: 'node-1' }, unassigned: {} };
    const pol = (name: string, ip: string, reason: string, status = 'False') => ({
      apiVersion: 'v',
      kind: 'EgressNATPolicy',
      metadata: { name },
      spec: { egressSourceIP: ip },
      status: { conditions: [{ type: 'Ready', status, reason }] },
    });
    expect(finalApiFrom(g, [pol('a', FIP, 'Served', 'True'), pol('b', '192.168.1.103', 'UnknownEgressIP')], ['node-1'])).toEqual({
      gateway: g,
      nodes: ['node-1'],
      unknownEgressIPs: [{ policy: 'b', ip: '192.168.1.103' }],
    });
  });

  it("a flow's probe segments become one timeline, seq and stream connections numbered on", () => {
    const seg = (t0: number, n: number, conn?: number): Timeline => ({
      from: 'p',
      to: '8.8.8.8',
      proto: 'tcp',
      port: 7007,
      intervalMs: 100,
      unattributed: [],
      packets: Array.from({ length: n }, (_, i) => ({
        seq: i + 1,
        t: t0 + i * 100,
        replied: true,
        observedSources: [FIP],
        ...(conn ? { conn, localPort: 40000 + t0 } : {}),
      })),
    });
    const m = mergeSegments([seg(0, 3, 1), seg(10_000, 2, 1)]);
    expect(m.packets.map((p) => [p.seq, p.conn])).toEqual([
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 2],
      [5, 2],
    ]);
    expect(m.segments).toEqual([
      { seqOffset: 0, lastSeq: 3, start: 0 },
      { seqOffset: 3, lastSeq: 5, start: 10_000 },
    ]);
    expect(m.stream?.connections).toHaveLength(2);
  });
});
