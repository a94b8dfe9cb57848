/**
 * Probes: send TCP, UDP or ICMP from a pod, a node's host network or a hostNetwork pod to any
 * address, and report the source the far end observed, whether the reply came back, and the RTT.
 * The far end's capture log is consulted when no reply arrives, so a probe whose reply is lost
 * (a pod IP on the internet) still tells which source it left with.
 */
import type { LabRuntime, Place } from '../lab/runtime.js';
import { ensureResponder, observedLogOf, responderFor, responderReadyFileOf, type ResponderTarget } from '../lab/responders.js';
import { spawnWithPidFile } from '../lab/process.js';
import { isIPv4 } from '../../lib/net/addresses.js';
import { LabError, ValidationError } from '../util/errors.js';
import { inLabProgram } from '../util/paths.js';
import { pollUntil } from '../util/poll.js';
import {
  isSyn,
  newToken,
  parseObservationLog,
  RUN_DIR,
  segmentMatters,
  PROTOS,
  STATS_NEEDLE,
  synKey,
  type CaptureStats,
  type ClientRecord,
  type Observation,
  type ProbeClientOptions,
  type Proto,
} from '../inlab/protocol.js';
import { buildTimeline, type Timeline } from './timeline.js';

/** Options of one probe: protocol (udp, tcp, icmp), destination port and timeout. */
export interface ProbeOptions {
  proto?: Proto;
  /** Destination port (TCP/UDP). Default: the responder port for pods/nodes, a random high port elsewhere. */
  port?: number;
  timeoutMs?: number;
}

/** What one probe found: the source the far end saw, whether the reply came back, and how it is known. */
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
  /**
   * Evidence "capture" only, and only when there were several: every source the far end saw the
   * probe's packets (for TCP: the segments of its connection) arrive with, in order. A probe seen
   * with two sources matches no single expected source.
   */
  observedSources?: string[];
  error?: string;
}

type Target = ResponderTarget;

