/**
 * The I/O half of the masquerade agent (runs as root inside a lab node, Node 18+).
 *
 *  - watches the config file's directory (kubelet-style `..data` symlink swaps, files appearing and
 *    disappearing) AND the file's current inode (in-place edits, bind mounts), debounced, so a
 *    change is applied within tens of milliseconds; a cheap poll (5 s, 100 ms while the directory
 *    is missing) is the safety net for missed events (each poll wakes an otherwise idle agent);
 *  - applies with one `nft -f -` transaction: when only the nonmasq elements changed, an update of
 *    the set in place (render.ts renderMasqSetDelta: delete + add the elements that changed, or flush
 *    + add), else the whole table(s) re-created; a set update that fails (the set was changed behind
 *    our back) falls back to the full re-create in the same sync. On bad config keeps the last good
 *    rules, logs the field and value, calls onEvent, and records the error in the state file;
 *  - takes a baseline of the rules (listing.ts rulesKey: content without set elements or handles)
 *    with a TERSE listing (`nft -j -s -t list table`: no set elements printed) after a full apply
 *    that changed them; after a set update or a re-create of the same rules, nothing (the baseline
 *    still holds). Never lists the 10,000 elements it has just committed;
 *  - re-syncs every resyncInterval: re-reads the config, lists its table(s) (`nft -j -s list table`)
 *    and compares the rules with the baseline and each set's elements with what was rendered, as
 *    intervals (listing.ts: whatever form nft prints them in); repairs changed rules by re-applying,
 *    changed elements by a set update from what the kernel holds;
 *  - logs each apply with the time of each stage of its sync (read, parse, render, commit, verify)
 *    and its kind (full, or delta +added -removed), also in the state file (`lastApply`);
 *  - stop() (SIGTERM, via main.ts) leaves the rules in the kernel, as upstream ip-masq-agent and a
 *    crash do: they are the node's last good config, and a node without them sends its pods' traffic
 *    out with the pods' own IPs until the next agent has re-applied (the chaos explorer measured
 *    ~3.5 s of leaked SYNs per restart when stop removed them). The next agent's first sync refills
 *    the table in place in one transaction (its host reads the table's definition from the kernel
 *    first: agent/host/nft-replace.ts), so the kernel is never without it. stop({removeRules: true})
 *    removes them (decommission: the agent config's removeRulesOnStop).
 *
 * Everything that touches the world (fs, nft, timers, clock) is injectable.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { canonicalConfigJson, type ConfigIssue, type ConfigSource, formatIssues, type MasqConfig, parseMasqConfig } from './config.js';
import { DEFAULT_CONFIG_PATH, MASQ_TABLE, MAX_RESYNC_INTERVAL_MS, MIN_RESYNC_INTERVAL_MS } from './constants.js';
import type { Host } from '../host/host.js';
import type { EventType } from '../../lib/kube/types.js';
import { realClock, type Clock } from '../../lib/time/clock.js';
import { diffIntervals, sameIntervals } from '../../lib/net/intervals.js';
import { parseNftTableJson, type TableListing } from './listing.js';
import {
  type GatewayBypass,
  renderMasqRemoval,
  renderMasqRuleset,
  renderMasqSetDelta,
  renderSetUpdates,
  type RenderResult,
  type SetContents,
  type SetDelta,
} from './render.js';

// ---------------------------------------------------------------------------------------------
// Injectable world

export type ConfigRead = { exists: false } | { exists: true; text: string /** dev:ino of the target */; id: string };

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

/** How long each stage of a sync took, ms. */
export interface MasqSyncStages {
  /** reading the config file */
  read: number;
  /** parsing and validating it */
  parse: number;
  /** rendering the ruleset, and the set update when there is one */
  render: number;
  /** `nft -f`: every attempt (a set update that failed and the full apply after it) */
  commit: number;
  /** the terse listing that takes the rules baseline after a full apply that changed rules (else 0) */
  verify: number;
  /** (resync) the listing that compared the kernel with what was rendered */
  check?: number;
}

