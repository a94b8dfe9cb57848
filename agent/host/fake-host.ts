/**
 * The one fake Host (agent/host/host.ts): touches nothing, records every kernel operation in order
 * in `calls` ({op, arg}: `nft` ruleset, `nftLine`, `nftList`, `nftTableExists`, `ipJson`, one `ip`
 * per ip -batch line, `arping`, `conntrack`, `sysctl` path=value, `spawn`, `kill`, `killPid`, and
 * `<cmd>` with its arguments for exec), and keeps a small model of the kernel:
 *
 *  - nft tables by name: a ruleset that (re)creates `table <family> <name> {...}` installs its text
 *    for that name, one that only deletes it removes it (nftList / nftTableExists / `table()`);
 *  - sysctls (`sysctls`), files (`files`), command lines of pids (`cmdlines`);
 *  - `ipJson` answers by argument prefix, `exec` answers through `onExec` (default: exit 0).
 *
 * Used by the unit tests of the masquerade agent, the gateway module, conntrack sync and the node
 * agent (integration/agent-*.test.ts).
 */
import { ipBatchLine, type ExecResult, type Host, type HostProcess, type IpOp } from './host.js';

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
  readonly sysctls: Map<string, string>;
  readonly files = new Map<string, string>();
  readonly cmdlines = new Map<number, string>();
  /** programmable answers of exec (undefined: exit 0, no output) */
  onExec: ((cmd: string, args: string[]) => ExecResult | undefined) | null = null;
  /** pid of the next spawned process */
  nextPid = 4242;
  private readonly ipAnswers: Record<string, string>;
  private failures: string[] = [];
  private exits: ((code: number | null, signal: string | null) => void)[] = [];

  constructor(o: FakeHostOptions = {}) {
    this.ipAnswers = o.ipJson ?? {};
    this.sysctls = new Map(Object.entries(o.sysctls ?? {}));
  }

  /** the next nftApply rejects with this message (and changes nothing) */
  failNextApply(message: string): void {
    this.failures.push(message);
  }

  /** the text installed for nft table `name` (any family), or null */
  table(name: string): string | null {
    return this.tables.get(name) ?? null;
  }

  /** makes the last spawned process exit with this code (a crash) */
  exitSpawned(code: number): void {
    this.exits.at(-1)?.(code, null);
  }

  private record(op: string, arg: string): void {
    this.calls.push({ op, arg });
  }

  async nftApply(ruleset: string): Promise<void> {
    const f = this.failures.shift();
    if (f !== undefined) throw new Error(f);
    this.record('nft', ruleset);
    this.applied.push(ruleset);
    const names = new Set([...ruleset.matchAll(/^\s*(?:delete )?table \S+ (\S+)/gm)].map((m) => m[1]!));
    for (const name of names) {
      const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      if (new RegExp(`^table \\S+ ${esc} \\{\\s*\\n`, 'm').test(ruleset)) this.tables.set(name, ruleset);
      else if (new RegExp(`^delete table \\S+ ${esc}$`, 'm').test(ruleset)) this.tables.delete(name);
    }
  }

  async nftList(family: string, name: string): Promise<string | null> {
    this.record('nftList', `${family} ${name}`);
    const t = this.tables.get(name);
    return t === undefined ? null : `${family} ${name}\n${t}`;
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
    for (const o of ops) this.record('ip', ipBatchLine(o));
  }

  async arping(dev: string, ip: string): Promise<void> {
    this.record('arping', `${dev} ${ip}`);
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
