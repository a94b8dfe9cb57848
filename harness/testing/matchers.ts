/**
 * Custom vitest matchers for scenarios, with messages that say what was expected and what was seen:
 *
 *   expect(probeResult).toBeSeenFrom('192.168.1.100')     the far end observed that source (and no other)
 *   expect(probeResult).toReachPod()  / .toGetReply()     the reply came back to the sender
 *   expect(probeResult).toBeObservedOnlyFrom([ips])       observed, with one of these sources
 *   expect(timeline).toFailOverWithin(1000)               longest outage ≤ 1000 ms, traffic resumed
 *   expect(timeline).toHaveNoLeaks(['192.168.1.100'])     no packet observed with another source
 *   expect(timeline).toBeObservedOnlyFrom([ips])          every observed source is one of these
 *
 * Registered by harness/testing/setup.ts (vitest setupFiles). Pure: no lab needed.
 */
import type { ProbeResult } from '../probe/probe.js';
import { sourceCounts, type Outage, type Timeline } from '../probe/timeline.js';
import { summarize } from '../report/failover.js';

interface MatcherResult {
  pass: boolean;
  message: () => string;
  actual?: unknown;
  expected?: unknown;
}

/** The bit of vitest's MatcherState the matchers use. */
interface State {
  isNot: boolean;
}

const MAX_LISTED = 20;

function isProbeResult(v: unknown): v is ProbeResult {
  return typeof v === 'object' && v !== null && 'replyReceived' in v && 'from' in v && 'to' in v && !('packets' in v);
}

function isTimeline(v: unknown): v is Timeline {
  return typeof v === 'object' && v !== null && Array.isArray((v as Timeline).packets) && 'intervalMs' in v;
}

function typeError(matcher: string, wanted: string, got: unknown): never {
  const seen = got === null ? 'null' : Array.isArray(got) ? 'an array' : typeof got;
  throw new TypeError(`${matcher}: expected ${wanted} (from lab.probe / continuousProbe().stop()), got ${seen}`);
}

/** "udp default/client-1 -> 8.8.8.8:7007" */
export function describeFlow(r: Pick<ProbeResult, 'proto' | 'from' | 'to' | 'port'>): string {
  return `${r.proto} ${r.from} -> ${r.to}${r.port ? `:${r.port}` : ''}`;
}

/** Every source the far end saw the probe with (several when its packets left with more than one). */
export function observedSourcesOf(r: ProbeResult): string[] {
  if (r.observedSources && r.observedSources.length > 0) return r.observedSources;
  return r.observedSource ? [r.observedSource] : [];
}

/** What the far end saw and whether the reply came, in one line. */
export function describeObservation(r: ProbeResult): string {
  const several = observedSourcesOf(r).length > 1 ? `, its packets seen from ${observedSourcesOf(r).join(' and ')}` : '';
  const seen = r.observedSource
    ? `${r.observedSource}${r.observedPort ? `:${r.observedPort}` : ''} (evidence: ${r.evidence ?? '?'}, at: ${r.observedBy ?? '?'}${several})`
    : `nothing (no packet arrived${r.observedBy ? ` at ${r.observedBy}` : ''})`;
  const reply = r.replyReceived ? `reply received${r.rttMs !== undefined ? ` in ${r.rttMs} ms` : ''}` : 'reply NOT received';
  return `${seen}; ${reply}${r.error ? ` (error: ${r.error})` : ''}`;
}

function clock(t: number): string {
  return new Date(t).toISOString().slice(11, 23);
}

/** "+1.234 s (12:00:01.234)": relative to the timeline's first packet, and wall clock. */
export function timeOf(t: number, start: number | undefined): string {
  return start === undefined ? clock(t) : `+${((t - start) / 1000).toFixed(3)} s (${clock(t)})`;
}

/** A timeline in words for messages: flow, packet count and interval. */
export function describeTimeline(t: Timeline): string {
  return `${describeFlow(t)} (${t.packets.length} packets every ${t.intervalMs} ms)`;
}

