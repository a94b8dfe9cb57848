/**
 * BFD-like liveness between agents: every HEARTBEAT_INTERVAL_MS (100 ms) each ACTIVE agent (one that
 * holds a floating IP: setActive) sends one small UDP datagram to every other node's IP (port
 * HEARTBEAT_PORT) and records when it last heard each peer. An agent that holds nothing sends no
 * ticks of its own: it answers each heartbeat it hears with one of its own to that sender (an echo,
 * at most one per peer per half interval), so a holder still hears every live peer while a lab with
 * no floating IP exchanges nothing at all (an idle node costs no wake-ups: issue 10's idle budget).
 *
 *  - suspect(peer): a peer heard before has been silent for interval x misses (300 ms by default);
 *  - isolated():    at least one peer was ever heard and none for `isolationMs` (400 ms): this node
 *                   may be cut off (partition); the module then checks the API (500 ms) and, if that
 *                   fails too, gives its floating IPs up on its own, around the time the controller
 *                   (lease expiry 600 ms) hands them to another node.
 *
 * A datagram counts only when it comes from the address of the node it names (`rejected` counts the
 * others): a pod or a stranger on the segment cannot speak for a peer.
 *
 * A peer that never sent a heartbeat (older agent, no agent) is never suspect: heartbeats only ever
 * add information to the controller's leases, they never remove any. Silence is measured on a
 * stall-aware clock (controller/logic/liveness.ts): time this agent itself was not running does not
 * count, so a starved agent never takes itself for cut off.
 */
import { createSocket, type Socket } from 'node:dgram';
import { StallAwareClock } from '../../lib/liveness/stall-aware-clock.js';
import type { Clock } from '../../lib/time/clock.js';
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_ISOLATION_MS, HEARTBEAT_MISSES, HEARTBEAT_PORT } from './constants.js';

export interface HeartbeatOptions {
  node: string;
  /** address to bind (the node IP) */
  bind: string;
  port?: number;
  intervalMs?: number;
  misses?: number;
  isolationMs?: number;
  /** default: a stall-aware clock (lib/liveness/stall-aware-clock.ts) */
  clock?: Pick<Clock, 'now'>;
  onChange?: () => void;
  log?: (m: string) => void;
}

/** Pure bookkeeping, separate from the socket so it can be unit-tested. */
export class PeerTable {
  private readonly heard = new Map<string, number>();
  constructor(
    private readonly suspectAfterMs: number,
    private readonly isolationMs: number,
  ) {}

  record(peer: string, at: number): boolean {
    const was = this.heard.get(peer);
    this.heard.set(peer, at);
    return was === undefined || at - was > this.suspectAfterMs;
  }

  forget(keep: ReadonlySet<string>): void {
    for (const p of [...this.heard.keys()]) if (!keep.has(p)) this.heard.delete(p);
  }

  suspects(now: number): string[] {
    return [...this.heard]
      .filter(([, t]) => now - t > this.suspectAfterMs)
      .map(([p]) => p)
      .sort();
  }

  isolated(now: number): boolean {
    if (this.heard.size === 0) return false;
    return [...this.heard.values()].every((t) => now - t > this.isolationMs);
  }

  snapshot(now: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [p, t] of [...this.heard].sort()) out[p] = now - t;
    return out;
  }
}

export class Heartbeat {
  private sock: Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private peers: { name: string; ip: string }[] = [];
  private seq = 0;
  readonly table: PeerTable;
  private lastSuspects = '';
  private lastIsolated = false;
  private active = false;
  private readonly echoedAt = new Map<string, number>();
  sent = 0;
  received = 0;
  /** datagrams naming a peer but not sent from that peer's address */
  rejected = 0;
  private readonly now: () => number;
  readonly intervalMs: number;

  constructor(private readonly o: HeartbeatOptions) {
    this.intervalMs = o.intervalMs ?? HEARTBEAT_INTERVAL_MS;
    const misses = o.misses ?? HEARTBEAT_MISSES;
    this.table = new PeerTable(this.intervalMs * misses, o.isolationMs ?? HEARTBEAT_ISOLATION_MS);
    // stall-aware: a stretch in which this agent's own loop did not run (a busy machine) is not
    // counted as the peers' silence (their datagrams are waiting in the socket meanwhile); without
    // it a starved agent believed itself cut off and fenced its floating IPs (seen in CI)
    const clock = o.clock ?? new StallAwareClock(undefined, Math.max(150, Math.ceil(1.5 * this.intervalMs)));
    this.now = () => clock.now();
  }

