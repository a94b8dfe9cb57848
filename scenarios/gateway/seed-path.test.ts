/**
 * The seed's example exactly (SPEC 2, issue 6): fixtures/manifests/seed-000 applied unchanged
 * (gateway in cluster-cluster1 with .100/.101/.102, policy "egress" on 192.168.1.100 for
 * role=frontend pods of user=alice and user=paul namespaces, to 8.8.8.0/24), and the 7-step packet
 * path proven hop by hop from pcaps: the pod's veth, the source node's uplink towards the gateway
 * node (src still the pod IP, dst MAC the gateway node's), the gateway node's egress (src the egress
 * IP), the endpoint, the reply to the egress IP, the de-NAT on the gateway back to the pod's node,
 * delivery to the pod.
 *
 * With every node Up, 192.168.1.100 goes to node-1 (workers, name order), i.e. the node of
 * alice/frontend-1 itself; the cross-node path is shown (a) with the seed's other matched pod,
 * paul/frontend-2 on node-2, and (b) for 10.10.10.1 itself with a second policy on the floating IP
 * another node holds (to 9.9.9.0/24).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { SEED_IP, applySeed, capturePath, createPolicy, expectPath, gw, holderOf, waitIPOn, waitSeenFrom, type PathCase } from './gateway-kit.js';

let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  lab = await startTestLab('default', 'gwseed');
  api = await lab.api();
  await applySeed(api);
  await waitIPOn(lab, await holderOf(api, SEED_IP), SEED_IP);
  await waitSeenFrom(lab, 'alice/frontend-1', '8.8.8.8', SEED_IP);
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('the seed example: 10.10.10.1 on node-1, egress IP 192.168.1.100', () => {
  it('the gateway status assigns 192.168.1.100 and its holder has it on eth0', async () => {
    const holder = await holderOf(api, SEED_IP);
    // rules 2+3+name order: with every worker Up and free, .100 goes to node-1 (it may move if a
    // loaded node misses its lease; then to another worker)
    expect(['node-1', 'node-2', 'node-3']).toContain(holder);
    await waitIPOn(lab, holder, SEED_IP);
  });

  it('alice/frontend-1 (10.10.10.1) -> 8.8.8.8 leaves with 192.168.1.100, reply delivered (7 steps in pcaps)', async () => {
    const c: PathCase = { pod: 'alice/frontend-1', dst: '8.8.8.8', port: 7101, egressIP: SEED_IP, holder: await holderOf(api, SEED_IP) };
    expectPath(await capturePath(lab, c), c);
  });

  it("paul/frontend-2 (node-2, matched by the seed policy's second rule) crosses to the holder: 7 steps", async () => {
    const c: PathCase = { pod: 'paul/frontend-2', dst: '8.8.8.8', port: 7102, egressIP: SEED_IP, holder: await holderOf(api, SEED_IP) };
    expectPath(await capturePath(lab, c), c);
  });

  it('10.10.10.1 through a gateway on another node (second policy on a floating IP held elsewhere): 7 steps', async () => {
    const g = await gw(api);
    const [ip, holder] = Object.entries(g.assignments).find(([ip, n]) => ip !== SEED_IP && n !== lab.pod('alice/frontend-1').node)!;
    await createPolicy(api, {
      name: 'seed-remote',
      egressSourceIP: ip,
      destinationCIDRs: ['9.9.9.0/24'],
      rules: [{ namespaceSelector: { user: 'alice' }, podSelector: { role: 'frontend' } }],
    });
    await waitIPOn(lab, holder, ip);
    await waitSeenFrom(lab, 'alice/frontend-1', '9.9.9.9', ip);
    const c: PathCase = { pod: 'alice/frontend-1', dst: '9.9.9.9', port: 7103, egressIP: ip, holder };
    expectPath(await capturePath(lab, c), c);
  });

  it('unmatched pod and unmatched destinations are masqueraded per the masquerade rules', async () => {
    // default/client-1: no policy matches -> node IP to the internet
    const client = await lab.probe('default/client-1', '8.8.8.8', { proto: 'udp' });
    expect(client).toBeSeenFrom('192.168.1.1');
    expect(client).toGetReply();
    // alice/frontend-1 to a destination outside destinationCIDRs: its node IP (internet) ...
    const other = await lab.probe('alice/frontend-1', '1.1.1.1', { proto: 'udp' });
    expect(other).toBeSeenFrom('192.168.1.1');
    expect(other).toGetReply();
    // ... and the pod IP to the VPC (ip-masq-agent's default non-masquerade ranges)
    const vpc = await lab.probe('alice/frontend-1', '172.16.100.10', { proto: 'udp' });
    expect(vpc).toBeSeenFrom('10.10.10.1');
    expect(vpc).toGetReply();
    // a hostNetwork pod always sends with its node IP
    const host = await lab.probe('default/host-1', '8.8.8.8', { proto: 'udp' });
    expect(host).toBeSeenFrom('192.168.1.1');
    // TCP and ICMP of the matched pod take the gateway too
    for (const proto of ['tcp', 'icmp'] as const) {
      const r = await lab.probe('alice/frontend-1', '8.8.8.8', { proto });
      expect(r).toBeSeenFrom(SEED_IP);
      expect(r).toGetReply();
    }
  });
});
