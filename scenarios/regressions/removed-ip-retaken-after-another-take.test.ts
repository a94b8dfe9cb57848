/**
 * Regression (session 39): a floating IP's holder loses, for good, the bindings of the connections
 * it carried for other nodes' pods when the IP leaves the gateway, the holder takes another IP
 * meanwhile, and the IP comes back to it.
 *
 * Found by: a full run's failure of regressions/removed-ip-replicated-binding (runs 228 and 231,
 * "the stream's first segment after the bound was not answered in time"), made certain here by one
 * more step: 192.168.1.103 added while 192.168.1.100 is out of the gateway, so that .100's holder
 * (which then holds nothing) takes .103, and removed before .100 comes back to it.
 * paul/frontend-2 on node-2 streams TCP to 8.8.8.8 through .100's holder. The holder's bindings of
 * that stream are in its conntrackd's INTERNAL cache, never in its external one (its peers have
 * copies). The release left them in its kernel, but the commit of the .103 take purged the bindings
 * of every floating IP it does not hold (.100 included): when .100 came back to it, nothing gave the
 * stream's binding back; the far end's segments to .100 were dropped and the stream was not answered
 * again (before the fix: 2 runs of 2, 28 segments unanswered to the end of the run). Fixed: a
 * release keeps the holder's bindings of the pairs it forwarded to the IP, as it kept its own pods'
 * (agent/node/gateway-module.ts keepReleased), and the next take of the IP loads them after the
 * replicated ones (conntrack-sync.ts keptBindingsAt: only pairs the take forwards to that same IP).
 *
 * Judged on the far end's capture, the pod's interface and ARP on the segment (replay-kit.ts bounds).
 */
import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../../harness/chaos/schedule.js';
import { topologyFromArg } from '../../harness/topology/load.js';
import { REGRESSION_TRANSITION_MS, replayRegression } from './replay-kit.js';

const FLOW = 'stream paul/frontend-2 -> 8.8.8.8';
const schedule = parseSchedule({
  version: 1,
  topology: 'default',
  steps: [
    { kind: 'partition', node: 'node-2', direction: 'inbound', at: 1000, durationMs: 5000 },
    { kind: 'floating-ip', action: 'remove', ip: '192.168.1.100', at: 2500, durationMs: 6000 },
    { kind: 'floating-ip', action: 'add', ip: '192.168.1.103', at: 3500, durationMs: 3000 },
  ],
});

describe('chaos regression: a floating IP out of the gateway while its holder takes another, then back to that holder', () => {
  it("the stream the holder forwarded for another node's pod is answered again: the release kept its binding", async () => {
    const run = await replayRegression(schedule, topologyFromArg('default'));
    const removed = run.actions.find((a) => a.step === 1 && a.phase === 'do')!;
    const back = run.actions.find((a) => a.step === 1 && a.phase === 'undo')!;
    const added = run.actions.find((a) => a.step === 2 && a.phase === 'do')!;
    const gone = run.actions.find((a) => a.step === 2 && a.phase === 'undo')!;
    const replies = run.evidence.arpReplies;
    const answeredFor = (ip: string, from: number, to: number) => new Set(replies.filter((r) => r.ip === ip && r.t >= from && r.t < to).map((r) => r.node));

    // the premise, from ARP on the segment: one node answered for .100 before it left the gateway,
    // for .103 while it was there, and for .100 again once it was back; not the pod's node
    const before = answeredFor('192.168.1.100', 0, removed.startedAt);
    expect(before.size).toBe(1);
    const holder = [...before][0]!;
    expect(holder).not.toBe('node-2');
    expect(answeredFor('192.168.1.103', added.startedAt, gone.startedAt)).toEqual(new Set([holder]));
    expect(answeredFor('192.168.1.100', back.startedAt, Number.POSITIVE_INFINITY)).toEqual(new Set([holder]));
    expect(run.evidence.finalApi?.gateway.assignments['192.168.1.100']).toBe(holder);

    // once .100 is back and its transition is over, the stream leaves with .100 and is answered
    const packets = run.evidence.edgePackets.filter((p) => p.flow === FLOW);
    const after = packets.filter((p) => p.t >= back.endedAt + REGRESSION_TRANSITION_MS);
    expect(after.length).toBeGreaterThan(10);
    expect([...new Set(after.map((p) => p.src))]).toEqual(['192.168.1.100']);
    expect(run.violations).toEqual([]);
  }, 300_000);
});