/** The last successful apply. */
export interface MasqApplyRecord {
  at: string;
  trigger: string;
  /** full: the table(s) re-created; delta: set elements updated in place */
  kind: 'full' | 'delta';
  /** (delta) elements that came and went */
  added: number;
  removed: number;
  /** (delta) each set updated and how: `ip nonmasq: elements` or `ip nonmasq: flush` */
  sets: string[];
  /**
   * (full) why: `first apply`, `rules changed`, `cheaper than a set update`, `set update failed`,
   * `after a failed set update`, `repair`; null for a delta
   */
  reason: string | null;
  /** (full) the nft error of the set update tried first, else null */
  fallback: string | null;
  stagesMs: MasqSyncStages;
  /** the whole sync, from reading the config to the end of verify */
  totalMs: number;
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
  /** Kind and stage timings of the last apply (or repair). */
  lastApply: MasqApplyRecord | null;
  lastSyncAt: string | null;
  lastError: MasqErrorState | null;
  warnings: ConfigIssue[];
  rulesRemoved?: boolean;
}

// ---------------------------------------------------------------------------------------------

export type EventHook = (reason: string, message: string, type: EventType) => void;

export interface MasqAgentOptions {
  /** the kernel (nft -f -, nft -j -s [-t] list table) */
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
  /**
   * sha256 of the rules of the table(s) (listing.ts rulesKey: their content without set elements
   * or handles), from the terse listing after the full apply that last changed them; kept across set
   * updates and re-creates of the same rules (same render skeleton). null if that listing failed
   * (the next resync re-applies).
   */
  fingerprint: string | null;
}

/** What a resync found in the kernel. */
type Inspection =
  | { kind: 'ok' }
  | { kind: 'missing' | 'modified'; detail: string }
  /** rules as applied, set elements not: what the sets hold now */
  | { kind: 'elements'; actual: SetContents[]; detail: string };

