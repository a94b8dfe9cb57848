/**
 * UnknownEgressIP (SPEC 2, issue 6): a policy whose egressSourceIP is not one of the gateway's
 * floating IPs cannot be served. Its matched traffic is dropped on the source node (fail-closed:
 * nothing leaves the node, nothing reaches the endpoint, no reply; never the node IP nor the pod
 * IP), the policy gets an Event with reason UnknownEgressIP, unmatched traffic keeps being
 * masqueraded, and adding the IP to the gateway makes the policy served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { readAgentStatusIfAny } from '../../harness/cluster/masq-applied.js';
import { FLOATING_IPS, SEED_IP, createPolicy, holderOf, policyEvents, setFloatingIPs, startSeedLab, waitIPOn, waitSeenFrom } from './gateway-kit.js';

const GHOST_IP = '192.168.1.120';
const DST = '9.9.9.9';
let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  ({ lab, api } = await startSeedLab('gwunk'));
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

/** The action the agent of `node` took for `policy` (its status file). */
async function agentAction(node: string, policy: string): Promise<string | undefined> {
  return (await readAgentStatusIfAny(lab, node))?.gateway?.policies?.find((p) => p.name === policy)?.action;
}

describe('a policy whose egressSourceIP is not a floating IP', () => {
  it('drops its matched traffic (fail-closed), records UnknownEgressIP, keeps the rest masqueraded', async () => {
    await createPolicy(api, {
      name: 'ghost',
      egressSourceIP: GHOST_IP,
      destinationCIDRs: ['9.9.9.0/24'],
      rules: [{ namespaceSelector: { user: 'alice' }, podSelector: { role: 'frontend' } }],
    });
    const events = await pollUntil(() => policyEvents(api, 'ghost', 'UnknownEgressIP'), {
      what: 'an UnknownEgressIP Event on policy ghost',
      timeoutMs: 15_000,
      accept: (e) => e.length > 0,
    });
    expect(String(events[0]!.message)).toContain(GHOST_IP);
    const node = lab.pod('alice/frontend-1').node;
    await pollUntil(() => agentAction(node, 'ghost'), {
      what: `the agent on ${node} to drop policy ghost's traffic`,
      timeoutMs: 15_000,
      accept: (a) => a === 'drop',
    });

    const cap = await lab.capture(node, 'eth0', { filter: `host ${DST}` });
    for (const proto of ['udp', 'tcp', 'icmp'] as const) {
      const r = await lab.probe('alice/frontend-1', DST, { proto, timeoutMs: 1_000 });
      expect(r.observedSource, `${proto}: nothing may reach the endpoint (observed ${r.observedSource ?? 'nothing'})`).toBeUndefined();
      expect(r.replyReceived).toBe(false);
    }
    const { packets } = await cap.stop();
    expect(packets.filter((p) => p.ip?.dst === DST).length, 'packets to 9.9.9.9 leaving node-1').toBe(0);

    // unmatched traffic is unaffected: another pod to the same destination, the pod elsewhere
    expect(await lab.probe('default/client-1', DST, { proto: 'udp' })).toBeSeenFrom('192.168.1.1');
    const seed = await lab.probe('alice/frontend-1', '8.8.8.8', { proto: 'udp' });
    expect(seed).toBeSeenFrom(SEED_IP);
    expect(seed).toGetReply();
  });

  it('is served once its IP is added to the gateway', async () => {
    await setFloatingIPs(api, [...FLOATING_IPS, GHOST_IP]);
    const holder = await holderOf(api, GHOST_IP);
    await waitIPOn(lab, holder, GHOST_IP);
    const r = await waitSeenFrom(lab, 'alice/frontend-1', DST, GHOST_IP);
    expect(r).toBeSeenFrom(GHOST_IP);
    expect(r).toGetReply();
  });
});
