import { describe, expect, it } from 'vitest';
import type { Timeline, TimelinePacket } from '../probe/timeline.js';
import type { GatewayStatus } from '../cluster/cluster-status.js';
import {
  BINDING_IDLE_MS,
  closedAtOf,
  connectionEndOf,
  TCP_BINDING_IDLE_MS,
  checkConvergence,
  checkInvariants,
  checkNoLeak,
  conntrackKeeps,
  keptBindingOf,
  checkRepliesReachPod,
  checkSingleArpOwner,
  type ArpReply,
  type ChaosEvidence,
  type ConntrackRule,
  type EdgePacket,
  type FlowEvidence,
} from './invariants.js';

const FLOW = 'udp alice/frontend-1 -> 8.8.8.8:7007';
const FIP = '192.168.1.100';

function timeline(n: number, lost: (seq: number) => boolean = () => false, src = FIP): Timeline {
  const packets: TimelinePacket[] = Array.from({ length: n }, (_, seq) => ({
    seq,
    t: 1000 + seq * 100,
    replied: !lost(seq),
    observedSources: lost(seq) ? [] : [src],
  }));
  return { from: 'alice/frontend-1', to: '8.8.8.8', proto: 'udp', port: 7007, intervalMs: 100, packets, unattributed: [] };
}
const flow = (t: Timeline): FlowEvidence => ({ flow: FLOW, timeline: t, finalSources: [FIP] });
const gateway: GatewayStatus = {
  namespace: 'kube-system',
  floatingIPs: [FIP],
  nodes: { 'node-1': 'Up', 'node-2': 'Up' },
  assignments: { [FIP]: 'node-1' },
  unassigned: {},
};
/** ARP replies for FIP: node-1 every 100 ms until `until1`, node-2 every 100 ms from `from2`. */
function arp(until1: number, from2: number): ArpReply[] {
  const out: ArpReply[] = [];
  for (let t = 0; t <= 3000; t += 100) {
    if (t <= until1) out.push({ t, ip: FIP, mac: 'aa:01', node: 'node-1' });
    if (t >= from2) out.push({ t: t + 1, ip: FIP, mac: 'aa:02', node: 'node-2' });
  }
  return out;
}

const clean: ChaosEvidence = {
  edgePackets: timeline(30).packets.map((p) => ({ t: p.t, flow: FLOW, src: FIP })),
  allowed: [{ flow: FLOW, from: 0, sources: [FIP] }],
  arpReplies: arp(1500, 1500),
  edgeReplies: timeline(30).packets.map((p) => ({ t: p.t + 5, flow: FLOW, seq: p.seq })),
  flows: [flow(timeline(30))],
  finalApi: { gateway, nodes: ['node-1', 'node-2'], unknownEgressIPs: [] },
};
const opts = { fenceMs: 300, arpWindowMs: 150, settledAt: 2000, boundMs: 500 };

