import { describe, expect, it } from 'vitest';
import { CaptureStatsLog, STATS_MAX_WAIT_MS, STATS_QUIET_MS } from './capture-stats.js';
import type { CaptureStats } from './protocol.js';

/** A CaptureStatsLog on a fake clock: `advance` runs the timers that fall due. */
function harness() {
  let now = 1_000_000;
  let timers: { at: number; fn: () => void; id: number }[] = [];
  let nextId = 1;
  const asks: number[] = [];
  const written: CaptureStats[] = [];
  const log = new CaptureStatsLog({
    now: () => now,
    setTimer: (fn, ms) => {
      const id = nextId++;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimer: (id) => (timers = timers.filter((t) => t.id !== id)),
    ask: () => asks.push(now),
    write: (rec) => written.push(rec),
  });
  const advance = (ms: number) => {
    const end = now + ms;
    for (;;) {
      const due = timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      timers = timers.filter((t) => t !== due);
      now = due.at;
      due.fn();
    }
    now = end;
  };
  return { log, asks, written, advance, pendingTimers: () => timers.length, now: () => now };
}

describe('capture statistics: when asked for, when logged', () => {
  it('asks STATS_QUIET_MS after the last batch, once, and sets no timer while idle', () => {
    const h = harness();
    h.log.started();
    expect(h.pendingTimers()).toBe(0);
    h.advance(10_000);
    expect(h.asks).toEqual([]);
    const t0 = h.now();
    h.log.packets(3);
    h.advance(100);
    h.log.packets(1); // the quiet period starts again
    h.advance(STATS_QUIET_MS - 1);
    expect(h.asks).toEqual([]);
    h.advance(1);
    expect(h.asks).toEqual([t0 + 100 + STATS_QUIET_MS]);
    h.log.answer({ captured: 4, received: 4, dropped: 0 });
    expect(h.written).toEqual([{ t: t0 + 100 + STATS_QUIET_MS, p: 'stats', drops: 0, total: 0, pending: 0 }]);
    h.advance(60_000);
    expect(h.asks).toHaveLength(1);
    expect(h.pendingTimers()).toBe(0);
  });

  it('a steady flow still gets statistics every STATS_MAX_WAIT_MS', () => {
    const h = harness();
    h.log.started();
    const t0 = h.now();
    for (let i = 0; i < 150; i++) {
      h.log.packets(1);
      if (h.asks.length > 0 && h.written.length < h.asks.length) h.log.answer({ captured: i + 1, received: i + 1, dropped: 0 });
      h.advance(20);
    }
    expect(h.asks.slice(0, 2)).toEqual([t0 + STATS_MAX_WAIT_MS, t0 + 2 * STATS_MAX_WAIT_MS]);
    expect(h.written.length).toBeGreaterThanOrEqual(2);
  });

  it('logs a reading only once the packets it counted are logged; drops are new drops, pending what tcpdump had not handled', () => {
    const h = harness();
    h.log.started();
    h.log.packets(2);
    h.advance(STATS_QUIET_MS);
    const asked = h.asks[0]!;
    h.log.answer({ captured: 5, received: 9, dropped: 3 }); // 3 packets still in the pipe
    expect(h.written).toEqual([]);
    h.log.packets(2);
    expect(h.written).toEqual([]);
    h.log.packets(1);
    expect(h.written).toEqual([{ t: asked, p: 'stats', drops: 3, total: 3, pending: 1 }]);
    h.advance(STATS_QUIET_MS);
    h.log.answer({ captured: 5, received: 9, dropped: 4 });
    expect(h.written[1]).toEqual({ t: h.asks[1], p: 'stats', drops: 1, total: 4, pending: 0 });
  });

  it('never signals before tcpdump listens, nor twice before an answer; asks again for batches that came meanwhile', () => {
    const h = harness();
    h.log.packets(1);
    h.advance(STATS_QUIET_MS * 3);
    expect(h.asks).toEqual([]);
    h.log.started();
    h.advance(STATS_QUIET_MS);
    expect(h.asks).toHaveLength(1);
    h.log.packets(1); // while the answer is awaited
    h.advance(STATS_QUIET_MS * 3);
    expect(h.asks).toHaveLength(1);
    h.log.answer({ captured: 2, received: 2, dropped: 0 });
    h.advance(STATS_QUIET_MS);
    expect(h.asks).toHaveLength(2);
    h.log.answer({ captured: 2, received: 2, dropped: 0 });
    expect(h.written).toHaveLength(2);
    // an unasked line is ignored; a failed reading frees the next request
    h.log.answer({ captured: 2, received: 2, dropped: 0 });
    expect(h.written).toHaveLength(2);
    h.log.packets(1);
    h.advance(STATS_QUIET_MS);
    expect(h.asks).toHaveLength(3);
    h.log.failed();
    h.log.packets(1);
    h.advance(STATS_QUIET_MS);
    expect(h.asks).toHaveLength(4);
  });

  it('a reader’s request is served by a reading taken STATS_QUIET_MS after it or later, whatever the batches before and after', () => {
    const h = harness();
    h.log.started();
    h.log.packets(1);
    h.advance(STATS_MAX_WAIT_MS - 20); // the last batch's reading is due soon (max wait)...
    h.log.packets(1);
    h.advance(10);
    const r = h.now();
    h.log.requested(); // ...the request must not be served by it
    h.advance(15);
    h.log.packets(1);
    expect(h.asks).toHaveLength(1);
    expect(h.asks[0]!).toBeLessThan(r + STATS_QUIET_MS);
    h.log.answer({ captured: 3, received: 3, dropped: 0 });
    h.advance(STATS_QUIET_MS);
    expect(h.asks).toHaveLength(2);
    expect(h.asks[1]!).toBeGreaterThanOrEqual(r + STATS_QUIET_MS);
    h.log.answer({ captured: 3, received: 3, dropped: 0 });
    h.advance(60_000);
    expect(h.asks).toHaveLength(2);
    expect(h.pendingTimers()).toBe(0);
  });

  it('a request while an answer is awaited is served after it', () => {
    const h = harness();
    h.log.started();
    h.log.packets(1);
    h.advance(STATS_QUIET_MS);
    expect(h.asks).toHaveLength(1);
    const r = h.now();
    h.log.requested();
    h.advance(STATS_QUIET_MS * 2); // tcpdump is slow to answer
    expect(h.asks).toHaveLength(1);
    h.log.answer({ captured: 1, received: 1, dropped: 0 });
    h.advance(0);
    expect(h.asks).toHaveLength(2);
    expect(h.asks[1]!).toBeGreaterThanOrEqual(r + STATS_QUIET_MS);
  });

  it('a reader may ask for statistics when nothing arrives: as after a batch', () => {
    const h = harness();
    h.log.started();
    const t0 = h.now();
    h.log.requested();
    h.advance(STATS_QUIET_MS);
    expect(h.asks).toEqual([t0 + STATS_QUIET_MS]);
    h.log.answer({ captured: 0, received: 0, dropped: 0 });
    expect(h.written).toEqual([{ t: t0 + STATS_QUIET_MS, p: 'stats', drops: 0, total: 0, pending: 0 }]);
    h.advance(60_000);
    expect(h.asks).toHaveLength(1);
  });
});
