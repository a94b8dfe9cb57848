/**
 * The agent's beacon (agent/node/beacon.ts, a worker thread spelling out the wire format of
 * lib/liveness/heartbeat.ts) against the controller's receiver, on loopback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BeaconReceiver } from '../controller/reconcile/beacon-receiver.js';
import { Beacon } from '../agent/node/beacon.js';
import { pollUntil } from '../harness/util/poll.js';

describe('beacon -> receiver on loopback', () => {
  const stops: (() => unknown)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0)) await s();
  });

  it('the beacon thread sends heartbeats the receiver verifies, and stops when the main loop stops checking in', async () => {
    const beats: number[] = [];
    const rx = new BeaconReceiver({
      host: '127.0.0.1',
      port: 0,
      keys: () => new Map([['node-1', { token: 'tok', ip: '127.0.0.1' }]]),
      onBeat: (_n, _e, seq) => void beats.push(seq),
    });
    const port = await rx.start();
    stops.push(() => rx.stop());
    const logs: string[] = [];
    const b = new Beacon({
      node: 'node-1',
      token: 'tok',
      bind: '127.0.0.1',
      target: '127.0.0.1',
      port,
      intervalMs: 20,
      watchdogMs: 300,
      log: (m) => logs.push(m),
    });
    b.start();
    stops.push(() => b.stop());
    await pollUntil(() => beats.length, { what: '5 heartbeats', timeoutMs: 5000, intervalMs: 10, accept: (n) => n >= 5 });
    expect(rx.rejected).toBe(0);
    expect(beats.slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
    // block the main thread longer than the watchdog: the thread suspends its heartbeats
    const until = Date.now() + 500;
    while (Date.now() < until) {
      /* a wedged main loop */
    }
    await pollUntil(() => logs.some((l) => l.includes('heartbeats suspended')), { what: 'the suspension', timeoutMs: 3000, intervalMs: 10 });
    expect((b.status() as { suspendedTicks: number }).suspendedTicks).toBeGreaterThan(0);
  });

  it('beats at the idle interval until told the node holds a floating IP, then at once and fast, announcing the interval', async () => {
    const beats: { at: number; interval: number }[] = [];
    const rx = new BeaconReceiver({
      host: '127.0.0.1',
      port: 0,
      keys: () => new Map([['node-1', { token: 'tok', ip: '127.0.0.1' }]]),
      onBeat: (_n, _e, _s, interval) => void beats.push({ at: Date.now(), interval }),
    });
    const port = await rx.start();
    stops.push(() => rx.stop());
    const b = new Beacon({
      node: 'node-1',
      token: 'tok',
      bind: '127.0.0.1',
      target: '127.0.0.1',
      port,
      intervalMs: 20,
      idleIntervalMs: 5000,
      watchdogMs: 30_000,
    });
    b.start();
    stops.push(() => b.stop());
    await pollUntil(() => beats.length, { what: 'the first heartbeat', timeoutMs: 5000, intervalMs: 10, accept: (n) => n >= 1 });
    expect(beats[0]!.interval).toBe(5000);
    const switched = Date.now();
    b.setFast(true);
    // the next beat comes at once (not after the 5 s idle interval), then every 20 ms
    await pollUntil(() => beats.filter((x) => x.interval === 20).length, { what: '3 fast heartbeats', timeoutMs: 3000, intervalMs: 10, accept: (n) => n >= 3 });
    expect(beats.find((x) => x.interval === 20)!.at - switched).toBeLessThan(2000);
    expect(rx.rejected).toBe(0);
  });

  it("the controller's acknowledgement licenses the node: the grace counted from each acknowledged heartbeat's send, nothing more when acknowledgements stop", async () => {
    let grace: number | undefined = 600;
    const beats: number[] = [];
    const rx = new BeaconReceiver({
      host: '127.0.0.1',
      port: 0,
      keys: () => new Map([['node-1', { token: 'tok', ip: '127.0.0.1' }]]),
      onBeat: (_n, _e, seq) => {
        beats.push(seq);
        return grace;
      },
    });
    const port = await rx.start();
    stops.push(() => rx.stop());
    const b = new Beacon({ node: 'node-1', token: 'tok', bind: '127.0.0.1', target: '127.0.0.1', port, intervalMs: 20, watchdogMs: 30_000 });
    expect(b.licenceUntil(), 'before any acknowledgement').toBeUndefined();
    const before = Date.now();
    b.start();
    stops.push(() => b.stop());
    const first = await pollUntil(() => b.licenceUntil(), { what: 'a licence', timeoutMs: 5000, intervalMs: 5, accept: (u) => u !== undefined });
    // counted from a send, which happened after start() and before now
    expect(first!).toBeGreaterThanOrEqual(before + 600);
    expect(first!).toBeLessThanOrEqual(Date.now() + 600);
    expect(rx.acked).toBeGreaterThan(0);
    // acknowledgements stop (the controller grants nothing): the licence stops growing and runs out
    grace = undefined;
    const acked = (b.status() as { acknowledged: number }).acknowledged;
    const n = beats.length;
    await pollUntil(() => beats.length, { what: '10 unacknowledged heartbeats', timeoutMs: 5000, intervalMs: 10, accept: (x) => x >= n + 10 });
    const frozen = b.licenceUntil()!;
    expect((b.status() as { acknowledged: number }).acknowledged - acked, 'acknowledgements after the controller stopped granting').toBeLessThanOrEqual(1);
    expect(frozen).toBeLessThan(Date.now() + 600);
  });
});
