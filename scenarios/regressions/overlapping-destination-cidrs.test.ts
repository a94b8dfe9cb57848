/**
 * Chaos regression (issue 15): a policy whose destinationCIDRs overlap is programmed, not ignored.
 *
 * Found by: egresslab chaos --seed 2 (8 steps), shrunk by hand to its one policy step, kept (never
 * undone: the bug shows while the policy exists, its deletion is not needed):
 *   +0.500 s (kept): policy chaos-2: create (pod default/client-3, destinations 172.16.100.0/24, 0.0.0.0/0)
 * Every agent's gateway apply failed (`nft -f - failed: Error: conflicting intervals specified`: the
 * policy's p<N>_dst interval set got both CIDRs), the previous plan stayed, and the selected pod's
 * traffic left masqueraded (the node IP to the internet, the pod IP to the VPC) for as long as the
 * policy existed instead of with its egress IP (replay on the agent of daf26fe^: 165 packets with
 * the node or pod IP, 3 to 6.5 s into the schedule). Fixed in daf26fe (the set gets only the CIDRs
 * no other one contains: lib/net/addresses.ts coveringCidrList). This file fails on the agent of
 * daf26fe^ (the internet saw the pod's packets from 192.168.1.3, node-3's IP) and passes after.
 *
 * Replays the schedule on a fresh lab (harness/chaos/executor.ts) and judges it on the far ends'
 * captures: once the policy has had its transition time (transitionMs), every packet of
 * default/client-3 that reached the internet or the VPC left with the policy's egress IP, and the
 * no-leak invariant holds (harness/chaos/invariants.ts). boundMs is 5 s instead of the explorer's
 * 10 s: the scenario runs in every `npm test`.
 */
import { describe, expect, it } from 'vitest';
import { runSchedule } from '../../harness/chaos/executor.js';
import { chaosPolicyIP } from '../../harness/chaos/model.js';
import { parseSchedule, universeOf } from '../../harness/chaos/schedule.js';
import { topologyFromArg } from '../../harness/topology/load.js';

const POD = 'default/client-3';
const schedule = parseSchedule({
  version: 1,
  topology: 'default',
  steps: [{ kind: 'policy', action: 'create', policy: 'chaos-2', pod: POD, destinations: ['172.16.100.0/24', '0.0.0.0/0'], at: 500, durationMs: 6000, keep: true }],
});

describe('chaos regression: overlapping destinationCIDRs', () => {
  it('the pod selected by a policy with overlapping destinations leaves with its egress IP (no-leak)', async () => {
    const topology = topologyFromArg('default');
    const egressIP = chaosPolicyIP(universeOf(topology), 'chaos-2');
    const transitionMs = 3000;
    const run = await runSchedule(schedule, {
      topology,
      bounds: { boundMs: 5000, tailMs: 3000, transitionMs, fenceMs: 1000, arpWindowMs: 600, probeTimeoutMs: 1000, replyTransitMs: 300 },
    });
    expect(run.actions.filter((a) => a.error)).toEqual([]);
    const created = run.actions.find((a) => a.step === 0 && a.phase === 'do')!;
    expect(run.actions.filter((a) => a.phase === 'undo')).toEqual([]);

    // once the policy was in force (after its transition), the far ends saw the pod's packets, to
    // both destinations, with the policy's egress IP only
    const during = run.evidence.edgePackets.filter((p) => p.flow.includes(`${POD} ->`) && p.t >= created.endedAt + transitionMs);
    const sources = (to: string) => [...new Set(during.filter((p) => p.flow.endsWith(`-> ${to}`)).map((p) => p.src))];
    expect(during.filter((p) => p.flow.endsWith('-> 8.8.8.8')).length).toBeGreaterThan(5);
    expect(during.filter((p) => p.flow.endsWith('-> 172.16.100.10')).length).toBeGreaterThan(5);
    expect({ internet: sources('8.8.8.8'), vpc: sources('172.16.100.10') }).toEqual({ internet: [egressIP], vpc: [egressIP] });
    expect(run.violations.filter((v) => v.invariant === 'no-leak')).toEqual([]);
  }, 300_000);
});