/** Throws a ValidationError naming every bad option of a probe. */
export function checkProbeArgs(to: string, options: ProbeOptions): void {
  const issues = [];
  if (!isIPv4(to)) issues.push({ path: '--to', value: to, message: 'must be an IPv4 address' });
  if (options.proto !== undefined && !PROTOS.includes(options.proto))
    issues.push({ path: '--proto', value: options.proto, message: 'must be tcp, udp or icmp' });
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

/** What a responder logged in a probe's window. */
interface ObservationRead {
  observations: Observation[];
  /** its capture statistics records of the window */
  stats: CaptureStats[];
  /** false: the far end's container is down (a fault), there is nothing to read there */
  readable: boolean;
}

/**
 * What the responder of `target` logged from `since` on for `needle`, with its capture statistics,
 * waiting up to waitMs for a first line. `ports`: of the TCP segments, only those that matter to
 * connections from these local ports (segmentMatters; the rest is read in the container).
 */
async function readObservations(
  lab: LabRuntime,
  target: Target,
  needle: string,
  since: number,
  waitMs = 0,
  ports?: readonly number[],
): Promise<ObservationRead> {
  const file = observedLogOf(lab.plan, target);
  const parse = (lines: string[]): ObservationRead => ({ ...parseObservationLog(lines, since), readable: true });
  // A target that is down (a fault) has no helper: it observed nothing we can read. A live target
  // whose log cannot be read is an error of the harness, never "nothing observed".
  const ch = await lab.helper(target.container).catch(() => undefined);
  if (ch?.alive) return parse(await ch.watch(file, needle, since, waitMs, ports));
  const grep = async (): Promise<ObservationRead> => {
    const r = await lab.exec(target.container, ['grep', '-F', '-e', needle, '-e', STATS_NEEDLE, file], { check: false }).catch(() => undefined);
    if (!r) return { observations: [], stats: [], readable: false };
    const read = parse(r.stdout.split('\n'));
    if (ports) {
      const keep = new Set(ports);
      const flows = new Set<string>();
      read.observations = read.observations.filter((o) => segmentMatters(o, keep, flows));
    }
    return read;
  };
  if (waitMs <= 0) return grep();
  let last: ObservationRead = { observations: [], stats: [], readable: true };
  return pollUntil(async () => (last = await grep()), {
    what: `an observation in ${file}`,
    timeoutMs: waitMs,
    intervalMs: 25,
    accept: (o) => o.observations.length > 0 || (needle === STATS_NEEDLE && o.stats.length > 0) || !o.readable,
  }).catch(() => last);
}

/**
 * Asks the responder of `target` for capture statistics (it logs a record shortly after). A
 * container that is down is told nothing: the reader then finds its log unreadable.
 */
async function requestCaptureStats(lab: LabRuntime, target: Target): Promise<void> {
  const pidFile = responderReadyFileOf(lab.plan, target);
  // SIGWINCH: see responder.ts (ignored by default: harmless to a responder that has no handler)
  await lab.exec(target.container, ['sh', '-c', `kill -WINCH "$(cat ${pidFile})" 2>/dev/null`], { check: false }).catch(() => undefined);
}

/**
 * A capture that dropped packets may have dropped the one that leaked: what it logged proves nothing.
 * Throws when any statistics record of the window reports drops.
 */
export function assertNoCaptureDrops(stats: readonly CaptureStats[], label: string): void {
  const n = stats.reduce((sum, s) => sum + Math.max(s.drops, 0), 0);
  if (n > 0) throw new LabError(`the far end's capture at ${label} dropped ${n} packet${n === 1 ? '' : 's'}: the verdict is void`);
}

/**
 * A one-shot probe's own record among what the far end logged for its flow key, and every source its
 * packets were seen with. TCP: its own connection is the one from its local port (the SYN first);
 * without a local port (the connection never opened) the first SYN logged, and the segments of that
 * connection. UDP and ICMP: the records carry the probe's own token.
 */
export function ownObservation(
  proto: Proto,
  seen: readonly Observation[],
  localPort: number | undefined,
): { mine: Observation; sources: string[] } | undefined {
  const own = proto === 'tcp' && localPort !== undefined ? seen.filter((o) => o.sport === localPort) : [];
  const mine = own.find(isSyn) ?? own[0] ?? seen.find(isSyn) ?? seen[0];
  if (!mine) return undefined;
  const flow = proto === 'tcp' ? seen.filter((o) => o.sport === mine.sport) : seen;
  const sources = [mine.src];
  for (const o of flow) if (!sources.includes(o.src)) sources.push(o.src);
  return { mine, sources };
}

function needleFor(proto: Proto, token: string, to: string, port: number | undefined): string {
  return proto === 'tcp' ? `"k":"${synKey(to, port!)}"` : `"tok":"${token}"`;
}

/** Sends one probe from a pod or node to `to` (see Lab.probe). */
export async function probe(lab: LabRuntime, from: string, to: string, options: ProbeOptions = {}): Promise<ProbeResult> {
  checkProbeArgs(to, options);
  const proto = options.proto ?? 'tcp';
  const source = lab.place(from);
  const target = responderFor(lab.plan, to);
  if (target) await ensureResponder(lab, target);
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
    assertNoCaptureDrops(seen.stats, target.label);
    const own = ownObservation(proto, seen.observations, rec.localPort);
    if (own) {
      const { mine, sources } = own;
      result.observedSource = mine.src;
      if (mine.sport !== undefined) result.observedPort = mine.sport;
      result.observedBy = target.label;
      result.evidence = 'capture';
      if (sources.length > 1) result.observedSources = sources;
    }
  }
  return result;
}

/** How long a stopped continuous probe waits for the far end's capture log to settle. */
const SETTLE_MS = 4000;

