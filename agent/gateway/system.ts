/**
 * The only place the gateway datapath touches the kernel (nft, ip, arping, conntrack, sysctl), kept
 * behind an interface so the module can be unit-tested with a fake. execFile, no shell.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';

export interface GatewaySystem {
  /** `nft -f -` (one transaction) */
  nft(ruleset: string): Promise<void>;
  /** `nft list table <family> <name>` succeeds (drift check: a deleted table is re-created) */
  nftTableExists(family: string, name: string): Promise<boolean>;
  /** `ip -j <args>` -> stdout */
  ipJson(args: string[]): Promise<string>;
  /** `ip -force -batch -` (every line is tried; rejects if any failed) */
  ipBatch(lines: string[]): Promise<void>;
  /** one gratuitous ARP for `ip` on `dev` */
  arping(dev: string, ip: string): Promise<void>;
  /** `conntrack <args>` (exit 1 "0 flow entries" is not an error) */
  conntrack(args: string[]): Promise<void>;
  /** writes /proc/sys/<path>, e.g. sysctl('net/ipv4/conf/eth0/send_redirects', '0') */
  sysctl(path: string, value: string): Promise<void>;
  /**
   * One single-line nft command for a frequent, idempotent refresh (the ARP fence's @alive set):
   * through one long-lived `nft -i` session instead of a process per call. Errors are reported
   * through `onError` as they appear (the session answers nothing on success).
   */
  nftLine?(line: string): Promise<void>;
  /** ends long-lived helpers (the nft session) */
  close?(): void;
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
    const c = this.child;
    this.child = null;
    if (c) {
      c.stdin?.end();
      c.kill('SIGTERM');
    }
  }
}

/** Runs a command (no shell), optionally feeding stdin; never rejects: exit code -1 when it could not run or timed out. */
export function run(cmd: string, args: string[], stdin: string | null, timeoutMs = 10_000): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ stdout: String(stdout), stderr: String(stderr) || (err && code === -1 ? err.message : ''), code });
    });
    if (stdin !== null) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(stdin);
    }
  });
}

export class ExecGatewaySystem implements GatewaySystem {
  private session: NftSession | null = null;

  constructor(private readonly o: { nftPath?: string; ipPath?: string; arpingPath?: string; conntrackPath?: string; onError?: (m: string) => void } = {}) {}

  nftLine(line: string): Promise<void> {
    this.session ??= new NftSession(this.o.nftPath ?? 'nft', this.o.onError);
    return this.session.write(line);
  }

  close(): void {
    this.session?.close();
    this.session = null;
  }

  async nft(ruleset: string): Promise<void> {
    const r = await run(this.o.nftPath ?? 'nft', ['-f', '-'], ruleset, 30_000);
    if (r.code !== 0) throw new Error(`nft -f - failed: ${r.stderr.trim()}`);
  }

  async nftTableExists(family: string, name: string): Promise<boolean> {
    const r = await run(this.o.nftPath ?? 'nft', ['list', 'table', family, name], null);
    return r.code === 0;
  }

  async ipJson(args: string[]): Promise<string> {
    const r = await run(this.o.ipPath ?? 'ip', ['-j', ...args], null);
    if (r.code !== 0) throw new Error(`ip -j ${args.join(' ')} failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async ipBatch(lines: string[]): Promise<void> {
    if (!lines.length) return;
    const r = await run(this.o.ipPath ?? 'ip', ['-force', '-batch', '-'], `${lines.join('\n')}\n`);
    if (r.code !== 0) throw new Error(`ip -batch failed: ${r.stderr.trim()} (lines: ${lines.join('; ')})`);
  }

  async arping(dev: string, ip: string): Promise<void> {
    // iputils arping: -U unsolicited (gratuitous) ARP request, sender = target = ip
    const r = await run(this.o.arpingPath ?? 'arping', ['-q', '-U', '-c', '1', '-w', '1', '-I', dev, ip], null, 3000);
    if (r.code !== 0 && r.code !== 1) throw new Error(`arping ${ip} on ${dev} failed: ${r.stderr.trim()}`);
  }

  async conntrack(args: string[]): Promise<void> {
    const r = await run(this.o.conntrackPath ?? 'conntrack', args, null);
    if (r.code !== 0 && !/0 flow entries/.test(r.stderr)) throw new Error(`conntrack ${args.join(' ')} failed: ${r.stderr.trim()}`);
  }

  async sysctl(path: string, value: string): Promise<void> {
    await writeFile(`/proc/sys/${path}`, value);
  }
}

/**
 * Touches nothing; records what would have been done. Used when the agent runs with a fake nft
 * (unit tests of the agent on a developer machine must never program the host's kernel) and by the
 * gateway module's own tests.
 */
export class NullGatewaySystem implements GatewaySystem {
  readonly calls: { op: string; arg: string }[] = [];
  /** answers of ipJson by first argument(s), e.g. {'rule show': '[...]'} */
  constructor(readonly answers: Record<string, string> = {}) {}
  async nft(ruleset: string): Promise<void> {
    this.calls.push({ op: 'nft', arg: ruleset });
  }
  async nftTableExists(family: string, name: string): Promise<boolean> {
    this.calls.push({ op: 'nftTableExists', arg: `${family} ${name}` });
    return this.calls.some((c) => c.op === 'nft');
  }
  async ipJson(args: string[]): Promise<string> {
    this.calls.push({ op: 'ipJson', arg: args.join(' ') });
    const key = Object.keys(this.answers).find((k) => args.join(' ').startsWith(k));
    return key ? this.answers[key]! : '[]';
  }
  async ipBatch(lines: string[]): Promise<void> {
    for (const l of lines) this.calls.push({ op: 'ip', arg: l });
  }
  async arping(dev: string, ip: string): Promise<void> {
    this.calls.push({ op: 'arping', arg: `${dev} ${ip}` });
  }
  async conntrack(args: string[]): Promise<void> {
    this.calls.push({ op: 'conntrack', arg: args.join(' ') });
  }
  async sysctl(path: string, value: string): Promise<void> {
    this.calls.push({ op: 'sysctl', arg: `${path}=${value}` });
  }
}
