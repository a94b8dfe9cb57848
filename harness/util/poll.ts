import { TimeoutError } from './errors.js';

/** Time source; injectable so retry/poll logic is testable without waiting. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

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
 * count as "not yet" and the last one is kept as the cause of the TimeoutError.
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
