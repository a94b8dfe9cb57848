import { describe, expect, it } from 'vitest';
import { PeerTable } from './heartbeat.js';

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
