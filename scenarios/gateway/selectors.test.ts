/**
 * EgressNATPolicy selectors end to end (SPEC 2, issue 6): namespace-only, pod-only, both (AND),
 * several rules (OR), and a pod relabelled at runtime that moves in and out of a policy (the agents
 * re-read the Pod through the API). One policy per pattern, each with its own floating IP and
 * destination range; a matched pod is seen from the policy's IP, an unmatched one from its node IP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { createPolicy, holderOf, setFloatingIPs, waitIPOn, waitSeenFrom, type PolicyOptions } from './gateway-kit.js';
import { applyAll, loadManifests } from '../../harness/cluster/apply.js';
import { ConnectivityChecker, matrixText } from '../../harness/testing/connectivity.js';
import { pollUntil } from '../../harness/util/poll.js';

const NODE_IP: Record<string, string> = { 'node-1': '192.168.1.1', 'node-2': '192.168.1.2', 'node-3': '192.168.1.3' };
const POLICIES: (PolicyOptions & { dst: string })[] = [
  { name: 'sel-ns-only', egressSourceIP: '192.168.1.100', destinationCIDRs: ['9.9.1.0/24'], dst: '9.9.1.1', rules: [{ namespaceSelector: { user: 'paul' } }] },
  { name: 'sel-pod-only', egressSourceIP: '192.168.1.101', destinationCIDRs: ['9.9.2.0/24'], dst: '9.9.2.1', rules: [{ podSelector: { role: 'frontend' } }] },
  {
    name: 'sel-both',
    egressSourceIP: '192.168.1.102',
    destinationCIDRs: ['9.9.3.0/24'],
    dst: '9.9.3.1',
    rules: [{ namespaceSelector: { user: 'alice' }, podSelector: { role: 'frontend' } }],
  },
  {
    name: 'sel-or',
    egressSourceIP: '192.168.1.103',
    destinationCIDRs: ['9.9.4.0/24'],
    dst: '9.9.4.1',
    rules: [{ namespaceSelector: { user: 'paul' } }, { namespaceSelector: { 'kubernetes.io/metadata.name': 'default' } }],
  },
];
const PODS = ['alice/frontend-1', 'default/client-1', 'paul/frontend-2', 'default/client-3'];
const EXPECTED: Record<string, string[]> = {
  'sel-ns-only': ['paul/frontend-2'],
  'sel-pod-only': ['alice/frontend-1', 'paul/frontend-2'],
  'sel-both': ['alice/frontend-1'],
  'sel-or': ['paul/frontend-2', 'default/client-1', 'default/client-3'],
};

let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  lab = await startTestLab('default', 'gwsel');
  api = await lab.api();
  await applyAll(api, loadManifests('fixtures/manifests/seed-000/01-anthosnetworkgateway.yaml'));
  await setFloatingIPs(
    api,
    POLICIES.map((p) => p.egressSourceIP),
  );
  for (const p of POLICIES) await createPolicy(api, p);
  for (const p of POLICIES) await waitIPOn(lab, await holderOf(api, p.egressSourceIP), p.egressSourceIP);
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('policy selectors', () => {
  it(`every pod against every policy, one matrix: ${POLICIES.map((p) => `${p.name} matches exactly ${EXPECTED[p.name]!.join(', ')}`).join('; ')}`, async () => {
    // a matched pod is seen from its policy's IP, an unmatched one from its node IP (and answered)
    const cc = new ConnectivityChecker(lab);
    for (const p of POLICIES) {
      for (const pod of PODS) cc.expectSNAT(pod, p.dst, EXPECTED[p.name]!.includes(pod) ? p.egressSourceIP : NODE_IP[lab.pod(pod).node]!);
    }
    // each agent programs its own pods when it sees the policies: wait (with a deadline) until the
    // matrix holds, then the verdict is one more check of every pair at once, shown whole if it fails
    await pollUntil(async () => (await cc.check()).every((pair) => pair.ok), {
      what: 'the selector matrix as expected',
      timeoutMs: 15_000,
      accept: Boolean,
    }).catch(() => undefined);
    const pairs = await cc.check();
    expect(
      pairs.filter((pair) => !pair.ok).map((pair) => `${pair.from} -> ${pair.to}: ${pair.observed}`),
      `policy selectors, every pair:\n${matrixText(pairs)}`,
    ).toEqual([]);
  });

  it('a pod relabelled at runtime moves out of and back into a policy', async () => {
    const both = POLICIES.find((p) => p.name === 'sel-both')!;
    await waitSeenFrom(lab, 'alice/frontend-1', both.dst, both.egressSourceIP);
    await lab.labelPod('alice/frontend-1', { role: 'backend' });
    const out = await waitSeenFrom(lab, 'alice/frontend-1', both.dst, '192.168.1.1', { what: 'relabelled alice/frontend-1 to leave sel-both (node IP)' });
    expect(out).toGetReply();
    expect(lab.pod('alice/frontend-1').labels).toEqual({ role: 'backend' });
    await lab.labelPod('alice/frontend-1', { role: 'frontend' });
    const back = await waitSeenFrom(lab, 'alice/frontend-1', both.dst, both.egressSourceIP, { what: 'relabelled alice/frontend-1 back into sel-both' });
    expect(back).toGetReply();
  });
});
