/**
 * The lab's ground truth, with no agent or controller running (snat: none): the source an endpoint
 * observes is exactly what the node did, pod IPs are not routable on the internet, the VPC routes
 * back to pod CIDRs, and pod-to-pod traffic is routed, never NATed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab, randomPublicAddress } from '../../harness/testing/lab.js';
import { PROTOS } from '../../harness/inlab/protocol.js';

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('foundation', 'src');
});
afterAll(async () => {
  await lab?.down();
});

describe("a node's host network to the internet", () => {
  const targets = [randomPublicAddress(), randomPublicAddress(), randomPublicAddress()];
  for (const to of targets) {
    for (const proto of PROTOS) {
      it(`node-1 -> ${to} over ${proto}: observed 192.168.1.1, reply received`, async () => {
        const r = await lab.probe('node-1', to, { proto });
        expect(r.observedSource).toBe('192.168.1.1');
        expect(r.observedBy).toBe('internet');
        expect(r.replyReceived).toBe(true);
        expect(r.rttMs).toBeGreaterThan(0);
      });
    }
  }
});

describe('a pod to the internet without SNAT', () => {
  for (const proto of PROTOS) {
    it(`default/client-1 -> public over ${proto}: observed 10.10.10.2, reply lost`, async () => {
      const r = await lab.probe('default/client-1', randomPublicAddress(), { proto, timeoutMs: 600 });
      expect(r.observedSource).toBe('10.10.10.2');
      expect(r.evidence).toBe('capture');
      expect(r.replyReceived).toBe(false);
    });
  }
});

describe('a pod to the VPC endpoint', () => {
  for (const proto of PROTOS) {
    it(`default/client-1 -> 172.16.100.10 over ${proto}: observed 10.10.10.2, reply received`, async () => {
      const r = await lab.probe('default/client-1', '172.16.100.10', { proto });
      expect(r.observedSource).toBe('10.10.10.2');
      expect(r.observedBy).toBe('vpc');
      expect(r.replyReceived).toBe(true);
    });
  }
  it('the VPC answers on its private ranges too (10.200.0.1)', async () => {
    const r = await lab.probe('alice/frontend-1', '10.200.0.1', { proto: 'udp' });
    expect(r).toMatchObject({ observedSource: '10.10.10.1', observedBy: 'vpc', replyReceived: true });
  });
});

describe('pod to pod across nodes', () => {
  for (const proto of PROTOS) {
    it(`alice/frontend-1 (node-1) -> paul/frontend-2 (node-2) over ${proto}: source preserved`, async () => {
      const r = await lab.probe('alice/frontend-1', '10.10.11.1', { proto });
      expect(r.observedSource).toBe('10.10.10.1');
      expect(r.observedBy).toBe('paul/frontend-2');
      expect(r.replyReceived).toBe(true);
    });
  }
});

describe('hostNetwork pods', () => {
  it('default/host-1 on node-1 appears as the node IP', async () => {
    const r = await lab.probe('default/host-1', randomPublicAddress(), { proto: 'udp' });
    expect(r).toMatchObject({ observedSource: '192.168.1.1', replyReceived: true });
  });
});

describe('an address nothing in the lab owns', () => {
  it('192.168.1.77 (node segment, unassigned): no reply and nobody observed it', async () => {
    const r = await lab.probe('node-1', '192.168.1.77', { proto: 'udp', timeoutMs: 500 });
    expect(r.replyReceived).toBe(false);
    expect(r.observedSource).toBeUndefined();
  });
});
