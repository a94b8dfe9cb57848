/**
 * The real Host (agent/host/host.ts): the kernel of the node the agent runs on. Commands run
 * through `run` (execFile, no shell, never rejects); the typed methods turn a failure into a
 * HostCommandError.
 */
import { afterCommit, inPlaceReplace, listedDefinition, tableDefinitions, type TableDefinition } from './nft-replace.js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HostCommandError, ipBatchLine, type ExecResult, type Host, type HostProcess, type IpOp, type NftListOptions } from './host.js';

/** Runs a command (no shell), optionally feeding stdin; never rejects: exit code -1 when it could not run or timed out. */
export function run(cmd: string, args: string[], stdin: string | null, timeoutMs = 10_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ stdout: String(stdout), stderr: String(stderr) || (err && code === -1 ? err.message : ''), code });
    });
    if (stdin !== null) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(stdin);
    }
  });
}

/** A long-lived `nft -i` reading one command per line from its standard input. */
export class NftSession {
  private child: ChildProcess | null = null;
  private errBuf = '';
  starts = 0;
  errors = 0;

  constructor(
    private readonly nftPath = 'nft',
    private readonly onError: (message: string) => void = () => undefined,
  ) {}

  private ensure(): ChildProcess {
    if (this.child && this.child.exitCode === null && !this.child.killed) return this.child;
    const c = spawn(this.nftPath, ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
    this.starts++;
    c.stderr!.on('data', (d: Buffer) => {
      this.errBuf += d.toString('utf8');
      const lines = this.errBuf.split('\n');
      this.errBuf = lines.pop() ?? '';
      for (const l of lines) {
        if (!/^Error/.test(l)) continue;
        this.errors++;
        this.onError(l.trim());
      }
    });
    c.stdin!.on('error', () => undefined);
    c.on('error', (e) => this.onError(`nft -i: ${e.message}`));
    c.on('exit', () => {
      if (this.child === c) this.child = null;
    });
    this.child = c;
    return c;
  }

  write(line: string): Promise<void> {
    const c = this.ensure();
    return new Promise((resolve, reject) => c.stdin!.write(line.endsWith('\n') ? line : `${line}\n`, (e) => (e ? reject(e) : resolve())));
  }

  close(): void {
    endSession(this.child);
    this.child = null;
  }
}

/** Ends a long-lived nft session: its input closed, then SIGTERM. */
function endSession(c: ChildProcess | null): void {
  c?.stdin?.end();
  c?.kill('SIGTERM');
}

/**
 * `nft -f` without a process per transaction: one long-lived `nft -i` applies each ruleset as
 * `include "<file>"` (one input line: one batch, so one transaction, as with `nft -f`), followed by
 * a marker command that fails on purpose (`list table ip <marker>`, a table that never exists). nft
 * answers nothing on success, and it writes its errors in order on stderr, so everything it wrote
 * there before the marker's own error belongs to the ruleset: an `Error:` line is its refusal.
 *
 * Why: a small apply is mostly nft starting (measured in a lab node, one core busy: `nft -f` of the 4 KB
 * gateway ruleset 51 ms, the same through a session 27 ms; with every agent of a lab applying at
 * once on 2 cores, 150-400 ms each). What it does not save: nft 1.0.6 drops its cache after a failed
 * command (the marker), so every apply reads the kernel's ruleset afresh, as `nft -f` does; rules
 * written meanwhile by other processes (the conntrack commit's shell, the heartbeat thread) are seen.
 *
 * When the session itself fails (could not start, died, no marker within the timeout) the apply's
 * fallback (`nft -f`) runs instead, in the session's order. After a timeout, or close(), every apply
 * goes to the fallback: an nft that hangs costs one timeout, not one per apply.
 */
export class NftApplySession {
  private child: ChildProcess | null = null;
  private err = '';
  private waiting: { marker: string; done: (r: ExecResult | null) => void } | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  private dir: string | null = null;
  private seq = 0;
  /** closed, or given up after a timeout: every apply (queued ones too) goes to the fallback */
  private off = false;
  starts = 0;

