/**
 * Cut off the segment but not the API (issue 12, the mirror of split-brain.test.ts): the switch
 * drops every frame between the holder and the rest of the segment (the router, the other workers)
 * except cp-1, where the controller runs. The holder's peers no longer hear it and it hears none of
 * them: this is where keepalived's backups would each promote themselves (two masters). Here only
 * the controller hands out floating IPs, and it still hears the holder's heartbeats, so the IP must
 * stay where it is: no other node may answer for it, and the holder must keep answering. (The
 * holder still hears cp-1's agent among its peers, so it does not find itself isolated: the
 * isolation path, no peer heard and the API unreachable, is failover.test.ts's partition.)
 *
 * Evidence from outside the nodes' agents: cp-1 is the one member that still reaches every node, so
 * it asks who has the IP every 50 ms for the whole episode (broadcast requests: every node that
 * answers for the IP is seen) and a capture on its segment interface records every ARP reply. Then
 * the cut is healed and the seed pod's traffic leaves through the holder again, answered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import { arpClaimsOf, overlappingClaims, startArpAsker } from '../../harness/cluster/segment-arp.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { SEED_IP, allUp, gw, holderOf, macOf, segmentArp, startSeedLab, waitSeenFrom } from './gateway-kit.js';

const CONTROLLER_NODE = 'cp-1';
/** cp-1's who-has period during the episode (ms). */
const ASK_EVERY_MS = 50;
/** How many who-has the episode lasts: 4 s, ten times the agents' isolation time (400 ms) and the controller's expiry (600 ms). */
const ASKS = 80;
let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  ({ lab, api } = await startSeedLab('gwsegcut'));
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('a holder cut off from the segment but not from the controller', () => {
  it('keeps its floating IP and stays the only node that answers for it (its silent peers take nothing), and carries the traffic again after the heal', async () => {
    const holder = await holderOf(api, SEED_IP);
    expect(holder, 'the seed holder is a worker (the controller runs on cp-1)').not.toBe(CONTROLLER_NODE);
    const nodes = lab.topology.nodes.map((n) => n.name);
    const macs = Object.fromEntries(await Promise.all(nodes.map(async (n) => [await macOf(lab, n), n] as const)));
    const who = (mac: string) => `${mac} (${macs[mac] ?? 'not a node'})`;
    const holderMac = await macOf(lab, holder);
    const before = await gw(api);

    const cap = await lab.capture(CONTROLLER_NODE, 'eth0', { filter: 'arp' });
    const during: Awaited<ReturnType<typeof gw>>[] = [];
    let asker: Awaited<ReturnType<typeof startArpAsker>> | undefined;
    try {
      await lab.faults.partition(holder, 'both', { except: [CONTROLLER_NODE] });
      asker = await startArpAsker(lab, { where: CONTROLLER_NODE, iface: 'eth0', ip: SEED_IP, everyMs: ASK_EVERY_MS, name: 'segment-cut-arp-asker' });
      const a = asker;
      // the controller's view, read all along: the IP's holder and every node's condition
      await pollUntil(
        async () => {
          during.push(await gw(api));
          return a.asked();
        },
        { what: `${ASKS} who-has from ${CONTROLLER_NODE} with ${holder} cut off the segment`, timeoutMs: 30_000, intervalMs: 200, accept: (n) => n >= ASKS },
      );
    } finally {
      await asker?.stop();
      await lab.faults.heal(holder);
    }
    const { packets } = await cap.stop();
    const cpMac = await macOf(lab, CONTROLLER_NODE);
    // every claim of the IP (answers and announcements alike) by whichever MAC
    const claims = arpClaimsOf(packets, SEED_IP);
    // cp-1's own who-has and the answers addressed to it (not the router's, flooded or not)
    const asks = packets.filter((p) => p.arp && p.arp.op === 1 && p.arp.targetIp === SEED_IP && p.arp.senderMac.toLowerCase() === cpMac);
    const cpIp = asks[0]?.arp?.senderIp;
    const answers = packets.filter((p) => p.arp && p.arp.op === 2 && p.arp.senderIp === SEED_IP && p.arp.targetIp === cpIp);
    const lastAnswer = Math.max(...answers.map((p) => p.t));
    // the kernel answers who-has in softirq, within a millisecond of the request on an unlossy
    // segment: a request sent before the last answer and not answered itself is one the holder
    // ignored (fenced) for a moment
    const unanswered = asks.filter((p) => p.t <= lastAnswer).length - answers.length;
    const byMac = new Map<string, number>();
    for (const c of claims) byMac.set(c.mac, (byMac.get(c.mac) ?? 0) + 1);
    const holders = [...new Set(during.map((g) => g.assignments[SEED_IP] ?? '(none)'))];
    console.log(
      `[segment cut] ${SEED_IP}: ${holder} cut off the segment but not from ${CONTROLLER_NODE}; ${asks.length} who-has from ${CONTROLLER_NODE}, ` +
        `${answers.length} answers, ${unanswered} unanswered before the last answer; claims: ` +
        `${[...byMac].map(([m, n]) => `${who(m)} ${n}`).join(', ') || '(none)'}; holder per the API over ${during.length} reads: ${holders.join(', ')}`,
    );
    expect(asks.length, `who-has requests from ${CONTROLLER_NODE} seen on its interface`).toBeGreaterThanOrEqual(ASKS);
    // only the holder claimed the IP, and it answered all along: it did not fence itself (the API
    // still confirmed it; its peers' silence is not the controller's decision)
    expect([...byMac.keys()].map(who), 'MACs that claimed the IP').toEqual([who(holderMac)]);
    expect(answers.length, `answers to ${CONTROLLER_NODE}'s who-has`).toBeGreaterThanOrEqual(ASKS / 2);
    expect(unanswered, `who-has from ${CONTROLLER_NODE} left unanswered before the last answer`).toBe(0);
    expect(overlappingClaims(claims, ASK_EVERY_MS), 'moments when two nodes answered ARP for the IP').toEqual([]);
    expect(holders, `holder of ${SEED_IP} per the API during the cut`).toEqual([holder]);
    expect(during.filter((g) => !allUp(g)).length, 'API reads during the cut with a node not Up (every heartbeat still reaches cp-1)').toBe(0);
    expect(allUp(before), 'every node Up before the cut').toBe(true);

    // healed: the holder still holds, carries the seed pod's traffic, and is the only one to claim the IP
    const after = await pollUntil(() => gw(api), { what: 'every node Up after the heal', timeoutMs: 30_000, intervalMs: 100, accept: (g) => allUp(g) });
    expect(after.assignments[SEED_IP], `holder of ${SEED_IP} after the heal`).toBe(holder);
    const arp = await segmentArp(lab, [SEED_IP], () => waitSeenFrom(lab, 'alice/frontend-1', '8.8.8.8', SEED_IP));
    expect(arp.result).toBeSeenFrom(SEED_IP);
    expect(arp.result).toGetReply();
    expect(arp.claims[SEED_IP]!.map(who), `who claimed ${SEED_IP} on the segment after the heal`).toEqual([who(holderMac)]);
  });
});
