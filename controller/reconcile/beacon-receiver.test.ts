import { describe, expect, it } from 'vitest';
import { verifyBeacon, type BeaconKey } from './beacon-receiver.js';
import { heartbeatMac, heartbeatPayload } from '../../lib/liveness/heartbeat.js';

const keys = new Map<string, BeaconKey>([
  ['node-1', { token: 'secret-1', ip: '192.168.1.1' }],
  ['node-2', { token: 'secret-2', ip: '192.168.1.2' }],
]);
const beat = (node: string, token: string, epoch: number, seq: number, interval = 100) =>
  `${heartbeatPayload(node, epoch, seq, interval)} ${heartbeatMac(token, heartbeatPayload(node, epoch, seq, interval))}`;

describe('heartbeat verification', () => {
  it("accepts a node's own heartbeat from its address, in order, and refuses forgeries and replays", () => {
    const last = new Map<string, { epoch: number; seq: number }>();
    expect(verifyBeacon(beat('node-1', 'secret-1', 1000, 1), '192.168.1.1', keys, last)).toEqual({
      ok: true,
      node: 'node-1',
      epoch: 1000,
      seq: 1,
      intervalMs: 100,
    });
    expect(verifyBeacon(beat('node-1', 'secret-1', 1000, 2), '192.168.1.1', keys, last).ok).toBe(true);
    // replay of an older datagram, and of the same one
    expect(verifyBeacon(beat('node-1', 'secret-1', 1000, 1), '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'replayed or reordered' });
    expect(verifyBeacon(beat('node-1', 'secret-1', 1000, 2), '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'replayed or reordered' });
    // a restarted agent (new epoch) starts its sequence again
    expect(verifyBeacon(beat('node-1', 'secret-1', 2000, 1), '192.168.1.1', keys, last).ok).toBe(true);
    // node-2 speaking for node-1: wrong source address, and (from node-1's address) a MAC made with its own token
    expect(verifyBeacon(beat('node-1', 'secret-2', 3000, 1), '192.168.1.2', keys, last)).toMatchObject({
      ok: false,
      reason: "sent from 192.168.1.2, not the node's address 192.168.1.1",
    });
    expect(verifyBeacon(beat('node-1', 'secret-2', 3000, 1), '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'bad MAC' });
    expect(verifyBeacon(beat('node-9', 'x', 1, 1), '192.168.1.9', keys, last)).toMatchObject({ ok: false, reason: 'unknown node' });
    expect(verifyBeacon('EGLHB1 node-1 7', '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'not a heartbeat' });
    expect(verifyBeacon(beat('node-1', 'secret-1', -5, 1), '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'bad epoch or sequence number' });
    // the announced interval is covered by the MAC and bounded
    expect(verifyBeacon(beat('node-1', 'secret-1', 4000, 1, 1000), '192.168.1.1', keys, last)).toMatchObject({ ok: true, intervalMs: 1000 });
    const forged = beat('node-1', 'secret-1', 4000, 2, 100).replace(' 100 ', ' 60000 ');
    expect(verifyBeacon(forged, '192.168.1.1', keys, last)).toMatchObject({ ok: false, reason: 'bad MAC' });
    expect(verifyBeacon(beat('node-1', 'secret-1', 4000, 3, 5), '192.168.1.1', keys, last)).toMatchObject({
      ok: false,
      reason: 'bad interval "5" (must be 10-60000 ms)',
    });
    expect(verifyBeacon(beat('node-1', 'secret-1', 4000, 3, 1.5), '192.168.1.1', keys, last)).toMatchObject({ ok: false });
  });
});
