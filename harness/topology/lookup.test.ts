import { describe, expect, it } from 'vitest';
import { nodeAddress } from './lookup.js';
import { topologyFromArg } from './load.js';

const topology = {
  name: 't',
  nodes: [
    { name: 'cp', role: 'control-plane' as const, address: '10.0.0.2' },
    { name: 'w1', role: 'worker' as const, address: '10.0.0.3', podCIDR: '10.1.1.0/24' },
  ],
  pods: [
    { namespace: 'default', name: 'client', node: 'w1', ip: '10.1.1.5', hostNetwork: false, labels: {} },
    { namespace: 'team', name: 'web', node: 'w1', ip: '10.1.1.6', hostNetwork: false, labels: {} },
    { namespace: 'team', name: 'lost', node: 'gone', ip: '10.1.1.7', hostNetwork: false, labels: {} },
  ],
};

describe('nodeAddress', () => {
  it('finds a node by name, and a pod\'s node by "ns/name" or a default-namespace "name"', () => {
    expect(nodeAddress(topology, 'cp')).toBe('10.0.0.2');
    expect(nodeAddress(topology, 'team/web')).toBe('10.0.0.3');
    expect(nodeAddress(topology, 'client')).toBe('10.0.0.3');
    expect(nodeAddress(topology, 'default/client')).toBe('10.0.0.3');
  });

  it('names the unknown name and what exists', () => {
    expect(() => nodeAddress(topology, 'web')).toThrow('topology t has no node or pod "web" (nodes: cp, w1; pods: default/client, team/web, team/lost)');
    expect(() => nodeAddress(topology, 'team/lost')).toThrow('pod team/lost is on node "gone", which the topology does not have');
  });

  it('agrees with every node and pod of the default fixture', () => {
    const t = topologyFromArg('default');
    for (const n of t.nodes) expect(nodeAddress(t, n.name)).toBe(n.address);
    for (const p of t.pods) expect(nodeAddress(t, `${p.namespace}/${p.name}`)).toBe(t.nodes.find((n) => n.name === p.node)!.address);
  });
});
