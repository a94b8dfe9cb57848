/**
 * SPEC 1, Standard cluster without ip-masq-agent, `disableDefaultSnat: false` (topology
 * `snat: default-snat`): the node's default SNAT gives the same result as the agent's default list:
 * pod IP kept to each of the 11 default non-masquerade ranges (and link-local), node IP to the
 * internet, whose replies come back. No ConfigMap is read in this flavour. hostNetwork pods leave
 * with the node IP. TCP, UDP and ICMP for every flow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { DEFAULT_RANGE_ADDRESSES, METADATA, VPC, agentStatus, expectFlows, keep, masq, nodeIP, podIP, podNodes } from './masq-kit.js';

const POD = 'alice/frontend-1';

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('standard-no-agent-snat', 'mds');
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('Standard, no ip-masq-agent, disableDefaultSnat: false', () => {
  it("every pod node programs the node's default SNAT (the default list), with no ConfigMap projection", async () => {
    for (const node of podNodes(lab)) {
      const s = await agentStatus(lab, node);
      expect(s.flavour, node).toBe('default-snat');
      expect(s.masq, node).toMatchObject({ mode: 'default-snat', status: 'running', configSource: 'defaults', setElements: 11, lastError: null });
      expect(s.projection, node).toBeUndefined();
    }
  });

  it('keeps the pod IP to an address in each of the 11 default ranges and to link-local, and the VPC answers', async () => {
    const pods = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3'];
    const flows = DEFAULT_RANGE_ADDRESSES.flatMap(([, ip], i) => keep(lab, pods[i % pods.length]!, [ip], true));
    await expectFlows(lab, [...flows, ...keep(lab, POD, [VPC, METADATA, podIP(lab, 'paul/frontend-2')], true)]);
  });

  it('masquerades to the node IP for the internet, and the internet answers', async () => {
    await expectFlows(lab, [
      ...masq(lab, POD, ['8.8.8.8', '1.1.1.1']),
      ...masq(lab, 'paul/frontend-2', ['8.8.8.8']),
      ...masq(lab, 'default/client-3', ['93.184.216.34']),
    ]);
  });

  it('hostNetwork pods appear as the node IP', async () => {
    const host = 'default/host-1';
    await expectFlows(
      lab,
      [VPC, '10.200.0.1', '8.8.8.8'].map((to) => ({ from: host, to, source: nodeIP(lab, host), reply: true })),
    );
  });
});
