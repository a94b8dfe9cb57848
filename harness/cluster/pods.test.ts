import { describe, expect, it } from 'vitest';
import { planLab } from '../topology/plan.js';
import { topologyFromArg } from '../topology/load.js';
import { labelsPatch, podRegistration, registerPods } from './pods.js';

describe('pod registration', () => {
  const reg = podRegistration(planLab(topologyFromArg('default')));

  it('has every namespace with its labels and every pod with node, IPs and hostNetwork', () => {
    expect(reg.namespaces).toContainEqual({ name: 'alice', labels: { user: 'alice', 'kubernetes.io/metadata.name': 'alice' } });
    expect(reg.namespaces.map((n) => n.name)).toEqual(expect.arrayContaining(['alice', 'default', 'paul']));
    expect(reg.pods).toContainEqual({
      namespace: 'alice',
      name: 'frontend-1',
      node: 'node-1',
      hostNetwork: false,
      ip: '10.10.10.1',
      hostIP: '192.168.1.1',
      labels: { role: 'frontend' },
    });
    expect(reg.pods.find((p) => p.name === 'host-1')).toMatchObject({ hostNetwork: true, ip: '192.168.1.1', hostIP: '192.168.1.1' });
  });

  it('labelsPatch removes what is gone', () => {
    expect(labelsPatch({ role: 'frontend', x: '1' }, { role: 'backend' })).toEqual({ role: 'backend', x: null });
  });

  it('creates namespaces then pods, and writes status through /status', async () => {
    const calls: string[] = [];
    const client = {
      tryGet: async () => undefined,
      create: async (ref: { plural: string }, obj: { metadata: { name: string } }) => (calls.push(`create ${ref.plural}/${obj.metadata.name}`), obj),
      patch: async (ref: { plural: string }, name: string, _p: unknown, o?: { subresource?: string }) => (
        calls.push(`patch ${ref.plural}/${name}${o?.subresource ? `/${o.subresource}` : ''}`), {}
      ),
    };
    await registerPods(client as never, reg);
    expect(calls.filter((c) => c.startsWith('create namespaces'))).toHaveLength(reg.namespaces.length);
    expect(calls).toContain('create pods/frontend-1');
    expect(calls).toContain('patch pods/frontend-1/status');
    expect(calls.findIndex((c) => c.startsWith('create pods'))).toBeGreaterThan(calls.findLastIndex((c) => c.startsWith('create namespaces')));
  });
});
