/**
 * The one fake Host (agent/host/host.ts): touches nothing, records every kernel operation in order
 * in `calls` ({op, arg}: `nft` ruleset, `nftLine`, `nftList`, `nftTableExists`, `ipJson`, one `ip`
 * per ip -batch line, `arping`, `arpProbe`, `conntrack`, `sysctl` path=value, `spawn`, `kill`, `killPid`, and
 * `<cmd>` with its arguments for exec), and keeps a small model of the kernel:
 *
 *  - nft tables by name: a ruleset that (re)creates `table <family> <name> {...}` installs its text
 *    for that name, one that only deletes it removes it (nftList / nftTableExists / `table()`);
 *  - the named sets of those tables with their elements (`sets`, `setElements()`), as an interval
 *    set holds them, so that element commands work like nft's: with `auto-merge`, `add element`
 *    merges; without it, an element overlapping a held one (or another added one) fails the
 *    transaction ("interval overlaps with an existing one") and adjacent ones stay separate;
 *    `delete element` must name an element exactly ("element does not exist" otherwise), `flush set`
 *    empties; a command on a set that is not there fails ("No such file or directory"); a failing
 *    ruleset changes nothing (one transaction). Element commands leave the table's text alone: the
 *    text stands for the tables, chains and rules, the set model for the elements;
 *  - nftList with `json`: the table as JSON in nft's shape ({"nftables": [...]}), its text without
 *    element lists standing for the rules, and one {"set": {...}} per set, with its elements ("elem",
 *    as nft prints them: address, {"prefix"}, {"range"}) unless `terse`;
 *  - sysctls (`sysctls`), files (`files`), command lines of pids (`cmdlines`);
 *  - `ipJson` answers by argument prefix, `exec` answers through `onExec` (default: exit 0).
 *
 * Used by the unit tests of the masquerade agent, the gateway module, conntrack sync and the node
 * agent (integration/agent-*.test.ts).
 */
import { ipBatchLine, type ExecResult, type Host, type HostProcess, type IpOp, type NftListOptions } from './host.js';
import { formatAddr, type Family } from '../../lib/net/addresses.js';
import { formatInterval, type Interval, mergeIntervals, parseElementText } from '../../lib/net/intervals.js';

/** A named set "in the kernel". */
export interface FakeSet {
  family: string;
  table: string;
  name: string;
  type: string;
  addrFamily: Family;
  /** the set's `auto-merge` flag: its elements are merged as they are added */
  autoMerge: boolean;
  /** the elements, sorted (merged with autoMerge); null when they are not plain addresses (not modelled, e.g. timeouts) */
  intervals: Interval[] | null;
}

/** The elements of a set after adding `added` to `held`, like nft: merged with auto-merge, otherwise refused on an overlap. */
function addElements(autoMerge: boolean, held: readonly Interval[], added: readonly Interval[], cmd: string): Interval[] {
  if (autoMerge) return mergeIntervals([...held, ...added]);
  const all = [...held, ...added].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  for (let i = 1; i < all.length; i++) if (all[i]!.first <= all[i - 1]!.last) throw nftError('interval overlaps with an existing one', cmd);
  return all;
}

const setKey = (family: string, table: string, name: string): string => `${family} ${table} ${name}`;

