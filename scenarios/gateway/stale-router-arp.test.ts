/**
 * A router whose ARP cache still sends a floating IP's traffic to a node that does not hold it.
 *
 * Routers keep ARP entries for minutes (hours on some), and a gratuitous ARP that does not reach
 * them leaves the entry pointing at a former holder. That node hairpins the far end's segments back
 * onto the segment to the holder: the flows carry on. Found by chaos seed 848038198
 * (replies-reach-pod; docs/chaos.md): a node that forwarded the far end's segments of a connection
 * it did not hold kept a conntrack entry for them (original direction: internet -> floating IP);
 * when it later took the IP, the replicated binding of that connection (whose reply tuple is that
 * entry's original one) could not be committed, the far end's segments met the stray entry and the
 * input rule for floating IPs dropped them, and the pod's next segment was SNATed to another port
 * (the binding's port was taken): the far end answered RST.
 *
 * Here: streams from the matched pods of the two workers that do not hold 192.168.1.100 to 8.8.8.8;
 * the router's entry for the IP is pointed at every other node in turn (a permanent neighbour entry
 * on the router, the lab's own container: a fault of the network, not of the system under test),
 * the streams keep being answered through the hairpin; then the router resolves the IP again and
 * the holder is killed. Whichever node takes the IP, the same connections carry on (same local
 * port, same source IP:port at the far end), every segment at the internet comes from the IP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import { workerHolder } from '../../harness/cluster/holder.js';
import type { Timeline } from '../../harness/probe/timeline.js';
import { describeSegment, segmentLeaks, startStreams, stopAndSegments, streamOutcome, survivalReport, type Segment } from '../../harness/probe/stream.js';
import { strayEntryPurgeArgs } from '../../agent/gateway/conntrack-sync.js';
import {
  allUp,
  breakNode,
  expectSameConnection,
  gw,
  macOf,
  restoreNode,
  startFailoverLab,
  streamsAnsweredOrBroken,
  waitIPOff,
  waitIPOn,
  waitMovedOff,
  waitSeenFrom,
} from './gateway-kit.js';

const IP = '192.168.1.100';
const DST = '8.8.8.8';
const PORT = 7007;
const MATCHED = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3'];
/** the router's interface on the node segment */
const ROUTER_IF = 'eth-nodes';