/** An outage in words: seq range, lost count, from/to times and duration. */
export function describeOutage(o: Outage, start: number | undefined, open = false): string {
  return `seq ${o.firstSeq}-${o.lastSeq} (${o.lost} lost) from ${timeOf(o.start, start)} to ${timeOf(o.end, start)}: ${o.durationMs} ms${open ? ', never resumed' : ''}`;
}

function list<T>(items: T[], render: (x: T) => string): string {
  const shown = items
    .slice(0, MAX_LISTED)
    .map((x) => `\n    ${render(x)}`)
    .join('');
  return items.length > MAX_LISTED ? `${shown}\n    ... and ${items.length - MAX_LISTED} more` : shown;
}

function countsText(t: Timeline): string {
  const c = Object.entries(sourceCounts(t));
  return c.length ? c.map(([s, n]) => `${s} x${n}`).join(', ') : 'none';
}

export const egresslabMatchers = {
  /** Passes when the far end observed exactly `ip` as the probe's source. */
  toBeSeenFrom(this: State, received: unknown, ip: string): MatcherResult {
    if (!isProbeResult(received)) typeError('toBeSeenFrom', 'a ProbeResult', received);
    const r = received;
    // a probe whose packets were seen with several sources is not seen from one of them
    const pass = r.observedSource === ip && observedSourcesOf(r).every((s) => s === ip);
    return {
      pass,
      message: () =>
        pass
          ? `expected the far end not to observe ${ip} for ${describeFlow(r)}, but it did: ${describeObservation(r)}`
          : `expected the far end to observe ${ip} for ${describeFlow(r)}, it observed ${describeObservation(r)}`,
      actual: observedSourcesOf(r).length > 1 ? observedSourcesOf(r) : r.observedSource,
      expected: ip,
    };
  },

  /** Passes when the probe's reply came back to the sender. */
  toGetReply(this: State, received: unknown): MatcherResult {
    if (!isProbeResult(received)) typeError('toGetReply', 'a ProbeResult', received);
    return replyResult(received, 'the sender');
  },

  /** Passes when the probe's reply came back to the sending pod (same as toGetReply). */
  toReachPod(this: State, received: unknown): MatcherResult {
    if (!isProbeResult(received)) typeError('toReachPod', 'a ProbeResult', received);
    return replyResult(received, received.from);
  },

  /** Passes when something was observed and only with sources in `ips` (a ProbeResult or a Timeline). */
  toBeObservedOnlyFrom(this: State, received: unknown, ips: readonly string[]): MatcherResult {
    const allowed = [...ips];
    if (isProbeResult(received)) {
      const r = received;
      const sources = observedSourcesOf(r);
      const pass = sources.length > 0 && sources.every((s) => allowed.includes(s));
      return {
        pass,
        message: () =>
          pass
            ? `expected ${describeFlow(r)} not to be observed only from ${allowed.join(', ')}, but it was: ${describeObservation(r)}`
            : `expected ${describeFlow(r)} to be observed only from ${allowed.join(', ')}, it observed ${describeObservation(r)}`,
        actual: sources.length > 1 ? sources : r.observedSource,
        expected: allowed,
      };
    }
    if (!isTimeline(received)) typeError('toBeObservedOnlyFrom', 'a ProbeResult or a Timeline', received);
    const t = received;
    const sources = Object.keys(sourceCounts(t));
    const others = sources.filter((s) => !allowed.includes(s));
    const pass = sources.length > 0 && others.length === 0;
    return {
      pass,
      message: () =>
        pass
          ? `expected ${describeTimeline(t)} not to be observed only from ${allowed.join(', ')}, but it was (sources: ${countsText(t)})`
          : sources.length === 0
            ? `expected ${describeTimeline(t)} to be observed only from ${allowed.join(', ')}, but the far end observed nothing`
            : `expected ${describeTimeline(t)} to be observed only from ${allowed.join(', ')}, it was also observed from ${others.join(', ')} (sources: ${countsText(t)})`,
      actual: sources,
      expected: allowed,
    };
  },

  /** Passes when the traffic resumed before the probe stopped and the longest outage is at most `ms`. */
  toFailOverWithin(this: State, received: unknown, ms: number): MatcherResult {
    if (!isTimeline(received)) typeError('toFailOverWithin', 'a Timeline', received);
    const t = received;
    const r = summarize(t);
    const { outages: o, start, open, longestOutageMs: longest, neverAnswered: none } = r;
    const pass = t.packets.length > 0 && !none && !open && longest <= ms;
    const outagesText = () => (o.length ? `; outages:${list(o, (x) => describeOutage(x, start, x === open))}` : '; no outage');
    return {
      pass,
      message: () => {
        if (pass) return `expected ${describeTimeline(t)} not to fail over within ${ms} ms, but its longest outage was ${longest} ms${outagesText()}`;
        if (t.packets.length === 0) return `expected ${describeTimeline(t)} to fail over within ${ms} ms, but the probe sent no packet`;
        if (none) return `expected ${describeTimeline(t)} to fail over within ${ms} ms, but no packet was ever answered${outagesText()}`;
        if (open) return `expected ${describeTimeline(t)} to fail over within ${ms} ms, but traffic had not resumed when the probe stopped${outagesText()}`;
        return `expected ${describeTimeline(t)} to fail over within ${ms} ms, its longest outage was ${longest} ms${outagesText()}`;
      },
      actual: longest,
      expected: ms,
    };
  },

  /** Passes when no packet (nor unmatched observation) was seen with a source outside `allowedSources`. */
  toHaveNoLeaks(this: State, received: unknown, allowedSources: readonly string[]): MatcherResult {
    if (!isTimeline(received)) typeError('toHaveNoLeaks', 'a Timeline', received);
    const t = received;
    const allowed = [...allowedSources];
    const l = summarize(t, allowed).leaks!;
    const start = t.packets[0]?.t;
    const n = l.count;
    const pass = n === 0;
    const rows = [
      ...l.packets.map(
        (p) =>
          `seq ${p.seq} at ${timeOf(p.t, start)} seen from ${p.observedSources.filter((s) => !allowed.includes(s)).join(', ')}${p.replied ? ' (answered)' : ''}`,
      ),
      ...l.unattributed.map((o) => `unmatched ${o.p} packet at ${timeOf(o.t, start)} seen from ${o.src}${o.sport ? `:${o.sport}` : ''}`),
    ];
    return {
      pass,
      message: () =>
        pass
          ? `expected ${describeTimeline(t)} to leak (a packet observed with a source other than ${allowed.join(', ')}), but none did (sources: ${countsText(t)})`
          : `expected no packet of ${describeTimeline(t)} to be observed with a source other than ${allowed.join(', ')}; ${n} leaked:${list(rows, (x) => x)}\n  sources: ${countsText(t)}`,
      actual: Object.keys(sourceCounts(t)),
      expected: allowed,
    };
  },
};

