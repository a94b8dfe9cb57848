/**
 * The agent's beacon (agent/node/beacon.ts, a worker thread spelling out the wire format of
 * lib/liveness/heartbeat.ts) against the controller's receiver, on loopback.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BeaconReceiver, type BeaconReceiverOptions } from '../controller/reconcile/beacon-receiver.js';
import { Beacon, type BeaconOptions } from '../agent/node/beacon.js';
import { pollUntil } from '../harness/util/poll.js';

describe('beacon -> receiver on loopback', () => {
  const stops: (() => unknown)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0)) await s();
  });

  /** A receiver on loopback that knows node-1 (token "tok" from 127.0.0.1), stopped after the test. */
  async function receiver(onBeat: BeaconReceiverOptions['onBeat']): Promise<{ rx: BeaconReceiver; port: number }> {
    const rx = new BeaconReceiver({ host: '127.0.0.1', port: 0, keys: () => new Map([['node-1', { token: 'tok', ip: '127.0.0.1' }]]), onBeat });
    const port = await rx.start();
    stops.push(() => rx.stop());
    return { rx, port };
  }

  /** node-1's beacon to the receiver on `port` (not started), stopped after the test. */
  function beacon(port: number, o: Omit<BeaconOptions, 'node' | 'token' | 'bind' | 'target' | 'port'>): Beacon {
    const b = new Beacon({ node: 'node-1', token: 'tok', bind: '127.0.0.1', target: '127.0.0.1', port, ...o });
    stops.push(() => b.stop());
    return b;
  }

  it('the beacon thread sends heartbeats the receiver verifies, and stops when the main loop stops checking in', async () => {
    const beats: number[] = [];
    const { rx, port } = await receiver((_n, _e, seq) => void beats.push(seq));
    const logs: string[] = [];
    const b = beacon(port, { intervalMs: 20, watchdogMs: 300, log: (m) => logs.push(m) });
    b.start();
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

  it('until the first acknowledgement, beats at the fast interval doubling up to the idle one (a controller not yet listening)', async () => {
    const beats: number[] = [];
    let grant = false;
    const { rx, port } = await receiver((_n, _e, _s, interval) => {
      beats.push(interval);
      return grant ? { graceMs: 10_600, minGraceMs: 600, downs: 'c1.0' } : undefined;
    });
    const b = beacon(port, { intervalMs: 10, idleIntervalMs: 5000, watchdogMs: 30_000 });
    b.start();
    await pollUntil(() => beats.length, { what: '4 unacknowledged heartbeats', timeoutMs: 5000, intervalMs: 2, accept: (n) => n >= 4 });
    grant = true;
    // acknowledged from now on: the next beat after the first acknowledged one announces the idle
    // interval, long before the doubling (10 ms x 2^9 = 5120) would have reached it
    await pollUntil(() => beats.indexOf(5000), { what: 'a heartbeat at the idle interval', timeoutMs: 5000, intervalMs: 5, accept: (i) => i >= 0 });
    const idle = beats.indexOf(5000);
    expect(beats.slice(0, idle)).toEqual([10, 20, 40, 80, 160, 320, 640, 1280, 2560].slice(0, idle));
    expect(idle).toBeGreaterThanOrEqual(5);
    expect(idle).toBeLessThan(9);
    expect(rx.rejected).toBe(0);
  });

  it('beats at the idle interval until told the node holds a floating IP, then at once and fast, announcing the interval', async () => {
    const beats: { at: number; interval: number }[] = [];
    const { rx, port } = await receiver((_n, _e, _s, interval) => {
      beats.push({ at: Date.now(), interval });
      return { graceMs: interval >= 5000 ? 10_600 : 600, minGraceMs: 600, downs: 'c1.0' };
    });
    const b = beacon(port, { intervalMs: 20, idleIntervalMs: 5000, watchdogMs: 30_000 });
    b.start();
    // until a heartbeat is acknowledged (this receiver acknowledges every one), the fast interval doubling; then the idle one
    await pollUntil(() => beats.findIndex((x) => x.interval === 5000), {
      what: 'a heartbeat at the idle interval',
      timeoutMs: 5000,
      intervalMs: 10,
      accept: (i) => i >= 1,
    });
    const idle = beats.findIndex((x) => x.interval === 5000);
    expect(beats.slice(0, idle).map((x) => x.interval)).toEqual([20, 40, 80, 160, 320, 640, 1280, 2560].slice(0, idle));
    const switched = Date.now();
    b.setFast(true);
    // the next beat comes at once (not after the 5 s idle interval), then every 20 ms
    await pollUntil(() => beats.filter((x) => x.interval === 20).length, { what: '3 fast heartbeats', timeoutMs: 3000, intervalMs: 10, accept: (n) => n >= 3 });
    expect(beats.find((x) => x.interval === 20)!.at - switched).toBeLessThan(2000);
    expect(rx.rejected).toBe(0);
  });

  it("the controller's acknowledgements license the node: a lower bound of its deadline, lowered at once by a switch to the fast interval, frozen when they stop; a Down spell is counted", async () => {
    // the controller's graces: 600 ms below the idle interval (the fast one, and the doubling waits before the first acknowledgement), 2400 at it
    const grace = (interval: number): number => (interval >= 1000 ? 2400 : 600);
    let grant = true;
    let downs = 'c1.0';
    const beats: { seq: number; at: number; interval: number }[] = [];
    const { rx, port } = await receiver((_n, _e, seq, interval) => {
      beats.push({ seq, at: Date.now(), interval });
      return grant ? { graceMs: grace(interval), minGraceMs: 600, downs } : undefined;
    });
    const b = beacon(port, { intervalMs: 20, idleIntervalMs: 1000, watchdogMs: 30_000 });
    expect(b.licenceUntil(), 'before any acknowledgement').toBeUndefined();
    const before = Date.now();
    b.start();
    // the first heartbeat, not yet acknowledged when sent, announces the fast interval: the fast grace
    const first = (await pollUntil(() => b.licenceUntil(), { what: 'a licence', timeoutMs: 5000, intervalMs: 5, accept: (u) => u !== undefined }))!;
    expect(beats[0]!.interval).toBe(20);
    expect(first).toBeLessThanOrEqual(Date.now() + 600);
    // then idle: the slow grace, counted from the send (after start, before now)
    const idle = (await pollUntil(() => b.licenceUntil(), { what: 'the idle licence', timeoutMs: 5000, intervalMs: 5, accept: (u) => u! >= before + 2400 }))!;
    expect(beats.some((x) => x.interval === 1000)).toBe(true);
    expect(idle).toBeGreaterThanOrEqual(before + 2400);
    expect(idle).toBeLessThanOrEqual(Date.now() + 2400);
    // holding an IP: the first fast heartbeat may shorten the controller's deadline to its send + 600,
    // so the licence drops at once, before any fast heartbeat is acknowledged
    const switched = Date.now();
    b.setFast(true);
    const fast = (await pollUntil(() => b.licenceUntil()!, { what: 'the licence to drop', timeoutMs: 5000, intervalMs: 2, accept: (u) => u < idle }))!;
    expect(fast).toBeLessThanOrEqual(Date.now() + 600);
    expect(fast).toBeGreaterThanOrEqual(switched + 600 - 1000);
    expect(b.downsSeen()).toBe(0);
    // acknowledgements stop: the licence no longer moves forward, and runs out
    grant = false;
    const stopAt = Date.now();
    const frozen = await pollUntil(() => b.licenceUntil()!, {
      what: 'the licence to run out',
      timeoutMs: 5000,
      intervalMs: 10,
      accept: (u) => u <= Date.now(),
    });
    expect(frozen, 'the licence after the acknowledgements stopped').toBeLessThanOrEqual(stopAt + 600);
    // acknowledged again, the controller having had the node Down meanwhile: counted once
    downs = 'c1.1';
    grant = true;
    await pollUntil(() => b.licenceUntil()!, { what: 'a licence again', timeoutMs: 5000, intervalMs: 10, accept: (u) => u > Date.now() });
    expect(b.downsSeen()).toBe(1);
    expect(rx.acked).toBeGreaterThan(0);
  });

  it('the ARP fence keeper refreshes the armed IPs on every acknowledgement, bounded by the licence, while the main loop is blocked; a Down stops it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egl-keeper-'));
    stops.push(() => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, 'lines');
    const fakeNft = join(dir, 'nft');
    writeFileSync(fakeNft, `#!/bin/sh\nexec cat >> ${out}\n`, { mode: 0o755 });
    let downs = 'c1.0';
    const { port } = await receiver(() => ({ graceMs: 600, minGraceMs: 600, downs }));
    const b = beacon(port, { intervalMs: 20, watchdogMs: 30_000, nftPath: fakeNft });
    b.start();
    await pollUntil(() => b.licenceUntil(), { what: 'a licence', timeoutMs: 5000, intervalMs: 5, accept: (u) => u !== undefined });
    b.setFence({ table: 'egresslab_gw', ips: ['192.168.1.100'], marginMs: 150, maxMs: 1000, downs: 0 });
    const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []);
    await pollUntil(lines, { what: 'a refresh by the keeper', timeoutMs: 5000, intervalMs: 10, accept: (l) => l.length > 0 });
    const ms = Number(/^add element arp egresslab_gw alive \{ 192\.168\.1\.100 timeout (\d+)ms expires \1ms \}$/.exec(lines()[0]!)?.[1]);
    expect(ms).toBeGreaterThan(0);
    expect(ms).toBeLessThanOrEqual(600 - 150);
    // the main loop blocked for 700 ms (longer than any licensed element): the keeper went on
    const before = lines().length;
    const until = Date.now() + 700;
    while (Date.now() < until) {
      /* a stalled main loop */
    }
    await pollUntil(lines, { what: 'the lines written meanwhile', timeoutMs: 2000, intervalMs: 10, accept: (l) => l.length >= before + 10 });
    // the controller had the node Down: no refresh until the main thread arms again with the new count
    downs = 'c1.1';
    await pollUntil(() => b.downsSeen(), { what: 'the Down seen', timeoutMs: 5000, intervalMs: 5, accept: (n) => n === 1 });
    const atDown = lines().length;
    const acked = (b.status() as { acknowledged: number }).acknowledged;
    await pollUntil(() => (b.status() as { acknowledged: number }).acknowledged, {
      what: '10 more acknowledgements',
      timeoutMs: 5000,
      intervalMs: 10,
      accept: (n) => n >= acked + 10,
    });
    expect(lines().length - atDown, 'refreshes after the Down').toBeLessThanOrEqual(1);
    b.setFence({ table: 'egresslab_gw', ips: ['192.168.1.100'], marginMs: 150, maxMs: 1000, downs: 1 });
    await pollUntil(lines, { what: 'refreshes once armed again', timeoutMs: 5000, intervalMs: 10, accept: (l) => l.length >= atDown + 5 });
  });
});