const noStages = (): MasqSyncStages => ({ read: 0, parse: 0, render: 0, commit: 0, verify: 0 });

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
  /** a set update failed: the sets may not hold what `good` says, so the next apply is a full one */
  private setsUncertain = false;
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
      lastApply: null,
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
   * Stop watching and syncing. The rules stay as they are (the default, the SIGTERM path: a restart
   * must not leave the node unmasqueraded while the next agent starts); with removeRules: true the
   * agent's tables are removed in one transaction (decommission).
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
    if (opts.removeRules === true) {
      try {
        await this.o.host.nftApply(renderMasqRemoval(this.o.tableName));
        this.state.rulesRemoved = true;
        this.log('stopped: masquerade rules removed');
        this.event('MasqRulesRemoved', `removed table ${this.o.tableName} (stop with removeRules: decommission)`, 'Normal');
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
    const start = this.o.clock.now();
    const nowIso = new Date(start).toISOString();
    this.state.lastSyncAt = nowIso;
    const st = noStages();
    const since = (t: number): number => this.o.clock.now() - t;

    let read: ConfigRead;
    try {
      read = await this.o.fs.readConfig(this.o.configPath);
      st.read = since(start);
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

    const tParse = this.o.clock.now();
    const parsed = parseMasqConfig(read.exists ? read.text : null, { enableIPv6: this.o.enableIPv6 });
    st.parse = since(tParse);
    if (!parsed.ok) {
      this.reportError('MasqConfigInvalid', parsed.errors);
      // Upstream stops here (no rule sync while the config is bad). We additionally keep the LAST
      // GOOD rules healthy: a resync still repairs them if something removed them.
      if (trigger === 'resync' && this.good && !this.applyFailed) await this.verifyAndRepair(this.good, st, start, true);
      await this.afterSync(trigger);
      return;
    }
    if (fileChanged) {
      for (const w of parsed.warnings) this.log(`config warning: field=${w.field} value=${w.value}: ${w.message}`);
    }

    const tRender = this.o.clock.now();
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
    st.render = since(tRender);
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
      if (trigger === 'resync' || trigger === 'start') await this.verifyAndRepair(this.good, st, start);
    } else {
      await this.apply(candidate, parsed.warnings, trigger, st, start);
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

  /**
   * Apply `c`: as a set update when only set elements differ from the rules in force and that is
   * the cheaper way (or as `o.plan` says: a SetDelta to apply, null for a full apply after rules
   * were modified behind our back), else the full ruleset; a set update that fails is followed by
   * the full ruleset in the same sync. `st`/`syncStart`: the sync's stage timings so far.
   * o.keepError: a repair while the config file is bad must not clear that error.
   */
  private async apply(
    c: Good,
    warnings: ConfigIssue[],
    trigger: Trigger,
    st: MasqSyncStages,
    syncStart: number,
    o: { keepError?: boolean; plan?: SetDelta | null } = {},
  ): Promise<boolean> {
    const prev = this.good;
    let delta: SetDelta | null = null;
    let reason: string;
    if (o.plan !== undefined) {
      delta = o.plan;
      reason = 'repair';
    } else if (!prev) {
      reason = 'first apply';
    } else if (this.setsUncertain) {
      reason = 'after a failed set update';
    } else {
      const t = this.o.clock.now();
      delta = renderMasqSetDelta(prev.render, c.render);
      st.render += this.o.clock.now() - t;
      reason = 'rules changed';
    }
    if (delta?.preferFull) {
      delta = null;
      reason = 'cheaper than a set update';
    }

    const tCommit = this.o.clock.now();
    let kind: 'full' | 'delta' = 'full';
    let fallback: string | null = null;
    if (delta) {
      try {
        if (delta.updates.length > 0) await this.o.host.nftApply(delta.ruleset);
        kind = 'delta';
      } catch (e) {
        // e.g. an element we delete is gone, or the table is: the kernel is not what we think
        fallback = (e as Error).message;
        reason = 'set update failed';
        this.setsUncertain = true;
        this.log(`set update failed (${fallback.split('\n')[0]}): re-creating the table instead`);
      }
    }
    if (kind === 'full') {
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
      this.setsUncertain = false;
    }
    st.commit = this.o.clock.now() - tCommit;

    const tVerify = this.o.clock.now();
    // A set update changes no rule, and a re-create of the same rules (same skeleton) leaves the
    // same content: the baseline still holds (and re-listing after a set update would adopt as
    // baseline a rule someone changed since). After a repair of modified rules, list again: should
    // nft print our rules differently now (an upgrade), one repair takes the new baseline instead
    // of a repair at every resync.
    const sameRules = prev !== null && prev.fingerprint !== null && prev.render.skeleton === c.render.skeleton && o.plan !== null;
    c.fingerprint = kind === 'delta' ? (prev?.fingerprint ?? null) : sameRules ? prev.fingerprint : await this.rulesFingerprint(c.render);
    st.verify = this.o.clock.now() - tVerify;

    this.good = c;
    this.applyFailed = false;
    if (!o.keepError) {
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
    const record: MasqApplyRecord = {
      at: this.state.appliedAt,
      trigger,
      kind,
      added: kind === 'delta' ? (delta?.added ?? 0) : 0,
      removed: kind === 'delta' ? (delta?.removed ?? 0) : 0,
      sets: kind === 'delta' ? (delta?.updates ?? []).map((u) => `${u.family} ${u.name}: ${u.form}`) : [],
      reason: kind === 'full' ? reason : null,
      fallback,
      stagesMs: { ...st },
      totalMs: this.o.clock.now() - syncStart,
    };
    this.state.lastApply = record;
    // "(N ms, trigger=...)" stays first and means what it always did: the apply (nft -f and the
    // listing after it); bench/masq-scale.ts parses it. The stages follow.
    const ms = st.commit + st.verify;
    const how =
      kind === 'delta'
        ? `apply=delta +${record.added} -${record.removed}${record.sets.length ? ` [${record.sets.join(', ')}]` : ''}`
        : `apply=full (${reason})`;
    const stages =
      `read=${st.read} parse=${st.parse} render=${st.render} commit=${st.commit} verify=${st.verify}` +
      `${st.check !== undefined ? ` check=${st.check}` : ''} total=${record.totalMs} ms`;
    const what =
      `config=${c.configHash} source=${c.source} nonMasqueradeCIDRs=${c.config.nonMasqueradeCIDRs.length} ` +
      `setElements=${c.render.nonMasqElements.length} masqLinkLocal=${c.config.masqLinkLocal} (${ms} ms, trigger=${trigger}) ${how} ${stages}`;
    if (prev && prev.rulesetHash === c.rulesetHash) {
      this.log(`rules repaired: ${what}`);
    } else {
      this.log(`rules applied: ${what}`);
      this.event('MasqRulesApplied', `applied masquerade rules: ${what}`, 'Normal');
    }
    return true;
  }

  /** The tables' rules, without set elements (a terse listing): the baseline a resync compares with. */
  private async rulesFingerprint(r: RenderResult): Promise<string | null> {
    try {
      const keys: string[] = [];
      for (const t of r.tables) {
        const l = await this.o.host.nftList(t.family, t.name, { json: true, terse: true });
        if (l === null) return null;
        keys.push(parseNftTableJson(l).rulesKey);
      }
      return sha(keys.join('\n'));
    } catch (e) {
      this.log(`cannot list rules: ${(e as Error).message}`);
      return null;
    }
  }

  /** Lists the tables of `g` (with elements) and compares them with what was applied. */
  private async inspect(g: Good): Promise<Inspection> {
    const listings: TableListing[] = [];
    try {
      for (const t of g.render.tables) {
        const l = await this.o.host.nftList(t.family, t.name, { json: true });
        if (l === null) return { kind: 'missing', detail: `table ${t.family} ${t.name} is gone` };
        listings.push(parseNftTableJson(l));
      }
    } catch (e) {
      this.log(`cannot list rules: ${(e as Error).message}`);
      return { kind: 'missing', detail: 'cannot list them' };
    }
    if (g.fingerprint === null || sha(listings.map((l) => l.rulesKey).join('\n')) !== g.fingerprint) {
      return { kind: 'modified', detail: g.fingerprint === null ? 'no baseline' : 'tables, sets, chains or rules differ' };
    }
    const actual: SetContents[] = [];
    const diffs: string[] = [];
    for (const s of g.render.sets) {
      const listed = listings[g.render.tables.findIndex((t) => t.family === s.family && t.name === s.table)]?.sets.get(s.name);
      if (!listed || listed.intervals === null || listed.elements === null || listed.addrFamily !== s.addrFamily) {
        return { kind: 'modified', detail: `set ${s.family} ${s.name} cannot be read back` };
      }
      if (!sameIntervals(listed.intervals, s.intervals)) {
        const d = diffIntervals(listed.intervals, s.intervals);
        diffs.push(`${s.family} ${s.name}: ${d.removed.length} element(s) to remove, ${d.added.length} to add`);
      }
      // the plan deletes elements as the kernel holds them: nft deletes only whole elements
      actual.push({ ...s, intervals: listed.elements });
    }
    return diffs.length > 0 ? { kind: 'elements', actual, detail: diffs.join('; ') } : { kind: 'ok' };
  }

  private async verifyAndRepair(g: Good, st: MasqSyncStages, syncStart: number, keepError = false): Promise<void> {
    const t = this.o.clock.now();
    const found = await this.inspect(g);
    st.check = this.o.clock.now() - t;
    if (found.kind === 'ok') return;
    let ok: boolean;
    if (found.kind === 'elements') {
      // Rules as applied; only elements differ: put them back in one set update from what the
      // kernel holds now (if even that fails, apply() re-creates the table).
      this.log(`set elements modified behind our back (${found.detail}): restoring them`);
      this.event('MasqRulesRepaired', `masquerade set elements were modified (${found.detail}); restored config ${g.configHash}`, 'Warning');
      const plan = renderSetUpdates(found.actual, g.render.sets);
      ok = await this.apply({ ...g }, this.state.warnings, 'resync', st, syncStart, { keepError, plan });
    } else {
      const why = found.kind;
      this.log(`rules ${why} behind our back (${found.detail}): re-applying`);
      this.event('MasqRulesRepaired', `masquerade rules were ${why}; re-applied config ${g.configHash}`, 'Warning');
      ok = await this.apply({ ...g, fingerprint: null }, this.state.warnings, 'resync', st, syncStart, { keepError, plan: null });
    }
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