/**
 * Probes `from` -> `to` (one shot of 500 ms, every 50 ms) until the far end observes `source`
 * (undefined: until it observes nothing: the packet was dropped), and returns that probe. A readiness
 * gate for the premise of a test (a policy in effect, an IP moved), judged at the far end like the
 * verdicts; gives up with a TimeoutError naming the flow and the source after `timeoutMs` (15 s).
 */
export async function waitSeenFrom(
  lab: LabRuntime,
  from: string,
  to: string,
  source: string | undefined,
  opts: { proto?: Proto; timeoutMs?: number; what?: string } = {},
): Promise<ProbeResult> {
  return pollUntil(() => probe(lab, from, to, { proto: opts.proto ?? 'udp', timeoutMs: 500 }), {
    what: opts.what ?? `${from} -> ${to} to be observed from ${source ?? 'nobody (dropped)'}`,
    timeoutMs: opts.timeoutMs ?? 15_000,
    intervalMs: 50,
    accept: (r) => r.observedSource === source,
  });
}

/**
 * Statistics count as taken after a packet when asked for this long after it was sent: its time to
 * arrive. (The responder asks 300 ms after the last packet it saw, so quiet traffic pays nothing for it.)
 */
export const STATS_AFTER_MS = 250;

/**
 * The first statistics record that covers a packet sent at `lastSent`: asked for STATS_AFTER_MS or
 * more after it, with no packet still on its way to the log.
 */
export function statsCover(stats: readonly CaptureStats[], lastSent: number): CaptureStats | undefined {
  return stats.find((s) => s.t >= lastSent + STATS_AFTER_MS && s.pending === 0);
}

/** Options of a continuous probe: interval, count, and stream mode for one long-lived TCP connection. */
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

