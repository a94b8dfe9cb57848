/**
 * The I/O half of the masquerade agent (runs as root inside a lab node, Node 18+).
 *
 *  - watches the config file's directory (kubelet-style `..data` symlink swaps, files appearing and
 *    disappearing) AND the file's current inode (in-place edits, bind mounts), debounced, so a
 *    change is applied within tens of milliseconds; a cheap poll (5 s, 100 ms while the directory
 *    is missing) is the safety net for missed events (each poll wakes an otherwise idle agent);
 *  - re-syncs every resyncInterval: re-reads the config and repairs rules that something else
 *    changed or removed (compares `nft -s list table` with what it saw right after applying);
 *  - applies with one `nft -f -` transaction; on bad config keeps the last good rules, logs the
 *    field and value, calls onEvent, and records the error in the state file;
 *  - stop() removes its rules (clean stop, wired to SIGTERM by main.ts); a crash leaves them.
 *
 * Everything that touches the world (fs, nft, timers, clock) is injectable.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import {
  canonicalConfigJson,
  type ConfigIssue,
  type ConfigSource,
  formatIssues,
  type MasqConfig,
  parseMasqConfig,
} from './config.js';
import { DEFAULT_CONFIG_PATH, MASQ_TABLE, MAX_RESYNC_INTERVAL_MS, MIN_RESYNC_INTERVAL_MS } from './constants.js';
import type { Host } from '../host/host.js';
import type { EventType } from '../../lib/kube/types.js';
import { realClock, type Clock } from '../../lib/time/clock.js';
import { type GatewayBypass, renderMasqRemoval, renderMasqRuleset, type RenderResult } from './render.js';

// ---------------------------------------------------------------------------------------------
// Injectable world

export type ConfigRead = { exists: false } | { exists: true; text: string; /** dev:ino of the target */ id: string };

export interface WatchHandle {
  close(): void;
}

