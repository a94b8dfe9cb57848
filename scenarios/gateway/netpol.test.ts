/**
 * NetworkPolicy comes first (SPEC 2): traffic a NetworkPolicy drops never reaches egress selection
 * (nothing on the gateway, nothing at the endpoint); allowed traffic is then sent through the
 * gateway or masqueraded as usual.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { R, type KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { INTERNET_IP, SEED_IP, applySeed, holderOf, waitIPOn, waitSeenFrom } from './gateway-kit.js';

let lab: Lab;
let api: KubeClient;
let holder: string;

beforeAll(async () => {
  lab = await startTestLab('default', 'gwnp');
  api = await lab.api();
  await applySeed(api);
  holder = await holderOf(api, SEED_IP);
  await waitIPOn(lab, holder, SEED_IP);
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

/** paul's frontends may only talk to the VPC's 172.16.0.0/12. */
const onlyVpc: KubeObject = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'frontend-only-vpc', namespace: 'paul' },
  spec: {
    podSelector: { matchLabels: { role: 'frontend' } },
    policyTypes: ['Egress'],
    egress: [{ to: [{ ipBlock: { cidr: '172.16.0.0/12' } }] }],
  },
} as KubeObject;

describe('NetworkPolicy before egress selection', () => {
  it('without a NetworkPolicy, the matched pod leaves through the gateway', async () => {
    await waitSeenFrom(lab, 'paul/frontend-2', INTERNET_IP, SEED_IP, { what: 'paul/frontend-2 through the gateway' });
  });

  it('a denied destination is dropped before the gateway; an allowed one still works; other pods are untouched', async () => {
    await api.create(R.networkpolicies, onlyVpc, 'paul');
    await waitSeenFrom(lab, 'paul/frontend-2', INTERNET_IP, undefined, { what: 'paul/frontend-2 -> 8.8.8.8 to be dropped by the NetworkPolicy' });

    const cap = await lab.capture(holder, 'eth0', { filter: `udp and host ${INTERNET_IP}` });
    const denied = await lab.probe('paul/frontend-2', INTERNET_IP, { proto: 'udp', timeoutMs: 800 });
    const other = await lab.probe('alice/frontend-1', INTERNET_IP, { proto: 'udp' });
    const { packets } = await cap.stop();
    expect(denied.replyReceived).toBe(false);
    expect(denied.observedSource).toBeUndefined();
    // Nothing of paul/frontend-2's reached the gateway node, in either form.
    expect(packets.filter((p) => p.ip?.src === '10.10.11.1' || (p.ip?.src === SEED_IP && p.ip.udp?.sport === denied.observedPort))).toEqual([]);
    // alice's frontend is not selected by paul's NetworkPolicy: still through the gateway.
    expect(other).toBeSeenFrom(SEED_IP);
    expect(other).toGetReply();

    // Allowed by the NetworkPolicy and not in the gateway policy's destinations: the usual
    // masquerade rules (172.16.0.0/12 is on the default non-masquerade list: pod IP kept).
    const allowed = await lab.probe('paul/frontend-2', '172.16.100.10', { proto: 'udp' });
    expect(allowed).toBeSeenFrom('10.10.11.1');
    expect(allowed).toGetReply();
  });

  it('deleting the NetworkPolicy sends the traffic through the gateway again', async () => {
    await api.delete(R.networkpolicies, 'frontend-only-vpc', 'paul');
    const r = await waitSeenFrom(lab, 'paul/frontend-2', INTERNET_IP, SEED_IP, { what: 'paul/frontend-2 through the gateway again' });
    expect(r).toGetReply();
  });
});
