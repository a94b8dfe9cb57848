/**
 * Probes: send TCP, UDP or ICMP from a pod, a node's host network or a hostNetwork pod to any
 * address, and report the source the far end observed, whether the reply came back, and the RTT.
 * The far end's capture log is consulted when no reply arrives, so a probe whose reply is lost
 * (a pod IP on the internet) still tells which source it left with.
 */
import type { Lab, Place } from '../lab/lab.js';
import { isIPv4 } from '../topology/addresses.js';
import { ValidationError } from '../util/errors.js';
import { inLabProgram } from '../util/paths.js';
import { pollUntil } from '../util/poll.js';
import { newToken, RUN_DIR, PROTOS, synKey, type ClientRecord, type Observation, type ProbeClientOptions, type Proto } from '../inlab/protocol.js';
import { buildTimeline, type Timeline } from './timeline.js';

export interface ProbeOptions {
  proto?: Proto;
  /** Destination port (TCP/UDP). Default: the responder port for pods/nodes, a random high port elsewhere. */
  port?: number;
  timeoutMs?: number;
}

export interface ProbeResult {
  from: string;
  to: string;
  proto: Proto;
  port?: number;
  /** Source IP the far end saw; absent when nothing arrived there. */
  observedSource?: string;
  observedPort?: number;
  replyReceived: boolean;
  rttMs?: number;
  /** Who observed it: "internet", "vpc", a pod or node. */
  observedBy?: string;
  /** "reply" when the reply said it, "capture" when taken from the far end's capture log. */
  evidence?: 'reply' | 'capture';
  error?: string;
}

type Target = Place & { key: string; port?: number };

export function checkProbeArgs(to: string, options: ProbeOptions): void {
  const issues = [];
  if (!isIPv4(to)) issues.push({ path: '--to', value: to, message: 'must be an IPv4 address' });
  if (options.proto !== undefined && !PROTOS.includes(options.proto)) issues.push({ path: '--proto', value: options.proto, message: 'must be tcp, udp or icmp' });
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535)) {
    issues.push({ path: '--port', value: options.port, message: 'must be a port number 1-65535' });
  }
  if (options.timeoutMs !== undefined && (!(options.timeoutMs > 0) || options.timeoutMs > 60_000)) {
    issues.push({ path: 'timeoutMs', value: options.timeoutMs, message: 'must be between 1 and 60000' });
  }
  if (issues.length) throw new ValidationError('probe', issues);
}

function pickPort(target: Target | undefined, options: ProbeOptions): number | undefined {
  if (options.proto === 'icmp') return undefined;
  return options.port ?? target?.port ?? 20_000 + Math.floor(Math.random() * 40_000);
}

async function readObservations(lab: Lab, target: Target, needle: string, since: number, waitMs = 0): Promise<Observation[]> {
  const file = lab.observedLogOf(target);
  const parse = (lines: string[]): Observation[] =>
    lines
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Observation)
      .filter((o) => o.t >= since - 5);
  // A target that is down (a fault) has no helper: it observed nothing we can read. A live target
  // whose log cannot be read is an error of the harness, never "nothing observed".
  const ch = await lab.helper(target.container).catch(() => undefined);
  if (ch?.alive) return parse(await ch.watch(file, needle, since, waitMs));
  const grep = async (): Promise<Observation[]> => {
    const r = await lab.exec(target.container, ['grep', '-F', needle, file], { check: false }).catch(() => ({ stdout: '' }));
    return parse(r.stdout.split('\n'));
  };
  if (waitMs <= 0) return grep();
  return pollUntil(grep, { what: `an observation in ${file}`, timeoutMs: waitMs, intervalMs: 25, accept: (o) => o.length > 0 }).catch(() => []);
}

function needleFor(proto: Proto, token: string, to: string, port: number | undefined): string {
  return proto === 'tcp' ? `"k":"${synKey(to, port!)}"` : `"tok":"${token}"`;
}

