import { describe, expect, it } from 'vitest';
import type { Lab } from '../lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { masqConfigHash, parseMasqConfig } from '../../agent/masq/config.js';
import { DEFAULT_LAB_PATHS } from './lab-config.js';
import type { Clock } from '../util/poll.js';
import { agentsNotOn, expectedMasqHash, masqConfigText, masqConfigYaml, podNodes, untilMasqConfigApplied, type AgentStatusFile } from './masq-applied.js';

const CONFIG = 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\nmasqLinkLocal: false\nresyncInterval: 60s\n';

function fakeClock(): Clock {
  let t = 0;
  return { now: () => t, sleep: async (ms) => void (t += ms) };
}

const topology = {
  nodes: [
    { name: 'cp', role: 'control-plane' as const, address: '10.0.0.2' },
    { name: 'w1', role: 'worker' as const, address: '10.0.0.3', podCIDR: '10.1.1.0/24' },
    { name: 'w2', role: 'worker' as const, address: '10.0.0.4', podCIDR: '10.1.2.0/24' },
  ],
};

function status(node: string, configHash: string | null, lastError: string | null = null): AgentStatusFile {
  return {
    pid: 42,
    node,
    phase: 'running',
    flavour: 'standard',
    startedAt: '',
    masq: {
      mode: 'standard',
      status: lastError ? 'error' : 'applied',
      configSource: 'configmap',
      configHash,
      appliedAt: null,
      setElements: 1,
      lastError: lastError ? { at: '', reason: 'InvalidConfig', message: lastError } : null,
    },
  };
}

/** A lab whose agents' status files go through `files[node]`, one per read (the last one stays). */
function fakeLab(files: Record<string, AgentStatusFile[]>): Pick<Lab, 'topology' | 'exec'> & { reads: string[] } {
  const seen: Record<string, number> = {};
  const lab = {
    topology,
    reads: [] as string[],
    exec: async (node: string, cmd: string[]) => {
      expect(cmd).toEqual(['cat', DEFAULT_LAB_PATHS.agentStatus]);
      lab.reads.push(node);
      const list = files[node]!;
      const i = Math.min((seen[node] = (seen[node] ?? -1) + 1), list.length - 1);
      return { stdout: JSON.stringify(list[i]), stderr: '', exitCode: 0 };
    },
  };
  return lab as unknown as Pick<Lab, 'topology' | 'exec'> & { reads: string[] };
}

function fakeApi(cm: KubeObject | undefined): Pick<KubeClient, 'tryGet'> {
  return { tryGet: (async () => cm) as KubeClient['tryGet'] };
}

const configMap = (config: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { namespace: 'kube-system', name: 'ip-masq-agent' },
  data: { config },
});

describe('waiting for the ip-masq-agent ConfigMap', () => {
  it('pod nodes, the config text and its hash', () => {
    expect(podNodes(topology)).toEqual(['w1', 'w2']);
    expect(masqConfigText(configMap(CONFIG))).toBe(CONFIG);
    expect(masqConfigText(undefined)).toBeNull();
    expect(expectedMasqHash(CONFIG)).toBe(masqConfigHash(CONFIG));
    expect(expectedMasqHash(null)).toBe(masqConfigHash(null));
  });

  it('a config that does not parse is an error naming the field and value, not a wait', () => {
    expect(() => expectedMasqHash('nonMasqueradeCIDRs:\n  - not-a-cidr\n')).toThrow(
      /ConfigMap kube-system\/ip-masq-agent: config: nonMasqueradeCIDRs\[0\]: .*not-a-cidr/,
    );
  });

  it('agentsNotOn names each node still on another config, with its status and error', () => {
    const h = expectedMasqHash(CONFIG);
    expect(agentsNotOn([status('w1', h), status('w2', 'old', 'bad CIDR')], ['w1', 'w2'], h)).toEqual(['w2 (config old, status error, last error: bad CIDR)']);
    expect(agentsNotOn([undefined, { pid: 43, node: 'w2', phase: 'starting', flavour: 'standard', startedAt: '' }], ['w1', 'w2'], h)).toEqual([
      'w1 (no masquerade status)',
      'w2 (no masquerade status)',
    ]);
  });

  it('waits until every pod node reports the hash of the ConfigMap the API holds', async () => {
    const h = expectedMasqHash(CONFIG);
    const lab = fakeLab({ w1: [status('w1', 'old'), status('w1', h)], w2: [status('w2', 'old'), status('w2', 'old'), status('w2', h)] });
    const all = await untilMasqConfigApplied(lab, fakeApi(configMap(CONFIG)), { clock: fakeClock() });
    expect(all.map((s) => [s.node, s.masq?.configHash])).toEqual([
      ['w1', h],
      ['w2', h],
    ]);
    expect(lab.reads).not.toContain('cp');
  });

  it('on timeout, the error names the nodes not on the config', async () => {
    const h = expectedMasqHash(null);
    const lab = fakeLab({ w1: [status('w1', h)], w2: [status('w2', 'old', 'bad CIDR')] });
    await expect(untilMasqConfigApplied(lab, fakeApi(configMap(CONFIG)), { config: null, timeoutMs: 500, clock: fakeClock() })).rejects.toThrow(
      `timed out after 500 ms waiting for every agent (w1, w2) to apply config ${h}`,
    );
    await expect(untilMasqConfigApplied(lab, fakeApi(undefined), { timeoutMs: 500, clock: fakeClock() })).rejects.toThrow(
      'not applied on: w2 (config old, status error, last error: bad CIDR)',
    );
  });
});

describe('masqConfigYaml', () => {
  it('writes the config a user would (yaml), that the agent reads back', () => {
    const text = masqConfigYaml({ nonMasqueradeCIDRs: ['10.0.0.0/8', '172.16.100.0/24'], masqLinkLocal: false, resyncInterval: '60s' });
    expect(text).toBe('nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 172.16.100.0/24\nmasqLinkLocal: false\nresyncInterval: 60s\n');
    expect(masqConfigYaml({ nonMasqueradeCIDRs: [] })).toBe('nonMasqueradeCIDRs: []\n');
    expect(masqConfigYaml({ nonMasqueradeCIDRs: ['10.0.0.0/8'], masqLinkLocal: false, resyncInterval: '60s' })).toBe(CONFIG);
    expect(parseMasqConfig(masqConfigYaml({ resyncInterval: '1m', masqLinkLocal: true, nonMasqueradeCIDRs: ['8.8.4.0/24'] }))).toMatchObject({
      ok: true,
      config: { nonMasqueradeCIDRs: ['8.8.4.0/24'], masqLinkLocal: true },
    });
  });
});
