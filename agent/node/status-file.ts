/**
 * The agent's status file (default /run/egresslab/agent-status.json), read by `egresslab status`:
 * rewritten atomically (temp file + rename) shortly after anything status-worthy changes, and every
 * statusIntervalMs anyway so that `writtenAt` and the lease fields stay fresh (a reader can tell a
 * dead agent by a stale `writtenAt`).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { errorMessage } from './module.js';

export const STATUS_SCHEMA = 1;

export class StatusWriter {
  private debounce: NodeJS.Timeout | null = null;
  private interval: NodeJS.Timeout | null = null;
  private lastError: string | null = null;
  writes = 0;

  constructor(
    private readonly path: string,
    private readonly collect: () => Record<string, unknown>,
    private readonly intervalMs: number,
    private readonly log: (msg: string) => void,
    private readonly debounceMs = 10,
  ) {}

  start(): void {
    this.writeNow();
    this.interval = setInterval(() => this.writeNow(), this.intervalMs);
    this.interval.unref();
  }

  /** Schedule a write soon (coalesces bursts). */
  changed(): void {
    if (this.debounce || !this.interval) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.writeNow();
    }, this.debounceMs);
    this.debounce.unref();
  }

  writeNow(): void {
    const body = { schema: STATUS_SCHEMA, ...this.collect(), writtenAt: new Date().toISOString() };
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`);
      renameSync(tmp, this.path);
      this.writes++;
      this.lastError = null;
    } catch (e) {
      const m = errorMessage(e);
      if (m !== this.lastError) this.log(`cannot write ${this.path}: ${m}`);
      this.lastError = m;
    }
  }

  /** Final write, timers off. */
  stop(): void {
    if (this.debounce) clearTimeout(this.debounce);
    if (this.interval) clearInterval(this.interval);
    this.debounce = this.interval = null;
    this.writeNow();
  }
}
