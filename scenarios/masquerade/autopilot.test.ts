/**
 * SPEC 1, Autopilot (topology `snat: autopilot`; the agent always runs):
 *  - with no custom policy only the editable `default` EgressNATPolicy v1 (the default list) and the
 *    managed `gke-<hash>-1` one (pod, service and node ranges; writes refused) apply: pod IP to the
 *    11 default ranges, node IP to the internet;
 *  - a custom policy `action: NoSNAT` keeps the pod IP for its `spec.destinations[].cidr` and the node
 *    IP for the rest: the controller projects the union of every NoSNAT policy into ConfigMap
 *    kube-system/ip-masq-agent (which users cannot write), and the agents follow it;
 *  - editing `default` changes the result, the managed ranges stay exempt.
 * hostNetwork pods always leave with the node IP. TCP, UDP and ICMP for every flow.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Lab } from '../../harness/lab/lab.js';
import { KubeApiError, R, type KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { applyAll, loadManifests } from '../../harness/cluster/apply.js';
import { CLUSTER_NAME } from '../../harness/cluster/cluster.js';
import { managedPolicyName } from '../../controller/logic/autopilot.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { projectRoot } from '../../harness/util/paths.js';
import { pollUntil } from '../../harness/util/poll.js';
import { cidrTextContains } from '../../lib/net/addresses.js';
import {
  DEFAULT_RANGE_ADDRESSES,
  MASQ_CONFIGMAP,
  VPC,
  agentStatus,
  expectFlows,
  keep,
  masq,
  nodeIP,
  podIP,
  putMasqConfig,
  untilSameConfig,
  untilSeenFrom,
} from './masq-kit.js';

const POD = 'alice/frontend-1'; // 10.10.10.1 on node-1
const MANAGED = managedPolicyName(CLUSTER_NAME);
const SEED001 = join(projectRoot(), 'fixtures/manifests/seed-001');
const CUSTOM = join(projectRoot(), 'fixtures/manifests/masquerade/autopilot-nosnat.yaml');

let lab: Lab;
let api: KubeClient;
beforeAll(async () => {
  lab = await startTestLab('autopilot', 'map');
  api = await lab.api();
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

async function projected(): Promise<string[]> {
  const cm = await api.get(R.configmaps, MASQ_CONFIGMAP.name, MASQ_CONFIGMAP.namespace);
  return (parse((cm.data as { config: string }).config) as { nonMasqueradeCIDRs: string[] }).nonMasqueradeCIDRs;
}

async function untilProjected(what: string, accept: (cidrs: string[]) => boolean): Promise<string[]> {
  return pollUntil(projected, { what: `the projected ip-masq-agent ConfigMap to hold ${what}`, timeoutMs: 5_000, accept });
}

async function forbidden(p: Promise<unknown>): Promise<KubeApiError> {
  const e = await p.then(
    () => new Error('the write was accepted'),
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(KubeApiError);
  expect((e as KubeApiError).code, (e as Error).message).toBe(403);
  return e as KubeApiError;
}

describe('Autopilot with only the default and the managed policies', () => {
  it('the API holds exactly `default` and the managed gke-<hash>-1 policy, projected into the ConfigMap', async () => {
    const list = await api.list(R.egressNATPoliciesV1);
    expect(list.items.map((p) => p.metadata.name).sort()).toEqual(['default', MANAGED].sort());
    const managed = list.items.find((p) => p.metadata.name === MANAGED)!;
    const dests = (managed.spec as { destinations: { cidr: string }[] }).destinations.map((d) => d.cidr);
    expect(dests).toEqual(expect.arrayContaining(['192.168.1.0/24', '10.96.0.0/16']));
    for (const n of ['10.10.10.1', '10.10.11.1', '10.10.12.1'])
      expect(
        dests.some((d) => cidrTextContains(d, n)),
        `a managed destination containing the pod address ${n}: ${dests.join(', ')}`,
      ).toBe(true);
    const cidrs = await untilProjected('the default list', (c) => DEFAULT_RANGE_ADDRESSES.every(([cidr]) => c.includes(cidr)));
    expect(cidrs).toEqual(expect.arrayContaining(DEFAULT_RANGE_ADDRESSES.map(([cidr]) => cidr)));
    const s = await agentStatus(lab, 'node-1');
    expect(s.flavour).toBe('autopilot');
    // the managed ranges fall inside 10.0.0.0/8 and 192.168.0.0/16: 11 elements once normalised
    expect(s.masq).toMatchObject({ mode: 'ip-masq-agent', configSource: 'file', setElements: 11, lastError: null });
  });

  it('keeps the pod IP to each of the 11 default ranges; the internet sees the node IP and answers', async () => {
    const pods = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3'];
    const flows = DEFAULT_RANGE_ADDRESSES.flatMap(([, ip], i) => keep(lab, pods[i % pods.length]!, [ip], true));
    await expectFlows(lab, [...flows, ...masq(lab, POD, ['8.8.8.8', '1.1.1.1']), ...masq(lab, 'paul/frontend-2', ['8.8.8.8'])]);
  });

  it('refuses writes to the managed policy and to the generated ConfigMap', async () => {
    const managed = await api.get(R.egressNATPoliciesV1, MANAGED);
    const spec = managed.spec as { destinations: { cidr: string }[] };
    const e = await forbidden(
      api.update(R.egressNATPoliciesV1, { ...managed, spec: { ...spec, destinations: [...spec.destinations, { cidr: '8.8.8.0/24' }] } }),
    );
    expect(e.message).toContain('managed by GKE');
    await forbidden(api.patch(R.egressNATPoliciesV1, MANAGED, { metadata: { labels: { mine: 'yes' } } }));
    await forbidden(api.delete(R.egressNATPoliciesV1, MANAGED));
    await forbidden(putMasqConfig(api, { nonMasqueradeCIDRs: ['0.0.0.0/0'] }));
    expect(await api.get(R.egressNATPoliciesV1, MANAGED)).toMatchObject({ spec: managed.spec });
    expect(await projected()).not.toContain('0.0.0.0/0');
  });
});

describe('Autopilot with a custom NoSNAT policy', () => {
  it('keeps the pod IP for its destinations and uses the node IP for the rest', async () => {
    const r = await applyAll(api, loadManifests(CUSTOM));
    expect(r.map((x) => x.action)).toEqual(['created']);
    await untilProjected('8.8.8.0/24 and 1.1.1.1/32', (c) => c.includes('8.8.8.0/24') && c.includes('1.1.1.1/32'));
    const ms = await untilSeenFrom(lab, POD, '8.8.8.8', podIP(lab, POD));
    console.log(`NoSNAT policy created -> 8.8.8.8 sees the pod IP after ${ms} ms`);
    await untilSameConfig(lab, api);
    await expectFlows(lab, [
      ...keep(lab, POD, ['8.8.8.8', '8.8.8.200', '1.1.1.1'], false),
      ...masq(lab, POD, ['1.1.1.2', '8.8.9.1', '93.184.216.34']),
      ...keep(lab, POD, [VPC, '192.168.50.1'], true),
      ...keep(lab, 'default/client-3', ['8.8.8.8'], false),
      ...masq(lab, 'default/client-3', ['1.1.1.2']),
    ]);
  });

  it("the seed's NoSNAT policy (8.8.8.0/24) adds nothing new; editing `default` changes the result, the managed ranges stay exempt", async () => {
    expect((await applyAll(api, loadManifests(join(SEED001, '02-egressnatpolicy-nosnat.yaml')))).map((x) => x.action)).toEqual(['created']);
    const def = await api.get(R.egressNATPoliciesV1, 'default');
    const spec = def.spec as { action: string; destinations: { cidr: string }[] };
    await api.update(R.egressNATPoliciesV1, {
      ...def,
      spec: { ...spec, destinations: spec.destinations.filter((d) => d.cidr !== '192.168.0.0/16') },
    } as KubeObject);
    await untilProjected('no 192.168.0.0/16', (c) => !c.includes('192.168.0.0/16') && c.includes('192.168.1.0/24'));
    await untilSeenFrom(lab, POD, '192.168.50.1', nodeIP(lab, POD));
    await untilSameConfig(lab, api);
    await expectFlows(lab, [
      ...masq(lab, POD, ['192.168.50.1']),
      // node-2's address is in the managed policy's node range: pod IP kept, pod-to-node answered
      ...keep(lab, POD, [nodeIP(lab, 'node-2')], true),
      ...keep(lab, POD, ['8.8.8.8'], false),
    ]);
    // back to the seed's default policy
    await applyAll(api, loadManifests(join(SEED001, '01-egressnatpolicy-default.yaml')));
    await untilProjected('192.168.0.0/16 again', (c) => c.includes('192.168.0.0/16'));
    await untilSeenFrom(lab, POD, '192.168.50.1', podIP(lab, POD));
  });

  it('hostNetwork pods appear as the node IP, NoSNAT destinations included', async () => {
    const host = 'default/host-1';
    await expectFlows(
      lab,
      ['8.8.8.8', '1.1.1.1', VPC].map((to) => ({ from: host, to, source: nodeIP(lab, host), reply: true })),
    );
  });

  it('deleting the custom policies restores the default behaviour', async () => {
    await api.delete(R.egressNATPoliciesV1, 'partner');
    await api.delete(R.egressNATPoliciesV1, 'onprem');
    await untilProjected('no custom destination', (c) => !c.includes('8.8.8.0/24') && !c.includes('1.1.1.1/32'));
    await untilSeenFrom(lab, POD, '8.8.8.8', nodeIP(lab, POD));
    await untilSameConfig(lab, api);
    await expectFlows(lab, [...masq(lab, POD, ['8.8.8.8', '1.1.1.1']), ...keep(lab, POD, [VPC, '192.168.50.1'], true)]);
    expect((await api.list(R.egressNATPoliciesV1)).items.map((p) => p.metadata.name).sort()).toEqual(['default', MANAGED].sort());
  });
});