describe('chaos invariants', () => {
  it('clean evidence passes all four', () => {
    expect(checkInvariants(clean, opts)).toEqual([]);
  });

  it('1 no-leak: a packet with the node IP while only the floating IP is allowed; a change window allows both', () => {
    const packets = [
      { t: 1000, flow: FLOW, src: FIP },
      { t: 1500, flow: FLOW, src: '192.168.1.1', sport: 4242 },
      { t: 2500, flow: FLOW, src: '10.10.10.1' },
    ];
    const allowed = [
      { flow: FLOW, from: 0, to: 2000, sources: [FIP] },
      { flow: FLOW, from: 2000, sources: [FIP, '10.10.10.1'] },
    ];
    expect(checkNoLeak(packets, allowed)).toEqual([
      { invariant: 'no-leak', at: 1500, evidence: { flow: FLOW, src: '192.168.1.1', sport: 4242, allowed: [FIP], count: 1, until: 1500 } },
    ]);
    expect(checkNoLeak([{ t: 5, flow: 'tcp other', src: FIP }], allowed)).toHaveLength(1); // no expectation: not allowed
  });

  it('1 no-leak: a run of leaked packets is one violation with a count; a new run after a quiet second is another', () => {
    const allowed = [{ flow: FLOW, from: 0, sources: [FIP] }];
    const leaked = [100, 200, 300, 2000].map((t) => ({ t, flow: FLOW, src: '10.10.10.1' }));
    expect(checkNoLeak(leaked, allowed).map((v) => [v.at, v.evidence.count, v.evidence.until])).toEqual([
      [100, 3, 300],
      [2000, 1, 2000],
    ]);
  });

  it('1 no-leak: an unattributed packet may have the source of any candidate flow, no other', () => {
    const allowed = [
      { flow: 'tcp a', from: 0, sources: [FIP] },
      { flow: 'tcp b', from: 0, sources: ['192.168.1.3'] },
    ];
    const p = (src: string) => ({ t: 10, flow: '(unattributed tcp to 8.8.8.8:7007)', src, candidates: ['tcp a', 'tcp b'] });
    expect(checkNoLeak([p(FIP), p('192.168.1.3')], allowed)).toEqual([]);
    expect(checkNoLeak([p('10.10.10.1')], allowed)).toMatchObject([
      { evidence: { src: '10.10.10.1', allowed: ['192.168.1.100', '192.168.1.3'], candidates: ['tcp a', 'tcp b'] } },
    ]);
  });

  it('2 single-arp-owner: an overlap longer than the fence breaks it, a handover within it does not', () => {
    expect(checkSingleArpOwner(arp(1500, 1300), { fenceMs: 300, windowMs: 150 })).toEqual([]);
    const v = checkSingleArpOwner(arp(2000, 1000), { fenceMs: 300, windowMs: 150 });
    expect(v).toEqual([
      { invariant: 'single-arp-owner', at: 1300, evidence: { ip: FIP, owners: ['node-1', 'node-2'], from: 1000, until: 2000, overlapMs: 1000, fenceMs: 300 } },
    ]);
  });

  it('3 convergence: lost packets after the bound, a source other than the final one, a probe stopped too early, API not converged', () => {
    const lateLoss = checkConvergence([flow(timeline(30, (s) => s === 25))], undefined, { settledAt: 2000, boundMs: 500 });
    expect(lateLoss).toMatchObject([{ invariant: 'convergence', at: 3500, evidence: { problem: 'unanswered after the bound', firstSeq: 25 } }]);
    // loss before the bound is allowed
    expect(checkConvergence([flow(timeline(30, (s) => s >= 10 && s <= 13))], undefined, { settledAt: 2000, boundMs: 500 })).toEqual([]);
    expect(checkConvergence([flow(timeline(30, () => false, '192.168.1.2'))], undefined, { settledAt: 2000, boundMs: 500 })).toMatchObject([
      { evidence: { problem: expect.stringMatching(/source other than the final/) } },
    ]);
    expect(checkConvergence([flow(timeline(10))], undefined, { settledAt: 2000, boundMs: 500 })).toMatchObject([
      { at: 2500, evidence: { problem: expect.stringMatching(/stopped too early/) } },
    ]);
    const api = {
      gateway: { ...gateway, nodes: { 'node-1': 'Up' }, assignments: {}, unassigned: { [FIP]: 'NoReadyNode' } },
      nodes: ['node-1', 'node-2'],
      unknownEgressIPs: [
        { policy: 'p', ip: FIP },
        { policy: 'q', ip: '192.168.1.150' },
      ],
    };
    expect(checkConvergence([], api, { settledAt: 2000, boundMs: 500 }).map((v) => v.evidence)).toEqual([
      { problem: 'nodes not Up in the final gateway status', nodes: { 'node-2': '(absent)' } },
      { problem: 'floating IPs not assigned in the final gateway status', ips: [FIP], reasons: { [FIP]: 'NoReadyNode' } },
      { problem: 'UnknownEgressIP for a floating IP the gateway has', policies: [{ policy: 'p', ip: FIP }] },
    ]);
  });

  it('4 replies-reach-pod: a reply left the far end but the pod never got it', () => {
    const t = timeline(30, (s) => s === 7);
    const replies = [
      { t: 1705, flow: FLOW, seq: 7 },
      { t: 1805, flow: FLOW, seq: 8 },
      { t: 9, flow: 'other', seq: 7 },
    ];
    expect(checkRepliesReachPod(replies, [flow(t)])).toEqual([
      { invariant: 'replies-reach-pod', at: 1705, evidence: { flow: FLOW, seq: 7, sentAt: 1700, replyLeftEdgeAt: 1705, seqs: [7], until: 1705 } },
    ]);
    // a lost packet whose reply never left the far end is not this invariant's business
    expect(checkRepliesReachPod(replies.slice(1), [flow(t)])).toEqual([]);
  });

  it('4 replies-reach-pod: a reply during an excuse of its flow (a fault on its path), or too late for the probe to count, is no violation', () => {
    const t = timeline(30, (s) => s === 7);
    const replies = [{ t: 1705, flow: FLOW, seq: 7 }];
    expect(checkRepliesReachPod(replies, [flow(t)], { excuses: [{ flow: FLOW, from: 1600, to: 1800 }] })).toEqual([]);
    expect(checkRepliesReachPod(replies, [flow(t)], { excuses: [{ flow: 'another flow', from: 1600, to: 1800 }] })).toHaveLength(1);
    // the probe waits 300 ms: a reply that left 5 ms after the packet, with 100 ms to reach the pod, should have made it...
    expect(checkRepliesReachPod(replies, [{ ...flow(t), timeoutMs: 300 }], { transitMs: 100 })).toHaveLength(1);
    // ...one that left 250 ms after it could not have (the probe had given up)
    expect(checkRepliesReachPod([{ t: 1950, flow: FLOW, seq: 7 }], [{ ...flow(t), timeoutMs: 300 }], { transitMs: 100 })).toEqual([]);
  });

  it('4 replies-reach-pod: a reply addressed to a source the flow may no longer leave with is not owed to the pod, unless conntrack keeps that binding', () => {
    const t = timeline(30, (s) => s === 7);
    // seq 7's reply, addressed to the egress IP, after a change took that IP from the flow (from 1700 only the node IP)
    const replies = [{ t: 1750, flow: FLOW, seq: 7, port: 40000, dst: FIP }];
    const allowed = [
      { flow: FLOW, from: 0, to: 1700, sources: [FIP] },
      { flow: FLOW, from: 1700, sources: ['192.168.1.1'] },
    ];
    expect(checkRepliesReachPod(replies, [flow(t)], { allowed })).toEqual([]);
    // the same reply while the IP was still the flow's, or addressed to the source allowed now: owed
    expect(checkRepliesReachPod([{ ...replies[0]!, t: 1690 }], [flow(t)], { allowed })).toHaveLength(1);
    expect(checkRepliesReachPod([{ ...replies[0]!, dst: '192.168.1.1' }], [flow(t)], { allowed })).toHaveLength(1);
    // a binding conntrack keeps (an ip-masq-agent change flushes nothing): its replies are owed
    const kept = (f: string, src: string, port: number | undefined) => f === FLOW && src === FIP && port === 40000;
    expect(checkRepliesReachPod(replies, [flow(t)], { allowed, kept })).toHaveLength(1);
    // without windows, without one that covers the reply's time, or without the address, nothing is exempted
    expect(checkRepliesReachPod(replies, [flow(t)])).toHaveLength(1);
    expect(checkRepliesReachPod(replies, [flow(t)], { allowed: [allowed[0]!] })).toHaveLength(1);
    expect(checkRepliesReachPod([{ t: 1750, flow: FLOW, seq: 7, port: 40000 }], [flow(t)], { allowed })).toHaveLength(1);
  });

  it('4 replies-reach-pod: a reply that left after the pod closed the connection that carried its packet (a FIN or RST on it) is not owed', () => {
    const TCP = 'tcp alice/frontend-1 -> 8.8.8.8';
    const t = timeline(30, (s) => s === 7 || s === 9);
    const tcpFlow = { ...flow(t), flow: TCP };
    const POD = '10.10.10.1';
    // chaos seed 627642974: the far end kept retransmitting seq 7's answer after the pod closed that connection (port 59412) at 1800;
    // port 40000 carried seq 3 and was closed at 1200, then reused at 1900 for seq 9, whose answer is lost
    const podSent = [
      { t: 1000, flow: TCP, src: POD, sport: 40000, syn: true, isn: 1 },
      { t: 1001, flow: TCP, src: POD, sport: 40000, seqs: [3] },
      { t: 1200, flow: TCP, src: POD, sport: 40000, fin: true },
      { t: 1700, flow: TCP, src: POD, sport: 59412, syn: true, isn: 2 },
      { t: 1701, flow: TCP, src: POD, sport: 59412, seqs: [7] },
      { t: 1800, flow: TCP, src: POD, sport: 59412, fin: true },
      { t: 1850, flow: TCP, src: POD, sport: 59412, rst: true },
      { t: 1900, flow: TCP, src: POD, sport: 40000, syn: true, isn: 3 },
      { t: 1901, flow: TCP, src: POD, sport: 40000, seqs: [9] },
      // a connection whose token segment came after a close on its port is closed only by a later FIN or RST
      { t: 1950, flow: TCP, src: POD, sport: 41000, rst: true },
      { t: 1960, flow: TCP, src: POD, sport: 41000, syn: true, isn: 4 },
      { t: 1961, flow: TCP, src: POD, sport: 41000, seqs: [11] },
    ];
    const closedAt = closedAtOf(podSent);
    expect([closedAt(TCP, 3), closedAt(TCP, 7), closedAt(TCP, 9), closedAt(TCP, 11), closedAt('other', 7)]).toEqual([
      1200,
      1800,
      undefined,
      undefined,
      undefined,
    ]);
    const reply = (at: number, seq: number, port: number) => ({ t: at, flow: TCP, seq, port });
    // after the close: not owed; before it still owed
    expect(checkRepliesReachPod([reply(1800, 7, 59412), reply(9000, 7, 59412)], [tcpFlow], { closedAt })).toEqual([]);
    expect(checkRepliesReachPod([reply(1750, 7, 59412)], [tcpFlow], { closedAt }).map((v) => v.at)).toEqual([1750]);
    // the port reused: seq 9's connection is not the closed one, its lost answer is owed (whatever port it went to after NAT)
    expect(checkRepliesReachPod([reply(1950, 9, 40000)], [tcpFlow], { closedAt }).map((v) => v.at)).toEqual([1950]);
    expect(checkRepliesReachPod([reply(9000, 7, 59412)], [tcpFlow]).map((v) => v.at)).toEqual([9000]);
    // checkInvariants reads the closes from ChaosEvidence.podSent
    const e: ChaosEvidence = { ...clean, podReplies: clean.edgeReplies.filter((r) => r.seq !== 7) };
    const seq7 = clean.edgeReplies.find((r) => r.seq === 7)!.t;
    expect(checkInvariants(e, opts).map((v) => v.invariant)).toEqual(['replies-reach-pod']);
    const closed7 = [
      { t: seq7 - 3, flow: FLOW, src: POD, sport: 40000, seqs: [7] },
      { t: seq7 - 1, flow: FLOW, src: POD, sport: 40000, rst: true },
    ];
    expect(checkInvariants({ ...e, podSent: closed7 }, opts)).toEqual([]);
  });

  it('4 replies-reach-pod: a reply that left after the far end aborted the connection at the pod (an RST arriving on it) is not owed (chaos seed 848038419)', () => {
    const STREAM = 'stream paul/frontend-2 -> 8.8.8.8';
    const t = timeline(30, (s) => s === 18);
    const streamFlow = { ...flow(t), flow: STREAM };
    const POD = '10.10.11.1';
    // seq 18 on port 35992 at 2756; the pair left its policy, the pod's retransmission left with the
    // node IP and the far end reset it: the RST arrived at the pod on port 35992 at 4441; the far end's
    // socket of the old tuple retransmitted seq 18's answer until 29465
    const podSent = [
      { t: 1000, flow: STREAM, src: POD, sport: 35992, syn: true, isn: 1 },
      { t: 2756, flow: STREAM, src: POD, sport: 35992, seqs: [18] },
      { t: 4441, flow: STREAM, src: POD, sport: 35992 },
    ];
    const resets = [{ t: 4441, flow: STREAM, port: 35992 }];
    const reply = (at: number) => ({ t: at, flow: STREAM, seq: 18, port: 35992 });
    const closedAt = closedAtOf(podSent, resets);
    expect(closedAt(STREAM, 18)).toBe(4441);
    expect(checkRepliesReachPod([reply(6105), reply(29465)], [streamFlow], { closedAt })).toEqual([]);
    // before the RST arrived the answer was still owed; without the RST, every one of them is
    expect(checkRepliesReachPod([reply(3609)], [streamFlow], { closedAt }).map((v) => v.at)).toEqual([3609]);
    expect(closedAtOf(podSent)(STREAM, 18)).toBeUndefined();
    expect(checkRepliesReachPod([reply(29465)], [streamFlow], { closedAt: closedAtOf(podSent) }).map((v) => v.at)).toEqual([29465]);
    // an RST on the port of a later connection (after a SYN) does not end the earlier one's packets
    expect(
      closedAtOf([...podSent, { t: 5000, flow: STREAM, src: POD, sport: 35992, syn: true, isn: 2 }], [{ t: 6000, flow: STREAM, port: 35992 }])(STREAM, 18),
    ).toBe(undefined);
  });

  it("4 replies-reach-pod: a reply that left after the pod's node was stopped or killed, for a packet sent before, is not owed (chaos seed 848038040)", () => {
    // the pod's node stopped at 1650: seq 7 (sent at 1700) came after the stop, seq 3 (1300) and 6 (1600) before
    const ends = [{ flow: FLOW, at: 1650 }];
    const end = connectionEndOf([flow(timeline(30))], undefined, ends);
    expect([end(FLOW, 3), end(FLOW, 6), end(FLOW, 7), end(FLOW, 99), end('other', 3)]).toEqual([1650, 1650, undefined, undefined, undefined]);
    // whichever comes first: the pod's own close or the stop
    const closedByPod = (f: string, seq: number) => (f === FLOW && seq === 3 ? 1400 : undefined);
    expect(connectionEndOf([flow(timeline(30))], closedByPod, ends)(FLOW, 3)).toBe(1400);
    // checkInvariants: seq 6's reply left the far end at 9000 (a retransmission long after the stop) and never reached the pod
    const late = { t: 9000, flow: FLOW, seq: 6 };
    const e: ChaosEvidence = { ...clean, edgeReplies: [...clean.edgeReplies, late], podReplies: clean.edgeReplies.filter((r) => r.seq !== 6) };
    expect(checkInvariants(e, opts).map((v) => [v.invariant, v.at])).toEqual([
      ['replies-reach-pod', 1605],
      ['replies-reach-pod', 9000],
    ]);
    // with the stop at 1650: the late retransmission is not owed; the first copy (1605, before the stop) still is
    expect(checkInvariants({ ...e, podConnectionEnds: ends }, opts).map((v) => [v.invariant, v.at])).toEqual([['replies-reach-pod', 1605]]);
    expect(checkInvariants({ ...e, edgeReplies: e.edgeReplies.filter((r) => r !== clean.edgeReplies[6]), podConnectionEnds: ends }, opts)).toEqual([]);
    // a stop before the packet was sent ends nothing of it
    expect(
      checkInvariants({ ...e, edgeReplies: e.edgeReplies.filter((r) => r !== clean.edgeReplies[6]), podConnectionEnds: [{ flow: FLOW, at: 1550 }] }, opts),
    ).toHaveLength(1);
  });

  it('keptBindingOf: the (flow, source, port) of the far-end packets conntrackKeeps marks, a bare packet under each of its candidates', () => {
    const STREAM = 'stream alice/frontend-1 -> 8.8.8.8';
    const packets = [
      { t: 1, flow: FLOW, src: FIP, sport: 40000 },
      { t: 2, flow: FLOW, src: FIP, sport: 40001 },
      { t: 3, flow: '(unattributed tcp to 8.8.8.8:7007)', src: '192.168.1.1', sport: 50000, candidates: [FLOW, STREAM], syn: true },
      { t: 4, flow: FLOW, src: '192.168.1.1' },
    ];
    const has = keptBindingOf(packets, (p) => (p.t === 2 || p.t === 3 || p.t === 4 ? { since: 0, change: 1 } : undefined));
    expect([
      has(FLOW, FIP, 40001),
      has(FLOW, FIP, 40000),
      has(FLOW, '192.168.1.1', 50000),
      has(STREAM, '192.168.1.1', 50000),
      has(FLOW, '192.168.1.1', undefined),
      has('other', FIP, 40001),
      has(FLOW, FIP, undefined),
    ]).toEqual([true, false, true, true, true, false, false]);
  });

  it("4 replies-reach-pod with a capture at the pod: the capture is the witness, not the probe's replied flag", () => {
    const t = timeline(30, (s) => s === 7 || s === 9);
    const replies = [
      { t: 1705, flow: FLOW, seq: 7 },
      { t: 1905, flow: FLOW, seq: 9 },
      { t: 1805, flow: FLOW, seq: 8 },
    ];
    // seq 7's reply reached the pod (the probe, starved of CPU, timed out first); seq 9's never did; seq 8's was counted by the probe but the pod capture never saw it
    const delivered = new Map([[FLOW, new Set([7])]]);
    expect(checkRepliesReachPod(replies, [flow(t)], { delivered }).map((v) => v.evidence.seqs)).toEqual([[8, 9]]);
  });

  describe("3 convergence of a stream: judged on its TCP's first try after the bound (capture on the pod)", () => {
    // a stream (writes every 100 ms from t=1000) whose TCP backed off: from seq 10 (t=2000) on the probe saw no reply in time;
    // settled at 2000, bound 500: the writes after 2500 are judged
    // every write on one connection, local port 40000
    const stream = (): Timeline => {
      const t = timeline(30, (q) => q >= 10);
      return { ...t, packets: t.packets.map((p) => ({ ...p, conn: 0, localPort: 40000 })), stream: { connections: [], survived: true, reason: '' } };
    };
    const queuedDelivered = new Map([[FLOW, new Set(Array.from({ length: 20 }, (_, i) => i + 10))]]);
    const sent = (t: number) => ({ t, flow: FLOW, src: '10.10.10.1', sport: 40000 });
    const reply = (t: number, seq: number, port = 40000) => ({ t, flow: FLOW, seq, port });

    it('first try at 3600 (back-off), answered 8 ms later: converged; the writes queued before it are judged by it', () => {
      const pod = { sent: [sent(1500), sent(3600)], replies: [reply(3608, 26)] };
      // seqs 26-29 (t 3600-3900) answered; 15-25 waited in the socket and no reply of theirs was attributed (a capture keeps 262 bytes of a segment)
      const answeredFrom26 = new Map([[FLOW, new Set([26, 27, 28, 29])]]);
      expect(checkConvergence([flow(stream())], undefined, { settledAt: 2000, boundMs: 500, delivered: answeredFrom26, pod })).toEqual([]);
    });

    it('writes after the first try are judged as usual', () => {
      const pod = { sent: [sent(3600)], replies: [reply(3608, 26)] };
      const not28 = new Map([[FLOW, new Set([26, 27, 29])]]);
      expect(checkConvergence([flow(stream())], undefined, { settledAt: 2000, boundMs: 500, delivered: not28, pod })).toMatchObject([
        { invariant: 'convergence', evidence: { problem: 'unanswered after the bound', unanswered: 1, packets: 4, firstSeq: 28 } },
      ]);
    });

    it('without a first try answered in time, every write after the bound is judged', () => {
      const pod = { sent: [], replies: [] };
      const answeredFrom26 = new Map([[FLOW, new Set([26, 27, 28, 29])]]);
      expect(checkConvergence([flow(stream())], undefined, { settledAt: 2000, boundMs: 500, delivered: answeredFrom26, pod })).toMatchObject([
        { evidence: { problem: 'unanswered after the bound', unanswered: 11, packets: 15, firstSeq: 15 } },
      ]);
    });

    it('first try after the bound answered only after a later retransmission (more than the bound later): a violation', () => {
      const pod = { sent: [sent(3600), sent(4400)], replies: [reply(4410, 29)] };
      expect(checkConvergence([flow(stream())], undefined, { settledAt: 2000, boundMs: 500, delivered: queuedDelivered, pod })).toMatchObject([
        {
          invariant: 'convergence',
          at: 3600,
          evidence: { problem: expect.stringMatching(/^the stream's first segment after the bound was not answered in time/), sentAt: 3600, answeredAt: 4410 },
        },
      ]);
    });

    it('first try never answered: a violation besides the unanswered writes', () => {
      const pod = { sent: [sent(3600)], replies: [] };
      const v = checkConvergence([flow(stream())], undefined, { settledAt: 2000, boundMs: 500, pod });
      expect(v.map((x) => x.evidence.problem)).toEqual([
        "the stream's first segment after the bound was not answered in time (capture on the pod's interface)",
        'unanswered after the bound',
      ]);
      expect(v[0]!.evidence.answeredAt).toBeNull();
    });

    it('a reply before the first try does not answer it', () => {
      const pod = { sent: [sent(3600)], replies: [reply(2600, 16)] };
      expect(checkConvergence([flow(stream())], undefined, { settledAt: 2000, boundMs: 500, delivered: queuedDelivered, pod })).toHaveLength(1);
    });

    it('a reply on another connection does not answer the first try', () => {
      const pod = { sent: [sent(3600)], replies: [reply(3608, 26, 40001)] };
      const answeredFrom26 = new Map([[FLOW, new Set([26, 27, 28, 29])]]);
      const v = checkConvergence([flow(stream())], undefined, { settledAt: 2000, boundMs: 500, delivered: answeredFrom26, pod });
      expect(v.map((x) => x.evidence.problem)).toEqual([
        "the stream's first segment after the bound was not answered in time (capture on the pod's interface)",
        'unanswered after the bound',
      ]);
    });

    it('writes that found no connection (a failed reconnect) or went on another one are judged themselves, not by the try', () => {
      const t = stream();
      // seqs 15-19: no connection (connect refused); 20-25 on a connection that was given up (port 39999)
      const packets = t.packets.map((p) =>
        p.seq >= 15 && p.seq <= 19
          ? { ...p, localPort: undefined, connectionError: 'ECONNREFUSED' }
          : p.seq >= 20 && p.seq <= 25
            ? { ...p, localPort: 39999 }
            : p,
      );
      const pod = { sent: [sent(3600)], replies: [reply(3608, 26)] };
      const answeredFrom26 = new Map([[FLOW, new Set([26, 27, 28, 29])]]);
      expect(checkConvergence([flow({ ...t, packets })], undefined, { settledAt: 2000, boundMs: 500, delivered: answeredFrom26, pod })).toMatchObject([
        { evidence: { problem: 'unanswered after the bound', unanswered: 11, packets: 15, firstSeq: 15 } },
      ]);
    });

    it("checkInvariants passes the pods' captures on: the first try judged from ChaosEvidence.podSent and podReplies", () => {
      const e: ChaosEvidence = {
        edgePackets: [],
        allowed: [],
        arpReplies: [],
        edgeReplies: [],
        flows: [flow(stream())],
        podSent: [sent(3600)],
        podReplies: [],
      };
      expect(checkInvariants(e, { fenceMs: 1000, arpWindowMs: 600, settledAt: 2000, boundMs: 500 }).map((v) => v.evidence.problem)).toContain(
        "the stream's first segment after the bound was not answered in time (capture on the pod's interface)",
      );
    });

    it('a flow that is not a stream is not judged on tries', () => {
      const pod = { sent: [sent(3600)], replies: [] };
      expect(checkConvergence([flow(timeline(30))], undefined, { settledAt: 2000, boundMs: 500, pod })).toEqual([]);
    });
  });

  it("3 convergence: a packet whose reply the pod's capture saw counts as answered", () => {
    const lost = timeline(30, (s) => s === 25);
    expect(checkConvergence([flow(lost)], undefined, { settledAt: 2000, boundMs: 500, delivered: new Map([[FLOW, new Set([25])]]) })).toEqual([]);
    expect(checkConvergence([flow(lost)], undefined, { settledAt: 2000, boundMs: 500, delivered: new Map([[FLOW, new Set([24])]]) })).toHaveLength(1);
  });

  it("3 convergence: a flow whose final state cannot be answered (pod IP to the internet) only needs its final source; other probes' connections are not its packets", () => {
    const unanswered = timeline(30, () => true, '10.10.10.1');
    unanswered.packets.forEach((p) => (p.observedSources = ['10.10.10.1']));
    expect(
      checkConvergence([{ flow: FLOW, timeline: unanswered, finalSources: ['10.10.10.1'], finalAnswered: false }], undefined, {
        settledAt: 2000,
        boundMs: 500,
      }),
    ).toEqual([]);
    expect(checkConvergence([{ flow: FLOW, timeline: unanswered, finalSources: ['10.10.10.1'] }], undefined, { settledAt: 2000, boundMs: 500 })).toMatchObject([
      { evidence: { problem: 'unanswered after the bound' } },
    ]);
    const withOthers = { ...timeline(30), unattributed: [{ t: 2900, p: 'tcp' as const, src: '192.168.1.3', dst: '8.8.8.8', sport: 4000, dport: 7007 }] };
    expect(checkConvergence([flow(withOthers)], undefined, { settledAt: 2000, boundMs: 500 })).toEqual([]);
  });

  it("3 convergence: with the far-end capture, sources after the bound are judged on its packets of the flow (a timeline can mistake another pod's segment for its own)", () => {
    const mixed = timeline(30);
    mixed.packets[27]!.observedSources.push('192.168.1.10'); // another pod's connection, same source port
    const edge = (t: number, src: string) => ({ t, flow: FLOW, src });
    expect(checkConvergence([flow(mixed)], undefined, { settledAt: 2000, boundMs: 500, edgePackets: [edge(2600, FIP), edge(3700, FIP)] })).toEqual([]);
    expect(
      checkConvergence([flow(mixed)], undefined, {
        settledAt: 2000,
        boundMs: 500,
        edgePackets: [edge(2600, FIP), edge(3000, '10.10.10.1'), edge(1000, '192.168.1.1')],
      }),
    ).toEqual([
      {
        invariant: 'convergence',
        at: 3000,
        evidence: {
          flow: FLOW,
          problem: 'seen with a source other than the final ones after the bound (far-end capture)',
          sources: { [FIP]: 1, '10.10.10.1': 1 },
          expected: [FIP],
        },
      },
    ]);
  });

  it('checkInvariants gathers every violation in time order', () => {
    const v = checkInvariants({ ...clean, edgePackets: [{ t: 2600, flow: FLOW, src: '192.168.1.1' }], arpReplies: arp(2000, 1000) }, opts);
    // the node IP after the bound also says the flow did not converge on its final source
    expect(v.map((x) => [x.invariant, x.at])).toEqual([
      ['single-arp-owner', 1300],
      ['no-leak', 2600],
      ['convergence', 2600],
    ]);
  });
});

describe('established flows across an ip-masq-agent ConfigMap change (conntrack keeps their binding)', () => {
  // the change to nonMasqueradeCIDRs 0.0.0.0/0 is written at 5000: node IP before, pod IP after (transition 3 s)
  const STREAM = 'stream default/client-1 -> 8.8.8.8';
  const UDP = 'udp default/client-1 -> 8.8.8.8';
  const NODE = '192.168.1.1';
  const POD = '10.10.10.2';
  const CHANGE = 5000;
  const allowed = [UDP, STREAM].flatMap((flow) => [
    { flow, from: 0, to: CHANGE + 3000, sources: [NODE] },
    { flow, from: CHANGE, sources: [POD] },
  ]);
  const keeps = [UDP, STREAM].map((flow) => ({ flow, keeps: [CHANGE], ends: [] }));
  /** the list restored at CHANGE instead (pod IP -> node IP): the windows and conntrack rules of the pod's stream and TCP probe */
  const TCP = 'tcp default/client-1 -> 8.8.8.8';
  const BARE = '(unattributed tcp from 10.10.10.2 to 8.8.8.8:7007)';
  const listRestored = () => ({
    back: [STREAM, TCP].flatMap((flow) => [
      { flow, from: 0, to: CHANGE + 3000, sources: [POD] },
      { flow, from: CHANGE, sources: [NODE] },
    ]),
    rules: [STREAM, TCP].map((flow) => ({ flow, keeps: [CHANGE], ends: [] })),
  });
  /** packets of `flow` from `src`:`sport` every 100 ms over [from, to) (the first a SYN when `syn`) */
  const run = (flow: string, src: string, sport: number, from: number, to: number, syn = false) =>
    Array.from({ length: (to - from) / 100 }, (_, i) => ({ t: from + i * 100, flow, src, sport, ...(syn && i === 0 ? { syn: true } : {}) }));

  it('a UDP flow and a TCP stream established before the change keep the node IP as long as they run: no violation, also after the bound', () => {
    const packets = [...run(UDP, NODE, 40001, 1000, 20_000), ...run(STREAM, NODE, 40002, 1000, 20_000, true)];
    // without the rule (the model before): both flows leak the node IP from the end of the transition on
    expect(checkNoLeak(packets, allowed).map((v) => [v.evidence.flow, v.at, v.evidence.count])).toEqual([
      [UDP, 8000, 120],
      [STREAM, 8000, 120],
    ]);
    expect(checkNoLeak(packets, allowed, keeps)).toEqual([]);
    const kept = conntrackKeeps(packets, allowed, keeps);
    expect(kept(packets.at(-1)!)).toEqual({ since: 1000, change: CHANGE });
    const flows = [UDP, STREAM].map((f) => ({
      flow: f,
      timeline: { ...timeline(1), packets: [{ seq: 0, t: 19_000, replied: true, observedSources: [NODE] }] },
      finalSources: [POD],
    }));
    expect(checkConvergence(flows, undefined, { settledAt: 5000, boundMs: 10_000, edgePackets: packets })).toHaveLength(2);
    expect(checkConvergence(flows, undefined, { settledAt: 5000, boundMs: 10_000, edgePackets: packets, kept })).toEqual([]);
  });

  it('a new TCP connection after the change with the node IP is a violation, even on a port an established one used', () => {
    const established = run(STREAM, NODE, 40002, 1000, 6000, true);
    const fresh = run(STREAM, NODE, 40777, 9000, 10_000, true);
    expect(checkNoLeak([...established, ...fresh], allowed, keeps)).toMatchObject([
      { at: 9000, evidence: { flow: STREAM, src: NODE, sport: 40777, count: 10 } },
    ]);
    // a SYN on the established connection's port after the change starts a new connection: not kept
    const reused = run(STREAM, NODE, 40002, 9000, 10_000, true);
    expect(checkNoLeak([...established, ...reused], allowed, keeps)).toMatchObject([{ at: 9000, evidence: { sport: 40002, count: 10 } }]);
  });

  it('a flow that started after the change and its transition with the node IP is a violation; one that began in the transition with it keeps it (chaos seed 2000706310)', () => {
    const late = run(UDP, NODE, 40003, 8500, 12_000);
    expect(checkNoLeak(late, allowed, keeps)).toMatchObject([{ at: 8500, evidence: { flow: UDP, src: NODE, sport: 40003, count: 35 } }]);
    // the binding is the flow's own: an established port of the stream does not carry the UDP flow
    expect(checkNoLeak([...run(STREAM, NODE, 40003, 1000, 6000, true), ...late], allowed, keeps)).toHaveLength(1);
    // begun 7 ms after the change was written, before the node applied it: the node IP, kept as long as the flow runs
    const inTransition = run(UDP, NODE, 40004, 5007, 12_007);
    expect(checkNoLeak(inTransition, allowed, keeps)).toEqual([]);
    expect(conntrackKeeps(inTransition, allowed, keeps)(inTransition.at(-1)!)).toEqual({ since: 5007, change: CHANGE });
    // begun in the transition with the new source, then the old one on the same port: a new binding (idle bound), not kept
    const flipped = [...run(UDP, POD, 40005, 5007, 5107), ...run(UDP, NODE, 40005, 5007 + BINDING_IDLE_MS + 1000, 5107 + BINDING_IDLE_MS + 1000)];
    expect(checkNoLeak(flipped, allowed, keeps)).toHaveLength(1);
  });

  it('the list restored (pod IP -> node IP): a UDP flow and a stream stuck in its SYN keep the pod IP, unanswered, and break nothing (chaos seed 1419845302)', () => {
    const back = [UDP, STREAM, TCP].flatMap((flow) => [
      { flow, from: 0, to: CHANGE + 3000, sources: [POD] },
      { flow, from: CHANGE, sources: [NODE] },
    ]);
    const rules = [UDP, STREAM, TCP].map((flow) => ({ flow, keeps: [CHANGE], ends: [] }));
    // the stream's connection began with the pod IP and never got an answer: its SYN, retransmitted
    // with back-off, is a bare SYN the far end cannot attribute (the stream or the TCP probe)
    const synRetries = [1000, 2000, 4000, 8000, 16_000, 32_000].map((t) => ({ t, flow: BARE, src: POD, sport: 39876, syn: true, candidates: [TCP, STREAM] }));
    // the TCP probe's new connections after the change: the node IP (their SYNs bare too)
    const fresh = [9000, 12_000, 19_000, 30_000].flatMap((t, i) => [
      { t, flow: BARE, src: NODE, sport: 50000 + i, syn: true, candidates: [TCP, STREAM] },
      { t: t + 1, flow: TCP, src: NODE, sport: 50000 + i },
    ]);
    const udp = run(UDP, POD, 40001, 1000, 33_000);
    const packets = [...udp, ...synRetries, ...fresh];
    // without the rule the pod IP after the transition is a leak: the SYN retransmissions and the UDP flow
    expect([...new Set(checkNoLeak(packets, back).map((v) => `${v.evidence.flow} :${v.evidence.sport}`))]).toEqual([`${UDP} :40001`, `${BARE} :39876`]);
    // with it, nothing: a SYN repeated before any answer is one binding (before this fix: a new one
    // each time), and a bare SYN gets its candidates' rule (before: none)
    expect(checkNoLeak(packets, back, rules)).toEqual([]);
    const kept = conntrackKeeps(packets, back, rules);
    expect(kept(synRetries.at(-1)!)).toEqual({ since: 1000, change: CHANGE });
    expect(kept(fresh[0]!)).toBeUndefined();
    const unanswered = (flow: string) => ({
      flow,
      timeline: { ...timeline(1), packets: [20_000, 25_000, 31_000].map((t, seq) => ({ seq, t, replied: false, observedSources: [] })) },
      finalSources: [NODE],
    });
    const answered = { ...unanswered(TCP), timeline: { ...timeline(1), packets: [{ seq: 0, t: 30_000, replied: true, observedSources: [NODE] }] } };
    const flows = [unanswered(UDP), unanswered(STREAM), answered];
    const o = { settledAt: 5000, boundMs: 10_000, edgePackets: packets };
    expect(checkConvergence(flows, undefined, o).map((v) => [v.evidence.flow, v.evidence.problem])).toEqual([
      [UDP, 'unanswered after the bound'],
      [UDP, 'seen with a source other than the final ones after the bound (far-end capture)'],
      [STREAM, 'unanswered after the bound'],
    ]);
    expect(checkConvergence(flows, undefined, { ...o, kept })).toEqual([]);
    // the TCP probe unanswered after the bound although its own packets left with the final source:
    // not stuck on the kept binding, a convergence failure
    expect(checkConvergence([unanswered(TCP)], undefined, { ...o, kept })).toMatchObject([{ evidence: { flow: TCP, problem: 'unanswered after the bound' } }]);
    // the stream's SYN retransmissions fell silent before the bound (back-off): still stuck, its
    // binding alive at the bound; but not once TCP_BINDING_IDLE_MS (a TCP binding's) went by without one
    const early = [...udp, ...synRetries.filter((p) => p.t <= 8000), ...fresh];
    const keptEarly = conntrackKeeps(early, back, rules);
    expect(checkConvergence([unanswered(STREAM)], undefined, { ...o, edgePackets: early, kept: keptEarly })).toEqual([]);
    const stale = {
      ...unanswered(STREAM),
      timeline: { ...timeline(1), packets: [{ seq: 0, t: 8000 + TCP_BINDING_IDLE_MS + 5000, replied: false, observedSources: [] }] },
    };
    expect(
      checkConvergence([stale], undefined, {
        settledAt: 8000 + TCP_BINDING_IDLE_MS,
        boundMs: 1000,
        edgePackets: synRetries.filter((p) => p.t <= 8000),
        kept: keptEarly,
      }),
    ).toMatchObject([{ evidence: { flow: STREAM, problem: 'unanswered after the bound' } }]);
    // a SYN repeated after the connection carried data is a new connection: not kept
    const reopened = [...run(UDP, POD, 40001, 1000, 2000), { t: 9000, flow: UDP, src: POD, sport: 40001, syn: true }];
    expect(conntrackKeeps(reopened, back, rules)(reopened.at(-1)!)).toBeUndefined();
    // a TCP binding outlives BINDING_IDLE_MS (conntrack's SYN_SENT entry: 120 s), not TCP_BINDING_IDLE_MS
    const slowRetry = (gap: number) => [...synRetries.filter((p) => p.t <= 8000), { ...synRetries[0]!, t: 8000 + gap }];
    const late = slowRetry(BINDING_IDLE_MS + 4000);
    expect(conntrackKeeps(late, back, rules)(late.at(-1)!)).toBeDefined();
    const later = slowRetry(TCP_BINDING_IDLE_MS + 4000);
    expect(conntrackKeeps(later, back, rules)(later.at(-1)!)).toBeUndefined();
  });

  it("the list restored: a SYN the far end never saw started the pod IP's binding at the pod (chaos seed 627642966); only an allowed start counts", () => {
    const { back, rules } = listRestored();
    const syn = (t: number, sport = 36958) => ({ t, flow: BARE, src: POD, sport, syn: true, candidates: [TCP, STREAM] });
    // the pod's SYN at 4000 (pod IP allowed) was lost before the far end; a new connection reusing the port at 13 400 finds its entry
    const edge = [syn(13_400)];
    expect(checkNoLeak(edge, back, rules)).toMatchObject([{ at: 13_400, evidence: { sport: 36958 } }]);
    expect(checkNoLeak(edge, back, rules, [syn(4000)])).toEqual([]);
    expect(conntrackKeeps(edge, back, rules, [syn(4000)])(edge[0]!)).toEqual({ since: 4000, change: CHANGE });
    // the pod packet alone is never judged, nor kept
    expect(checkNoLeak([], back, rules, [syn(4000), syn(13_400)])).toEqual([]);
    // a first SYN at the pod after the change (pod IP no longer allowed at 9000), or in its transition (6000: the node may
    // still have NATed it, both sources were allowed): nothing to keep
    expect(checkNoLeak(edge, back, rules, [syn(9000)])).toHaveLength(1);
    expect(checkNoLeak(edge, back, rules, [syn(6000)])).toHaveLength(1);
    // ...unless the far end saw the node leave new connections of the pod un-NATed just before and after it (within 2 s)
    expect(checkNoLeak([syn(5500, 36001), syn(6500, 36002), ...edge], back, rules, [syn(6000)])).toEqual([]);
    // (the SYN at 8500, with the pod IP after the transition, is a leak of its own)
    expect(checkNoLeak([syn(5500, 36001), syn(8500, 36002), ...edge], back, rules, [syn(6000)]).map((v) => v.evidence.sport)).toEqual([36002, 36958]);
    const natted = { t: 6500, flow: BARE, src: NODE, sport: 50001, syn: true, candidates: [TCP, STREAM] };
    expect(checkNoLeak([syn(5500, 36001), natted, ...edge], back, rules, [syn(6000)])).toHaveLength(1);
    // ...or unless it was lost after the node's conntrack (a fault at the switch on its node then: lossy) and the reuse
    // itself left un-NATed while the node NATed the pod's new connections (fresh SYNs with the node IP, allowed then,
    // just before and after it, within 2 s): only the un-NATed entry the SYN at 6000 made explains it (chaos seed 848038038)
    const lossy = rules.map((r) => ({ ...r, lossy: [{ from: 5000, to: 7000 }] }));
    const natSyn = (t: number, sport: number, src = NODE) => ({ ...natted, t, sport, src });
    const around = [natSyn(12_500, 50001), ...edge, natSyn(14_000, 50002)];
    expect(checkNoLeak(around, back, lossy, [syn(6000)])).toEqual([]);
    expect(conntrackKeeps(around, back, lossy, [syn(6000)])(edge[0]!)).toEqual({ since: 6000, change: CHANGE });
    const keptReuse = (edgePackets: EdgePacket[], r: ConntrackRule[] = lossy, pod = [syn(6000)]) => conntrackKeeps(edgePackets, back, r, pod)(edge[0]!);
    // not without such a fault (the node may have dropped the SYN itself: no entry), nor outside it
    expect(keptReuse(around, rules)).toBeUndefined();
    expect(
      keptReuse(
        around,
        rules.map((r) => ({ ...r, lossy: [{ from: 6500, to: 7000 }] })),
      ),
    ).toBeUndefined();
    // not without a NATed new connection on each side within 2 s, nor when one of them left un-NATed too (the node may
    // then have left every new connection un-NATed), nor with a source the pod's windows did not allow then, nor when
    // the pod's SYN was not allowed the pod IP at all
    expect(keptReuse([natSyn(12_500, 50001), ...edge])).toBeUndefined();
    expect(keptReuse([natSyn(11_000, 50001), ...edge, natSyn(14_000, 50002)])).toBeUndefined();
    expect(keptReuse([natSyn(12_500, 50001), ...edge, syn(14_000, 36003)])).toBeUndefined();
    expect(keptReuse([natSyn(12_500, 50001, '192.168.1.9'), ...edge, natSyn(14_000, 50002)])).toBeUndefined();
    expect(keptReuse(around, lossy, [syn(9000)])).toBeUndefined();
    // the pod's capture may name the connection otherwise (a token seen at the pod only): it joins on address, port and a flow in common
    expect(checkNoLeak(edge, back, rules, [{ t: 4000, flow: TCP, src: POD, sport: 36958, syn: true }])).toEqual([]);
    expect(checkNoLeak(edge, back, rules, [{ t: 4000, flow: UDP, src: POD, sport: 36958 }])).toHaveLength(1);
    // another port, or the binding gone idle (TCP_BINDING_IDLE_MS) before the reuse: a new binding, a leak
    expect(checkNoLeak(edge, back, rules, [syn(4000, 36959)])).toHaveLength(1);
    expect(checkNoLeak([syn(4000 + TCP_BINDING_IDLE_MS + 1)], back, rules, [syn(4000)])).toHaveLength(1);
  });

  it('a masqueraded SYN lost at the switch left its entry: a new connection reusing its pod port leaves with its source and port (chaos seed 848038139)', () => {
    // the change adds 8.8.8.0/24 to nonMasqueradeCIDRs at CHANGE: node IP before, pod IP after; the pod's node partitioned over [3000, 4500]
    const early = -TCP_BINDING_IDLE_MS * 2;
    const fwd = [STREAM, TCP].flatMap((flow) => [
      { flow, from: early, to: CHANGE + 3000, sources: [NODE] },
      { flow, from: CHANGE, sources: [POD] },
    ]);
    const withLoss = (lossy: { from: number; to: number }[], ends: number[] = []) => [STREAM, TCP].map((flow) => ({ flow, keeps: [CHANGE], ends, lossy }));
    const rules = withLoss([{ from: 3000, to: 4500 }]);
    const podSyn = (t: number, isn: number, sport = 44236) => ({ t, flow: BARE, src: POD, sport, syn: true, isn, candidates: [TCP, STREAM] });
    const farSyn = (t: number, isn: number, src = NODE, sport = 2572) => ({ t, flow: BARE, src, sport, syn: true, isn, candidates: [TCP, STREAM] });
    // at the pod: a SYN at 4000 (ISN 7) on port 44236, lost in the partition; a new connection's SYN on that port at 25 000 (ISN 8)
    const pod = [podSyn(4000, 7), podSyn(25_000, 8)];
    // at the far end: the second, masqueraded with the port conntrack gave the first, then its data; around it, the pod's
    // other new connections leave un-NATed, as the change says (fresh SYNs 1 s before and after)
    const reuse = [farSyn(25_001, 8), { t: 25_002, flow: TCP, src: NODE, sport: 2572 }];
    const around = (src = POD) => [farSyn(24_000, 20, src, 36000), farSyn(26_000, 21, src, 36002)];
    const edge = [...around(), ...reuse];
    // judged on its own: the SYN (unattributed) and the data (the TCP probe's) leak the node IP
    const LEAK = [25_001, 25_002];
    const leaksAt = (e: EdgePacket[], r: ConntrackRule[], p: EdgePacket[] = []) => checkNoLeak(e, fwd, r, p).map((v) => v.at);
    expect(checkNoLeak(edge, fwd, rules)).toMatchObject([
      { at: 25_001, evidence: { flow: BARE, src: NODE, sport: 2572 } },
      { at: 25_002, evidence: { flow: TCP, src: NODE, sport: 2572 } },
    ]);
    expect(checkNoLeak(edge, fwd, rules, pod)).toEqual([]);
    expect(conntrackKeeps(edge, fwd, rules, pod)(reuse[1]!)).toEqual({ since: 4000, change: CHANGE });
    // the lost SYN retransmitted (still lost): the binding starts at the first; the reuse's own SYN retransmitted: the same
    expect(conntrackKeeps(edge, fwd, rules, [podSyn(3100, 7), podSyn(4000, 7), podSyn(24_000, 8), podSyn(25_000, 8)])(reuse[0]!)).toEqual({
      since: 3100,
      change: CHANGE,
    });
    // not when the node left the pod's other new connections with this source too (it may have gone on masquerading
    // every new connection: a leak of its own), nor without a fresh SYN on each side within 2 s
    expect(leaksAt([...around(NODE), ...reuse], rules, pod)).toEqual([24_000, ...LEAK]);
    expect(leaksAt(reuse, rules, pod)).toEqual(LEAK);
    expect(leaksAt([around()[0]!, ...reuse], rules, pod)).toEqual(LEAK);
    expect(leaksAt([farSyn(22_900, 20, POD, 36000), around()[1]!, ...reuse], rules, pod)).toEqual(LEAK);
    // the connections next to it reusing ports too (masqueraded, lost SYNs of their own): one treated right on each side will do
    const reuseNext = [farSyn(25_200, 30, NODE, 2600), farSyn(24_800, 31, NODE, 2601)];
    const lostNext = [podSyn(4100, 32, 44240), podSyn(24_800, 31, 44240), podSyn(4200, 33, 44242), podSyn(25_200, 30, 44242)];
    expect(leaksAt([...edge, ...reuseNext], rules, [...pod, ...lostNext])).toEqual([]);
    // not without a fault at the switch on the pod's node when it left (the node may have dropped it itself: no entry)
    expect(leaksAt(edge, withLoss([]), pod)).toEqual(LEAK);
    expect(leaksAt(edge, withLoss([{ from: 4500, to: 6000 }]), pod)).toEqual(LEAK);
    // ...the fault of another pod's node does not count: the far end's SYN may be that pod's too (a candidate), the lost one is not
    const OTHER_TCP = 'tcp default/client-2 -> 8.8.8.8';
    const fwd2 = [...fwd, { flow: OTHER_TCP, from: early, to: CHANGE + 3000, sources: [NODE] }, { flow: OTHER_TCP, from: CHANGE, sources: ['10.10.11.2'] }];
    const rules2 = [...withLoss([]), { flow: OTHER_TCP, keeps: [CHANGE], ends: [], lossy: [{ from: 3000, to: 4500 }] }];
    const wide = (p: EdgePacket) => ({ ...p, candidates: [OTHER_TCP, TCP, STREAM] });
    expect(checkNoLeak([...edge.slice(0, 2), wide(reuse[0]!), reuse[1]!], fwd2, rules2, pod).map((v) => v.at)).toEqual(LEAK);
    // not when the far end saw the earlier SYN (under another port: another entry), nor when the pod's copy of the
    // reuse is not known (another ISN), nor from another pod port, nor when the reuse left with the pod IP (the un-NATed case)
    expect(leaksAt([farSyn(4001, 7, NODE, 3000), ...edge], rules, pod)).toEqual(LEAK);
    expect(leaksAt(edge, rules, [podSyn(4000, 7), podSyn(25_000, 9)])).toEqual(LEAK);
    expect(leaksAt(edge, rules, [podSyn(4000, 7, 44237), podSyn(25_000, 8)])).toEqual(LEAK);
    // not when the port carried another segment in between (the connection went on: not an entry waiting in SYN_SENT),
    // nor past a SYN in between that no fault could lose (the walk back stops there)
    expect(leaksAt(edge, rules, [podSyn(4000, 7), { t: 4100, flow: TCP, src: POD, sport: 44236 }, podSyn(25_000, 8)])).toEqual(LEAK);
    expect(leaksAt(edge, rules, [podSyn(4000, 7), podSyn(4600, 9), podSyn(25_000, 8)])).toEqual(LEAK);
    // not when the flow's entries were deleted in between (a policy change, the node stopped), nor when the lost SYN's
    // windows did not allow the reuse's source (it left after the change), nor after TCP_BINDING_IDLE_MS
    expect(leaksAt(edge, withLoss([{ from: 3000, to: 4500 }], [10_000]), pod)).toEqual(LEAK);
    expect(leaksAt(edge, withLoss([{ from: 8000, to: 10_000 }]), [podSyn(9000, 7), podSyn(25_000, 8)])).toEqual(LEAK);
    const old = 25_001 - TCP_BINDING_IDLE_MS - 1;
    expect(leaksAt(edge, withLoss([{ from: old - 1, to: 4500 }]), [podSyn(old, 7), podSyn(25_000, 8)])).toEqual(LEAK);
    expect(leaksAt(edge, withLoss([{ from: old - 1, to: 4500 }]), [podSyn(old + 2, 7), podSyn(25_000, 8)])).toEqual([]);
  });

  it('the list restored: a TCP probe connection that reused a port of an unanswered pod-IP SYN stays unanswered on that entry; the rest must converge (chaos seed 627642966)', () => {
    const { back, rules } = listRestored();
    const syn = (t: number, src: string, sport: number, isn: number) => ({ t, flow: BARE, src, sport, syn: true, isn, candidates: [TCP, STREAM] });
    // one connection every 200 ms from 16 000; the one at 16 400 (ISN 3) reused port 44144, whose SYN (ISN 9) went out with the pod IP at 4000, unanswered
    const packets = [16_000, 16_200, 16_400, 16_600].map((t, seq) => ({ seq, t, replied: t !== 16_400, observedSources: [] }));
    const probe = { flow: TCP, timeline: { ...timeline(1), proto: 'tcp' as const, intervalMs: 200, packets }, finalSources: [NODE] };
    // what left the pod: each connection's SYN, from the pod IP and the pod's own port
    const podSyns = [syn(4000, POD, 44144, 9), syn(16_000, POD, 33000, 1), syn(16_200, POD, 33001, 2), syn(16_400, POD, 44144, 3), syn(16_600, POD, 33002, 4)];
    // an answered connection's data segment carries the probe's token: attributed to the flow
    const data = (t: number, sport: number) => ({ t, flow: TCP, src: NODE, sport });
    const edge = [
      syn(4000, POD, 44144, 9),
      syn(16_000, NODE, 50000, 1),
      data(16_001, 50000),
      syn(16_200, NODE, 50001, 2),
      data(16_201, 50001),
      syn(16_401, POD, 44144, 3),
      syn(16_600, NODE, 50002, 4),
    ];
    const kept = conntrackKeeps(edge, back, rules);
    expect(kept(edge[5]!)).toEqual({ since: 4000, change: CHANGE });
    const o = { settledAt: 5000, boundMs: 10_000, edgePackets: edge, pod: { sent: podSyns, replies: [] } };
    expect(checkConvergence([probe], undefined, o)).toMatchObject([{ evidence: { problem: 'unanswered after the bound', unanswered: 1, firstSeq: 2 } }]);
    expect(checkConvergence([probe], undefined, { ...o, kept })).toEqual([]);
    // without the pod's capture its connection is not known: judged
    expect(checkConvergence([probe], undefined, { ...o, pod: undefined, kept })).toHaveLength(1);
    // a connection of its own left unanswered with the node IP (16 600) is still a failure
    const lost = { ...probe, timeline: { ...probe.timeline, packets: packets.map((p) => ({ ...p, replied: p.t === 16_000 || p.t === 16_200 })) } };
    expect(checkConvergence([lost], undefined, { ...o, kept })).toMatchObject([{ evidence: { unanswered: 1, firstSeq: 3 } }]);
    // its connection is the pod's first SYN in [t - 5, t + interval/2) with a new ISN: a retransmission of an earlier
    // connection's SYN (ISN 9 again) there is not it, and a kept SYN of another connection does not excuse it
    const retrans = [...podSyns.slice(0, 3), syn(16_401, POD, 44144, 9), syn(16_430, POD, 33003, 5), podSyns[4]!];
    const edgeRetrans = [...edge.slice(0, 5), syn(16_402, POD, 44144, 9), syn(16_431, NODE, 50003, 5), edge[6]!];
    const o2 = { ...o, edgePackets: edgeRetrans, kept: conntrackKeeps(edgeRetrans, back, rules), pod: { sent: retrans, replies: [] } };
    expect(checkConvergence([probe], undefined, o2)).toMatchObject([{ evidence: { unanswered: 1, firstSeq: 2 } }]);
    // two first SYNs in the window: not known which is its own, judged
    const two = [...podSyns, syn(16_450, POD, 33004, 6)];
    expect(checkConvergence([probe], undefined, { ...o, kept, pod: { sent: two, replies: [] } })).toHaveLength(1);
  });

  it('a binding ends with a policy change (its conntrack flushed) or after BINDING_IDLE_MS without a packet; a pod IP no window allowed at its start is never kept', () => {
    const packets = run(UDP, NODE, 40001, 1000, 12_000);
    // kept across the change until its entry is deleted at 9000: the next packet makes a new one, with a source no longer allowed
    expect(checkNoLeak(packets, allowed, [{ flow: UDP, keeps: [CHANGE], ends: [9000] }])).toMatchObject([{ at: 9000, evidence: { count: 30 } }]);
    // deleted at 7000, in the change's transition: the new entry was made before the node applied the change (the far end
    // saw the old source), and is kept as long as the flow runs
    expect(checkNoLeak(packets, allowed, [{ flow: UDP, keeps: [CHANGE], ends: [7000] }])).toEqual([]);
    const idle = [...run(UDP, NODE, 40001, 1000, 2000), ...run(UDP, NODE, 40001, 2000 + BINDING_IDLE_MS, 2100 + BINDING_IDLE_MS)];
    expect(checkNoLeak(idle, allowed, keeps)).toMatchObject([{ at: 2000 + BINDING_IDLE_MS, evidence: { count: 1 } }]);
    // a pod IP to the internet before anything allowed it: a leak then, and its binding keeps nothing after
    const leak = run(UDP, POD, 40004, 1000, 9000);
    const onlyNode = [
      { flow: UDP, from: 0, to: CHANGE + 3000, sources: [NODE] },
      { flow: UDP, from: CHANGE, sources: [NODE, '192.168.1.9'] },
    ];
    expect(checkNoLeak(leak, onlyNode, keeps)).toMatchObject([{ at: 1000, evidence: { src: POD, count: 80 } }]);
  });
});