export async function probe(lab: Lab, from: string, to: string, options: ProbeOptions = {}): Promise<ProbeResult> {
  checkProbeArgs(to, options);
  const proto = options.proto ?? 'tcp';
  const source = lab.place(from);
  const target = lab.responderFor(to);
  if (target) await lab.ensureResponder(target);
  const port = pickPort(target, { ...options, proto });
  const token = newToken();
  const timeoutMs = options.timeoutMs ?? 1000;
  const started = Date.now();
  const args = { to, port: port ?? 0, proto, timeoutMs, token, mode: 'once' as const, intervalMs: 0, count: 1 };
  const ch = await lab.helper(source.container);
  let rec: ClientRecord;
  if (ch?.alive) rec = await ch.probe(args, source.netns);
  else {
    const r = await lab.exec(source, ['node', inLabProgram('harness/inlab/probe-client.js'), JSON.stringify(args)], {
      timeoutMs: timeoutMs + 15_000,
    });
    rec = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ClientRecord;
  }
  const result: ProbeResult = { from: source.label, to, proto, replyReceived: rec.replied };
  if (port !== undefined) result.port = port;
  if (rec.rttMs !== undefined) result.rttMs = Math.round(rec.rttMs * 1000) / 1000;
  if (rec.error) result.error = rec.error;
  if (rec.observedSource && proto !== 'icmp') {
    result.observedSource = rec.observedSource;
    if (rec.observedPort !== undefined) result.observedPort = rec.observedPort;
    result.observedBy = target?.label;
    result.evidence = 'reply';
    return result;
  }
  if (target) {
    // The responder's capture log may trail the reply by a few milliseconds: a probe that was
    // answered was certainly observed, so wait for its record; otherwise look a little while.
    const needle = needleFor(proto, token, to, port);
    // Generous for unanswered probes: on a loaded machine the capture pipeline can lag a second.
    const seen = await readObservations(lab, target, needle, started, rec.replied ? 3000 : 1500);
    const mine = seen.find((o) => rec.localPort !== undefined && o.sport === rec.localPort) ?? seen[0];
    if (mine) {
      result.observedSource = mine.src;
      if (mine.sport !== undefined) result.observedPort = mine.sport;
      result.observedBy = target.label;
      result.evidence = 'capture';
    }
  }
  return result;
}

export interface ContinuousProbeOptions extends ProbeOptions {
  intervalMs?: number;
  /** Upper bound on packets sent (stop() ends it earlier). Default: 10 minutes' worth. */
  count?: number;
  /**
   * TCP only: ONE connection for the whole run, a probe line every `intervalMs` on it (a long-lived
   * connection, e.g. across a gateway failover). Each line gets a record; a break of the connection
   * is recorded (`connectionError`) and the timeline's `stream` says whether the connection survived.
   */
  stream?: boolean;
  /** stream only: open a new connection after a break (each one numbered; the timeline says so). Default false. */
  reconnect?: boolean;
  /** stream only: bind this local (source) port. */
  localPort?: number;
}

export function checkContinuousProbeArgs(to: string, options: ContinuousProbeOptions): void {
  checkProbeArgs(to, options);
  const issues = [];
  const proto = options.proto ?? 'udp';
  if (options.intervalMs !== undefined && (!Number.isInteger(options.intervalMs) || options.intervalMs < 1 || options.intervalMs > 3_600_000)) {
    issues.push({ path: 'intervalMs', value: options.intervalMs, message: 'must be an integer between 1 and 3600000' });
  }
  if (options.count !== undefined && (!Number.isInteger(options.count) || options.count < 1)) issues.push({ path: 'count', value: options.count, message: 'must be a positive integer' });
  if (options.stream !== undefined && typeof options.stream !== 'boolean') issues.push({ path: 'stream', value: options.stream, message: 'must be true or false' });
  if (options.stream && proto !== 'tcp') issues.push({ path: 'stream', value: options.stream, message: `is for TCP only (proto is ${proto})` });
  if (options.reconnect !== undefined && (typeof options.reconnect !== 'boolean' || (options.reconnect && !options.stream))) {
    issues.push({ path: 'reconnect', value: options.reconnect, message: 'must be a boolean, and needs stream: true' });
  }
  if (options.localPort !== undefined && (!Number.isInteger(options.localPort) || options.localPort < 1 || options.localPort > 65535 || !options.stream)) {
    issues.push({ path: 'localPort', value: options.localPort, message: 'must be a port number 1-65535, and needs stream: true' });
  }
  if (issues.length) throw new ValidationError('continuous probe', issues);
}

/** A probe sending one sequence-numbered packet every `intervalMs` until stopped. */
export class ContinuousProbe {
  private stopped?: Promise<Timeline>;
  /** runs inside the source container's helper (else: a probe-client process) */
  inHelper = false;
  constructor(
    private readonly lab: Lab,
    private readonly source: Place,
    private readonly target: Target | undefined,
    readonly to: string,
    readonly proto: Proto,
    readonly port: number | undefined,
    readonly intervalMs: number,
    private readonly token: string,
    readonly startedAt: number,
  ) {}

  private get files(): { out: string; pid: string } {
    return { out: `${RUN_DIR}/probe-${this.token}.jsonl`, pid: `${RUN_DIR}/probe-${this.token}.pid` };
  }

