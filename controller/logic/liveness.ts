// Node liveness (pure; the clock is passed in by the caller).
//
// Like the kube-controller-manager's node lifecycle controller, the decision uses the controller's
// own clock: a node is Up while a liveness signal was observed less than `expiryMs` ago. Two signals
// count: the agent's authenticated UDP heartbeats (every 100 ms, sent from a thread of their own:
// agent/node/beacon.ts) and renewals of its Lease (a change of spec.renewTime, every 10 s). The
// Lease's own leaseDurationSeconds cannot express sub-second values and is not used; `expiryMs` is
// the controller's grace period (default 600 ms: six heartbeats, so a failover completes within
// 1 s). The clock is stall-aware (StallAwareClock, lib/liveness/stall-aware-clock.ts): time the controller itself was not
// running is not held against any node.
// After a controller restart, nodes that the persisted status showed Up keep a grace period of
// `startupGraceMs` to let their agents reconnect, so a restart alone never moves an IP.
// A Lease renewal keeps an Up node Up but does not bring back a Down node whose Lease says its
// agent beats (LEASE_HEARTBEAT_ANNOTATION): only its next heartbeat does, announcing the interval it
// beats at. A renewal carries no cadence; granting it `expiryMs` let a node that beats every second
// (it holds nothing) come Up on the renewal it retried when a partition healed and go Down again
// 600 ms later, before its next heartbeat (a spurious NodeDown, seen once in 5 runs of the long-lived
// TCP scenario with one core busy). The Lease says it, not the controller's memory, so a controller
// restart, a re-created Lease or an agent restarted without heartbeats are judged the same way; an
// agent that sends none (heartbeatIntervalMs 0) lives by its renewals alone.

import type { NodeState } from './allocator.js';

export interface LivenessTimings {
  /** interval of the agents' liveness heartbeats (ms; agent config heartbeatIntervalMs); the Lease object is renewed every 10 s */
  renewIntervalMs: number;
  /** a node is Down when neither a heartbeat nor a Lease renewal was observed for this long (ms, stall-aware) */
  expiryMs: number;
  /** after a controller start, nodes previously Up stay Up this long without a renewal (ms) */
  startupGraceMs: number;
}

export const DEFAULT_TIMINGS: LivenessTimings = { renewIntervalMs: 100, expiryMs: 600, startupGraceMs: 3000 };

interface Entry {
  /** the last Lease renewal counted or held back (its resourceVersion) */
  leaseKey?: string;
  /** the last heartbeat counted ("hb <epoch> <seq>") */
  beatKey?: string;
  /** controller-clock time of the last signal (undefined: none since start) */
  seenAt?: number;
  /** controller-clock time until which the node counts as Up */
  upUntil: number;
  /** the last signal that counted */
  by?: 'heartbeat' | 'lease';
  /** a renewal was held back since the last signal that counted (onHeld told once per Down spell) */
  held?: boolean;
  /** times the node came back Up after being Down (told to its agent with each heartbeat's acknowledgement) */
  revivals?: number;
}

export class LivenessTracker {
  private readonly entries = new Map<string, Entry>();

  /** `onHeld` hears of the first Lease renewal of a Down spell that did not bring the node back because it beats (for the log). */
  constructor(
    private readonly timings: LivenessTimings,
    private readonly onHeld: (node: string) => void = () => undefined,
  ) {}

  /** Seeds a node from persisted status at start-up. */
  seed(node: string, previous: NodeState | undefined, leaseKey: string | undefined, now: number): void {
    this.entries.set(node, {
      leaseKey,
      upUntil: previous === 'Up' ? now + Math.max(this.timings.startupGraceMs, this.timings.expiryMs) : Number.NEGATIVE_INFINITY,
    });
  }

  /**
   * Records the current Lease of a node. `leaseKey` identifies a renewal (the Lease's
   * resourceVersion); a change counts as a renewal observed at `now`. `beats`: the Lease says its
   * agent sends heartbeats (LEASE_HEARTBEAT_ANNOTATION): then a renewal keeps an Up node Up but
   * does not bring a Down one back (see the top of this file). Returns true if the node's state may
   * have changed.
   */
  observe(node: string, leaseKey: string | undefined, now: number, beats = false): boolean {
    const e = this.entries.get(node);
    if (leaseKey === undefined || e?.leaseKey === leaseKey) return false;
    if (beats && !(e && now < e.upUntil)) {
      if (!e?.held) this.onHeld(node);
      this.entries.set(node, { ...(e ?? { upUntil: Number.NEGATIVE_INFINITY }), leaseKey, held: true });
      return false;
    }
    // a Lease renewal never shortens the grace a slow heartbeat granted
    return this.signal(node, 'lease', leaseKey, now, Math.max(e?.upUntil ?? Number.NEGATIVE_INFINITY, now + this.timings.expiryMs));
  }

  /**
   * A verified heartbeat announcing the interval the node beats at: the node is Up for
   * graceFor(intervalMs) from now (the freshest signal: it sets the grace, longer or shorter).
   * Returns true if the node was Down.
   */
  heartbeat(node: string, key: string, intervalMs: number, now: number): boolean {
    if (this.entries.get(node)?.beatKey === key) return false;
    return this.signal(node, 'heartbeat', key, now, now + this.graceFor(intervalMs));
  }

  /** A new signal seen at `now` keeps the node Up until `upUntil`. True if it was Down. */
  private signal(node: string, by: 'heartbeat' | 'lease', key: string, now: number, upUntil: number): boolean {
    const e = this.entries.get(node);
    const wasUp = e ? now < e.upUntil : false;
    this.entries.set(node, {
      leaseKey: by === 'lease' ? key : e?.leaseKey,
      beatKey: by === 'heartbeat' ? key : e?.beatKey,
      upUntil,
      seenAt: now,
      by,
      // a first signal is not a revival; every return from Down is (the controller may have moved its IPs meanwhile)
      revivals: (e?.revivals ?? 0) + (e && !wasUp ? 1 : 0),
    });
    return !wasUp;
  }

  /** The kind of the last signal that counted for the node (for the controller's log). */
  lastSignal(node: string): 'heartbeat' | 'lease' | undefined {
    return this.entries.get(node)?.by;
  }

  /**
   * How long a node beating every `intervalMs` stays Up without a signal: `expiryMs` (600 ms: six
   * beats) at the fast interval (a holder), and for a slower one (a node holding nothing, 1 s)
   * expiryMs plus two missed slow beats. A node that holds nothing is only a candidate for a move:
   * finding it dead 2.4 s late at worst costs nothing unless a holder dies in that window too.
   */
  graceFor(intervalMs: number): number {
    return intervalMs <= this.timings.renewIntervalMs ? this.timings.expiryMs : this.timings.expiryMs + 2 * (intervalMs - this.timings.renewIntervalMs);
  }

  /** The Lease was deleted: the node is Down from now on. */
  forget(node: string): void {
    const e = this.entries.get(node);
    this.entries.set(node, { beatKey: e?.beatKey, upUntil: Number.NEGATIVE_INFINITY, revivals: e?.revivals });
  }

  /** Times the node came back Up after being Down since this tracker started. */
  revivals(node: string): number {
    return this.entries.get(node)?.revivals ?? 0;
  }

  /** Controller-clock time of the node's last liveness signal, if any since start. */
  lastSeen(node: string): number | undefined {
    return this.entries.get(node)?.seenAt;
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
