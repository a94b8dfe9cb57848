import { describe, expect, it } from 'vitest';
import { TimeoutError } from './errors.js';
import { pollUntil, systemClock, type Clock } from './poll.js';

/** A clock whose sleep advances virtual time at once (no real waiting), recording each sleep. */
function fakeClock(start = 1_000): Clock & { sleeps: number[]; t: number } {
  const c = {
    t: start,
    sleeps: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.sleeps.push(ms);
      c.t += ms;
    },
  };
  return c;
}

describe('pollUntil', () => {
  it('returns the first truthy value without sleeping when it is there at once', async () => {
    const clock = fakeClock();
    await expect(pollUntil(() => 'ready', { what: 'x', timeoutMs: 100, clock })).resolves.toBe('ready');
    expect(clock.sleeps).toEqual([]);
  });

  it('polls every intervalMs until the value is accepted', async () => {
    const clock = fakeClock();
    let calls = 0;
    const v = await pollUntil(async () => ++calls, { what: 'x', timeoutMs: 1_000, intervalMs: 30, clock, accept: (n) => n >= 4 });
    expect(v).toBe(4);
    expect(clock.sleeps).toEqual([30, 30, 30]);
    expect(clock.t).toBe(1_090);
  });

  it('uses a 50 ms interval by default and truthiness as the default acceptance', async () => {
    const clock = fakeClock();
    const values = [0, '', null, 'ok'];
    const v = await pollUntil(() => values.shift(), { what: 'x', timeoutMs: 1_000, clock });
    expect(v).toBe('ok');
    expect(clock.sleeps).toEqual([50, 50, 50]);
  });

  it('times out with a TimeoutError naming what, the timeout and the last value; never sleeps past the deadline', async () => {
    const clock = fakeClock();
    let calls = 0;
    const p = pollUntil(() => ({ state: 'starting', n: ++calls }), {
      what: 'the responder',
      timeoutMs: 120,
      intervalMs: 50,
      clock,
      accept: () => false,
    });
    const e = await p.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(e).toBeInstanceOf(TimeoutError);
    const t = e as TimeoutError;
    expect(t.what).toBe('the responder');
    expect(t.timeoutMs).toBe(120);
    expect(t.lastSeen).toEqual({ state: 'starting', n: 4 });
    expect(t.message).toBe('timed out after 120 ms waiting for the responder; last seen: {"state":"starting","n":4}');
    expect(clock.sleeps).toEqual([50, 50, 20]);
    expect(clock.t).toBe(1_120);
  });

  it('counts a throwing probe as "not yet" and keeps the last error as the cause', async () => {
    const clock = fakeClock();
    let calls = 0;
    const e = (await pollUntil(
      () => {
        calls++;
        throw new Error(`boom ${calls}`);
      },
      { what: 'exec', timeoutMs: 100, intervalMs: 40, clock },
    ).catch((error: unknown) => error)) as TimeoutError;
    expect(e).toBeInstanceOf(TimeoutError);
    expect((e.cause as Error).message).toBe(`boom ${calls}`);
    expect(calls).toBe(4); // t = 0, 40, 80, 100
    expect(e.message).toBe('timed out after 100 ms waiting for exec');
  });

  it('recovers when a probe throws and later succeeds', async () => {
    const clock = fakeClock();
    let calls = 0;
    const v = await pollUntil(
      async () => {
        if (++calls < 3) throw new Error('not yet');
        return 'up';
      },
      { what: 'x', timeoutMs: 1_000, intervalMs: 10, clock },
    );
    expect(v).toBe('up');
    expect(clock.sleeps).toEqual([10, 10]);
  });

  it('still probes once with a zero timeout', async () => {
    const clock = fakeClock();
    let calls = 0;
    await expect(pollUntil(() => (calls++, false), { what: 'x', timeoutMs: 0, clock })).rejects.toThrow(TimeoutError);
    expect(calls).toBe(1);
    expect(clock.sleeps).toEqual([]);
  });

  it('a slow probe that overshoots the deadline ends the poll without a negative sleep', async () => {
    const clock = fakeClock();
    let calls = 0;
    await expect(
      pollUntil(
        () => {
          calls++;
          clock.t += 70; // the probe itself takes 70 ms of virtual time
          return false;
        },
        { what: 'x', timeoutMs: 100, intervalMs: 50, clock },
      ),
    ).rejects.toThrow(/timed out after 100 ms waiting for x; last seen: false/);
    expect(calls).toBe(2);
    expect(clock.sleeps.every((s) => s >= 0)).toBe(true);
  });

  it('systemClock is the real clock', () => {
    const before = Date.now();
    const now = systemClock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });
});