  static async start(lab: Lab, from: string, to: string, options: ContinuousProbeOptions = {}): Promise<ContinuousProbe> {
    checkContinuousProbeArgs(to, options);
    const proto = options.proto ?? 'udp';
    const intervalMs = options.intervalMs ?? 20;
    const source = lab.place(from);
    const target = lab.responderFor(to);
    if (target) await lab.ensureResponder(target);
    const port = pickPort(target, { ...options, proto });
    const token = newToken();
    const count = options.count ?? Math.ceil(600_000 / intervalMs);
    const timeoutMs = options.timeoutMs ?? 500;
    const p = new ContinuousProbe(lab, source, target, to, proto, port, intervalMs, token, Date.now());
    const stream = options.stream ? { stream: true, ...(options.reconnect ? { reconnect: true } : {}), ...(options.localPort ? { localPort: options.localPort } : {}) } : {};
    const args = JSON.stringify({ to, port: port ?? 0, proto, timeoutMs, token, mode: 'continuous', intervalMs, count, ...stream });
    const { out, pid } = p.files;
    await lab.exec(source.container, ['mkdir', '-p', RUN_DIR]);
    const ch = await lab.helper(source.container);
    if (ch?.alive) {
      // in-process in the container's helper: no process per probe
      await ch.startProbe(JSON.parse(args) as ProbeClientOptions, out, source.netns);
      p.inHelper = true;
      return p;
    }
    await lab.execDetached(source.container, [
      'sh', '-c', `echo $$ > ${pid}; exec "$@" > ${out} 2>&1`, 'sh',
      ...(source.netns ? ['ip', 'netns', 'exec', source.netns] : []),
      'node', inLabProgram('harness/inlab/probe-client.js'), args,
    ]);
    await pollUntil(async () => (await lab.exec(source.container, ['test', '-s', pid], { check: false })).exitCode === 0, {
      what: `continuous probe ${from} -> ${to} to start`,
      timeoutMs: 10_000,
    });
    return p;
  }

  /** Packets settled so far (for waiting on a condition while the probe runs). */
  async records(): Promise<ClientRecord[]> {
    const r = await this.lab.exec(this.source.container, ['cat', this.files.out], { check: false });
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as ClientRecord);
  }

  /** How many packets sent after `t` (epoch ms; 0: all so far) were answered: the usual condition to poll on around a fault. */
  async answeredAfter(t = 0): Promise<number> {
    return (await this.records()).filter((r) => r.t > t && r.replied).length;
  }

  /** Stops the probe and returns its timeline (idempotent). */
  stop(): Promise<Timeline> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  /**
   * The responder's capture log can trail the traffic (a loaded machine delays tcpdump and the
   * decoder): read it until two reads 200 ms apart agree, within a deadline.
   */
  private async settledObservations(target: Target): Promise<Observation[]> {
    const needle = needleFor(this.proto, this.token, this.to, this.port);
    let last = await readObservations(this.lab, target, needle, this.startedAt);
    let stable = 0;
    await pollUntil(
      async () => {
        const now = await readObservations(this.lab, target, needle, this.startedAt);
        stable = now.length === last.length ? stable + 1 : 0;
        last = now;
        return stable >= 2;
      },
      { what: `the capture log of ${target.label} to settle`, timeoutMs: 4000, intervalMs: 200 },
    ).catch(() => {});
    return last;
  }

  private async doStop(): Promise<Timeline> {
    const { pid } = this.files;
    const c = this.source.container;
    const ch = this.inHelper ? await this.lab.helper(c) : undefined;
    if (ch?.alive) {
      await ch.stopProbe(this.token, this.source.netns, 15_000);
    } else if (!this.inHelper) {
      await this.lab.exec(c, ['sh', '-c', `kill -TERM $(cat ${pid}) 2>/dev/null || true`]);
      await pollUntil(async () => (await this.lab.exec(c, ['sh', '-c', `kill -0 $(cat ${pid}) 2>/dev/null`], { check: false })).exitCode !== 0, {
        what: `continuous probe ${this.source.label} -> ${this.to} to stop`,
        timeoutMs: 15_000,
      });
    }
    // (a helper that is gone took the probe with it: its container stopped; what it recorded stays in the file)
    const records = await this.records();
    const observations = this.target ? await this.settledObservations(this.target) : [];
    const meta = { from: this.source.label, to: this.to, proto: this.proto, intervalMs: this.intervalMs, ...(this.port ? { port: this.port } : {}) };
    return buildTimeline(meta, records, observations);
  }
}
