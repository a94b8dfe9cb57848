/**
 * When a responder asks its tcpdump for statistics (SIGUSR1: Linux tcpdump prints them on stderr)
 * and when it logs them. Asked STATS_QUIET_MS after the last batch of packets (at the latest
 * STATS_MAX_WAIT_MS after the first batch not yet covered, so that a steady flow still gets them)
 * and when a reader asks (requested()), never on a timer while idle: an idle lab costs nothing. A reading is logged once every packet
 * tcpdump had handled by then is logged (its "captured" count), so a record says: whatever arrived
 * before its `t` is above it in the log, was dropped (`drops`), or was still on its way to tcpdump
 * (`pending`). The clock and timers are injected (unit tests). Runs on Node 18 inside lab containers.
 */
import type { CaptureStats, TcpdumpStats } from './protocol.js';

export const STATS_QUIET_MS = 300;
export const STATS_MAX_WAIT_MS = 500;

export interface StatsIo {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
  /** sends SIGUSR1 to tcpdump */
  ask(): void;
  /** appends the record to the observation log */
  write(rec: CaptureStats): void;
}

export class CaptureStatsLog {
  /** tcpdump may not handle SIGUSR1 before it said "listening on" (the default action ends it) */
  private listening = false;
  /** pcap records read from tcpdump so far */
  private decoded = 0;
  /** when SIGUSR1 was sent, while its answer is awaited */
  private asked: number | undefined;
  /** a reading waiting for the packets it counted to be logged */
  private held: (TcpdumpStats & { t: number }) | undefined;
  /** tcpdump's drop count (since its start) in the previous record */
  private droppedBefore = 0;
  /** the first batch since the last request to tcpdump, and the last one */
  private uncovered: number | undefined;
  private lastBatch = 0;
  /** a reader's request: a reading is owed, taken at this time or later */
  private requestedFor: number | undefined;
  private timer: unknown;

  constructor(private readonly io: StatsIo) {}

  /** tcpdump said "listening on". */
  started(): void {
    this.listening = true;
    this.schedule();
  }

  /** `n` packets (a batch, n > 0) were read from tcpdump and logged. */
  packets(n: number): void {
    this.decoded += n;
    if (n > 0) {
      this.lastBatch = this.io.now();
      this.uncovered ??= this.lastBatch;
      this.schedule();
    }
    this.logHeld();
  }

  /**
   * A reader wants a reading taken STATS_QUIET_MS from now or later (a stopped probe: its packets
   * that arrived are then logged, and a probe whose packets were all lost on the way gets one too).
   */
  requested(): void {
    this.requestedFor = Math.max(this.requestedFor ?? 0, this.io.now() + STATS_QUIET_MS);
    this.schedule();
  }

  /** A statistics line from tcpdump (parsed); ignored when none was asked for. */
  answer(stats: TcpdumpStats): void {
    if (this.asked === undefined) return;
    this.held = { ...stats, t: this.asked };
    this.asked = undefined;
    this.logHeld();
    this.schedule();
  }

  /** tcpdump could not read its statistics (pcap_stats failed): no record this time, the readers say so. */
  failed(): void {
    this.asked = undefined;
    this.schedule();
  }

  /** One timer for the earliest reading owed (after batches, for a request); none when nothing is owed. */
  private schedule(): void {
    if (this.timer !== undefined) this.io.clearTimer(this.timer);
    this.timer = undefined;
    const due: number[] = [];
    if (this.uncovered !== undefined) due.push(Math.min(this.lastBatch + STATS_QUIET_MS, this.uncovered + STATS_MAX_WAIT_MS));
    if (this.requestedFor !== undefined) due.push(this.requestedFor);
    if (due.length === 0) return;
    this.timer = this.io.setTimer(() => this.ask(), Math.max(0, Math.min(...due) - this.io.now()));
  }

  private ask(): void {
    this.timer = undefined;
    // Not yet listening, or an answer is awaited (a second signal would be folded into it): what is
    // owed stays owed, and the next step (listening, the answer) schedules it again. No polling.
    if (!this.listening || this.asked !== undefined) return;
    const now = this.io.now();
    this.asked = now;
    this.uncovered = undefined;
    if (this.requestedFor !== undefined && now >= this.requestedFor) this.requestedFor = undefined;
    this.io.ask();
    this.schedule();
  }

  private logHeld(): void {
    const h = this.held;
    if (!h || this.decoded < (h.captured ?? 0)) return;
    // tcpdump's count is since its start: the record says what is new
    const drops = h.dropped >= this.droppedBefore ? h.dropped - this.droppedBefore : h.dropped;
    const pending = Math.max(0, (h.received ?? 0) - h.dropped - (h.captured ?? 0));
    this.droppedBefore = h.dropped;
    this.held = undefined;
    this.io.write({ t: h.t, p: 'stats', drops, total: h.dropped, pending });
  }
}
