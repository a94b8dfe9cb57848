/**
 * Split brain (issue 12): a holder cut off from the controller but not from the segment. The switch
 * drops every frame between the holder and cp-1 (the controller: API and heartbeats), both ways,
 * while the holder still hears, and is heard by, the other nodes. The controller declares it Down
 * and gives its floating IP to another node; the cut-off holder must stop answering for that IP
 * before the new holder starts. Evidence from outside the nodes: the router asks who has the IP
 * every 50 ms for the whole episode (broadcast requests, so every node that answers for it is
 * seen) and a capture on its segment interface records every ARP reply; at no moment may two
 * nodes have answered for the IP. Then the cut is healed: the old holder comes back Up, does not get
 * the IP back, lets it go, and only the new holder claims it while the seed pod's traffic (on the
 * old holder's node) goes out through the new one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import { ROUTER } from '../../harness/topology/plan.js';
import { arpClaimsOf, overlappingClaims, startArpAsker } from '../../harness/cluster/segment-arp.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { SEED_IP, allUp, gw, holderOf, macOf, segmentArp, startSeedLab, waitIPOff, waitIPOn, waitSeenFrom } from './gateway-kit.js';

const CONTROLLER_NODE = 'cp-1';
const ROUTER_SEGMENT_IF = 'eth-nodes';
/** The router's who-has period during the episode (ms). */
const ASK_EVERY_MS = 50;
let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  ({ lab, api } = await startSeedLab('gwsplit'));
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('a holder cut off from the controller but not from the segment', () => {
  it('stops answering ARP for its floating IP before the new holder starts (never two owners), and does not get it back after the heal', async () => {
    const holder = await holderOf(api, SEED_IP);
    expect(holder, 'the seed holder is a worker (the controller runs on cp-1)').not.toBe(CONTROLLER_NODE);
    const nodes = lab.topology.nodes.map((n) => n.name);
    const macs = Object.fromEntries(await Promise.all(nodes.map(async (n) => [await macOf(lab, n), n] as const)));
    const who = (mac: string) => `${mac} (${macs[mac] ?? 'not a node'})`;

    const cap = await lab.capture(ROUTER, ROUTER_SEGMENT_IF, { filter: 'arp' });
    // the router asks every ASK_EVERY_MS for the whole episode (broadcast requests: every owner answers each one)
    const asker = await startArpAsker(lab, { where: ROUTER, iface: ROUTER_SEGMENT_IF, ip: SEED_IP, everyMs: ASK_EVERY_MS, name: 'split-brain-arp-asker' });
    let newHolder: string;
    try {
      await lab.faults.blackhole(holder, CONTROLLER_NODE);
      await lab.faults.blackhole(CONTROLLER_NODE, holder);
      const moved = await pollUntil(() => gw(api), {
        what: `the controller to move ${SEED_IP} off ${holder} (cut off from it)`,
        timeoutMs: 15_000,
        intervalMs: 50,
        accept: (g) => !!g.assignments[SEED_IP] && g.assignments[SEED_IP] !== holder,
      });
      newHolder = moved.assignments[SEED_IP]!;
      await waitIPOn(lab, newHolder, SEED_IP);
      // the episode goes on (the cut-off holder still hears its peers, its watch is dead) until
      // the router has asked 60 more times with the new holder in place
      await asker.askMore(60);
    } finally {
      await asker.stop();
    }
    const { packets } = await cap.stop();
    const claims = arpClaimsOf(packets, SEED_IP);
    const requests = packets.filter((p) => p.arp && p.arp.op === 1 && p.arp.targetIp === SEED_IP).length;
    const oldMac = await macOf(lab, holder);
    const newMac = await macOf(lab, newHolder);
    const lastOld = Math.max(...claims.filter((c) => c.mac === oldMac).map((c) => c.t));
    const firstNew = Math.min(...claims.filter((c) => c.mac === newMac).map((c) => c.t));
    const handover = Number.isFinite(lastOld) && Number.isFinite(firstNew) ? firstNew - lastOld : undefined;
    const byMac = new Map<string, number>();
    for (const c of claims) byMac.set(c.mac, (byMac.get(c.mac) ?? 0) + 1);
    console.log(
      `[split brain] ${SEED_IP}: ${holder} cut off from ${CONTROLLER_NODE}, moved to ${newHolder}; ${requests} who-has, ` +
        `${claims.length} claims (replies, announcements): ${[...byMac].map(([m, n]) => `${who(m)} ${n}`).join(', ')}; ` +
        `the old holder's last reply came ${handover === undefined ? '(none)' : `${Math.round(handover)} ms`} before the new holder's first`,
    );
    // the router asked all along and somebody answered (the evidence is not empty)
    expect(requests, 'who-has requests seen at the router').toBeGreaterThan(50);
    expect([...byMac.keys()].map(who), 'MACs that answered for the IP').toContain(who(newMac));
    expect(
      overlappingClaims(claims, ASK_EVERY_MS).map((l) => l.replace(/([0-9a-f:]{17})/g, (m) => who(m))),
      'moments when two nodes answered ARP for the IP',
    ).toEqual([]);

    // heal: the old holder comes back Up, the IP stays where it is, and only its holder claims it
    await lab.faults.unblackhole(holder, CONTROLLER_NODE);
    await lab.faults.unblackhole(CONTROLLER_NODE, holder);
    const after = await pollUntil(() => gw(api), {
      what: `every node Up again after the heal`,
      timeoutMs: 30_000,
      intervalMs: 100,
      accept: (g) => allUp(g),
    });
    expect(after.assignments[SEED_IP], `holder of ${SEED_IP} after the heal`).toBe(newHolder);
    // the old holder learns it lost the IP from a fresh read once the controller hears it again
    await waitIPOff(lab, holder, SEED_IP);
    const arp = await segmentArp(lab, [SEED_IP], () => waitSeenFrom(lab, 'alice/frontend-1', '8.8.8.8', SEED_IP));
    expect(arp.result).toBeSeenFrom(SEED_IP);
    expect(arp.result).toGetReply();
    expect(arp.claims[SEED_IP]!.map(who), `who claimed ${SEED_IP} on the segment after the heal`).toEqual([who(newMac)]);
  });
});