let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  ({ lab, api } = await startFailoverLab('gwarp'));
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('a router whose ARP entry for a floating IP points at a node that does not hold it', () => {
  it('the node hairpins the flows to the holder, and when it takes the IP over they carry on', async () => {
    const holder = await workerHolder(lab, api, IP);
    await pollUntil(() => gw(api), { what: 'every node Up', timeoutMs: 30_000, intervalMs: 50, accept: (g) => allUp(g) });
    const pods = MATCHED.filter((p) => lab.pod(p).node !== holder);
    const others = lab.topology.nodes.map((n) => n.name).filter((n) => n !== holder);
    await waitSeenFrom(lab, pods[0]!, DST, IP);
    const labels = pods.map((p) => `${p} (${lab.pod(p).node}) -> ${DST}:${PORT}`);
    const cap = await lab.capture('internet', 'eth0', { filter: `tcp and dst host ${DST} and dst port ${PORT}` });
    const streams = await startStreams(
      lab,
      pods.map((p) => ({ from: p, to: DST, port: PORT })),
      { intervalMs: 50, timeoutMs: 300 },
    );
    let newHolder = '';
    let timelines: Timeline[] = [];
    let segments: Segment[] = [];
    try {
      await streamsAnsweredOrBroken(streams, 0, 10, 'before the stale entries');
      // the premise, seen on the wire: the far end's segments to the IP left the router for each of those nodes
      const routerCap = await lab.capture('router', ROUTER_IF, { filter: `tcp and src host ${DST} and dst host ${IP}` });
      const macs = new Map<string, string>();
      try {
        for (const node of others) {
          macs.set(node, await macOf(lab, node));
          // the router sends the IP's traffic to `node`, which does not hold it, until told otherwise
          await lab.exec('router', ['ip', 'neigh', 'replace', IP, 'lladdr', macs.get(node)!, 'dev', ROUTER_IF, 'nud', 'permanent']);
          await streamsAnsweredOrBroken(streams, Date.now() + 100, 10, `while the router sends ${IP} to ${node}`);
        }
      } catch (e) {
        await routerCap.stop().catch(() => undefined);
        throw e;
      } finally {
        // a failure here must not hide the test's own error: the next step fails anyway if the entry stayed
        await lab.exec('router', ['ip', 'neigh', 'del', IP, 'dev', ROUTER_IF]).catch((e: unknown) => console.error(`router: ip neigh del ${IP}: ${String(e)}`));
      }
      // (an Ethernet capture: the frames the router sent carry the MAC it resolved the IP to)
      const sent = (await routerCap.stop()).packets;
      for (const [node, mac] of macs)
        expect(sent.filter((p) => p.dstMac === mac).length, `far-end segments to ${IP} the router sent to ${node}`).toBeGreaterThan(0);
      await streamsAnsweredOrBroken(streams, Date.now() + 100, 10, 'after the router resolved the IP again');
      const tFault = Date.now();
      await breakNode(lab, 'kill', holder);
      try {
        newHolder = await waitMovedOff(api, IP, holder);
        await waitIPOn(lab, newHolder, IP);
        await streamsAnsweredOrBroken(streams, Math.max(tFault + 100, Date.now()), 20, `after the kill of ${holder}`);
      } finally {
        await restoreNode(lab, 'kill', holder);
      }
      await waitIPOff(lab, holder, IP);
      timelines = await Promise.all(streams.map((p) => p.stop()));
      segments = await stopAndSegments(cap, DST, PORT);
    } finally {
      await Promise.all(streams.map((p) => p.stop().catch(() => undefined)));
      await cap.stop().catch(() => undefined);
    }

    const outcomes = timelines.map((t, i) => streamOutcome(labels[i]!, t));
    const leaks = segmentLeaks(segments, [IP]);
    console.log(`${IP}: ${holder} -> ${newHolder} (router pointed at ${others.join(', ')} first); long-lived TCP ${survivalReport(outcomes).text}`);
    expect(newHolder).not.toBe(holder);
    timelines.forEach((t, i) => {
      expectSameConnection(t, outcomes[i]!, IP);
      expect(t).toHaveNoLeaks([IP]);
    });
    expect(leaks.leaked.map(describeSegment), 'segments that reached the internet with another source').toEqual([]);
    expect(segments.length).toBeGreaterThan(0);
  }, 180_000);

  it("the take's purge (strayEntryPurgeArgs), run by the node's own conntrack: the stray entry goes, a binding to the same IP stays", async () => {
    // an address no gateway lists and a source no pod has: nothing of the agent's touches these entries
    const ip = '192.168.1.199';
    const node = 'node-1';
    const tcp = (o: { s: string; d: string; sport: number; dport: number; r: string; q: string }) => [
      ...['-p', 'tcp', '-s', o.s, '-d', o.d, '--sport', String(o.sport), '--dport', String(o.dport)],
      ...['-r', o.r, '-q', o.q, '--reply-port-src', String(o.dport), '--reply-port-dst', String(o.sport)],
    ];
    // what a hairpinned segment leaves (original: the far end -> the IP), and a binding to the IP (original: a pod -> the far end)
    const stray = tcp({ s: DST, d: ip, sport: PORT, dport: 40001, r: ip, q: DST });
    const binding = tcp({ s: '10.10.10.99', d: DST, sport: 40002, dport: PORT, r: DST, q: ip });
    const list = async () => (await lab.exec(node, ['conntrack', '-L', '-p', 'tcp'])).stdout.split('\n').filter((l) => l.includes(ip));
    try {
      for (const e of [stray, binding]) await lab.exec(node, ['conntrack', '-I', ...e, '--state', 'ESTABLISHED', '-t', '120']);
      const before = await list();
      expect(
        before.filter((l) => l.includes(`src=${DST} dst=${ip} sport=${PORT} dport=40001`)),
        'the stray entry, inserted',
      ).toHaveLength(1);
      expect(
        before.filter((l) => l.includes('src=10.10.10.99 dst=8.8.8.8 sport=40002')),
        'the binding, inserted',
      ).toHaveLength(1);
      for (const a of strayEntryPurgeArgs([ip])) await lab.exec(node, ['conntrack', ...a]);
      const after = await list();
      expect(
        after.filter((l) => l.includes(`src=${DST} dst=${ip} sport=${PORT} dport=40001`)),
        'the stray entry, after the purge',
      ).toEqual([]);
      expect(
        after.filter((l) => l.includes('src=10.10.10.99 dst=8.8.8.8 sport=40002')),
        'the binding, after the purge',
      ).toHaveLength(1);
    } finally {
      await lab.exec(node, ['conntrack', '-D', '-p', 'tcp', '-q', ip]).catch(() => undefined);
      await lab.exec(node, ['conntrack', '-D', '-p', 'tcp', '-d', ip]).catch(() => undefined);
    }
  });
});
