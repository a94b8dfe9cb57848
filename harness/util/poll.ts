import { TimeoutError } from './errors.js';

/** Time source; injectable so retry/poll logic is testable without waiting. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
}

/** The real clock (Date.now, setTimeout). */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Options of pollUntil: what is awaited (for the message), the deadline, the interval and which value to accept. */
export interface PollOptions<T> {
  /** What is awaited, for the error message. */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  clock?: Clock;
  /** Accept the value (default: truthy). */
  accept?: (value: T) => boolean;
}

/**
 * Polls `probe` until it returns an accepted value or the deadline passes. Errors thrown by the probe
 * count as "not yet" and the last one is kept as the cause of the TimeoutError. Returns the accepted
 * value; on timeout throws `timed out after <timeoutMs> ms waiting for <what>; last seen: <value>`.
 *
 * @example
 * ```ts
 * // The value itself is the condition (truthy):
 * await pollUntil(async () => (await p.records()).length >= 10, { what: '10 packets sent', timeoutMs: 15_000 });
 * // Keep the value and accept it by a predicate: returns the gateway object that satisfied it.
 * const gw = await pollUntil(() => api.get(R.anthosNetworkGateways, 'default', 'kube-system'), {
 *   what: '203.0.113.10 assigned',
 *   timeoutMs: 30_000,
 *   accept: (g) => Boolean((g.status as any)?.floatingIPs?.['203.0.113.10']),
 * });
 * ```
 */
export async function pollUntil<T>(probe: () => Promise<T> | T, options: PollOptions<T>): Promise<T> {
  const clock = options.clock ?? systemClock;
  const interval = options.intervalMs ?? 50;
  const accept = options.accept ?? ((v: T) => Boolean(v));
  const deadline = clock.now() + options.timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  for (;;) {
    try {
      last = await probe();
      if (accept(last)) return last;
    } catch (error) {
      lastError = error;
    }
    if (clock.now() >= deadline) {
      throw new TimeoutError(options.what, options.timeoutMs, last, lastError ? { cause: lastError } : undefined);
    }
    await clock.sleep(Math.max(0, Math.min(interval, deadline - clock.now())));
  }
}