/** Sets declared in the `table <family> <name> { ... }` blocks of a ruleset. */
function declaredSets(ruleset: string): { family: string; table: string; sets: FakeSet[] }[] {
  const out: { family: string; table: string; sets: FakeSet[] }[] = [];
  for (const t of ruleset.matchAll(/^table (\S+) (\S+) \{\n([\s\S]*?)^\}/gm)) {
    const [, family, table, body] = t as unknown as [string, string, string, string];
    const sets: FakeSet[] = [];
    for (const m of body.matchAll(/\bset (\S+) \{([^{}]*(?:\{[^}]*\}[^{}]*)?)\}/g)) {
      const [, name, decl] = m as unknown as [string, string, string];
      const type = /\btype (\w+)/.exec(decl)?.[1] ?? '';
      const addrFamily: Family = type === 'ipv6_addr' || (type === '' && family === 'ip6') ? 6 : 4;
      const list = /elements = \{([^}]*)\}/.exec(decl)?.[1] ?? '';
      const ivs = list
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean)
        .map((e) => parseElementText(addrFamily, e));
      const autoMerge = /\bauto-merge\b/.test(decl);
      const intervals = ivs.every((iv) => iv !== null) ? addElements(autoMerge, [], ivs as Interval[], `set ${name}`) : null;
      sets.push({ family, table, name, type, addrFamily, autoMerge, intervals });
    }
    out.push({ family, table, sets });
  }
  return out;
}

/** An element as `nft -j` prints it. */
function jsonElement(family: Family, iv: Interval): unknown {
  const text = formatInterval(family, iv);
  if (iv.first === iv.last) return formatAddr(family, iv.first);
  const slash = text.indexOf('/');
  if (slash > 0) return { prefix: { addr: text.slice(0, slash), len: Number(text.slice(slash + 1)) } };
  return { range: [formatAddr(family, iv.first), formatAddr(family, iv.last)] };
}

/** nft's error for a command of a failed transaction. */
function nftError(message: string, command: string): Error {
  return new Error(`Error: ${message}\n${command.split('\n')[0]}`);
}

export interface HostCall {
  op: string;
  arg: string;
}

export interface FakeHostOptions {
  /** answers of ipJson by first argument(s), e.g. {'-4 addr show': '[...]'} (default '[]') */
  ipJson?: Record<string, string>;
  /** /proc/sys values, e.g. {'net/netfilter/nf_conntrack_events': '2'} */
  sysctls?: Record<string, string>;
}

export class FakeHost implements Host {
  readonly calls: HostCall[] = [];
  /** every ruleset nftApply accepted, in order */
  readonly applied: string[] = [];
  /** nft tables "in the kernel" by name (both families of a name share one entry) */
  readonly tables = new Map<string, string>();
  /** named sets "in the kernel" by `family table name` (see the header) */
  readonly sets = new Map<string, FakeSet>();
  readonly sysctls: Map<string, string>;
  readonly files = new Map<string, string>();
  readonly cmdlines = new Map<number, string>();
  /** programmable answers of exec (undefined: exit 0, no output) */
  onExec: ((cmd: string, args: string[]) => ExecResult | undefined) | null = null;
  /** pid of the next spawned process */
  nextPid = 4242;
  private readonly ipAnswers: Record<string, string>;
  private failures: string[] = [];
  private ipFailures: { match: (line: string) => boolean; message: string }[] = [];
  private exits: ((code: number | null, signal: string | null) => void)[] = [];

  constructor(o: FakeHostOptions = {}) {
    this.ipAnswers = o.ipJson ?? {};
    this.sysctls = new Map(Object.entries(o.sysctls ?? {}));
  }

  /** the next nftApply rejects with this message (and changes nothing) */
  failNextApply(message: string): void {
    this.failures.push(message);
  }

  /** the next ipBatch with a line that `match`es rejects with this message, recording nothing (an `ip -batch` that failed) */
  failIpBatch(match: (line: string) => boolean, message: string): void {
    this.ipFailures.push({ match, message });
  }

  /** the text installed for nft table `name` (any family), or null */
  table(name: string): string | null {
    return this.tables.get(name) ?? null;
  }

  /**
   * Install `ruleset` as table `name`'s text, with the sets it declares (what applying it would
   * leave), or remove the table (null) and its sets: something other than the code under test.
   */
  putTable(name: string, ruleset: string | null): void {
    for (const [k, v] of this.sets) if (v.table === name) this.sets.delete(k);
    if (ruleset === null) {
      this.tables.delete(name);
      return;
    }
    this.tables.set(name, ruleset);
    for (const t of declaredSets(ruleset)) if (t.table === name) for (const s of t.sets) this.sets.set(setKey(s.family, s.table, s.name), s);
  }

