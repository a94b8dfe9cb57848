/**
 * SPEC 1, Standard cluster, ip-masq-agent running with no ConfigMap (or none of its
 * `nonMasqueradeCIDRs`): the pod IP is kept for the 11 default non-masquerade ranges and the node IP
 * is used for everything else. Also the list's edges, each written through the API and undone before
 * the next test: link-local with and without `masqLinkLocal`, `0.0.0.0/0`, an explicit empty list,
 * overlapping / duplicate CIDRs and /32; and a bad config (misaligned CIDR), which keeps the last good
 * rules, records an Event on the Node and shows in the agent's status. hostNetwork pods always leave
 * with the node IP. Every flow is probed over TCP, UDP and ICMP.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import {
  DEFAULT_RANGE_ADDRESSES,
  METADATA,
  VPC,
  agentStatus,
  deleteMasqConfig,
  expectFlows,
  keep,
  masq,
  nodeEvents,
  nodeIP,
  podIP,
  putMasqConfig,
  untilAgents,
  untilDefaults,
  untilSameConfig,
  untilSeenFrom,
} from './masq-kit.js';

const PUBLIC = ['8.8.8.8', '1.1.1.1', '93.184.216.34'];
const POD = 'alice/frontend-1'; // 10.10.10.1 on node-1 (192.168.1.1)

let lab: Lab;
let api: KubeClient;
beforeAll(async () => {
  lab = await startTestLab('standard-agent', 'mdl');
  api = await lab.api();
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

/** Tests that write the ConfigMap delete it again: the next one starts from the defaults. */
afterEach(async () => {
  if (!api) return;
  await deleteMasqConfig(api);
  await untilDefaults(lab);
});

describe('Standard, ip-masq-agent, no ConfigMap: the default list', () => {
  it('every agent runs the 11 default CIDRs from its defaults (no file)', async () => {
    for (const node of ['node-1', 'node-2', 'node-3']) {
      const s = await agentStatus(lab, node);
      expect(s.masq, node).toMatchObject({
        mode: 'ip-masq-agent',
        status: 'running',
        configSource: 'defaults',
        setElements: 11,
        masqLinkLocal: false,
        lastError: null,
      });
    }
  });

  it('keeps the pod IP to an address in each of the 11 default ranges, and the VPC answers', async () => {
    const pods = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3'];
    // spread the ranges over pods on three nodes
    const flows = DEFAULT_RANGE_ADDRESSES.flatMap(([, ip], i) => keep(lab, pods[i % pods.length]!, [ip], true));
    await expectFlows(lab, [...flows, ...keep(lab, POD, [VPC], true)]);
  });

  it('masquerades to the node IP for public addresses, and the internet answers', async () => {
    await expectFlows(lab, [
      ...masq(lab, POD, PUBLIC.slice(0, 2)),
      ...masq(lab, 'paul/frontend-2', ['8.8.8.8']),
      ...masq(lab, 'default/client-3', [PUBLIC[2]!]),
    ]);
  });

  it('keeps pod-to-pod traffic across nodes unmasqueraded (10.0.0.0/8 is in the list)', async () => {
    await expectFlows(lab, keep(lab, POD, [podIP(lab, 'paul/frontend-2'), podIP(lab, 'default/client-3')], true));
  });

  it('hostNetwork pods appear as the node IP to every destination', async () => {
    const host = 'default/host-1';
    const ip = nodeIP(lab, host);
    await expectFlows(
      lab,
      [VPC, '8.8.8.8', METADATA].map((to) => ({ from: host, to, source: ip, reply: true })),
    );
  });
});

describe('link-local (169.254.0.0/16)', () => {
  it('is not masqueraded by default (masqLinkLocal: false)', async () => {
    await expectFlows(lab, keep(lab, POD, [METADATA, '169.254.10.20'], true));
  });

  it('is masqueraded with masqLinkLocal: true, the default list still applying (key absent)', async () => {
    await putMasqConfig(api, { masqLinkLocal: true });
    await untilSeenFrom(lab, POD, METADATA, nodeIP(lab, POD));
    await untilAgents(lab, 'masqLinkLocal true on the default list', (m) => m.masqLinkLocal === true && m.setElements === 11 && m.configSource === 'file');
    await expectFlows(lab, [...masq(lab, POD, [METADATA]), ...keep(lab, POD, [VPC, '192.168.50.1'], true), ...masq(lab, POD, ['8.8.8.8'])]);
  });

  it('stays exempt with masqLinkLocal: true when listed explicitly', async () => {
    await putMasqConfig(api, { nonMasqueradeCIDRs: ['169.254.169.254/32'], masqLinkLocal: true });
    await untilSeenFrom(lab, POD, VPC, nodeIP(lab, POD));
    await untilSameConfig(lab, api);
    await expectFlows(lab, [...keep(lab, POD, [METADATA], true), ...masq(lab, POD, ['169.254.10.20', VPC])]);
  });
});

