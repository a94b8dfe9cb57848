/**
 * The harness side of the in-lab helper (harness/inlab/helper.ts): one `docker exec` per lab
 * container, kept open, carrying JSON-lines requests (commands, probes, observation waits). A
 * command then costs a fork in the container instead of a runc exec and several engine round trips.
 *
 * The channel never keeps the harness process alive on its own (its socket is unref'ed while no
 * request is pending). A request to a container that is paused fails fast, as `docker exec` does;
 * when the container dies, every pending request fails and the channel is closed (the lab opens a
 * new one on the next call).
 */
import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { CommandError, LabError, TimeoutError } from '../util/errors.js';
import type { ExecOptions, ExecResult } from '../docker/exec.js';
import { onLines, type ClientRecord, type ProbeClientOptions } from '../inlab/protocol.js';

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  what: string;
}

interface Refable {
  ref?: () => void;
  unref?: () => void;
}

/** How often a pending request checks that its container is not paused (a frozen helper never answers). */
const PAUSE_CHECK_MS = 1000;

export class HelperChannel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed: Error | undefined;
  private pauseTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly container: Docker.Container,
    private readonly where: string,
    private readonly stream: Duplex,
  ) {}

  get alive(): boolean {
    return !this.closed;
  }

  /** Starts the helper in `container` and resolves once it said it is ready. */
  static async open(container: Docker.Container, program: string, where: string, timeoutMs = 20_000): Promise<HelperChannel> {
    const exec = await container.exec({ Cmd: ['node', program], AttachStdin: true, AttachStdout: true, AttachStderr: true });
    const stream = (await exec.start({ hijack: true, stdin: true })) as unknown as Duplex;
    const ch = new HelperChannel(container, where, stream);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let errText = '';
    stderr.on('data', (b: Buffer) => (errText = (errText + b.toString('utf8')).slice(-4000)));
    container.modem.demuxStream(stream, stdout, stderr);
    let ready: (() => void) | undefined;
    const readyP = new Promise<void>((res) => (ready = res));
    // (onLines decodes UTF-8 across chunks: a character split across two chunks stays whole)
    onLines(stdout, (line) => {
      let msg: { id?: number; ok?: boolean; result?: unknown; error?: string; ready?: boolean };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.ready) {
        ready?.();
        return;
      }
      const p = typeof msg.id === 'number' ? ch.pending.get(msg.id) : undefined;
      if (!p) return;
      ch.settled(msg.id!);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new LabError(`${p.what} in ${where}: ${msg.error ?? 'failed'}`));
    });
    const ended = (why: string) =>
      ch.fail(new LabError(`the lab helper in ${where} ended (${why})${errText.trim() ? `: ${errText.trim().split('\n').slice(-3).join(' | ')}` : ''}`));
    stream.on('end', () => ended('its container stopped or was removed'));
    stream.on('close', () => ended('its container stopped or was removed'));
    stream.on('error', (e) => ended(e.message));
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        readyP,
        new Promise<never>((_, rej) => {
          stream.once('close', () => rej(ch.closed ?? new LabError(`the lab helper in ${where} did not start`)));
          timer = setTimeout(() => rej(new TimeoutError(`the lab helper in ${where} to start`, timeoutMs)), timeoutMs);
        }),
      ]);
    } catch (e) {
      ch.close();
      throw e;
    } finally {
      if (timer) clearTimeout(timer);
    }
    ch.idle();
    return ch;
  }

  private socket(): Refable {
    return ((this.stream as unknown as { socket?: Refable }).socket ?? this.stream) as Refable;
  }

  private idle(): void {
    this.socket().unref?.();
  }

  private settled(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) {
      if (this.pauseTimer) clearInterval(this.pauseTimer);
      this.pauseTimer = undefined;
      if (!this.closed) this.idle();
    }
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.closed = e;
    if (this.pauseTimer) clearInterval(this.pauseTimer);
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    try {
      this.stream.destroy();
    } catch {
      /* already gone */
    }
  }

  /** Ends the helper (its standard input closes) and fails whatever is pending. */
  close(): void {
    try {
      this.stream.end();
    } catch {
      /* already gone */
    }
    this.fail(new LabError(`the lab helper in ${this.where} was closed`));
  }

  /** A frozen (paused) container never answers: fail its pending requests like `docker exec` would. */
  private async checkPaused(): Promise<void> {
    try {
      const info = await this.container.inspect();
      if (info.State.Paused) {
        const e = new LabError(`container ${this.where} is paused`);
        for (const [id, p] of [...this.pending]) {
          this.settled(id);
          p.reject(e);
        }
      } else if (!info.State.Running) {
        this.fail(new LabError(`container ${this.where} is not running`));
      }
    } catch {
      /* the engine will tell the next caller */
    }
  }

  request<T>(msg: Record<string, unknown>, what: string, timeoutMs?: number): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done =
        <A>(f: (a: A) => void) =>
        (a: A) => {
          if (timer) clearTimeout(timer);
          f(a);
        };
      this.pending.set(id, { resolve: done(resolve as (v: unknown) => void), reject: done(reject), what });
      if (timeoutMs) {
        // the helper enforces the timeout too; this one covers a helper that cannot answer
        timer = setTimeout(() => {
          if (!this.pending.has(id)) return;
          this.settled(id);
          reject(new TimeoutError(`${what} in ${this.where}`, timeoutMs));
        }, timeoutMs + 2000);
      }
      this.socket().ref?.();
      this.pauseTimer ??= setInterval(() => void this.checkPaused(), PAUSE_CHECK_MS);
      this.stream.write(`${JSON.stringify({ ...msg, id })}\n`);
    });
  }

  /** Runs a command (in `netns` when given), with execIn's semantics: CommandError on a non-zero exit unless check=false. */
  async exec(cmd: string[], options: ExecOptions & { netns?: string } = {}): Promise<ExecResult> {
    const where = options.where ?? this.where;
    const msg: Record<string, unknown> = { op: 'exec', argv: cmd };
    if (options.netns) msg.netns = options.netns;
    if (options.stdin !== undefined) msg.stdin = options.stdin;
    if (options.env) msg.env = options.env;
    if (options.timeoutMs) msg.timeoutMs = options.timeoutMs;
    let r: ExecResult;
    try {
      r = await this.request<ExecResult>(msg, cmd.join(' '), options.timeoutMs);
    } catch (e) {
      if (options.timeoutMs && e instanceof LabError && /timed out after/.test(e.message))
        throw new TimeoutError(`${cmd.join(' ')} in ${where}`, options.timeoutMs);
      throw e;
    }
    if ((options.check ?? true) && r.exitCode !== 0) throw new CommandError(where, cmd, r.exitCode, r.stdout, r.stderr);
    return r;
  }

  /** Starts a command detached (it outlives the helper), like `docker exec -d`. */
  async spawn(cmd: string[], netns?: string): Promise<void> {
    await this.request({ op: 'spawn', argv: cmd, ...(netns ? { netns } : {}) }, cmd.join(' '), 30_000);
  }

  /** One probe packet, run in-process by the helper (in `netns` when given). */
  probe(args: ProbeClientOptions, netns?: string): Promise<ClientRecord> {
    return this.request<ClientRecord>({ op: 'probe', args, ...(netns ? { netns } : {}) }, `probe to ${args.to}`, args.timeoutMs + 15_000);
  }

  /** Starts a continuous probe inside the helper (in `netns` when given); its records are appended to `out`. */
  async startProbe(args: ProbeClientOptions, out: string, netns?: string): Promise<void> {
    await this.request({ op: 'start-probe', args, out, ...(netns ? { netns } : {}) }, `continuous probe to ${args.to}`, 30_000);
  }

  /** Stops it; resolves once every packet in flight has settled. */
  async stopProbe(token: string, netns: string | undefined, timeoutMs: number): Promise<void> {
    await this.request({ op: 'stop-probe', args: { token }, ...(netns ? { netns } : {}) }, `stopping continuous probe ${token}`, timeoutMs);
  }

  /** Whether `file`'s content matches `pattern` within timeoutMs (polled inside the container, no fork). */
  waitMatch(file: string, pattern: string, timeoutMs: number): Promise<boolean> {
    return this.request<boolean>({ op: 'wait-match', file, pattern, timeoutMs }, `wait for ${file}`, timeoutMs);
  }

  /**
   * Lines of `file` containing `needle` (JSON lines with t >= since - 5), as soon as one exists; [] after
   * timeoutMs. The responder's capture statistics lines (`"p":"stats"`) of that window come along, in
   * file order, but are not waited for. `ports`: of the TCP segments, only those that matter to
   * connections from these local ports (segmentMatters in harness/inlab/protocol.ts).
   */
  watch(file: string, needle: string, since: number, timeoutMs: number, ports?: readonly number[]): Promise<string[]> {
    return this.request<string[]>({ op: 'watch', file, needle, since, timeoutMs, ...(ports ? { ports } : {}) }, `watch ${file}`, timeoutMs);
  }
}
