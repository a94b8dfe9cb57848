/**
 * Long-lived TCP connections (stream probes) through a fault: start several at once, summarize
 * whether each connection survived, and check every segment the far end received for its source
 * (the responder logs every segment too, so a timeline shows a mid-stream segment with another
 * source on its line; a capture at the far end's link is a second, independent witness, which also
 * sees segments a timeline cannot attribute).
 * The helpers that do not need a lab are pure and unit-tested (stream.test.ts).
 */
import type { Lab } from '../lab/lab.js';
import type { Capture } from '../capture/capture.js';
import { TCP_FLAGS, type DecodedPacket } from '../pcap/pcap.js';
import type { ContinuousProbe } from './probe.js';
import type { Timeline } from './timeline.js';
import { summarize } from '../report/failover.js';

/** One long-lived TCP stream to start: from, to, port, source port and label. */
export interface StreamSpec {
  /** pod / node, as for lab.continuousProbe */
  from: string;
  to: string;
  port?: number;
  /** bind this source port (to make two pods' connections clash on the gateway) */
  localPort?: number;
  label?: string;
}

/** Interval and per-line timeout of stream probes. */
export interface StreamOptions {
  intervalMs?: number;
  timeoutMs?: number;
}

/** Starts one stream probe per spec (in parallel). */
export function startStreams(lab: Lab, specs: readonly StreamSpec[], o: StreamOptions = {}): Promise<ContinuousProbe[]> {
  return Promise.all(
    specs.map((s) =>
      lab.continuousProbe(s.from, s.to, {
        proto: 'tcp',
        stream: true,
        intervalMs: o.intervalMs ?? 100,
        timeoutMs: o.timeoutMs ?? 500,
        ...(s.port ? { port: s.port } : {}),
        ...(s.localPort ? { localPort: s.localPort } : {}),
      }),
    ),
  );
}

/** A TCP segment the far end's link carried towards `to:port` (post-NAT source as seen there). */
export interface Segment {
  t: number;
  src: string;
  sport: number;
  flags: number;
}

/** Client-to-server segments of `to:port` in a capture (SYN, data, ACK, FIN, RST alike). */
export function segmentsTo(packets: readonly DecodedPacket[], to: string, port: number): Segment[] {
  return packets
    .filter((p) => p.direction !== 'out' && p.ip?.tcp && p.ip.dst === to && p.ip.tcp.dport === port)
    .map((p) => ({ t: p.t, src: p.ip!.src, sport: p.ip!.tcp!.sport, flags: p.ip!.tcp!.flags }));
}

/** Segments whose source is not in `allowed`, and a per-source count of every segment. */
export function segmentLeaks(segments: readonly Segment[], allowed: readonly string[]): { leaked: Segment[]; sources: Record<string, number> } {
  const sources: Record<string, number> = {};
  for (const s of segments) sources[s.src] = (sources[s.src] ?? 0) + 1;
  return { leaked: segments.filter((s) => !allowed.includes(s.src)), sources };
}

/** A TCP segment in one line: time, flags, source and destination. */
export function describeSegment(s: Segment): string {
  const f = Object.entries(TCP_FLAGS)
    .filter(([, bit]) => s.flags & bit)
    .map(([n]) => n)
    .join(',');
  return `${new Date(s.t).toISOString().slice(11, 23)} ${s.src}:${s.sport} [${f}]`;
}

/**
 * The endpoints ("source:port" the far end's replies said) of a stream timeline's connections from
 * which the capture holds no segment: a capture that missed a flow cannot vouch that none of its
 * segments leaked, so a leak check on it needs this empty.
 */
export function endpointsNotCaptured(t: Timeline, segments: readonly Segment[]): string[] {
  const captured = new Set(segments.map((s) => `${s.src}:${s.sport}`));
  return (t.stream?.connections ?? []).flatMap((c) => c.endpoints).filter((e) => !captured.has(e));
}

/** RSTs the far end received (a client giving up on a connection whose binding moved). */
export function resets(segments: readonly Segment[]): Segment[] {
  return segments.filter((s) => s.flags & TCP_FLAGS.RST);
}

/** Whether one stream survived, and why not, in a form to compare across streams. */
export interface StreamOutcome {
  label: string;
  survived: boolean;
  reason: string;
  /** the longest run of unanswered lines, ms (between the answered lines around it) */
  longestOutageMs: number;
  lines: number;
  /** source:port the far end saw, per connection */
  endpoints: string[];
  localPort?: number;
}

/** The StreamOutcome of a stream timeline; throws for a timeline that is not a stream. */
export function streamOutcome(label: string, t: Timeline): StreamOutcome {
  if (!t.stream) throw new Error(`${label}: not a stream timeline (start it with stream: true)`);
  const c = t.stream.connections;
  return {
    label,
    survived: t.stream.survived,
    reason: t.stream.reason,
    longestOutageMs: summarize(t).longestOutageMs,
    lines: t.packets.length,
    endpoints: c.flatMap((x) => x.endpoints),
    ...(c[0]?.localPort !== undefined ? { localPort: c[0].localPort } : {}),
  };
}

/** "survived 18/20" plus one line per connection that did not. */
export function survivalReport(outcomes: readonly StreamOutcome[]): { survived: number; total: number; text: string } {
  const survived = outcomes.filter((o) => o.survived).length;
  const lines = outcomes.map(
    (o) =>
      `  ${o.survived ? 'ok  ' : 'LOST'} ${o.label} (local ${o.localPort ?? '?'}, seen as ${o.endpoints.join(', ') || 'nothing'}, longest outage ${o.longestOutageMs} ms)${o.survived ? '' : `: ${o.reason}`}`,
  );
  return { survived, total: outcomes.length, text: `survived ${survived}/${outcomes.length}\n${lines.join('\n')}` };
}

/** Stops a capture and returns the client-to-server segments of `to:port`. */
export async function stopAndSegments(cap: Capture, to: string, port: number): Promise<Segment[]> {
  const r = await cap.stop();
  return segmentsTo(r.packets, to, port);
}
