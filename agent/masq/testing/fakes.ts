/**
 * Test doubles for the masquerade agent: a manual clock, an in-memory filesystem with watch
 * events, and the masquerade table's view of the one fake Host. Used by agent/masq/*.test.ts; also
 * usable from harness unit tests.
 */
import * as path from 'node:path';
import type { AgentFs, ConfigRead, WatchHandle } from '../agent.js';
import type { Clock } from '../../../lib/time/clock.js';
import { FakeHost } from '../../host/fake-host.js';
import { MASQ_TABLE, NONMASQ_SET } from '../constants.js';

/** Let every pending promise chain run (no real time passes). */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2025, 0, 1)) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  pendingTimers(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }
  /** Advance virtual time, firing due timers in order and letting async work settle after each. */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    await settle();
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= target && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await settle();
    }
    this.t = target;
  }
}

interface FakeFile {
  text: string;
  id: string;
}

export class FakeFs implements AgentFs {
  readonly files = new Map<string, FakeFile>();
  readonly dirs = new Set<string>();
  readonly written = new Map<string, string>();
  private readonly watchers = new Map<string, Set<() => void>>();
  private ino = 100;
  /** Make the next readConfig throw this error (e.g. EACCES). */
  readError: NodeJS.ErrnoException | null = null;

  mkdir(dir: string): void {
    this.dirs.add(dir);
    this.emit(path.dirname(dir));
  }
  rmdir(dir: string): void {
    this.dirs.delete(dir);
    for (const f of [...this.files.keys()]) if (path.dirname(f) === dir) this.files.delete(f);
    this.emit(dir);
    this.watchers.delete(dir);
  }
  /** Replace the file with a new inode (what an atomic rename / kubelet ..data swap looks like). */
  replaceFile(p: string, text: string): void {
    if (!this.dirs.has(path.dirname(p))) throw new Error(`no dir for ${p}`);
    const old = this.files.get(p);
    this.files.set(p, { text, id: `1:${++this.ino}` });
    this.emit(path.dirname(p));
    if (old) this.emit(p);
  }
  /** Edit in place (same inode): only watchers of the file itself and its dir see it. */
  writeInPlace(p: string, text: string): void {
    const f = this.files.get(p);
    if (!f) throw new Error(`no file ${p}`);
    f.text = text;
    this.emit(p);
    this.emit(path.dirname(p));
  }
  removeFile(p: string): void {
    this.files.delete(p);
    this.emit(p);
    this.emit(path.dirname(p));
  }
  watcherCount(p: string): number {
    return this.watchers.get(p)?.size ?? 0;
  }
  private emit(p: string): void {
    for (const cb of [...(this.watchers.get(p) ?? [])]) cb();
  }

  async readConfig(file: string): Promise<ConfigRead> {
    if (this.readError) {
      const e = this.readError;
      this.readError = null;
      throw e;
    }
    const f = this.files.get(file);
    return f ? { exists: true, text: f.text, id: f.id } : { exists: false };
  }
  async statId(p: string): Promise<string | null> {
    const f = this.files.get(p);
    if (f) return f.id;
    return this.dirs.has(p) ? `dir:${p}` : null;
  }
  watch(p: string, onChange: () => void): WatchHandle {
    if (!this.files.has(p) && !this.dirs.has(p)) {
      throw Object.assign(new Error(`ENOENT: watch ${p}`), { code: 'ENOENT' });
    }
    let set = this.watchers.get(p);
    if (!set) this.watchers.set(p, (set = new Set()));
    set.add(onChange);
    return { close: () => set.delete(onChange) };
  }
  async writeFileAtomic(p: string, content: string): Promise<void> {
    this.written.set(p, content);
  }
}

/**
 * The masquerade table as the one fake Host (agent/host/fake-host.ts) holds it: what is "in the
 * kernel" under the table's name, the rulesets applied to it, how often it was listed, and what
 * something else (an admin, another agent) does to it. Pass `host` to the agent.
 */
export class MasqTable {
  constructor(
    readonly host: FakeHost = new FakeHost(),
    readonly name: string = MASQ_TABLE,
  ) {}

  /**
   * Ruleset that last (re)created the table "in the kernel" (null = no table). Set elements changed
   * since by element commands are in the host's set model, not in this text: see installedNonMasq.
   */
  get installed(): string | null {
    return this.host.table(this.name);
  }
  set installed(ruleset: string | null) {
    this.host.putTable(this.name, ruleset);
  }
  /** the rulesets applied to this table (full ones and set element updates), in order */
  get applied(): string[] {
    const re = new RegExp(`^(?:(?:delete )?table \\S+ ${this.name}\\b|(?:add|delete) element \\S+ ${this.name} |flush set \\S+ ${this.name} )`, 'm');
    return this.host.applied.filter((r) => re.test(r));
  }
  /** the applied rulesets that updated set elements only (no table (re)created) */
  get elementUpdates(): string[] {
    return this.applied.filter((r) => !/^table /m.test(r));
  }
  /** every listing of this table */
  get listCalls(): number {
    return this.lists().length;
  }
  /** listings that printed set elements (anything but `-t`) */
  get fullListCalls(): number {
    return this.lists().filter((a) => !a.includes('-t ')).length;
  }
  private lists(): string[] {
    return this.host.calls.filter((c) => c.op === 'nftList' && c.arg.endsWith(` ${this.name}`)).map((c) => c.arg);
  }
  failNextApply(message: string): void {
    this.host.failNextApply(message);
  }
  /** Something else (an admin, another agent) removed our table. */
  externalDelete(): void {
    this.installed = null;
  }
  /** Something else added a rule to our table (the set elements stay as they are). */
  externalModify(): void {
    const t = this.host.table(this.name);
    if (t !== null) this.host.tables.set(this.name, `${t}\n# tampered`);
  }
  /** Something else runs `nft <command>` (e.g. `delete element ip egresslab_masq nonmasq { 10.0.0.0/8 }`). */
  async externalNft(command: string): Promise<void> {
    await this.host.nftApply(command);
    this.host.applied.pop(); // not one of the code under test's
    this.host.calls.pop();
  }
  /** Elements of the (ip) nonmasq set in the kernel, as nft writes them. */
  installedNonMasq(): string[] | null {
    if (this.installed === null) return null;
    return this.host.setElements('ip', this.name, NONMASQ_SET) ?? nonMasqElements(this.installed);
  }
}

/** Extract the elements of `set nonmasq` (ip family) from a rendered ruleset. */
export function nonMasqElements(ruleset: string): string[] {
  const m = /set nonmasq \{[^}]*?(?:elements = \{([^}]*)\})?\s*\}/.exec(ruleset);
  if (!m) throw new Error('no nonmasq set in ruleset');
  return (m[1] ?? '')
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}