  /** elements of a set as nft writes them (null: no such set, or not modelled) */
  setElements(family: string, table: string, name: string): string[] | null {
    const s = this.sets.get(setKey(family, table, name));
    return s?.intervals ? s.intervals.map((iv) => formatInterval(s.addrFamily, iv)) : null;
  }

  /** makes the last spawned process exit with this code (a crash) */
  exitSpawned(code: number): void {
    this.exits.at(-1)?.(code, null);
  }

  private record(op: string, arg: string): void {
    this.calls.push({ op, arg });
  }

  /** The sets after `ruleset`, or throws like nft (and then nothing changed). */
  private setsAfter(ruleset: string): Map<string, FakeSet> {
    const sets = new Map(this.sets);
    for (const m of ruleset.matchAll(/^delete table (\S+) (\S+)$/gm)) {
      for (const [k, v] of sets) if (v.family === m[1] && v.table === m[2]) sets.delete(k);
    }
    for (const t of declaredSets(ruleset)) for (const s of t.sets) sets.set(setKey(s.family, s.table, s.name), s);
    const cmds = /^(?:(add|delete) element (\S+) (\S+) (\S+) \{([^}]*)\}|flush set (\S+) (\S+) (\S+)[ \t]*$)/gm;
    for (const m of ruleset.matchAll(cmds)) {
      const verb = m[1] ?? 'flush';
      const key = m[1] ? setKey(m[2]!, m[3]!, m[4]!) : setKey(m[6]!, m[7]!, m[8]!);
      const set = sets.get(key);
      if (!set) throw nftError('No such file or directory', m[0]);
      if (!set.intervals) continue; // not modelled
      if (verb === 'flush') {
        sets.set(key, { ...set, intervals: [] });
        continue;
      }
      const elems = m[5]!
        .split(',')
        // element timeouts are not modelled: `ip timeout 1s expires 1s` is the ip
        .map((e) => e.replace(/\s+timeout\s+\S+(\s+expires\s+\S+)?\s*$/, '').trim())
        .filter(Boolean);
      const ivs = elems.map((e) => parseElementText(set.addrFamily, e));
      const bad = ivs.indexOf(null);
      if (bad >= 0) throw nftError(`syntax error: ${elems[bad]}`, m[0]);
      if (verb === 'add') {
        sets.set(key, { ...set, intervals: addElements(set.autoMerge, set.intervals, ivs as Interval[], m[0]) });
      } else {
        let left = set.intervals;
        for (const iv of ivs as Interval[]) {
          const i = left.findIndex((x) => x.first === iv.first && x.last === iv.last);
          if (i < 0) throw nftError('element does not exist', m[0]);
          left = [...left.slice(0, i), ...left.slice(i + 1)];
        }
        sets.set(key, { ...set, intervals: left });
      }
    }
    return sets;
  }

  async nftApply(ruleset: string): Promise<void> {
    const f = this.failures.shift();
    if (f !== undefined) throw new Error(f);
    const sets = this.setsAfter(ruleset);
    this.sets.clear();
    for (const [k, v] of sets) this.sets.set(k, v);
    this.record('nft', ruleset);
    this.applied.push(ruleset);
    const names = new Set([...ruleset.matchAll(/^\s*(?:delete )?table \S+ (\S+)/gm)].map((m) => m[1]!));
    for (const name of names) {
      const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      if (new RegExp(`^table \\S+ ${esc} \\{\\s*\\n`, 'm').test(ruleset)) this.tables.set(name, ruleset);
      else if (new RegExp(`^delete table \\S+ ${esc}$`, 'm').test(ruleset)) this.tables.delete(name);
    }
  }

  async nftList(family: string, name: string, opts: NftListOptions = {}): Promise<string | null> {
    this.record('nftList', `${opts.json ? '-j ' : ''}${opts.terse ? '-t ' : ''}${family} ${name}`);
    const t = this.tables.get(name);
    if (t === undefined) return null;
    if (!opts.json) return `${family} ${name}\n${t}`;
    const nftables: unknown[] = [
      { metainfo: { version: 'fake', json_schema_version: 1 } },
      { table: { family, name, rules: t.replace(/\s*elements = \{[^}]*\}/g, '') } },
    ];
    for (const s of this.sets.values()) {
      if (s.family !== family || s.table !== name) continue;
      const elem = !opts.terse && s.intervals && s.intervals.length > 0 ? { elem: s.intervals.map((iv) => jsonElement(s.addrFamily, iv)) } : {};
      nftables.push({ set: { family, name: s.name, table: name, type: s.type, flags: ['interval'], ...elem } });
    }
    return JSON.stringify({ nftables });
  }

  async nftTableExists(family: string, name: string): Promise<boolean> {
    this.record('nftTableExists', `${family} ${name}`);
    return this.tables.has(name);
  }

  async nftLine(line: string): Promise<void> {
    this.record('nftLine', line);
  }

  async ipJson(args: string[]): Promise<string> {
    this.record('ipJson', args.join(' '));
    const key = Object.keys(this.ipAnswers).find((k) => args.join(' ').startsWith(k));
    return key ? this.ipAnswers[key]! : '[]';
  }

  async ipBatch(ops: readonly IpOp[]): Promise<void> {
    const lines = ops.map(ipBatchLine);
    const i = this.ipFailures.findIndex((f) => lines.some(f.match));
    if (i >= 0) throw new Error(this.ipFailures.splice(i, 1)[0]!.message);
    for (const o of ops) this.record('ip', ipBatchLine(o));
  }

  async arping(dev: string, ip: string): Promise<void> {
    this.record('arping', `${dev} ${ip}`);
  }

  /** Who answers an address-conflict probe, by IP (tests set and clear entries; default: nobody). */
  readonly probeAnswers = new Map<string, string>();

  async arpProbe(dev: string, ip: string, waitMs: number): Promise<string | null> {
    this.record('arpProbe', `${dev} ${ip}`);
    const mac = this.probeAnswers.get(ip) ?? null;
    if (!mac) await new Promise((r) => setTimeout(r, waitMs));
    return mac;
  }

  async conntrack(args: string[]): Promise<void> {
    this.record('conntrack', args.join(' '));
  }

  async readSysctl(path: string): Promise<string | null> {
    return this.sysctls.get(path) ?? null;
  }

  async sysctl(path: string, value: string): Promise<void> {
    this.record('sysctl', `${path}=${value}`);
    this.sysctls.set(path, value);
  }

  async exec(cmd: string, args: string[]): Promise<ExecResult> {
    this.record(cmd, args.join(' '));
    return this.onExec?.(cmd, args) ?? { code: 0, stdout: '', stderr: '' };
  }

  spawn(cmd: string, args: string[], onExit: (code: number | null, signal: string | null) => void): HostProcess {
    this.record('spawn', `${cmd} ${args.join(' ')}`);
    let fired = false;
    const exit = (code: number | null, signal: string | null): void => {
      if (!fired) (fired = true), onExit(code, signal);
    };
    this.exits.push(exit);
    // a signalled process ends a moment later
    return { pid: this.nextPid, kill: (sig) => (this.record('kill', sig), void setTimeout(() => exit(null, sig), 1)) };
  }

  readFile(path: string): string | null {
    return this.files.get(path) ?? null;
  }

  writeFile(path: string, text: string): void {
    this.files.set(path, text);
  }

  remove(path: string): void {
    this.files.delete(path);
  }

  cmdline(pid: number): string | null {
    return this.cmdlines.get(pid) ?? null;
  }

  killPid(pid: number, sig: NodeJS.Signals): void {
    this.record('killPid', `${pid} ${sig}`);
  }

  close(): void {}
}
