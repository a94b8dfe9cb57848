import { describe, expect, it } from 'vitest';
import type { Timeline, TimelinePacket } from '../probe/timeline.js';
import type { GatewayStatus } from '../cluster/status.js';
import { checkConvergence, checkInvariants, checkNoLeak, checkRepliesReachPod, checkSingleArpOwner, type ArpReply, type ChaosEvidence, type FlowEvidence } from './invariants.js';

const FLOW = 'udp alice/frontend-1 -> 8.8.8.8:7007';
const FIP = '192.168.1.100';

function timeline(n: number, lost: (seq: number) => boolean = () => false, src = FIP): Timeline {
  const packets: TimelinePacket[] = Array.from({ length: n }, (_, seq) => ({ seq, t: 1000 + seq * 100, replied: !lost(seq), observedSources: lost(seq) ? [] : [src] }));
  return { from: 'alice/frontend-1', to: '8.8.8.8', proto: 'udp', port: 7007, intervalMs: 100, packets, unattributed: [] };
}
const flow = (t: Timeline): FlowEvidence => ({ flow: FLOW, timeline: t, finalSources: [FIP] });
const gateway: GatewayStatus = { namespace: 'kube-system', floatingIPs: [FIP], nodes: { 'node-1': 'Up', 'node-2': 'Up' }, assignments: { [FIP]: 'node-1' }, unassigned: {} };
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
    expect(checkNoLeak(packets, allowed)).toEqual([{ invariant: 'no-leak', at: 1500, evidence: { flow: FLOW, src: '192.168.1.1', sport: 4242, allowed: [FIP], count: 1, until: 1500 } }]);
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
    expect(checkNoLeak([p('10.10.10.1')], allowed)).toMatchObject([{ evidence: { src: '10.10.10.1', allowed: ['192.168.1.100', '192.168.1.3'], candidates: ['tcp a', 'tcp b'] } }]);
  });

  it('2 single-arp-owner: an overlap longer than the fence breaks it, a handover within it does not', () => {
    expect(checkSingleArpOwner(arp(1500, 1300), { fenceMs: 300, windowMs: 150 })).toEqual([]);
    const v = checkSingleArpOwner(arp(2000, 1000), { fenceMs: 300, windowMs: 150 });
    expect(v).toEqual([{ invariant: 'single-arp-owner', at: 1300, evidence: { ip: FIP, owners: ['node-1', 'node-2'], from: 1000, until: 2000, overlapMs: 1000, fenceMs: 300 } }]);
  });

  it('3 convergence: lost packets after the bound, a source other than the final one, a probe stopped too early, API not converged', () => {
    const lateLoss = checkConvergence([flow(timeline(30, (s) => s === 25))], undefined, { settledAt: 2000, boundMs: 500 });
    expect(lateLoss).toMatchObject([{ invariant: 'convergence', at: 3500, evidence: { problem: 'unanswered after the bound', firstSeq: 25 } }]);
    // loss before the bound is allowed
    expect(checkConvergence([flow(timeline(30, (s) => s >= 10 && s <= 13))], undefined, { settledAt: 2000, boundMs: 500 })).toEqual([]);
    expect(checkConvergence([flow(timeline(30, () => false, '192.168.1.2'))], undefined, { settledAt: 2000, boundMs: 500 })).toMatchObject([{ evidence: { problem: expect.stringMatching(/source other than the final/) } }]);
    expect(checkConvergence([flow(timeline(10))], undefined, { settledAt: 2000, boundMs: 500 })).toMatchObject([{ at: 2500, evidence: { problem: expect.stringMatching(/stopped too early/) } }]);
    const api = { gateway: { ...gateway, nodes: { 'node-1': 'Up' }, assignments: {}, unassigned: { [FIP]: 'NoReadyNode' } }, nodes: ['node-1', 'node-2'], unknownEgressIPs: [{ policy: 'p', ip: FIP }, { policy: 'q', ip: '192.168.1.150' }] };
    expect(checkConvergence([], api, { settledAt: 2000, boundMs: 500 }).map((v) => v.evidence)).toEqual([
      { problem: 'nodes not Up in the final gateway status', nodes: { 'node-2': '(absent)' } },
      { problem: 'floating IPs not assigned in the final gateway status', ips: [FIP], reasons: { [FIP]: 'NoReadyNode' } },
      { problem: 'UnknownEgressIP for a floating IP the gateway has', policies: [{ policy: 'p', ip: FIP }] },
    ]);
  });

  it('4 replies-reach-pod: a reply left the far end but the pod never got it', () => {
    const t = timeline(30, (s) => s === 7);
    const replies = [{ t: 1705, flow: FLOW, seq: 7 }, { t: 1805, flow: FLOW, seq: 8 }, { t: 9, flow: 'other', seq: 7 }];
    expect(checkRepliesReachPod(replies, [flow(t)])).toEqual([{ invariant: 'replies-reach-pod', at: 1705, evidence: { flow: FLOW, seq: 7, sentAt: 1700, replyLeftEdgeAt: 1705, seqs: [7], until: 1705 } }]);
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

  it('4 replies-reach-pod with a capture at the pod: the capture is the witness, not the probe\'s replied flag', () => {
    const t = timeline(30, (s) => s === 7 || s === 9);
    const replies = [{ t: 1705, flow: FLOW, seq: 7 }, { t: 1905, flow: FLOW, seq: 9 }, { t: 1805, flow: FLOW, seq: 8 }];
    // seq 7's reply reached the pod (the probe, starved of CPU, timed out first); seq 9's never did; seq 8's was counted by the probe but the pod capture never saw it
    const delivered = new Map([[FLOW, new Set([7])]]);
    expect(checkRepliesReachPod(replies, [flow(t)], { delivered }).map((v) => v.evidence.seqs)).toEqual([[8, 9]]);
  });

  it('3 convergence: a packet whose reply the pod\'s capture saw counts as answered', () => {
    const lost = timeline(30, (s) => s === 25);
    expect(checkConvergence([flow(lost)], undefined, { settledAt: 2000, boundMs: 500, delivered: new Map([[FLOW, new Set([25])]]) })).toEqual([]);
    expect(checkConvergence([flow(lost)], undefined, { settledAt: 2000, boundMs: 500, delivered: new Map([[FLOW, new Set([24])]]) })).toHaveLength(1);
  });

  it('3 convergence: a flow whose final state cannot be answered (pod IP to the internet) only needs its final source; other probes\' connections are not its packets', () => {
    const unanswered = timeline(30, () => true, '10.10.10.1');
    unanswered.packets.forEach((p) => (p.observedSources = ['10.10.10.1']));
    expect(checkConvergence([{ flow: FLOW, timeline: unanswered, finalSources: ['10.10.10.1'], finalAnswered: false }], undefined, { settledAt: 2000, boundMs: 500 })).toEqual([]);
    expect(checkConvergence([{ flow: FLOW, timeline: unanswered, finalSources: ['10.10.10.1'] }], undefined, { settledAt: 2000, boundMs: 500 })).toMatchObject([{ evidence: { problem: 'unanswered after the bound' } }]);
    const withOthers = { ...timeline(30), unattributed: [{ t: 2900, p: 'tcp' as const, src: '192.168.1.3', dst: '8.8.8.8', sport: 4000, dport: 7007 }] };
    expect(checkConvergence([flow(withOthers)], undefined, { settledAt: 2000, boundMs: 500 })).toEqual([]);
  });

  it('3 convergence: with the far-end capture, sources after the bound are judged on its packets of the flow (a timeline can mistake another pod\'s segment for its own)', () => {
    const mixed = timeline(30);
    mixed.packets[27]!.observedSources.push('192.168.1.10'); // another pod's connection, same source port
    const edge = (t: number, src: string) => ({ t, flow: FLOW, src });
    expect(checkConvergence([flow(mixed)], undefined, { settledAt: 2000, boundMs: 500, edgePackets: [edge(2600, FIP), edge(3700, FIP)] })).toEqual([]);
    expect(checkConvergence([flow(mixed)], undefined, { settledAt: 2000, boundMs: 500, edgePackets: [edge(2600, FIP), edge(3000, '10.10.10.1'), edge(1000, '192.168.1.1')] })).toEqual([
      { invariant: 'convergence', at: 3000, evidence: { flow: FLOW, problem: 'seen with a source other than the final ones after the bound (far-end capture)', sources: { [FIP]: 1, '10.10.10.1': 1 }, expected: [FIP] } },
    ]);
  });

  it('checkInvariants gathers every violation in time order', () => {
    const v = checkInvariants({ ...clean, edgePackets: [{ t: 2600, flow: FLOW, src: '192.168.1.1' }], arpReplies: arp(2000, 1000) }, opts);
    // the node IP after the bound also says the flow did not converge on its final source
    expect(v.map((x) => [x.invariant, x.at])).toEqual([['single-arp-owner', 1300], ['no-leak', 2600], ['convergence', 2600]]);
  });
});
