import { describe, expect, it } from 'vitest';
import { Heartbeat, PeerTable } from './heartbeat.js';
import { pollUntil } from '../../harness/util/poll.js';

describe('PeerTable (heartbeat bookkeeping)', () => {
  it('a peer is suspect after missing its heartbeats; never-heard peers never are', () => {
    const t = new PeerTable(150, 300);
    expect(t.suspects(1000)).toEqual([]);
    expect(t.isolated(1000)).toBe(false);
    t.record('node-2', 1000);
    t.record('node-3', 1000);
    expect(t.suspects(1100)).toEqual([]);
    t.record('node-3', 1100);
    expect(t.suspects(1200)).toEqual(['node-2']);
    expect(t.isolated(1200)).toBe(false);
    expect(t.isolated(1401)).toBe(true);
    expect(t.record('node-2', 1500)).toBe(true); // came back: a change worth a recompute
    expect(t.record('node-2', 1550)).toBe(false);
    expect(t.snapshot(1560)).toEqual({ 'node-2': 10, 'node-3': 460 });
    t.forget(new Set(['node-2']));
    expect(Object.keys(t.snapshot(1560))).toEqual(['node-2']);
  });
});

describe('Heartbeat mesh on loopback (holders tick, idle nodes only echo)', () => {
  it('an idle node sends nothing of its own, answers a holder, and is never isolated; a holder hears its peers through the echoes', async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const a = new Heartbeat({ node: 'a', bind: '127.0.0.1', port, intervalMs: 20 });
    const b = new Heartbeat({ node: 'b', bind: '127.0.0.2', port, intervalMs: 20 });
    try {
      await a.start();
      await b.start();
      a.setPeers([{ name: 'b', ip: '127.0.0.2' }]);
      b.setPeers([{ name: 'a', ip: '127.0.0.1' }]);
      // both idle: no datagram at all
      const deadline = Date.now() + 200;
      await pollUntil(() => Date.now() >= deadline, { what: '200 ms of idleness', timeoutMs: 1000, intervalMs: 20 });
      expect(a.sent + b.sent).toBe(0);
      expect(a.isolated()).toBe(false);
      // a holds an IP: it ticks, b echoes, a hears b
      a.setActive(true);
      await pollUntil(() => a.received, { what: 'a to hear b (an echo)', timeoutMs: 3000, intervalMs: 10, accept: (n) => n > 0 });
      expect(b.sent).toBeGreaterThan(0);
      expect(b.isActive).toBe(false);
      expect(a.isolated()).toBe(false);
      // b goes silent (closed): a, the holder, is isolated once the isolation time passed
      b.stop();
      await pollUntil(() => a.isolated(), { what: 'a to find itself isolated', timeoutMs: 3000, intervalMs: 20 });
      // an idle node is never isolated (it has nothing to fence)
      a.setActive(false);
      expect(a.isolated()).toBe(false);
      // a node that starts holding while no peer answers (cut off before its first echo) is isolated
      // after the isolation time too: its peers count as heard at the start, not as never heard
      a.setActive(true);
      expect(a.isolated()).toBe(false);
      await pollUntil(() => a.isolated(), { what: 'a new holder with no live peer to find itself isolated', timeoutMs: 3000, intervalMs: 20 });
    } finally {
      a.stop();
      b.stop();
    }
  });
});

describe('Heartbeat source check (issue 12: only node addresses count)', () => {
  it('a heartbeat naming a peer but sent from another address is not counted: it cannot keep a cut-off holder from finding itself isolated', async () => {
    const { createSocket } = await import('node:dgram');
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const a = new Heartbeat({ node: 'a', bind: '127.0.0.1', port, intervalMs: 20 });
    const spoofer = createSocket({ type: 'udp4' });
    await new Promise<void>((r) => spoofer.bind(0, '127.0.0.3', () => r()));
    const spoof = () => spoofer.send(Buffer.from('EGLHB1 b 7'), port, '127.0.0.1');
    const timer = setInterval(spoof, 10);
    try {
      await a.start();
      a.setPeers([{ name: 'b', ip: '127.0.0.2' }]);
      a.setActive(true);
      await pollUntil(() => a.status().rejected as number, { what: 'a to refuse a spoofed heartbeat', timeoutMs: 3000, intervalMs: 10, accept: (n) => n >= 5 });
      expect(a.received).toBe(0);
      // b (127.0.0.2) never spoke: the spoofed "b" beats from 127.0.0.3 must not hold isolation off
      await pollUntil(() => a.isolated(), { what: 'a to find itself isolated despite the spoofed beats', timeoutMs: 3000, intervalMs: 20 });
      expect(Object.keys(a.status().msSinceHeard as object)).toEqual(['b']);
    } finally {
      clearInterval(timer);
      spoofer.close();
      a.stop();
    }
  });
});
