/**
 * A busy machine is not a partition (issue 10). The holder of 192.168.1.100 keeps running while every
 * other node, cp-1 and its controller included, is frozen (docker pause) for 3 s: the holder hears
 * no peer heartbeat and the API does not answer, exactly what a cut-off holder sees, yet nothing cut
 * it off (the frozen nodes' kernels still forward and answer), and the frozen controller cannot move
 * the IP. The holder must not fence itself: its own pods' traffic goes on leaving with the egress IP.
 * Before cut-off.ts it did fence itself after ~0.9 s (no peer heard for 400 ms, then a 500 ms read
 * of the gateway status failed), and its pods' policy traffic failed closed until the nodes woke: the
 * same thing happened for 350 ms with no fault at all, in a full run with two labs at once on 2
 * cores, when starved peers and a late controller looked like a partition.
 *
 * Evidence from outside the system under test: the far end's capture. Every packet of a UDP probe
 * from a matched pod on the holder, sent while the other nodes were frozen, must be observed at the
 * far end with the egress IP. (Forward direction only: with the controller frozen, the holder's ARP
 * licence runs out and it stops answering ARP for the IP, so replies depend on the router's ARP
 * cache; that is the licence's business, not the fence's.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { recordArtifactsOnFailure, recordTimeline } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { FAILOVER_MANIFESTS, allUp, gw, holderOf, matchedPods, policyOf, startFailoverLab, waitIPOn, waitSeenFrom } from './gateway-kit.js';

const IP = '192.168.1.100';
const DST = '8.8.8.8';
/** The probe's period, and how many of its packets the other nodes stay frozen for: 3 s, more than 3 times isolation (400 ms) + the read's deadline (500 ms). */
const EVERY_MS = 20;
const FROZEN_PACKETS = 150;
let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  ({ lab, api } = await startFailoverLab('gwfrz'));
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('every node but the holder frozen, the controller included', () => {
  it('the holder does not take it for a partition: its own pods keep leaving with the egress IP', async () => {
    const holder = await holderOf(api, IP);
    const pod = matchedPods(lab, policyOf(FAILOVER_MANIFESTS, 'fo-a')).find((p) => lab.pod(p).node === holder);
    expect(pod, `a pod of policy fo-a on the holder ${holder}`).toBeDefined();
    const others = lab.topology.nodes.map((n) => n.name).filter((n) => n !== holder);
    // the premise, seen at the far end: fo-a is in effect for the pod (the holder owning the IP does
    // not say its policy rules are programmed yet)
    await waitSeenFrom(lab, pod!, DST, IP);
    const probe = await lab.continuousProbe(pod!, DST, { proto: 'udp', intervalMs: EVERY_MS, timeoutMs: 300 });
    let frozenFrom = 0;
    let frozenTo = 0;
    let timeline: Awaited<ReturnType<typeof probe.stop>>;
    try {
      await pollUntil(() => probe.answeredAfter(0), { what: `10 answered packets from ${pod} before the freeze`, timeoutMs: 15_000, accept: (n) => n >= 10 });
      const paused: string[] = [];
      try {
        for (const n of others) {
          await lab.faults.pause(n);
          paused.push(n);
        }
        frozenFrom = Date.now();
        // the holder's probe is the clock: it keeps sending meanwhile (nothing else may be asked of the
        // lab now: the API is on cp-1)
        await pollUntil(async () => (await probe.records()).filter((r) => r.t > frozenFrom).length, {
          what: `${FROZEN_PACKETS} packets from ${pod} with ${others.join(', ')} frozen`,
          timeoutMs: FROZEN_PACKETS * EVERY_MS + 10_000,
          intervalMs: 200,
          accept: (n) => n >= FROZEN_PACKETS,
        });
        frozenTo = Date.now();
      } finally {
        for (const n of paused) await lab.faults.unpause(n);
      }
      const tBack = Date.now();
      await pollUntil(() => probe.answeredAfter(tBack + 100), {
        what: `10 answered packets from ${pod} after the thaw`,
        timeoutMs: 20_000,
        accept: (n) => n >= 10,
      });
    } finally {
      timeline = await probe.stop();
    }
    const t = recordTimeline(`udp ${pod} -> ${DST} with ${others.join(', ')} frozen`, timeline, [IP]);
    const during = t.packets.filter((p) => p.t >= frozenFrom && p.t <= frozenTo);
    const missing = during.filter((p) => !p.observedSources.includes(IP));
    console.log(
      `[frozen peers] ${IP} on ${holder}; ${others.join(', ')} frozen for ${frozenTo - frozenFrom} ms; ${during.length} packets sent from ${pod} meanwhile, ` +
        `${during.length - missing.length} observed at ${DST} from ${IP}, ${during.filter((p) => p.replied).length} answered` +
        (missing.length ? `; not observed: seq ${missing[0]!.seq}..${missing.at(-1)!.seq} (${missing.length})` : ''),
    );
    expect(during.length, `packets sent from ${pod} while the others were frozen`).toBeGreaterThanOrEqual(FROZEN_PACKETS);
    expect(
      missing.map((p) => p.seq),
      `packets sent while the others were frozen that the far end did not observe from ${IP} (the holder fenced itself)`,
    ).toEqual([]);
    expect(t).toHaveNoLeaks([IP]);
    expect(t).toBeObservedOnlyFrom([IP]);
    // nothing moved: the frozen controller could not, and on waking it moves nothing
    const after = await pollUntil(() => gw(api), { what: 'every node Up after the thaw', timeoutMs: 30_000, intervalMs: 100, accept: (g) => allUp(g) });
    expect(after.assignments[IP], `holder of ${IP} after the thaw`).toBe(holder);
    await waitIPOn(lab, holder, IP);
  });
});
