/**
 * The probe wire protocol shared by the in-lab probe client, the responders and the harness.
 * TCP and UDP probes carry `EGL <token> <seq>\n`; the responder answers with one JSON line saying
 * what it observed. ICMP probes carry the token as ping's fill pattern (8 bytes, repeated).
 * Runs on Node 18 inside lab containers: no dependencies.
 */
import { randomBytes } from 'node:crypto';
import { TCP_FLAGS } from '../pcap/pcap.js';
import type { FieldIssue } from '../util/errors.js';

export const RESPONDER_PORT = 7007;
export const RUN_DIR = '/run/egresslab';
export const OBSERVED_LOG = `${RUN_DIR}/observed.jsonl`;

export type Proto = 'tcp' | 'udp' | 'icmp';
export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'icmp'];

/** 16 hex characters: 8 bytes, the length of ping's fill pattern. */
export function newToken(): string {
  return randomBytes(8).toString('hex');
}

/** The payload of probe packet `seq` of the probe with `token`. */
export function encodeProbe(token: string, seq: number): string {
  return `EGL ${token} ${seq}\n`;
}

/** Token and sequence number of a probe payload, or undefined when it is not one. */
export function decodeProbe(payload: Buffer | string): { token: string; seq: number } | undefined {
  const text = typeof payload === 'string' ? payload : payload.subarray(0, 64).toString('latin1');
  const m = /^EGL ([0-9a-f]{16}) (\d+)/.exec(text);
  return m ? { token: m[1]!, seq: Number(m[2]) } : undefined;
}

/** What a responder answers to each probe message. */
export interface Reply {
  responder: string;
  observedSource: string;
  observedPort: number;
  token?: string;
  seq?: number;
  t: number;
}

/**
 * One packet a responder's capture saw arriving: a TCP segment of a probe flow (every one, not only
 * the SYN: a mid-flow segment that leaves with another source is a leak too), a UDP datagram or an
 * ICMP echo request.
 */
export interface Observation {
  t: number;
  p: Proto;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** ICMP identifier and sequence. */
  id?: number;
  seq?: number;
  /** Probe token and sequence found in the payload. */
  tok?: string;
  pseq?: number;
  /** Lookup key of every TCP segment (which may carry no payload): "tcp <dst>:<dport>". */
  k?: string;
  /** TCP flags (TCP_FLAGS bits). Absent in logs of responders that logged SYNs only: such a record is a SYN. */
  f?: number;
}

/** The lookup key of a TCP flow to `dst:dport` in the responder's log. */
export function synKey(dst: string, dport: number): string {
  return `tcp ${dst}:${dport}`;
}

/** A connection's opening segment (SYN without ACK; a record without flags comes from a SYN-only log). */
export function isSyn(o: Pick<Observation, 'p' | 'f'>): boolean {
  if (o.p !== 'tcp') return false;
  return o.f === undefined || ((o.f & TCP_FLAGS.SYN) !== 0 && (o.f & TCP_FLAGS.ACK) === 0);
}

/**
 * Whether a logged TCP segment matters to a probe whose connections used the local ports `ports`:
 * its own segments, every SYN, and the first segment of any other flow (source and source port),
 * which is all a timeline keeps of a flow it cannot attribute (see buildTimeline). Many probes to
 * one address and port (long-lived connections) share a flow key: this keeps each one's read of the
 * log to its own segments. `flows` remembers the other flows seen so far.
 */
export function segmentMatters(o: Pick<Observation, 'p' | 'src' | 'sport' | 'f'>, ports: ReadonlySet<number>, flows: Set<string>): boolean {
  if (o.p !== 'tcp' || isSyn(o) || (o.sport !== undefined && ports.has(o.sport))) return true;
  const flow = `${o.src}|${o.sport ?? '?'}`;
  if (flows.has(flow)) return false;
  flows.add(flow);
  return true;
}

/**
 * The responder's capture statistics, a record in the same log as its observations: read from its
 * tcpdump (SIGUSR1) shortly after traffic, and written only once every packet tcpdump had handled at
 * that moment is logged (so a record says: what arrived before `t` is above it, or was dropped).
 */
export interface CaptureStats {
  /** When the statistics were asked for: they cover every packet the capture received before. */
  t: number;
  p: 'stats';
  /** Packets the kernel dropped (the ring was full) since this responder's previous record, or since its capture started. */
  drops: number;
  /** Packets dropped since the capture started. */
  total: number;
  /** Packets the capture had received but tcpdump not handled yet at `t` (they are logged later). */
  pending: number;
}

/** What a stats line contains (the watch op returns these beside the lines it was asked for). */
export const STATS_NEEDLE = '"p":"stats"';

/** tcpdump's statistics: what it handled, what its filter accepted, what the kernel dropped. */
export interface TcpdumpStats {
  dropped: number;
  captured?: number;
  received?: number;
}

/**
 * The statistics tcpdump prints on stderr: on exit ("N packets captured" / "N packets received by
 * filter" / "N packets dropped by kernel", one per line) and, on Linux, on SIGUSR1 (the same on one
 * line, after "tcpdump: "). The last figures in `text` win; undefined without a kernel drop count
 * (tcpdump did not print its statistics: it crashed, or pcap_stats failed).
 */
export function parseTcpdumpStats(text: string): TcpdumpStats | undefined {
  const last = (re: RegExp): number | undefined => {
    let n: number | undefined;
    for (const m of text.matchAll(re)) n = Number(m[1]);
    return n;
  };
  const dropped = last(/(\d+) packets? dropped by kernel/g);
  if (dropped === undefined) return undefined;
  const out: TcpdumpStats = { dropped };
  const captured = last(/(\d+) packets? captured/g);
  const received = last(/(\d+) packets? received by filter/g);
  if (captured !== undefined) out.captured = captured;
  if (received !== undefined) out.received = received;
  return out;
}

