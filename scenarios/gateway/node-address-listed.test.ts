/**
 * Hostile input: the gateway lists a node's own address as a floating IP (a typo, a copied list).
 * The controller never assigns such an address (ReservedAddress, docs/controller.md); the agents must
 * not treat it as a floating IP either. Every agent ARP-fences the floating IPs it does not hold
 * (an nft rule drops ARP frames whose sender is one of them): before the fix, node-2's own agent
 * fenced 192.168.1.2, so node-2 stopped sending ARP from its own address, requests and replies alike,
 * and dropped off the segment; and a conntrack commit would have deleted every connection whose
 * reply goes to that address (`conntrack -D --reply-dst`).
 *
 * Evidence from outside the agents: cp-1 asks who has node-2's address every 50 ms and a capture on
 * its segment interface records every request and reply, and each who-has of the window must have
 * its own reply from node-2; a pod on node-2 probes a public address and the internet sees node-2's
 * address. The premise that node-2's agent acted on the write: the other floating IP added in the
 * same write is in node-2's ARP fence set (the kernel's state, on the old agent as on the new one).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import { startArpAsker } from '../../harness/cluster/segment-arp.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { FLOATING_IPS, gw, holderOf, macOf, setFloatingIPs, startSeedLab, waitIPOn } from './gateway-kit.js';

const NODE = 'node-2';
const POD = 'paul/frontend-2';
/** a floating IP added in the same write: its holder taking it shows the agents have the new gateway */
const EXTRA = '192.168.1.103';
const OBSERVER = 'cp-1';
const ASK_EVERY_MS = 50;
/** a public address outside the seed policy's 8.8.8.0/24: masqueraded to the node's own address */
const PUBLIC = '1.1.1.1';

let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  ({ lab, api } = await startSeedLab('gwnodeaddr'));
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe("a node's own address listed as a floating IP", () => {
  it('is never assigned, and its node keeps answering ARP for it and masquerading its pods to it', async () => {
    const address = lab.nodeAddress(NODE);
    const observerIP = lab.nodeAddress(OBSERVER);
    const mac = await macOf(lab, NODE);
    expect(await lab.probe(POD, PUBLIC), 'before the write').toBeSeenFrom(address);

    const cap = await lab.capture(OBSERVER, 'eth0', { filter: 'arp' });
    const asker = await startArpAsker(lab, { where: OBSERVER, iface: 'eth0', ip: address, everyMs: ASK_EVERY_MS, name: 'node-address-arp-asker' });
    let from = 0;
    let until = 0;
    try {
      await setFloatingIPs(api, [...FLOATING_IPS, address, EXTRA]);
      // the premise: the controller read the write (it reports the address unassigned) and node-2's
      // agent acted on it (EXTRA in its ARP fence set; EXTRA's holder took it)
      const g = await pollUntil(() => gw(api), {
        what: `the gateway status to report ${address} unassigned`,
        timeoutMs: 15_000,
        intervalMs: 100,
        accept: (s) => s.unassigned[address] !== undefined,
      });
      expect(g.unassigned[address]).toBe(`${address} is node ${NODE}'s own address`);
      expect(Object.keys(g.assignments)).not.toContain(address);
      await waitIPOn(lab, await holderOf(api, EXTRA), EXTRA);
      await pollUntil(async () => (await lab.exec(NODE, ['nft', 'list', 'set', 'arp', 'egresslab_gw', 'floating'], { check: false })).stdout, {
        what: `${EXTRA} in ${NODE}'s ARP fence set`,
        timeoutMs: 15_000,
        intervalMs: 100,
        accept: (out) => out.includes(EXTRA),
      });
      // the window judged: 40 who-has (2 s) from now on
      from = Date.now();
      await asker.askMore(40);
      until = Date.now();
      expect(await lab.probe(POD, PUBLIC), 'after the write').toBeSeenFrom(address);
    } finally {
      await asker.stop();
    }
    const { packets } = await cap.stop();
    const requests = packets.filter((p) => p.arp?.op === 1 && p.arp.senderIp === observerIP && p.arp.targetIp === address && p.t >= from && p.t <= until);
    const replies = packets.filter((p) => p.arp?.op === 2 && p.arp.senderIp === address).sort((a, b) => a.t - b.t);
    expect(requests.length, `who-has for ${address} from ${OBSERVER} in the window`).toBeGreaterThanOrEqual(40);
    // every who-has of the window has a reply of its own from the node (the first one not taken yet,
    // within the second arping waits), and no one else answered
    const used = new Set<number>();
    const unanswered = requests.filter((q) => {
      const i = replies.findIndex((r, k) => !used.has(k) && r.t >= q.t && r.t <= q.t + 1000 && r.arp!.senderMac.toLowerCase() === mac);
      if (i === -1) return true;
      used.add(i);
      return false;
    });
    expect(
      unanswered.map((q) => Math.round(q.t - from)),
      `who-has (ms into the window) ${NODE} did not answer`,
    ).toEqual([]);
    expect([...new Set(replies.map((r) => r.arp!.senderMac.toLowerCase()))], `MACs that answered for ${address}`).toEqual([mac]);
  });
});