function replyResult(r: ProbeResult, who: string): MatcherResult {
  const pass = r.replyReceived;
  return {
    pass,
    message: () =>
      pass
        ? `expected the reply of ${describeFlow(r)} not to reach ${who}, but it did; the far end observed ${describeObservation(r)}`
        : `expected the reply of ${describeFlow(r)} to reach ${who}, it did not; the far end observed ${describeObservation(r)}`,
    actual: r.replyReceived,
    expected: true,
  };
}

interface EgresslabMatchers<R = unknown> {
  /** The far end observed exactly this source IP, and no other for the probe's packets (ProbeResult). */
  toBeSeenFrom(ip: string): R;
  /** The reply came back to the sending pod (ProbeResult). */
  toReachPod(): R;
  /** The reply came back to the sender (ProbeResult). */
  toGetReply(): R;
  /** ProbeResult: observed, every source its packets were seen with one of `ips`. Timeline: something observed, and every observed source is one of `ips`. */
  toBeObservedOnlyFrom(ips: readonly string[]): R;
  /** Timeline: traffic resumed, and the longest outage (answered packet to answered packet) is at most `ms`. */
  toFailOverWithin(ms: number): R;
  /** Timeline: no packet (nor unmatched observation) seen with a source outside `allowedSources`. */
  toHaveNoLeaks(allowedSources: readonly string[]): R;
}

declare module 'vitest' {
  // biome-ignore lint/suspicious/noExplicitAny: the declaration merges with vitest's own `Matchers<T = any>`
  interface Matchers<T = any> extends EgresslabMatchers<T> {}
}
