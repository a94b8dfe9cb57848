// The observer's clock of a failure detector, shared by the controller (node liveness) and the
// agent (peer heartbeats): wall time minus the stretches the observer itself was stalled.

/**
 * The failure detector's clock: wall time, except that a stretch in which the observer itself was
 * not running (its event loop blocked or starved: a busy machine, a long synchronous step, GC)
 * counts for at most `maxStepMs`. A node's silence is only held against it for time the controller
 * was actually listening: after a 2 s stall of the controller, the heartbeats queued in its socket
 * are read before any node's silence has grown by more than maxStepMs, so the stall alone never
 * declares a healthy node Down. A ticker calls now() more often than maxStepMs, so that normal time
 * counts in full (fast while some node's failure must be detected within the failover budget).
 */
export class StallAwareClock {
  private observed = 0;
  private last: number;
  private stalledMs = 0;

  constructor(
    private readonly wall: () => number = () => Date.now(),
    private maxStepMs = 150,
  ) {
    this.last = wall();
  }

  /** Changes the longest stretch counted in full (the time so far is accounted with the old one). */
  setMaxStep(ms: number): void {
    this.now();
    this.maxStepMs = ms;
  }

  now(): number {
    const w = this.wall();
    const d = w - this.last;
    this.last = w;
    if (d > 0) {
      const step = Math.min(d, this.maxStepMs);
      this.observed += step;
      this.stalledMs += d - step;
    }
    return this.observed;
  }

  /** total wall time not counted (the observer was stalled) */
  get stalled(): number {
    return this.stalledMs;
  }
}
