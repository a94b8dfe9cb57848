import { describe, expect, it } from 'vitest';
import type { KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import type { Clock } from '../util/poll.js';
import { holderOf, upHolder } from './holder.js';
import { gatewayStatus } from './cluster-status.js';

/** A virtual clock: sleeping advances time at once. */
function fakeClock(): Clock {
  let t = 0;
  return { now: () => t, sleep: async (ms) => void (t += ms) };
}

function gateway(nodes: Record<string, string>, floatingIPs: Record<string, string>): KubeObject {
  return {
    apiVersion: 'networking.gke.io/v1alpha1',
    kind: 'AnthosNetworkGateway',
    metadata: { name: 'default', namespace: 'kube-system' },
    spec: { floatingIPs: Object.keys(floatingIPs) },
    status: { nodes, floatingIPs },
  };
}

/** An API whose gateway object goes through `states`, one per read (the last one stays). */
function fakeApi(states: KubeObject[]): KubeClient & { reads: number } {
  const api = {
    reads: 0,
    get: async () => states[Math.min(api.reads++, states.length - 1)]!,
  };
  return api as unknown as KubeClient & { reads: number };
}

const IP = '192.168.1.100';

describe('upHolder', () => {
  it('is the assigned node only while that node is Up', () => {
    expect(upHolder(gatewayStatus(gateway({ 'node-1': 'Up' }, { [IP]: 'node-1' })), IP)).toBe('node-1');
    expect(upHolder(gatewayStatus(gateway({ 'node-1': 'Down' }, { [IP]: 'node-1' })), IP)).toBeUndefined();
    expect(upHolder(gatewayStatus(gateway({ 'node-1': 'Up' }, {})), IP)).toBeUndefined();
  });
});

describe('holderOf', () => {
  it('waits through "unassigned" and "assigned to a Down node" and returns the Up holder', async () => {
    const api = fakeApi([
      gateway({ 'node-1': 'Up' }, {}),
      gateway({ 'node-1': 'Down', 'node-2': 'Up' }, { [IP]: 'node-1' }),
      gateway({ 'node-1': 'Down', 'node-2': 'Up' }, { [IP]: 'node-2' }),
    ]);
    expect(await holderOf(api, IP, { clock: fakeClock() })).toBe('node-2');
    expect(api.reads).toBe(3);
  });

  it('with nodeCount, also waits until every node is Up', async () => {
    const api = fakeApi([gateway({ 'node-1': 'Up', 'node-2': 'Down' }, { [IP]: 'node-1' }), gateway({ 'node-1': 'Up', 'node-2': 'Up' }, { [IP]: 'node-1' })]);
    expect(await holderOf(api, IP, { nodeCount: 2, clock: fakeClock() })).toBe('node-1');
    expect(api.reads).toBe(2);
  });

  it('times out naming the IP, and rejects a bad IP or node count naming the field and value', async () => {
    const api = fakeApi([gateway({ 'node-1': 'Up' }, {})]);
    await expect(holderOf(api, IP, { timeoutMs: 1_000, clock: fakeClock() })).rejects.toThrow(
      `timed out after 1000 ms waiting for ${IP} assigned to an Up node`,
    );
    await expect(holderOf(api, 'node-1')).rejects.toThrow('holderOf: ip: must be an IPv4 address (a floating IP of the gateway) (value: "node-1")');
    await expect(holderOf(api, IP, { nodeCount: 0 })).rejects.toThrow('holderOf: nodeCount: must be a whole number above 0');
  });
});
