import { afterEach, describe, expect, it } from 'vitest';
import { verifyBeacon, BeaconReceiver, type BeaconKey } from './beacon-receiver.js';
import { heartbeatMac, heartbeatPayload } from '../../lib/liveness/heartbeat.js';
import { Beacon } from '../../agent/node/beacon.js';
import { pollUntil } from '../../harness/util/poll.js';

const keys = new Map<string, BeaconKey>([
  ['node-1', { token: 'secret-1', ip: '192.168.1.1' }],
  ['node-2', { token: 'secret-2', ip: '192.168.1.2' }],
]);
const beat = (node: string, token: string, epoch: number, seq: number, interval = 100) =>
  `${heartbeatPayload(node, epoch, seq, interval)} ${heartbeatMac(token, heartbeatPayload(node, epoch, seq, interval))}`;

describe('heartbeat verification', () => {
  it('accepts a node\'s own heartbeat from its address, in order, and refuses forgeries and replays', () => {
    const last = new Map<string, { epoch: number; seq: number }>();
    expect(verifyBeacon(beat('node-1', 'secret-1', 1000, 1), '192.168.1.1', keys, last)).toEqual({ ok: true, node: 'node-1', epoch: 1000, seq: 1, intervalMs: 100 });
    expect(verifyBeacon(beat('node-1', 'secret-1', 1000, 2), '192.168.1.1', keys, last).ok).toBe(true);
    // replay of an older datagram, and of the same one
    expect(verifyBeacon(beat('node-1', 'secret-1', 1000, 1), '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'replayed or reordered' });
    expect(verifyBeacon(beat('node-1', 'secret-1', 1000, 2), '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'replayed or reordered' });
    // a restarted agent (new epoch) starts its sequence again
    expect(verifyBeacon(beat('node-1', 'secret-1', 2000, 1), '192.168.1.1', keys, last).ok).toBe(true);
    // node-2 speaking for node-1: wrong source address, and (from node-1's address) a MAC made with its own token
    expect(verifyBeacon(beat('node-1', 'secret-2', 3000, 1), '192.168.1.2', keys, last)).toMatchObject({ ok: false, reason: "sent from 192.168.1.2, not the node's address 192.168.1.1" });
    expect(verifyBeacon(beat('node-1', 'secret-2', 3000, 1), '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'bad MAC' });
    expect(verifyBeacon(beat('node-9', 'x', 1, 1), '192.168.1.9', keys, last)).toMatchObject({ ok: false, reason: 'unknown node' });
    expect(verifyBeacon('EGLHB1 node-1 7', '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'not a heartbeat' });
    expect(verifyBeacon(beat('node-1', 'secret-1', -5, 1), '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'bad epoch or sequence number' });
    // the announced interval is covered by the MAC and bounded
    expect(verifyBeacon(beat('node-1', 'secret-1', 4000, 1, 1000), '192.168.1.1', keys, last)).toMatchObject({ ok: true, intervalMs: 1000 });
    const forged = beat('node-1', 'secret-1', 4000, 2, 100).replace(' 100 ', ' 60000 ');
    expect(verifyBeacon(forged, '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'bad MAC' });
    expect(verifyBeacon(beat('node-1', 'secret-1', 4000, 3, 5), '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'bad interval "5" (must be 10-60000 ms)' });
    expect(verifyBeacon(beat('node-1', 'secret-1', 4000, 3, 1.5), '192.168.1.1', keys, last)).toMatchObject({ ok: false });
  });
});

describe('beacon -> receiver on loopback', () => {
  const stops: (() => unknown)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0)) await s();
  });

  it('the beacon thread sends heartbeats the receiver verifies, and stops when the main loop stops checking in', async () => {
    const beats: number[] = [];
    const rx = new BeaconReceiver({ host: '127.0.0.1', port: 0, keys: () => new Map([['node-1', { token: 'tok', ip: '127.0.0.1' }]]), onBeat: (_n, _e, seq) => beats.push(seq) });
    const port = await rx.start();
    stops.push(() => rx.stop());
    const logs: string[] = [];
    const b = new Beacon({ node: 'node-1', token: 'tok', bind: '127.0.0.1', target: '127.0.0.1', port, intervalMs: 20, watchdogMs: 300, log: (m) => logs.push(m) });
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
    const rx = new BeaconReceiver({ host: '127.0.0.1', port: 0, keys: () => new Map([['node-1', { token: 'tok', ip: '127.0.0.1' }]]), onBeat: (_n, _e, _s, interval) => beats.push({ at: Date.now(), interval }) });
    const port = await rx.start();
    stops.push(() => rx.stop());
    const b = new Beacon({ node: 'node-1', token: 'tok', bind: '127.0.0.1', target: '127.0.0.1', port, intervalMs: 20, idleIntervalMs: 5000, watchdogMs: 30_000 });
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
});