  constructor(
    private readonly nftPath = 'nft',
    private readonly timeoutMs = 30_000,
  ) {}

  /**
   * Applies `ruleset`; when the session cannot, `fallback` runs in its place, still in this
   * session's order (a later apply never overtakes it).
   */
  apply(ruleset: string, fallback: () => Promise<ExecResult>): Promise<ExecResult> {
    const r = this.tail.then(async () => (await this.applyNow(ruleset)) ?? (await fallback()));
    this.tail = r.catch(() => undefined);
    return r;
  }

  private ensure(): ChildProcess {
    if (this.child && this.child.exitCode === null && !this.child.killed) return this.child;
    const c = spawn(this.nftPath, ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
    this.starts++;
    // decoded as a stream: a character split between two chunks stays whole
    c.stderr!.setEncoding('utf8');
    c.stderr!.on('data', (d: string) => {
      if (this.child !== c) return;
      this.err += d;
      this.check();
    });
    c.stdin!.on('error', () => undefined);
    const gone = () => {
      if (this.child !== c) return;
      this.child = null;
      this.finish(null);
    };
    c.on('error', gone);
    c.on('exit', gone);
    this.child = c;
    return c;
  }

  private check(): void {
    const w = this.waiting;
    if (!w) return;
    const lines = this.err.split('\n');
    const at = lines.indexOf(w.marker);
    if (at < 0) return;
    // caret-only lines (under an echoed command) say nothing
    const said = (l: string) => !/^\s*\^+~*\s*$/.test(l);
    // the marker's own error ("Error: No such file or directory") is the line before its echo
    const before = lines.slice(0, Math.max(0, at - 1)).filter(said);
    // its caret line may still be on its way: dropped when it comes
    this.err = lines
      .slice(at + 1)
      .filter(said)
      .join('\n');
    const text = before.join('\n').trim();
    this.finish({ stdout: '', stderr: text, code: /\bError:/.test(text) ? 1 : 0 });
  }

  private finish(r: ExecResult | null): void {
    const w = this.waiting;
    this.waiting = null;
    w?.done(r);
  }

  private applyNow(ruleset: string): Promise<ExecResult | null> {
    if (this.off) return Promise.resolve(null);
    let file: string;
    let c: ChildProcess;
    try {
      this.dir ??= mkdtempSync(join(tmpdir(), 'egresslab-nft-'));
      file = join(this.dir, `apply-${++this.seq}.nft`);
      writeFileSync(file, ruleset);
      c = this.ensure();
    } catch {
      return Promise.resolve(null);
    }
    const marker = `list table ip egresslab_apply_done_${process.pid}_${this.seq}`;
    return new Promise<ExecResult | null>((resolve) => {
      const timer = setTimeout(() => {
        // no marker in time: this session is given up for good (every apply goes to nft -f), so
        // that an nft that hangs costs one timeout, not one per apply. The killed nft may have
        // committed the ruleset already: the fallback applies it a second time (the renderers'
        // tables are whole re-definitions, the same either way).
        this.close();
      }, this.timeoutMs);
      const w = {
        marker,
        done: (r: ExecResult | null) => {
          clearTimeout(timer);
          rmSync(file, { force: true });
          resolve(r);
        },
      };
      this.waiting = w;
      // what is left is the previous marker's caret line at most (or a dead child's output)
      this.err = '';
      c.stdin!.write(`include "${file}"\n${marker}\n`, (e) => {
        // a late error of an earlier write must not end this apply
        if (e && this.waiting === w) this.finish(null);
      });
    });
  }

  close(): void {
    this.off = true;
    const c = this.child;
    // first, so that its exit is not taken for a failure of the apply in flight (finish below)
    this.child = null;
    endSession(c);
    this.finish(null);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}

/**
 * Which apply session a ruleset goes through: the first table it names (`egresslab_masq`,
 * `egresslab_gw`...). The masquerade module's 10,000-element apply and the gateway's takeover each
 * have their own nft process, as they had with a process per call: the kernel serialises only the
 * commits, not nft's parsing.
 */
export function applySessionKey(ruleset: string): string {
  return /^[ \t]*(?:table|add|create|insert|replace|delete|flush)\b[^\n#]*?\b(?:ip|ip6|inet|arp|bridge|netdev) ([A-Za-z_][\w-]*)/m.exec(ruleset)?.[1] ?? '';
}

export interface ExecHostOptions {
  nftPath?: string;
  ipPath?: string;
  arpingPath?: string;
  conntrackPath?: string;
  /** errors the nft session reports (it answers nothing on success) */
  onError?: (message: string) => void;
  /** nftApply through one long-lived `nft -i` (NftApplySession; default) rather than `nft -f` per call */
  applySession?: boolean;
  /** how long an apply session waits for its marker before it is given up (default 30 s) */
  applyTimeoutMs?: number;
}

export class ExecHost implements Host {
  private session: NftSession | null = null;
  /** one apply session per table a ruleset starts with (applySessionKey): one module's big apply never queues another's */
  private appliers = new Map<string, NftApplySession>();
  private closed = false;
  /** address conflict probes in flight (arpProbe), killed by close() */
  private readonly probes = new Set<ChildProcess>();

  constructor(private readonly o: ExecHostOptions = {}) {}

  private get nft(): string {
    return this.o.nftPath ?? 'nft';
  }

  /** the tables this host last defined whole (nft-replace.ts: re-applied in place, never re-created) */
  private defined = new Map<string, TableDefinition>();
  /** the listing of each table whose kernel definition this host reads (learnDefinitions: once each) */
  private readonly listing = new Map<string, Promise<void>>();
  /** tables whose definition came from a listing and has not been refilled yet (checked at that refill) */
  private readonly learnt = new Set<string>();

  /** One `nft -f` transaction: through the session (NftApplySession), or a process when the session failed. */
  private async nftRun(ruleset: string): Promise<ExecResult> {
    const spawned = () => run(this.nft, ['-f', '-'], ruleset, 30_000);
    // after close() (an agent stopping), a process per call: nothing long-lived is started again
    if (this.o.applySession === false || this.closed) return spawned();
    const key = applySessionKey(ruleset);
    let session = this.appliers.get(key);
    if (!session) this.appliers.set(key, (session = new NftApplySession(this.nft, this.o.applyTimeoutMs)));
    return session.apply(ruleset, spawned);
  }

  async nftApply(ruleset: string): Promise<void> {
    // read once: a masquerade ruleset with 10,000 CIDRs is ~200 KB
    const defs = tableDefinitions(ruleset);
    await this.learnDefinitions(defs);
    const inPlace = inPlaceReplace(ruleset, this.defined, defs);
    // a definition read from the kernel that the rendered one does not keep set for set would bring
    // the re-creation back quietly (a listing format the canonical form does not cover): said once
    for (const k of [...this.learnt]) {
      if (!defs.some((d) => `${d.family} ${d.name}` === k)) continue;
      this.learnt.delete(k);
      const stale = new RegExp(`^delete (set|chain) ${k} (\\S+)$`, 'gm');
      const names = [...inPlace.matchAll(stale)].map((m) => `${m[1]} ${m[2]}`);
      if (names.length) this.o.onError?.(`table ${k} as the kernel listed it differs from its rendered definition (${names.join(', ')} re-declared)`);
    }
    if (inPlace !== ruleset) {
      const r = await this.nftRun(inPlace);
      if (r.code === 0) {
        this.defined = afterCommit(this.defined, ruleset, defs);
        return;
      }
      // what this host remembers no longer matches the kernel (someone else changed the table):
      // the rendered re-creation (one transaction either way: the refused one changed nothing)
      this.o.onError?.(`refilling the table(s) in place was refused (${r.stderr.trim().split('\n')[0]}): re-created as rendered`);
    }
    const r = await this.nftRun(ruleset);
    if (r.code !== 0) throw new HostCommandError(`nft -f - failed: ${r.stderr.trim()}`, r.stderr, r.code);
    this.defined = afterCommit(this.defined, ruleset, defs);
  }

  /**
   * The kernel's definition of each table `defs` re-defines that this host has not committed itself
   * (its first apply: an agent just restarted finds the previous agent's tables), read once from
   * `nft -s -t list table` (terse: without the elements, a masquerade set may hold 10,000), so that
   * the apply refills it in place instead of re-creating it (see nft-replace.ts). A table the kernel
   * does not have is created as rendered; a listing that fails, or that does not parse, leaves the
   * table unknown (re-created as rendered, as before; said through onError). A second apply of the
   * same table while its listing runs waits for it.
   */
  private async learnDefinitions(defs: readonly TableDefinition[]): Promise<void> {
    await Promise.all(
      defs.map((d) => {
        const k = `${d.family} ${d.name}`;
        if (this.defined.has(k)) return undefined;
        let p = this.listing.get(k);
        if (!p) {
          p = (async () => {
            const text = await this.nftList(d.family, d.name, { terse: true }).catch((e: unknown) => {
              this.o.onError?.(
                `listing table ${k} before its first apply failed (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): re-created as rendered`,
              );
              return null;
            });
            if (text === null) return;
            const def = listedDefinition(text, d.family, d.name);
            if (!def) this.o.onError?.(`the kernel's listing of table ${k} did not parse: re-created as rendered`);
            else if (!this.defined.has(k)) {
              this.defined.set(k, def);
              this.learnt.add(k);
            }
          })();
          this.listing.set(k, p);
        }
        return p;
      }),
    );
  }

  async nftList(family: string, name: string, opts: NftListOptions = {}): Promise<string | null> {
    const args = ['-s', ...(opts.json ? ['-j'] : []), ...(opts.terse ? ['-t'] : []), 'list', 'table', family, name];
    const r = await run(this.nft, args, null, 30_000);
    if (r.code === 0) return r.stdout;
    if (/No such file or directory/.test(r.stderr)) return null;
    throw new HostCommandError(`nft ${args.join(' ')} failed: ${r.stderr.trim()}`, r.stderr, r.code);
  }

  async nftTableExists(family: string, name: string): Promise<boolean> {
    const args = ['list', 'table', family, name];
    const r = await run(this.nft, args, null);
    if (r.code === 0) return true;
    if (/No such file or directory/.test(r.stderr)) return false;
    throw new HostCommandError(`nft ${args.join(' ')} failed: ${r.stderr.trim() || `exit ${r.code}`}`, r.stderr, r.code);
  }

  nftLine(line: string): Promise<void> {
    this.session ??= new NftSession(this.nft, this.o.onError);
    return this.session.write(line);
  }

  async ipJson(args: string[]): Promise<string> {
    const r = await run(this.o.ipPath ?? 'ip', ['-j', ...args], null);
    if (r.code !== 0) throw new HostCommandError(`ip -j ${args.join(' ')} failed: ${r.stderr.trim()}`, r.stderr, r.code);
    return r.stdout;
  }

  async ipBatch(ops: readonly IpOp[]): Promise<void> {
    if (!ops.length) return;
    const lines = ops.map(ipBatchLine);
    const r = await run(this.o.ipPath ?? 'ip', ['-force', '-batch', '-'], `${lines.join('\n')}\n`);
    if (r.code !== 0) throw new HostCommandError(`ip -batch failed: ${r.stderr.trim()} (lines: ${lines.join('; ')})`, r.stderr, r.code);
  }

  async arping(dev: string, ip: string): Promise<void> {
    // iputils arping: -U unsolicited (gratuitous) ARP request, sender = target = ip
    const r = await run(this.o.arpingPath ?? 'arping', ['-q', '-U', '-c', '1', '-w', '1', '-I', dev, ip], null, 3000);
    if (r.code !== 0 && r.code !== 1) throw new HostCommandError(`arping ${ip} on ${dev} failed: ${r.stderr.trim()}`, r.stderr, r.code);
  }

  arpProbe(dev: string, ip: string, waitMs: number): Promise<string | null> {
    const arping = this.o.arpingPath ?? 'arping';
    return new Promise((resolve, reject) => {
      // iputils arping -D: the request goes out from 0.0.0.0 and arping exits at the first reply.
      // Through stdbuf its lines arrive as printed (to a pipe it would hold them until it exits):
      // the wait starts when the probe leaves, not at the spawn, which alone can take longer than
      // the wait on a busy machine.
      const child = spawn('stdbuf', ['-oL', arping, '-D', '-c', '1', '-w', '2', '-I', dev, ip], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let wait: NodeJS.Timeout | null = null;
      let done = false;
      // -D counts replies and requests sent from the address alike (another host's own announcement
      // or who-has is a claim too), prints the first and exits 1
      const reply = (): string | null => /(?:reply|request) from \S+ \[([0-9A-Fa-f:]{17})\]/.exec(out)?.[1]?.toLowerCase() ?? null;
      const finish = (v: string | null | Error): void => {
        if (done) return;
        done = true;
        if (wait) clearTimeout(wait);
        clearTimeout(guard);
        child.kill('SIGKILL');
        if (v instanceof Error) reject(v);
        else resolve(v);
      };
      const guard = setTimeout(
        () => finish(new HostCommandError(`arping -D ${ip} on ${dev}: no probe sent within ${waitMs + 5000} ms`, err, -1)),
        waitMs + 5000,
      );
      guard.unref();
      this.probes.add(child);
      child.on('exit', () => this.probes.delete(child));
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        const mac = reply();
        if (mac) finish(mac);
        // the verdict after the poll phase: an answer already in the pipe after a stall of this
        // loop is read before the wait's end is taken for silence
        else if (!wait && out.includes('ARPING')) wait = setTimeout(() => setImmediate(() => finish(null)), waitMs);
      });
      child.stderr.on('data', (b: Buffer) => {
        err += b.toString();
      });
      child.on('error', (e) => finish(new HostCommandError(`arping -D ${ip} on ${dev}: ${e.message}`, err, -1)));
      child.on('close', (code) => {
        const mac = reply();
        // exit 1: somebody answered (its MAC unread: still a conflict)
        if (mac || code === 0 || code === 1) finish(mac ?? (code === 1 ? 'unknown' : null));
        else finish(new HostCommandError(`arping -D ${ip} on ${dev} failed (exit ${code}): ${err.trim() || out.trim()}`, err, code ?? -1));
      });
    });
  }

  async conntrack(args: string[]): Promise<void> {
    const r = await run(this.o.conntrackPath ?? 'conntrack', args, null);
    if (r.code !== 0 && !/0 flow entries/.test(r.stderr))
      throw new HostCommandError(`conntrack ${args.join(' ')} failed: ${r.stderr.trim()}`, r.stderr, r.code);
  }

  async readSysctl(path: string): Promise<string | null> {
    try {
      return (await readFile(`/proc/sys/${path}`, 'utf8')).trim();
    } catch {
      return null;
    }
  }

  async sysctl(path: string, value: string): Promise<void> {
    await writeFile(`/proc/sys/${path}`, value);
  }

  exec(cmd: string, args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return run(cmd, args, opts.stdin ?? null, opts.timeoutMs ?? 10_000);
  }

  spawn(cmd: string, args: string[], onExit: (code: number | null, signal: string | null) => void): HostProcess {
    const child = spawn(cmd, args, { stdio: 'ignore' });
    let fired = false;
    const fire = (code: number | null, signal: string | null): void => {
      if (!fired) (fired = true), onExit(code, signal);
    };
    child.on('exit', fire);
    child.on('error', () => fire(-1, null));
    return { pid: child.pid, kill: (sig) => void child.kill(sig) };
  }

  readFile(path: string): string | null {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return null;
    }
  }

  writeFile(path: string, text: string): void {
    mkdirSync(dirname(path), { recursive: true });
    // a reader (or the next agent, after a kill mid-write) sees the old text or the new, never a part
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  }

  remove(path: string): void {
    rmSync(path, { force: true });
  }

  cmdline(pid: number): string | null {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    } catch {
      return null;
    }
  }

  killPid(pid: number, sig: NodeJS.Signals): void {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }

  close(): void {
    this.session?.close();
    this.session = null;
    for (const a of this.appliers.values()) a.close();
    this.appliers.clear();
    this.closed = true;
    for (const p of this.probes) p.kill('SIGKILL');
    this.probes.clear();
  }
}
