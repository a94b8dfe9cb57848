/**
 * Chaos regression: a take of two floating IPs must not bring back a replicated binding to the one
 * that the flow's policy no longer uses.
 *
 * Found by: node dist/bench/chaos-explore.js (session 35, base seed 848038272), seed 848038283
 * (convergence; 3 of 3 replays on 1d70c2d, 1 of 1 on 9720d21). node-3 is killed: its
 * 192.168.1.102 moves to node-1, the holder of .100. chaos-2 (.102, 8.8.8.0/24) is created for
 * paul/frontend-2 (node-2), whose seed policy SNATs it through .100: node-1 SNATs the pod's stream
 * to .102 and conntrackd replicates the binding to its peers. chaos-2 is deleted while node-1
 * cannot see it (paused); node-2 takes .100 and .102 and commits its external cache (`conntrackd
 * -c`, all of it, replacing entries with the same tuple). The purge after the commit only removed
 * bindings of IPs node-2 does NOT hold, so the stream's binding to .102 stayed, for a pair node-2
 * now SNATs to .100: its guard dropped every segment to the end of the run (316 unanswered).
 * Fixed: each commit shell of a take also deletes the bindings it brought to a held IP that is not
 * their flows' (agent/gateway/render.ts misboundBindings).
 *
 * The explorer shrank the 8 steps to 5 on 9720d21 (node-3 killed 5.1 s; chaos-2 created, the
 * controller restarted, node-1 paused 0.6 s after chaos-2's deletion, the controller restarted);
 * replayed with node-3 dead across the pause, 9720d21 passed: node-1 must not see the deletion,
 * which the controller restart delayed in one run and not in the other. Here, by hand, 3 steps:
 * node-3 stays dead across node-1's pause (killed for 18 s: with it back, it took .100 in one run
 * and the bug's take did not happen), so node-2 takes all of node-1's IPs; node-1 is paused 0.2 s
 * BEFORE chaos-2's deletion, so it never rebinds the pair; node-2 takes the IPs after the deletion
 * (the lease expires 0.6 s after the pause at the soonest). Judged on the far end's capture, the
 * ARP observer and the pod's interface (replay-kit.ts bounds): the premises are that node-1
 * answered for .102 and the far end saw the stream from .102 while chaos-2 existed, that node-2
 * answered for .102 only after the deletion, and holds .100 and .102 at the end; then the stream
 * leaves with .100 once the pause is over, and every invariant holds.
 */
import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../../harness/chaos/schedule.js';
import { topologyFromArg } from '../../harness/topology/load.js';
import { REGRESSION_TRANSITION_MS, replayRegression } from './replay-kit.js';

const FLOW = 'stream paul/frontend-2 -> 8.8.8.8';
const POLICY_STEP = 1;
const PAUSE_STEP = 2;
const schedule = parseSchedule({
  version: 1,
  topology: 'default',
  steps: [
    { kind: 'node-kill', node: 'node-3', at: 2437, durationMs: 18000 },
    { kind: 'policy', policy: 'chaos-2', action: 'create', pod: 'paul/frontend-2', destinations: ['8.8.8.0/24'], at: 10000, durationMs: 2200 },
    { kind: 'node-pause', node: 'node-1', at: 12000, durationMs: 9600 },
  ],
});

describe('chaos regression: a take of two floating IPs while a deleted policy left a binding to one of them', () => {
  it("the pod's stream leaves with its policy's IP after the take: the commit did not keep the binding to the other one", async () => {
    const run = await replayRegression(schedule, topologyFromArg('default'));
    const created = run.actions.find((a) => a.step === POLICY_STEP && a.phase === 'do')!;
    const deleted = run.actions.find((a) => a.step === POLICY_STEP && a.phase === 'undo')!;
    const resumed = run.actions.find((a) => a.step === PAUSE_STEP && a.phase === 'undo')!;
    const packets = run.evidence.edgePackets.filter((p) => p.flow === FLOW);

    // premises: node-1 held .102 (node-3's, moved when it was killed) and SNATed the stream to it
    // while chaos-2 existed; node-2 holds both .100 and .102 at the end (node-3, still dead, could
    // take neither from the paused node-1)
    const owner = (ip: string, t: number) => run.evidence.arpReplies.filter((r) => r.ip === ip && r.t <= t).at(-1)?.node;
    expect(owner('192.168.1.102', deleted.startedAt)).toBe('node-1');
    expect(packets.some((p) => p.src === '192.168.1.102' && p.t > created.endedAt && p.t < deleted.startedAt)).toBe(true);
    // ... and node-2 took .102 after the deletion (its plan without chaos-2: .100 for the pair)
    const took = run.evidence.arpReplies.find((r) => r.ip === '192.168.1.102' && r.node === 'node-2');
    expect(took && took.t > deleted.endedAt).toBe(true);
    const holders = run.evidence.finalApi?.gateway.assignments ?? {};
    expect({ '192.168.1.100': holders['192.168.1.100'], '192.168.1.102': holders['192.168.1.102'] }).toEqual({
      '192.168.1.100': 'node-2',
      '192.168.1.102': 'node-2',
    });

    // once node-1 is back and the transition is over, the stream leaves with .100, and is answered
    const after = packets.filter((p) => p.t >= resumed.endedAt + REGRESSION_TRANSITION_MS);
    expect(after.length).toBeGreaterThan(10);
    expect([...new Set(after.map((p) => p.src))]).toEqual(['192.168.1.100']);
    expect(run.violations).toEqual([]);
  }, 300_000);
});