/** Throws a ValidationError naming every bad option of a continuous probe. */
export function checkContinuousProbeArgs(to: string, options: ContinuousProbeOptions): void {
  checkProbeArgs(to, options);
  const issues = [];
  const proto = options.proto ?? 'udp';
  if (options.intervalMs !== undefined && (!Number.isInteger(options.intervalMs) || options.intervalMs < 1 || options.intervalMs > 3_600_000)) {
    issues.push({ path: 'intervalMs', value: options.intervalMs, message: 'must be an integer between 1 and 3600000' });
  }
  if (options.count !== undefined && (!Number.isInteger(options.count) || options.count < 1))
    issues.push({ path: 'count', value: options.count, message: 'must be a positive integer' });
  if (options.stream !== undefined && typeof options.stream !== 'boolean')
    issues.push({ path: 'stream', value: options.stream, message: 'must be true or false' });
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
  private halted?: Promise<ClientRecord[]>;
  /** runs inside the source container's helper (else: a probe-client process) */
  inHelper = false;
  constructor(
    private readonly lab: LabRuntime,
    private readonly source: Place,
    private readonly target: Target | undefined,
    readonly to: string,
    readonly proto: Proto,
    readonly port: number | undefined,
    readonly intervalMs: number,
    /** the token its packets carry (`EGL <token> <seq>`): what attributes them at the far end */
    readonly token: string,
    readonly startedAt: number,
  ) {}

  private get files(): { out: string; pid: string } {
    return { out: `${RUN_DIR}/probe-${this.token}.jsonl`, pid: `${RUN_DIR}/probe-${this.token}.pid` };
  }

  /** Starts a continuous probe (see Lab.continuousProbe). */
  static async start(lab: LabRuntime, from: string, to: string, options: ContinuousProbeOptions = {}): Promise<ContinuousProbe> {
    checkContinuousProbeArgs(to, options);
    const proto = options.proto ?? 'udp';
    const intervalMs = options.intervalMs ?? 20;
    const source = lab.place(from);
    const target = responderFor(lab.plan, to);
    if (target) await ensureResponder(lab, target);
    const port = pickPort(target, { ...options, proto });
    const token = newToken();
    const count = options.count ?? Math.ceil(600_000 / intervalMs);
    const timeoutMs = options.timeoutMs ?? 500;
    const p = new ContinuousProbe(lab, source, target, to, proto, port, intervalMs, token, Date.now());
    const stream = options.stream
      ? { stream: true, ...(options.reconnect ? { reconnect: true } : {}), ...(options.localPort ? { localPort: options.localPort } : {}) }
      : {};
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
    await spawnWithPidFile(lab, source, ['node', inLabProgram('harness/inlab/probe-client.js'), args], {
      pidFile: pid,
      output: out,
      what: `continuous probe ${from} -> ${to}`,
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
   * What the far end logged for this probe, once it is complete. The responder's log can trail the
   * traffic (a loaded machine delays tcpdump and the decoder): the probe asks the responder for
   * capture statistics and waits (inside the far end's helper, no polling from here) for a record
   * that covers its last packet (taken STATS_AFTER_MS or more after it was sent, nothing on its way
   * to the log): every packet of the probe that arrived is then in the log above it, or counted as
   * dropped. A capture that dropped packets in the probe's window, or that gave no such record
   * within SETTLE_MS, voids the timeline (LabError), never "nothing observed".
   */
  private async settledObservations(target: Target, records: readonly ClientRecord[]): Promise<Observation[]> {
    const needle = needleFor(this.proto, this.token, this.to, this.port);
    const lastSent = records.reduce((m, r) => Math.max(m, r.t), 0);
    if (records.length > 0) {
      // the debounce after the last batch gives a record; this request gives one when nothing arrived
      await requestCaptureStats(this.lab, target);
      const deadline = Date.now() + SETTLE_MS;
      await pollUntil(
        async () => {
          const r = await readObservations(this.lab, target, STATS_NEEDLE, lastSent + STATS_AFTER_MS, Math.max(0, deadline - Date.now()));
          return !r.readable || statsCover(r.stats, lastSent) !== undefined;
        },
        { what: `capture statistics of ${target.label} after the probe's last packet`, timeoutMs: SETTLE_MS, intervalMs: 100 },
      ).catch(() => undefined); // the read below says what is missing
    }
    // TCP: of the segments to the same address and port (other probes' connections), only this
    // probe's own, and what a timeline keeps of the others (read in the container)
    const ports = this.proto === 'tcp' ? [...new Set(records.flatMap((r) => (r.localPort === undefined ? [] : [r.localPort])))] : undefined;
    const read = await readObservations(this.lab, target, needle, this.startedAt, 0, ports);
    // the far end is down (a fault): it kept nothing we can read (as before this probe's stop)
    if (!read.readable) return [];
    assertNoCaptureDrops(read.stats, target.label);
    if (records.length > 0 && !statsCover(read.stats, lastSent)) {
      throw new LabError(
        `the far end's capture at ${target.label} logged no statistics taken after the probe's last packet ` +
          `(sent ${new Date(lastSent).toISOString()}) within ${SETTLE_MS} ms: whether it saw every packet is unknown, the verdict is void ` +
          `(its last statistics: ${JSON.stringify(read.stats.at(-1) ?? null)}; a responder started by an older egresslab logs none: bring the lab up again)`,
      );
    }
    return read.observations;
  }

  /**
   * Stops sending and reads the packets recorded so far, without waiting for the far end: for a
   * probe whose node is about to go down (its /run is a tmpfs: a node booted again has lost the
   * records). stop() then finishes with these records. Idempotent.
   */
  halt(): Promise<ClientRecord[]> {
    this.halted ??= this.doHalt();
    return this.halted;
  }

  private async doHalt(): Promise<ClientRecord[]> {
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
    return this.records();
  }

  private async doStop(): Promise<Timeline> {
    const records = await this.halt();
    const observations = this.target ? await this.settledObservations(this.target, records) : [];
    const meta = { from: this.source.label, to: this.to, proto: this.proto, intervalMs: this.intervalMs, ...(this.port ? { port: this.port } : {}) };
    return buildTimeline(meta, records, observations);
  }
}
