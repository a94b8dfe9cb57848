// Node liveness from Leases (pure; the clock is passed in by the caller).
//
// Like the kube-controller-manager's node lifecycle controller, the decision uses the controller's
// own clock: a node is Up while a renewal of its Lease (a change of spec.renewTime) was observed
// less than `expiryMs` ago. The Lease's own leaseDurationSeconds cannot express sub-second values
// and is not used; `expiryMs` is the controller's grace period (default 600 ms against a 200 ms
// renew interval, i.e. three missed renewals, so a failover can complete within 1 s).
// After a controller restart, nodes that the persisted status showed Up keep a grace period of
// `startupGraceMs` to let their agents reconnect, so a restart alone never moves an IP.

import type { NodeState } from './allocator.js';

export interface LivenessTimings {
  /** interval at which agents renew their Lease (ms); informational for agents, written to config */
  renewIntervalMs: number;
  /** a node is Down when no renewal was observed for this long (ms) */
  expiryMs: number;
  /** after a controller start, nodes previously Up stay Up this long without a renewal (ms) */
  startupGraceMs: number;
}

export const DEFAULT_TIMINGS: LivenessTimings = { renewIntervalMs: 200, expiryMs: 600, startupGraceMs: 3000 };

interface Entry {
  renewKey: string | undefined;
  /** controller-clock time until which the node counts as Up */
  upUntil: number;
}

export class LivenessTracker {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly timings: LivenessTimings) {}

  /** Seeds a node from persisted status at start-up. */
  seed(node: string, previous: NodeState | undefined, renewKey: string | undefined, now: number): void {
    this.entries.set(node, {
      renewKey,
      upUntil: previous === 'Up' ? now + Math.max(this.timings.startupGraceMs, this.timings.expiryMs) : Number.NEGATIVE_INFINITY,
    });
  }

  /**
   * Records the current Lease of a node. `renewKey` identifies a renewal (the lease's renewTime);
   * a change counts as a renewal observed at `now`. Returns true if the node's state may have changed.
   */
  observe(node: string, renewKey: string | undefined, now: number): boolean {
    const e = this.entries.get(node);
    if (renewKey === undefined) return false;
    if (e && e.renewKey === renewKey) return false;
    const wasUp = e ? now < e.upUntil : false;
    this.entries.set(node, { renewKey, upUntil: now + this.timings.expiryMs });
    return !wasUp;
  }

  /** The Lease was deleted: the node is Down from now on. */
  forget(node: string): void {
    this.entries.set(node, { renewKey: undefined, upUntil: Number.NEGATIVE_INFINITY });
  }

  state(node: string, now: number): NodeState {
    const e = this.entries.get(node);
    return e && now < e.upUntil ? 'Up' : 'Down';
  }

  states(nodes: readonly string[], now: number): Record<string, NodeState> {
    const out: Record<string, NodeState> = {};
    for (const n of nodes) out[n] = this.state(n, now);
    return out;
  }

  /** Earliest future instant at which some Up node turns Down, or undefined when none is Up. */
  nextExpiry(now: number): number | undefined {
    let min: number | undefined;
    for (const e of this.entries.values()) {
      if (e.upUntil > now && (min === undefined || e.upUntil < min)) min = e.upUntil;
    }
    return min;
  }
}
