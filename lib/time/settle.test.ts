import { afterEach, describe, expect, it, vi } from 'vitest';
import { settleWithin, sleepUnless } from './settle.js';

describe('settleWithin', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says done when the promise settles first, fulfilled or rejected', async () => {
    const never = new AbortController().signal;
    await expect(settleWithin(Promise.resolve(1), 10_000, never)).resolves.toBe('done');
    await expect(settleWithin(Promise.reject(new Error('x')), 10_000, never)).resolves.toBe('done');
  });

  it('says timeout when the time runs out first', async () => {
    vi.useFakeTimers();
    const p = settleWithin(new Promise(() => {}), 5000, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(4999);
    let how: string | undefined;
    void p.then((h) => {
      how = h;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(how).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(how).toBe('timeout');
  });

  it('says stopped when the signal aborts first, or had aborted already, and leaves no timer or listener', async () => {
    vi.useFakeTimers();
    const stop = new AbortController();
    const p = settleWithin(new Promise(() => {}), 5000, stop.signal);
    expect(vi.getTimerCount()).toBe(1);
    stop.abort();
    await expect(p).resolves.toBe('stopped');
    expect(vi.getTimerCount()).toBe(0);
    await expect(settleWithin(new Promise(() => {}), 5000, stop.signal)).resolves.toBe('stopped');
    expect(vi.getTimerCount()).toBe(0);
    const live = new AbortController();
    const remove = vi.spyOn(live.signal, 'removeEventListener');
    await settleWithin(Promise.resolve(), 5000, live.signal);
    expect(remove).toHaveBeenCalledWith('abort', expect.any(Function));
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('sleepUnless', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits the whole pause unless the signal aborts, then ends at once', async () => {
    vi.useFakeTimers();
    let slept = false;
    void sleepUnless(1000, new AbortController().signal).then(() => {
      slept = true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(slept).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(slept).toBe(true);

    const stop = new AbortController();
    let cut = false;
    void sleepUnless(60_000, stop.signal).then(() => {
      cut = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(cut).toBe(false);
    stop.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(cut).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });
});
