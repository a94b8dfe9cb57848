/**
 * Chaos regression (issue 15): a holder drops a forwarded pod's flow for good after one of the pod's
 * two policies, both held by it, is deleted.
 *
 * Found by: node dist/bench/chaos-explore.js (session 28, base seed 848037955), seed 848037965
 * (convergence, confirmed by a re-run). paul/frontend-2 on node-2 is selected by the seed's policy
 * `egress` (8.8.8.0/24 via 192.168.1.100) and by chaos-2 (10.0.0.0/8, 0.0.0.0/0 via 192.168.1.102,
 * first by name). The faults left both IPs on node-3 (node-1 stopped, node-2 cut off outbound). The
 * pod's UDP flow to 8.8.8.8 (one source port, a packet every 100 ms) was SNATed by node-3 to .102.
 * When chaos-2 was deleted, node-3's entry kept that SNAT (NAT is decided on a flow's first packet;
 * the packets kept the entry alive), and node-3's guard, which allows only .100 for the pair now,
 * dropped every packet: nothing of the flow reached 8.8.8.8 from 1 s after the deletion to the end
 * of the run (node-3: its egress SNAT counter 136, its guard's drop counter 134; its conntrack entry
 * `udp src=10.10.11.1 dst=8.8.8.8 ... dst=192.168.1.102 [ASSURED]`). Fixed: the holder deletes a
 * forwarded pair's bindings to an IP its policy no longer SNATs it to while it keeps that IP
 * (agent/gateway/render.ts forwardedFlushArgs; docs/gateway.md, "Fail-closed").
 *
 * The explorer's 8 steps shrunk by hand to the 3 that matter (session 29): node-2 cut off outbound
 * and node-1 stopped, so both IPs end up on node-3; chaos-2 created while they are there, then
 * deleted. Fails on 6433743 (the agent before the fix: 0 packets of the flow reached 8.8.8.8 after
 * the deletion, 2 runs of 2), passes on the fix (31-33 s, against 47-48 s for the 8 steps). Judged
 * on the far end's capture: the flow left with chaos-2's IP while chaos-2 was there (the premise), and with
 * egress's IP again after its deletion; every invariant holds, convergence within the regression
 * bound (replay-kit.ts).
 */
import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../../harness/chaos/schedule.js';
import { topologyFromArg } from '../../harness/topology/load.js';
import { REGRESSION_TRANSITION_MS, replayRegression } from './replay-kit.js';

const FLOW = 'udp paul/frontend-2 -> 8.8.8.8';
const schedule = parseSchedule({
  version: 1,
  topology: 'default',
  steps: [
    { kind: 'partition', node: 'node-2', direction: 'outbound', at: 500, durationMs: 7000 },
    { kind: 'node-stop', node: 'node-1', at: 1000, durationMs: 3000 },
    { kind: 'policy', policy: 'chaos-2', action: 'create', pod: 'paul/frontend-2', destinations: ['10.0.0.0/8', '0.0.0.0/0'], at: 3500, durationMs: 6000 },
  ],
});

describe('chaos regression: a forwarded flow on a holder after one of its two policies there is deleted', () => {
  it("leaves with the remaining policy's egress IP again: the holder deletes the binding to the deleted policy's IP", async () => {
    const topology = topologyFromArg('default');
    const run = await replayRegression(schedule, topology);
    const created = run.actions.find((a) => a.step === 2 && a.phase === 'do')!;
    const deleted = run.actions.find((a) => a.step === 2 && a.phase === 'undo')!;
    const packets = run.evidence.edgePackets.filter((p) => p.flow === FLOW);

    // the premise: both IPs on one node that is not the pod's (node-2), and the flow SNATed to
    // chaos-2's IP there while chaos-2 was in force
    const holders = run.evidence.finalApi?.gateway.assignments ?? {};
    expect(holders['192.168.1.100']).toBeDefined();
    expect(holders['192.168.1.102']).toBe(holders['192.168.1.100']);
    expect(holders['192.168.1.100']).not.toBe('node-2');
    const during = packets.filter((p) => p.t > created.endedAt + REGRESSION_TRANSITION_MS && p.t < deleted.startedAt);
    expect(during.map((p) => p.src)).toContain('192.168.1.102');

    // after the deletion and its transition: egress's IP, and only it
    const after = packets.filter((p) => p.t >= deleted.endedAt + REGRESSION_TRANSITION_MS);
    expect(after.length).toBeGreaterThan(10);
    expect([...new Set(after.map((p) => p.src))]).toEqual(['192.168.1.100']);
    expect(run.violations).toEqual([]);
  }, 300_000);
});