export interface AgentFs {
  /** Read the config file, following symlinks. ENOENT/ENOTDIR -> {exists:false}; other errors throw. */
  readConfig(file: string): Promise<ConfigRead>;
  /** dev:ino of a path (following symlinks), or null if it does not exist. */
  statId(p: string): Promise<string | null>;
  /** Watch a file or directory; throws if it does not exist. */
  watch(p: string, onChange: () => void, onError: (e: Error) => void): WatchHandle;
  /** Atomically replace a small file (mkdir -p its directory). */
  writeFileAtomic(p: string, content: string): Promise<void>;
}

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export const nodeFs: AgentFs = {
  async readConfig(file) {
    try {
      // Upstream: os.Stat (follows symlinks); not-exist -> defaults. Read through the same fd so
      // the id and the text belong to the same inode.
      const fh = await fsp.open(file, 'r');
      try {
        const st = await fh.stat();
        if (st.isDirectory()) throw Object.assign(new Error(`${file} is a directory`), { code: 'EISDIR' });
        const text = await fh.readFile({ encoding: 'utf8' });
        return { exists: true, text, id: `${st.dev}:${st.ino}` };
      } finally {
        await fh.close();
      }
    } catch (e) {
      if (isMissing(e)) return { exists: false };
      throw e;
    }
  },
  async statId(p) {
    try {
      const st = await fsp.stat(p);
      return `${st.dev}:${st.ino}`;
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  },
  watch(p, onChange, onError) {
    const w = fs.watch(p, { persistent: false }, () => onChange());
    w.on('error', (e) => onError(e));
    return { close: () => w.close() };
  },
  async writeFileAtomic(p, content) {
    await fsp.mkdir(path.dirname(p), { recursive: true });
    const tmp = `${p}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, content);
    await fsp.rename(tmp, p);
  },
};

// ---------------------------------------------------------------------------------------------
// State file (read by `egresslab status`)

export interface MasqErrorState {
  at: string;
  reason: string;
  message: string;
  errors: ConfigIssue[];
}

export interface MasqAgentState {
  schema: 1;
  component: 'ip-masq-agent';
  pid: number;
  status: 'starting' | 'running' | 'stopped';
  configPath: string;
  table: string;
  podCidrs: string[];
  /** Source of the config in force: the file, or the defaults (file absent). */
  configSource: ConfigSource | null;
  /** sha256 (hex, first 16) of the canonical JSON of the config in force. */
  configHash: string | null;
  /** sha256 of the ruleset text last applied. */
  rulesetHash: string | null;
  appliedAt: string | null;
  /** Set elements + rules programmed by the last apply. */
  ruleCount: number;
  setElements: number;
  masqLinkLocal: boolean | null;
  resyncIntervalMs: number | null;
  applies: number;
  repairs: number;
  lastSyncAt: string | null;
  lastError: MasqErrorState | null;
  warnings: ConfigIssue[];
  rulesRemoved?: boolean;
}

// ---------------------------------------------------------------------------------------------

export type EventHook = (reason: string, message: string, type: EventType) => void;

export interface MasqAgentOptions {
  /** the kernel (nft -f -, nft -s list table) */
  host: Pick<Host, 'nftApply' | 'nftList'>;
  /** The node's pod CIDR(s). */
  podCidrs: string[];
  configPath?: string;
  /** Where to write the JSON state; omitted = no state file. */
  statePath?: string;
  enableIPv6?: boolean;
  tableName?: string;
  gatewayBypass?: GatewayBypass | null;
  fs?: AgentFs;
  clock?: Clock;
  log?: (line: string) => void;
  onEvent?: EventHook;
  /** Quiet period after a watch event before re-reading (default 20 ms). */
  debounceMs?: number;
  /** Safety-net poll while watches are armed (default 5000 ms). */
  pollMs?: number;
  /** Poll after a failed apply, to retry it (default 1000 ms). */
  retryPollMs?: number;
  /** Poll while the config directory is missing / unwatchable (default 100 ms). */
  fastPollMs?: number;
  /** Floor for resyncInterval (default 1000 ms; upstream hot-loops on <= 0). */
  minResyncMs?: number;
}

type Trigger = 'start' | 'resync' | 'watch' | 'poll' | 'retry';

interface Good {
  config: MasqConfig;
  source: ConfigSource;
  configHash: string;
  render: RenderResult;
  rulesetHash: string;
  /** sha256 of `nft -s list table` right after applying; null if listing failed. */
  fingerprint: string | null;
}

function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export class MasqAgent {
  private readonly o: Required<Omit<MasqAgentOptions, 'statePath' | 'gatewayBypass' | 'onEvent'>> &
    Pick<MasqAgentOptions, 'statePath' | 'gatewayBypass' | 'onEvent'>;
  private readonly dir: string;

  private started = false;
  private stopped = false;
  private running: Promise<void> | null = null;
  private pending: Trigger | null = null;

  private good: Good | null = null;
  private lastFileKey: string | null = null;
  private applyFailed = false;
  private lastErrorKey: string | null = null;
  private currentResyncMs = 0;

  private resyncTimer: unknown = null;
  private pollTimer: unknown = null;
  private debounceTimer: unknown = null;
  private dirWatch: { handle: WatchHandle; id: string } | null = null;
  private fileWatch: { handle: WatchHandle; id: string } | null = null;

  private readonly state: MasqAgentState;

  constructor(opts: MasqAgentOptions) {
    if (opts.podCidrs.length === 0) throw new Error('MasqAgent: at least one pod CIDR is required');
    this.o = {
      configPath: DEFAULT_CONFIG_PATH,
      enableIPv6: false,
      tableName: MASQ_TABLE,
      fs: nodeFs,
      clock: realClock,
      log: (line: string) => process.stderr.write(`${line}\n`),
      debounceMs: 20,
      pollMs: 5000,
      retryPollMs: 1000,
      fastPollMs: 100,
      minResyncMs: MIN_RESYNC_INTERVAL_MS,
      ...opts,
    };
    // Fail fast on bad pod CIDRs / table name (render throws).
    renderMasqRemoval(this.o.tableName);
    this.dir = path.dirname(this.o.configPath);
    this.state = {
      schema: 1,
      component: 'ip-masq-agent',
      pid: process.pid,
      status: 'starting',
      configPath: this.o.configPath,
      table: this.o.tableName,
      podCidrs: [...this.o.podCidrs],
      configSource: null,
      configHash: null,
      rulesetHash: null,
      appliedAt: null,
      ruleCount: 0,
      setElements: 0,
      masqLinkLocal: null,
      resyncIntervalMs: null,
      applies: 0,
      repairs: 0,
      lastSyncAt: null,
      lastError: null,
      warnings: [],
    };
  }

  /** Current state (a copy). */
  getState(): MasqAgentState {
    return JSON.parse(JSON.stringify(this.state)) as MasqAgentState;
  }

  /** Starts watching and performs the first sync; resolves once that sync is done. */
  async start(): Promise<void> {
    if (this.started) throw new Error('MasqAgent already started');
    this.started = true;
    this.log(`starting: config=${this.o.configPath} podCidrs=${this.o.podCidrs.join(',')} table=${this.o.tableName}`);
    await this.armWatches();
    this.schedulePoll();
    this.trigger('start');
    await this.whenIdle();
    this.state.status = 'running';
    await this.writeState();
  }

  /**
   * Stop. With removeRules (default true, the SIGTERM path) the agent's tables are removed in one
   * transaction; with removeRules=false the rules stay as they are (what a crash looks like).
   */
  async stop(opts: { removeRules?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.pending = null;
    for (const t of [this.resyncTimer, this.pollTimer, this.debounceTimer]) if (t !== null) this.o.clock.clearTimeout(t);
    this.resyncTimer = this.pollTimer = this.debounceTimer = null;
    this.dirWatch?.handle.close();
    this.fileWatch?.handle.close();
    this.dirWatch = this.fileWatch = null;
    if (this.running) await this.running;
    if (opts.removeRules !== false) {
      try {
        await this.o.host.nftApply(renderMasqRemoval(this.o.tableName));
        this.state.rulesRemoved = true;
        this.log('stopped: masquerade rules removed');
        this.event('MasqRulesRemoved', `removed table ${this.o.tableName} (clean stop)`, 'Normal');
      } catch (e) {
        this.state.rulesRemoved = false;
        this.log(`stop: failed to remove rules: ${(e as Error).message}`);
        this.event('MasqRemoveFailed', `failed to remove table ${this.o.tableName}: ${(e as Error).message}`, 'Warning');
      }
    } else {
      this.state.rulesRemoved = false;
      this.log('stopped: rules left in place');
    }
    this.state.status = 'stopped';
    await this.writeState();
  }

  /** Resolves when no sync is running or queued (tests; also start()). */
  async whenIdle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Force a resync now (same as the periodic one). */
  resyncNow(): Promise<void> {
    this.trigger('resync');
    return this.whenIdle();
  }

  // -------------------------------------------------------------------------------------------

  private log(msg: string): void {
    this.o.log(`ip-masq-agent: ${msg}`);
  }

  private event(reason: string, message: string, type: EventType): void {
    try {
      this.o.onEvent?.(reason, message, type);
    } catch (e) {
      this.log(`onEvent hook threw: ${(e as Error).message}`);
    }
  }

  private trigger(kind: Trigger): void {
    if (this.stopped) return;
    const rank: Record<Trigger, number> = { poll: 0, watch: 1, retry: 2, resync: 3, start: 4 };
    if (this.pending === null || rank[kind] > rank[this.pending]) this.pending = kind;
    if (!this.running) {
      this.running = this.loop().finally(() => {
        this.running = null;
      });
    }
  }

  private async loop(): Promise<void> {
    while (this.pending !== null && !this.stopped) {
      const k = this.pending;
      this.pending = null;
      try {
        await this.syncOnce(k);
      } catch (e) {
        this.log(`sync failed unexpectedly: ${(e as Error).stack ?? String(e)}`);
      }
    }
  }

  private onWatchEvent = (): void => {
    if (this.stopped) return;
    if (this.debounceTimer !== null) this.o.clock.clearTimeout(this.debounceTimer);
    this.debounceTimer = this.o.clock.setTimeout(() => {
      this.debounceTimer = null;
      this.trigger('watch');
    }, this.o.debounceMs);
  };

  private schedulePoll(): void {
    if (this.stopped) return;
    const ms = !this.dirWatch ? this.o.fastPollMs : this.applyFailed ? Math.min(this.o.retryPollMs, this.o.pollMs) : this.o.pollMs;
    this.pollTimer = this.o.clock.setTimeout(() => {
      this.pollTimer = null;
      void this.armWatches()
        .catch((e: unknown) => this.log(`watch: ${(e as Error).message}`))
        .then(() => {
          this.trigger(this.applyFailed ? 'retry' : 'poll');
          this.schedulePoll();
        });
    }, ms);
  }

  private scheduleResync(ms: number): void {
    if (this.stopped) return;
    if (this.resyncTimer !== null) this.o.clock.clearTimeout(this.resyncTimer);
    this.currentResyncMs = ms;
    this.resyncTimer = this.o.clock.setTimeout(() => {
      this.resyncTimer = null;
      this.trigger('resync');
    }, ms);
  }

  private arming: Promise<void> = Promise.resolve();

  /** (Re-)arm the directory watch and the file watch when what they point at changed (serialised). */
  private armWatches(fileId?: string | null): Promise<void> {
    const next = this.arming.then(() => this.armWatchesNow(fileId));
    this.arming = next.catch(() => undefined);
    return next;
  }

  private async armWatchesNow(fileId?: string | null): Promise<void> {
    if (this.stopped) return;
    const dirId = await this.o.fs.statId(this.dir);
    if (this.dirWatch && this.dirWatch.id !== dirId) {
      this.dirWatch.handle.close();
      this.dirWatch = null;
    }
    if (!this.dirWatch && dirId !== null) {
      try {
        const handle = this.o.fs.watch(this.dir, this.onWatchEvent, (e) => {
          this.log(`watch ${this.dir}: ${e.message}`);
          this.dirWatch?.handle.close();
          this.dirWatch = null;
        });
        this.dirWatch = { handle, id: dirId };
        // The directory may just have (re)appeared: look at it now.
        this.onWatchEvent();
      } catch (e) {
        if (!isMissing(e)) this.log(`watch ${this.dir}: ${(e as Error).message}`);
      }
    }
    const fid = fileId === undefined ? await this.o.fs.statId(this.o.configPath) : fileId;
    if (this.fileWatch && this.fileWatch.id !== fid) {
      this.fileWatch.handle.close();
      this.fileWatch = null;
    }
    if (!this.fileWatch && fid !== null) {
      try {
        const handle = this.o.fs.watch(this.o.configPath, this.onWatchEvent, () => {
          this.fileWatch?.handle.close();
          this.fileWatch = null;
        });
        this.fileWatch = { handle, id: fid };
      } catch (e) {
        if (!isMissing(e)) this.log(`watch ${this.o.configPath}: ${(e as Error).message}`);
      }
    }
  }

  private async syncOnce(trigger: Trigger): Promise<void> {
    const nowIso = new Date(this.o.clock.now()).toISOString();
    this.state.lastSyncAt = nowIso;

    let read: ConfigRead;
    try {
      read = await this.o.fs.readConfig(this.o.configPath);
    } catch (e) {
      this.reportError('MasqConfigInvalid', [
        { field: '(file)', value: JSON.stringify(this.o.configPath), message: `cannot read config: ${(e as Error).message}` },
      ]);
      await this.afterSync(trigger);
      return;
    }
    await this.armWatches(read.exists ? read.id : null).catch((e: unknown) => this.log(`watch: ${(e as Error).message}`));

    const fileKey = read.exists ? `file:${sha(read.text)}` : 'absent';
    const fileChanged = fileKey !== this.lastFileKey;
    if ((trigger === 'watch' || trigger === 'poll') && !fileChanged) return; // nothing new
    this.lastFileKey = fileKey;

    const parsed = parseMasqConfig(read.exists ? read.text : null, { enableIPv6: this.o.enableIPv6 });
    if (!parsed.ok) {
      this.reportError('MasqConfigInvalid', parsed.errors);
      // Upstream stops here (no rule sync while the config is bad). We additionally keep the LAST
      // GOOD rules healthy: a resync still repairs them if something removed them.
      if (trigger === 'resync' && this.good && !this.applyFailed) await this.verifyAndRepair(this.good, true);
      await this.afterSync(trigger);
      return;
    }
    if (fileChanged) {
      for (const w of parsed.warnings) this.log(`config warning: field=${w.field} value=${w.value}: ${w.message}`);
    }

    let render: RenderResult;
    try {
      render = renderMasqRuleset(parsed.config, {
        podCidrs: this.o.podCidrs,
        tableName: this.o.tableName,
        enableIPv6: this.o.enableIPv6,
        ...(this.o.gatewayBypass !== undefined ? { gatewayBypass: this.o.gatewayBypass } : {}),
        comment: 'egresslab ip-masq-agent',
      });
    } catch (e) {
      this.reportError('MasqRenderFailed', [{ field: '(render)', value: '', message: (e as Error).message }]);
      await this.afterSync(trigger);
      return;
    }
    const rulesetHash = sha(render.ruleset);
    const candidate: Good = {
      config: parsed.config,
      source: parsed.source,
      configHash: sha(canonicalConfigJson(parsed.config)).slice(0, 16), // = masqConfigHash(text) (config.ts)
      render,
      rulesetHash,
      fingerprint: null,
    };

    if (this.good && this.good.rulesetHash === rulesetHash && !this.applyFailed) {
      // Same rules as in force. The config may still differ cosmetically (comments, order).
      this.good = { ...candidate, fingerprint: this.good.fingerprint };
      this.state.warnings = parsed.warnings;
      this.clearErrorIfAny();
      if (trigger === 'resync' || trigger === 'start') await this.verifyAndRepair(this.good);
    } else {
      await this.apply(candidate, parsed.warnings, trigger);
    }
    await this.afterSync(trigger);
  }

  private async afterSync(trigger: Trigger): Promise<void> {
    const interval = Math.min(Math.max(this.good?.config.resyncIntervalMs ?? 60_000, this.o.minResyncMs), MAX_RESYNC_INTERVAL_MS);
    if (trigger === 'resync' || trigger === 'start' || this.resyncTimer === null || interval !== this.currentResyncMs) {
      this.scheduleResync(interval);
    }
    await this.writeState();
  }

  /** keepError: a repair while the config file is bad must not clear that error. */
  private async apply(c: Good, warnings: ConfigIssue[], trigger: Trigger, keepError = false): Promise<boolean> {
    const t0 = this.o.clock.now();
    try {
      await this.o.host.nftApply(c.render.ruleset);
    } catch (e) {
      this.applyFailed = true;
      // retry at the (shorter) retry poll, not at the safety-net poll already scheduled
      if (this.pollTimer !== null) {
        this.o.clock.clearTimeout(this.pollTimer);
        this.schedulePoll();
      }
      this.reportError('MasqApplyFailed', [{ field: '(nft)', value: '', message: (e as Error).message }]);
      return false;
    }
    c.fingerprint = await this.fingerprint(c.render);
    const prev = this.good;
    this.good = c;
    this.applyFailed = false;
    if (!keepError) {
      this.lastErrorKey = null;
      this.state.lastError = null;
    }
    this.state.warnings = warnings;
    this.state.configSource = c.source;
    this.state.configHash = c.configHash;
    this.state.rulesetHash = c.rulesetHash.slice(0, 16);
    this.state.appliedAt = new Date(this.o.clock.now()).toISOString();
    this.state.ruleCount = c.render.ruleCount;
    this.state.setElements = c.render.nonMasqElements.length;
    this.state.masqLinkLocal = c.config.masqLinkLocal;
    this.state.resyncIntervalMs = c.config.resyncIntervalMs;
    this.state.applies++;
    const ms = this.o.clock.now() - t0;
    const what =
      `config=${c.configHash} source=${c.source} nonMasqueradeCIDRs=${c.config.nonMasqueradeCIDRs.length} ` +
      `setElements=${c.render.nonMasqElements.length} masqLinkLocal=${c.config.masqLinkLocal} (${ms} ms, trigger=${trigger})`;
    if (prev && prev.rulesetHash === c.rulesetHash) {
      this.log(`rules repaired: ${what}`);
    } else {
      this.log(`rules applied: ${what}`);
      this.event('MasqRulesApplied', `applied masquerade rules: ${what}`, 'Normal');
    }
    return true;
  }

  private async fingerprint(r: RenderResult): Promise<string | null> {
    try {
      const parts: string[] = [];
      for (const t of r.tables) {
        const l = await this.o.host.nftList(t.family, t.name);
        if (l === null) return null;
        parts.push(l);
      }
      return sha(parts.join('\n'));
    } catch (e) {
      this.log(`cannot list rules: ${(e as Error).message}`);
      return null;
    }
  }

  private async verifyAndRepair(g: Good, keepError = false): Promise<void> {
    const now = await this.fingerprint(g.render);
    if (now !== null && now === g.fingerprint) return;
    const why = now === null ? 'missing' : 'modified';
    this.log(`rules ${why} behind our back: re-applying`);
    this.event('MasqRulesRepaired', `masquerade rules were ${why}; re-applied config ${g.configHash}`, 'Warning');
    const ok = await this.apply({ ...g, fingerprint: null }, this.state.warnings, 'resync', keepError);
    if (ok) this.state.repairs++;
  }

  private clearErrorIfAny(): void {
    if (this.state.lastError) this.log('previous error cleared');
    this.state.lastError = null;
    this.lastErrorKey = null;
  }

  private reportError(reason: string, errors: ConfigIssue[]): void {
    const message = formatIssues(errors);
    const keep = this.good ? `keeping last good rules (config ${this.good.configHash})` : 'no rules applied yet; existing rules left untouched';
    this.state.lastError = { at: new Date(this.o.clock.now()).toISOString(), reason, message, errors };
    const key = `${reason}|${message}`;
    if (key === this.lastErrorKey) return; // same error as last time: state only, no log/event spam
    this.lastErrorKey = key;
    this.log(`${reason}: ${message}; ${keep}`);
    this.event(reason, `${message}; ${keep}`, 'Warning');
  }

  private async writeState(): Promise<void> {
    if (!this.o.statePath) return;
    try {
      await this.o.fs.writeFileAtomic(this.o.statePath, `${JSON.stringify(this.state, null, 2)}\n`);
    } catch (e) {
      this.log(`cannot write state ${this.o.statePath}: ${(e as Error).message}`);
    }
  }
}
