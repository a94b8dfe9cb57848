/**
 * The one clock type of the project's programs: milliseconds since the epoch, and timers. Code that
 * reads time or arms timers takes a `Clock` (or the part it needs, `Pick<Clock, 'now'>`) so tests can
 * drive it by hand; `realClock` is the process's own. The failure detectors' stall-aware clock
 * (lib/liveness/stall-aware-clock.ts) satisfies `Pick<Clock, 'now'>`.
 */
export interface Clock {
  now(): number;
  /** arms a timer that does not keep the process alive */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