  setPeers(peers: { name: string; ip: string }[]): void {
    this.peers = peers.filter((p) => p.name !== this.o.node && p.ip);
    this.table.forget(new Set(this.peers.map((p) => p.name)));
  }

  start(): Promise<void> {
    return new Promise((resolve) => {
      const s = createSocket({ type: 'udp4', reuseAddr: true });
      this.sock = s;
      s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address));
      s.on('error', (e) => {
        this.o.log?.(`heartbeat socket: ${e.message} (liveness probing off)`);
        resolve();
      });
      s.bind(this.o.port ?? HEARTBEAT_PORT, this.o.bind, () => {
        if (this.active) this.startTicking();
        resolve();
      });
    });
  }

  /**
   * Active (holding a floating IP): tick every interval, judge isolation. Inactive: no ticks, only
   * echoes; the table starts afresh on the next activation (a stale entry must not read as silence).
   */
  setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    if (active) {
      // a fresh start, every current peer counted as heard now: a new holder cut off before its
      // first echo still finds itself isolated after isolationMs (an empty table never is)
      this.table.forget(new Set());
      const now = this.now();
      for (const p of this.peers) this.table.record(p.name, now);
      if (this.sock) this.startTicking();
    } else {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
    }
    this.check();
  }

  get isActive(): boolean {
    return this.active;
  }

  private startTicking(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    this.tick();
  }

  private onMessage(msg: Buffer, from: string): void {
    const parts = msg.toString('utf8').split(' ');
    if (parts[0] !== 'EGLHB1' || !parts[1] || parts[1] === this.o.node) return;
    const peer = this.peers.find((p) => p.name === parts[1]);
    if (!peer) return;
    // only a node's own address speaks for it (issue 12): a datagram naming a peer from anywhere else
    // (a pod, another lab host, a spoofer) would otherwise keep a cut-off holder from finding itself
    // isolated. Counted, never logged per datagram (a flood must not fill the log).
    if (from !== peer.ip) {
      this.rejected++;
      return;
    }
    this.received++;
    const now = this.now();
    if (!this.active) this.echo(peer, now);
    if (this.table.record(parts[1], now)) this.check();
  }

  /** An inactive node answers a heartbeat with one of its own (at most one per peer per half interval). */
  private echo(peer: { name: string; ip: string }, now: number): void {
    const last = this.echoedAt.get(peer.name);
    if (last !== undefined && now - last < this.intervalMs / 2) return;
    this.echoedAt.set(peer.name, now);
    this.sock?.send(this.datagram(), this.o.port ?? HEARTBEAT_PORT, peer.ip, () => undefined);
    this.sent++;
  }

  /** `EGLHB1 <node> <seq>`: a tick's or an echo's datagram. */
  private datagram(): Buffer {
    return Buffer.from(`EGLHB1 ${this.o.node} ${this.seq++}`);
  }

  private tick(): void {
    const s = this.sock;
    if (!s) return;
    const payload = this.datagram();
    for (const p of this.peers) {
      s.send(payload, this.o.port ?? HEARTBEAT_PORT, p.ip, () => undefined);
      this.sent++;
    }
    this.check();
  }

  private check(): void {
    const now = this.now();
    const sus = this.table.suspects(now).join(',');
    const iso = this.table.isolated(now);
    if (sus !== this.lastSuspects || iso !== this.lastIsolated) {
      this.lastSuspects = sus;
      this.lastIsolated = iso;
      this.o.onChange?.();
    }
  }

  suspects(): string[] {
    return this.table.suspects(this.now());
  }

  /** Only an active node (a holder) can be isolated: one that holds nothing has nothing to fence. */
  isolated(): boolean {
    return this.active && this.table.isolated(this.now());
  }

  status(): Record<string, unknown> {
    return {
      port: this.o.port ?? HEARTBEAT_PORT,
      intervalMs: this.intervalMs,
      active: this.active,
      sent: this.sent,
      received: this.received,
      rejected: this.rejected,
      msSinceHeard: this.table.snapshot(this.now()),
      suspects: this.suspects(),
      isolated: this.isolated(),
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    try {
      this.sock?.close();
    } catch {
      /* already closed */
    }
    this.sock = null;
  }
}
