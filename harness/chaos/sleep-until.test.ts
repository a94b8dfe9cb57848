import { afterEach, describe, expect, it, vi } from 'vitest';
import { sleepUntil } from './executor.js';

describe('sleepUntil (when a chaos step is due)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllGlobals();
  });

  it('does not return before Date.now() reaches the due time, even when a timer fires a millisecond early', async () => {
    let now = 1000;
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    const delays: number[] = [];
    // every timer fires 1 ms early on Date.now()'s clock (what libuv's truncated monotonic clock can do)
    vi.stubGlobal('setTimeout', (fn: () => void, ms: number) => {
      delays.push(ms);
      now += Math.max(1, ms - 1);
      queueMicrotask(fn);
      return 0;
    });
    await sleepUntil(1010);
    expect(now).toBeGreaterThanOrEqual(1010);
    expect(delays).toEqual([10, 1]);
  });

  it('returns at once for a time already past, and on abort', async () => {
    vi.spyOn(Date, 'now').mockReturnValue(5000);
    const timer = vi.fn();
    vi.stubGlobal('setTimeout', timer);
    await sleepUntil(4000);
    const ac = new AbortController();
    ac.abort();
    await sleepUntil(9000, ac.signal);
    expect(timer).not.toHaveBeenCalled();
  });
});