/**
 * A responder's log lines, split into observations and capture statistics, both with t >= since - 5 ms
 * (the window of a probe that started at `since`). Blank and torn lines are skipped.
 */
export function parseObservationLog(lines: readonly string[], since: number): { observations: Observation[]; stats: CaptureStats[] } {
  const observations: Observation[] = [];
  const stats: CaptureStats[] = [];
  for (const line of lines) {
    if (!line.trim()) continue;
    let x: Observation | CaptureStats;
    try {
      x = JSON.parse(line) as Observation | CaptureStats;
    } catch {
      continue; // a line being written
    }
    if (typeof x !== 'object' || x === null || !(x.t >= since - 5)) continue;
    if (x.p === 'stats') stats.push(x);
    else observations.push(x);
  }
  return { observations, stats };
}

/** ping fills its payload with the pattern after a 16-byte timestamp: the token is at bytes 16..24. */
export function icmpToken(payload: Buffer): string | undefined {
  if (payload.length < 24) return undefined;
  return payload.subarray(16, 24).toString('hex');
}

/** Result of one probe packet, as the client saw it. */
export interface ClientRecord {
  seq: number;
  /** Send time, ms since the epoch. */
  t: number;
  replied: boolean;
  rttMs?: number;
  /** From the responder's reply (TCP/UDP). */
  observedSource?: string;
  observedPort?: number;
  localPort?: number;
  error?: string;
  /**
   * Stream mode only: which TCP connection carried this probe line (1 = the first one; a new number
   * only after a break, and only with `reconnect`).
   */
  conn?: number;
  /**
   * Stream mode only: the connection this line was sent on (or was due to be sent on) broke: the
   * error code (ECONNRESET, EPIPE, ETIMEDOUT, ...) or "closed by peer" / "connect failed: CODE".
   */
  connectionError?: string;
}

/** Options of the in-lab probe client (its one JSON argument). */
export interface ProbeClientOptions {
  to: string;
  port: number;
  proto: Proto;
  timeoutMs: number;
  token: string;
  mode: 'once' | 'continuous';
  intervalMs: number;
  count: number;
  /** TCP continuous only: ONE connection for the whole run, one probe line per interval on it. */
  stream?: boolean;
  /** stream only: after a break, open a new connection at the next interval (recorded as a new `conn`). */
  reconnect?: boolean;
  /** stream only: bind this local port (1-65535). */
  localPort?: number;
}

/**
 * Validates the probe client's argument; returns every problem found (empty: valid). Shared by the
 * client (which refuses to run) and the harness (which refuses to start it).
 */
export function probeClientIssues(o: Partial<ProbeClientOptions>): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const bad = (path: keyof ProbeClientOptions, message: string) => issues.push({ path, value: o[path], message });
  const isInt = (v: unknown, min: number, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
  if (typeof o.to !== 'string' || !/^\d{1,3}(\.\d{1,3}){3}$/.test(o.to)) bad('to', 'must be an IPv4 address');
  if (!PROTOS.includes(o.proto as Proto)) bad('proto', 'must be tcp, udp or icmp');
  if (o.proto !== 'icmp' && !isInt(o.port, 1, 65535)) bad('port', 'must be a port number 1-65535');
  if (!isInt(o.timeoutMs, 1, 60_000)) bad('timeoutMs', 'must be an integer between 1 and 60000');
  if (typeof o.token !== 'string' || !/^[0-9a-f]{16}$/.test(o.token)) bad('token', 'must be 16 lower-case hex characters');
  if (o.mode !== 'once' && o.mode !== 'continuous') bad('mode', 'must be once or continuous');
  if (o.mode === 'continuous') {
    if (!isInt(o.intervalMs, 1, 3_600_000)) bad('intervalMs', 'must be an integer between 1 and 3600000');
    if (!isInt(o.count, 1, 100_000_000)) bad('count', 'must be a positive integer');
  }
  if (o.stream !== undefined && typeof o.stream !== 'boolean') bad('stream', 'must be true or false');
  if (o.stream && (o.proto !== 'tcp' || o.mode !== 'continuous')) bad('stream', 'only for continuous TCP probes (proto tcp, mode continuous)');
  if (o.reconnect !== undefined && (typeof o.reconnect !== 'boolean' || (o.reconnect && !o.stream)))
    bad('reconnect', 'must be a boolean, and only with stream');
  if (o.localPort !== undefined && (!isInt(o.localPort, 1, 65535) || !o.stream)) bad('localPort', 'must be a port number 1-65535, and only with stream');
  return issues;
}

/**
 * Stream mode: splits what arrived on the connection into complete reply lines (parsed) and the
 * unfinished rest. A line that is not a JSON Reply is returned in `bad`.
 */
export function splitReplies(buffered: string): { replies: Reply[]; bad: string[]; rest: string } {
  const replies: Reply[] = [];
  const bad: string[] = [];
  const lines = buffered.split('\n');
  const rest = lines.pop() ?? '';
  for (const line of lines) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as Reply;
      if (typeof r !== 'object' || r === null || typeof r.observedSource !== 'string') bad.push(line);
      else replies.push(r);
    } catch {
      bad.push(line);
    }
  }
  return { replies, bad, rest };
}

/** Calls onLine for every complete line of a text stream (UTF-8 decoded whole, across chunks). */
export function onLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onLine(line);
    }
  });
}
