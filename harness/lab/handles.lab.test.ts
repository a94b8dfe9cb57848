/**
 * The scenario API's handles: lab.pod(...).probe, lab.node(...).partition/heal, lab.apply(...).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from './lab.js';
import { startTestLab } from '../testing/lab.js';
import { projectRoot } from '../util/paths.js';
import { pollUntil } from '../util/poll.js';

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('default', 'hdl');
});
afterAll(async () => {
  await lab?.down();
});

describe('handles', () => {
  it('a pod handle carries its plan and probes from the pod', async () => {
    const pod = lab.pod('alice/frontend-1');
    expect(pod).toMatchObject({ ip: '10.10.10.1', node: 'node-1', labels: { role: 'frontend' } });
    // Standard with ip-masq-agent and no ConfigMap: a public destination leaves with the node IP.
    const r = await pod.probe('8.8.8.8', { proto: 'udp' });
    expect(r).toMatchObject({ observedSource: '192.168.1.1', replyReceived: true });
    const addr = await pod.exec(['ip', '-4', '-o', 'addr', 'show', 'eth0']);
    expect(addr.stdout).toContain('10.10.10.1/32');
  });

  it('a node handle probes from the node and injects faults on it', async () => {
    const node = lab.node('node-3');
    expect(node).toMatchObject({ address: '192.168.1.3', role: 'worker' });
    await node.partition();
    expect((await node.probe('8.8.8.8', { proto: 'udp', timeoutMs: 400 })).replyReceived).toBe(false);
    await node.heal();
    await pollUntil(async () => (await node.probe('8.8.8.8', { proto: 'udp', timeoutMs: 400 })).replyReceived, {
      what: 'node-3 to reach the internet after heal',
      timeoutMs: 10_000,
    });
    expect(() => lab.node('node-9')).toThrow(/has no node node-9/);
  });

  it('lab.apply applies the seed manifests as kubectl apply would', async () => {
    const results = await lab.apply(join(projectRoot(), 'fixtures/manifests/seed-000'));
    expect(results.length).toBeGreaterThanOrEqual(2);
    expect(results.every((r) => r.action === 'created')).toBe(true);
    const again = await lab.apply(join(projectRoot(), 'fixtures/manifests/seed-000'));
    expect(again.every((r) => r.action === 'unchanged')).toBe(true);
  });
});
