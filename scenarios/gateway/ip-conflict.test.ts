/**
 * Address conflict detection (issue 12, "check before taking an IP"): a floating IP that another
 * host on the segment already answers for (here the router, a foreign owner the controller knows
 * nothing of) is assigned to a node. The node adds it but must not answer ARP for it nor announce
 * it while the other host does; once that host lets the address go, the node answers and announces
 * it. Evidence from outside the agents: cp-1 asks who has the IP every 50 ms for the whole episode
 * and a capture on its segment interface records every ARP reply and announcement for it: at no
 * moment may two MACs have claimed it, and the node's first claim comes after the foreign one's last.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import { ROUTER } from '../../harness/topology/plan.js';
import { arpClaimsOf, overlappingClaims, startArpAsker } from '../../harness/cluster/segment-arp.js';
import { R, type KubeClient } from '../../lib/kube/client.js';
import { FLOATING_IPS, holderOf, macOf, startSeedLab, setFloatingIPs, waitIPOn } from './gateway-kit.js';

/** An address of the node segment outside the seed's floating IPs, owned by the router first. */
const CONTESTED = '192.168.1.103';
const ROUTER_SEGMENT_IF = 'eth-nodes';
const OBSERVER = 'cp-1';
const ASK_EVERY_MS = 50;
let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  ({ lab, api } = await startSeedLab('gwdad'));
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

/** One who-has for `ip` from the observer; the MAC that answered first, or null. */
async function whoHas(ip: string): Promise<string | null> {
  const r = await lab.exec(OBSERVER, ['arping', '-c', '1', '-w', '1', '-I', 'eth0', ip], { check: false });
  return /\[([0-9A-Fa-f:]{17})\]/.exec(r.stdout)?.[1]?.toLowerCase() ?? null;
}

describe('a floating IP another host already answers for', () => {
  it('is added on its node but neither answered for nor announced until the other host lets it go; then only the node claims it', async () => {
    const nodes = lab.topology.nodes.map((n) => n.name);
    const macs: Record<string, string> = Object.fromEntries(await Promise.all(nodes.map(async (n) => [await macOf(lab, n), n] as const)));
    const routerMac = await macOf(lab, ROUTER, ROUTER_SEGMENT_IF);
    macs[routerMac] = ROUTER;
    const who = (mac: string) => `${mac} (${macs[mac] ?? 'unknown'})`;

    // the foreign owner: the router answers for CONTESTED before any node is given it
    await lab.exec(ROUTER, ['ip', 'addr', 'add', `${CONTESTED}/32`, 'dev', ROUTER_SEGMENT_IF]);
    expect(await whoHas(CONTESTED), `who answers for ${CONTESTED} before the gateway lists it`).toBe(routerMac);

    const cap = await lab.capture(OBSERVER, 'eth0', { filter: 'arp' });
    const asker = await startArpAsker(lab, { where: OBSERVER, iface: 'eth0', ip: CONTESTED, everyMs: ASK_EVERY_MS, name: 'ip-conflict-arp-asker' });
    let holder: string;
    try {
      await setFloatingIPs(api, [...FLOATING_IPS, CONTESTED]);
      holder = await holderOf(api, CONTESTED);
      await waitIPOn(lab, holder, CONTESTED);
      // the node holds the address; the conflict goes on until the agent has reported it
      const event = await pollUntil(async () => (await api.list(R.events, { namespace: 'default', fieldSelector: 'reason=EgressIPConflict' })).items, {
        what: `an EgressIPConflict Event for ${CONTESTED}`,
        timeoutMs: 15_000,
        intervalMs: 200,
        accept: (l) => l.some((e) => String(e.message).includes(CONTESTED)),
      });
      expect(String(event.find((e) => String(e.message).includes(CONTESTED))!.message), 'the Event names the other MAC').toContain(routerMac);
      // the foreign owner lets the address go: the node answers and announces it
      await lab.exec(ROUTER, ['ip', 'addr', 'del', `${CONTESTED}/32`, 'dev', ROUTER_SEGMENT_IF]);
      const nodeMac = await macOf(lab, holder);
      await pollUntil(() => whoHas(CONTESTED), {
        what: `${holder} to answer for ${CONTESTED}`,
        timeoutMs: 15_000,
        intervalMs: 100,
        accept: (m) => m === nodeMac,
      });
      // the episode goes on for 20 more who-has with the node answering
      await asker.askMore(20);
    } finally {
      await asker.stop();
      await lab.exec(ROUTER, ['ip', 'addr', 'del', `${CONTESTED}/32`, 'dev', ROUTER_SEGMENT_IF], { check: false });
    }
    const { packets } = await cap.stop();
    const all = arpClaimsOf(packets, CONTESTED);
    const nodeMac = await macOf(lab, holder);
    const byMac = new Map<string, number>();
    for (const c of all) byMac.set(c.mac, (byMac.get(c.mac) ?? 0) + 1);
    const lastForeign = Math.max(...all.filter((c) => c.mac === routerMac).map((c) => c.t));
    const firstNode = Math.min(...all.filter((c) => c.mac === nodeMac).map((c) => c.t));
    console.log(
      `[ip conflict] ${CONTESTED} on ${holder} while the router answered for it: claims ${[...byMac].map(([m, n]) => `${who(m)} ${n}`).join(', ')}; ` +
        `${holder}'s first claim ${Math.round(firstNode - lastForeign)} ms after the router's last`,
    );
    expect([...byMac.keys()].map(who).sort(), 'MACs that claimed the IP').toEqual([who(nodeMac), who(routerMac)].sort());
    expect(firstNode, `${holder}'s first claim comes after the router's last`).toBeGreaterThan(lastForeign);
    expect(
      overlappingClaims(all, ASK_EVERY_MS).map((l) => l.replace(/([0-9a-f:]{17})/g, (m) => who(m))),
      'moments when two hosts claimed the IP',
    ).toEqual([]);
  });
});