describe('edges of nonMasqueradeCIDRs', () => {
  it('0.0.0.0/0 keeps the pod IP everywhere: the internet never answers, the VPC does; hostNetwork is still the node IP', async () => {
    await putMasqConfig(api, { nonMasqueradeCIDRs: ['0.0.0.0/0', '8.8.8.0/24'] });
    await untilSeenFrom(lab, POD, '8.8.8.8', podIP(lab, POD));
    const [s] = await untilAgents(lab, '0.0.0.0/0 as the only set element', (m) => m.configSource === 'file' && m.setElements === 1);
    expect(s!.masq?.lastError).toBeNull();
    await expectFlows(lab, [
      ...keep(lab, POD, PUBLIC.slice(1), false),
      ...keep(lab, 'paul/frontend-2', ['1.1.1.1'], false),
      ...keep(lab, POD, [VPC, METADATA], true),
      { from: 'default/host-1', to: '8.8.8.8', source: nodeIP(lab, 'default/host-1'), reply: true },
    ]);
  });

  it('an explicit empty list masquerades everything but link-local', async () => {
    await putMasqConfig(api, { nonMasqueradeCIDRs: [] });
    await untilSeenFrom(lab, POD, VPC, nodeIP(lab, POD));
    await untilAgents(lab, 'no set element', (m) => m.configSource === 'file' && m.setElements === 0);
    await expectFlows(lab, [...masq(lab, POD, [VPC, '10.200.0.1', '8.8.8.8', podIP(lab, 'paul/frontend-2')]), ...keep(lab, POD, [METADATA], true)]);
  });

  it('overlapping and duplicate CIDRs and a /32: exact boundaries', async () => {
    const cidrs = ['8.8.8.0/24', '8.8.0.0/16', '8.8.8.0/24', '1.1.1.1/32', '10.0.0.0/8', '10.200.0.0/16', '172.16.100.10/32'];
    await putMasqConfig(api, { nonMasqueradeCIDRs: cidrs });
    await untilSeenFrom(lab, POD, '1.1.1.1', podIP(lab, POD));
    // normalised: 1.1.1.1/32, 8.8.0.0/16, 10.0.0.0/8, 172.16.100.10/32
    await untilAgents(lab, '4 normalised set elements', (m) => m.configSource === 'file' && m.setElements === 4);
    await expectFlows(lab, [
      ...keep(lab, POD, ['8.8.8.8', '8.8.4.4', '1.1.1.1'], false),
      ...masq(lab, POD, ['1.1.1.2', '8.9.0.1']),
      ...keep(lab, POD, [VPC], true),
      // 172.16.0.0/12 is no longer listed: masqueraded, the VPC answers the node IP
      ...masq(lab, POD, ['172.20.0.1']),
    ]);
  });

  it('a bad config (misaligned CIDR) keeps the last good rules, records an Event on the Node and shows the error in the agent status', async () => {
    await putMasqConfig(api, { nonMasqueradeCIDRs: ['8.8.8.0/24', '10.0.0.0/8'] });
    await untilSeenFrom(lab, POD, '8.8.8.8', podIP(lab, POD));
    const good = await untilAgents(lab, 'the good config', (m) => m.configSource === 'file' && m.setElements === 2 && m.lastError === null);
    const goodHash = good[0]!.masq!.configHash;

    // One bad entry refuses the whole file: 1.1.1.0/24 must not take effect either.
    await putMasqConfig(api, { nonMasqueradeCIDRs: ['1.1.1.0/24', '10.0.0.1/8'] });
    const bad = await untilAgents(lab, 'MasqConfigInvalid', (m) => m.lastError?.reason === 'MasqConfigInvalid');
    for (const s of bad) {
      expect(s.masq!.lastError!.message, s.node).toContain('10.0.0.1/8');
      expect(s.masq!.configHash, s.node).toBe(goodHash);
      expect(s.masq!.status, s.node).toBe('running');
    }
    const events = await pollUntil(() => nodeEvents(api, 'node-1', 'MasqConfigInvalid'), {
      what: 'a MasqConfigInvalid Event on Node node-1',
      timeoutMs: 5_000,
      accept: (l) => l.length > 0,
    });
    expect(events[0]).toMatchObject({ type: 'Warning', involvedObject: { kind: 'Node', name: 'node-1' } });
    expect(String(events[0]!.message)).toContain('10.0.0.1/8');
    // the last good rules are still in force, everywhere
    await expectFlows(lab, [
      ...keep(lab, POD, ['8.8.8.8'], false),
      ...masq(lab, POD, ['1.1.1.1']),
      ...keep(lab, 'paul/frontend-2', ['8.8.8.8'], false),
      ...masq(lab, 'paul/frontend-2', ['1.1.1.1']),
    ]);

    // A good config again clears the error.
    await putMasqConfig(api, { nonMasqueradeCIDRs: ['1.1.1.0/24'] });
    await untilSeenFrom(lab, POD, '1.1.1.1', podIP(lab, POD));
    await untilAgents(lab, 'the error cleared', (m) => m.lastError === null && m.setElements === 1);
  });
});
