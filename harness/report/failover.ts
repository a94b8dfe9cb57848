/**
 * The failover report: the one place the facts a failover is judged by are computed from a
 * timeline — the outages and the longest one, whether traffic resumed, what was answered, the
 * sources the far end saw and, given the allowed sources, the leaks. Matchers, the CLI's
 * `timeline`, the demo, the benchmarks, scenarios and the SVG read it instead of recomputing. Pure.
 */
import { deliveryRatio, leaks, outages, sourceCounts, type Outage, type Timeline, type TimelinePacket } from '../probe/timeline.js';
import type { Observation } from '../inlab/protocol.js';

/** Packets (and unmatched observations) seen with a source outside the allowed ones. */
export interface LeakReport {
  /** every leaked packet plus every unmatched observation with a forbidden source */
  count: number;
  packets: TimelinePacket[];
  unattributed: Observation[];
}

/** What a timeline says about a failover (see summarize). */
export interface FailoverReport {
  packets: number;
  answered: number;
  /** share of packets answered (0 for an empty timeline) */
  deliveryRatio: number;
  /** send time of the first packet */
  start?: number;
  outages: Outage[];
  /** the longest outage (the first of equals); undefined when nothing was lost */
  longest?: Outage;
  /** its duration, 0 without an outage */
  longestOutageMs: number;
  /** packets lost in the longest outage, 0 without one */
  longestLost: number;
  /** the outage still running when the probe stopped (the last packet was not answered) */
  open?: Outage;
  /** no packet was ever answered */
  neverAnswered: boolean;
  /** packets per source the far end saw (a packet seen with two sources counts for both) */
  sources: Record<string, number>;
  /** the sources that are not leaks, as given */
  allowed?: readonly string[];
  /** with `allowed` only: what was seen with any other source */
  leaks?: LeakReport;
}

/**
 * Summarizes a timeline; with `allowed`, its leaks too.
 *
 * @example
 * ```ts
 * const r = summarize(await probe.stop(), ['192.168.1.100']);
 * console.log(`longest outage ${r.longestOutageMs} ms (${r.longestLost} lost), leaked ${r.leaks!.count}`);
 * ```
 */
export function summarize(t: Timeline, allowed?: readonly string[]): FailoverReport {
  const o = outages(t);
  let longest: Outage | undefined;
  for (const x of o) if (!longest || x.durationMs > longest.durationMs) longest = x;
  const last = t.packets[t.packets.length - 1];
  const open = last !== undefined && !last.replied ? o[o.length - 1] : undefined;
  const answered = t.packets.filter((p) => p.replied).length;
  const r: FailoverReport = {
    packets: t.packets.length,
    answered,
    deliveryRatio: deliveryRatio(t),
    outages: o,
    longestOutageMs: longest?.durationMs ?? 0,
    longestLost: longest?.lost ?? 0,
    neverAnswered: answered === 0,
    sources: sourceCounts(t),
  };
  if (t.packets[0]) r.start = t.packets[0].t;
  if (longest) r.longest = longest;
  if (open) r.open = open;
  if (allowed) {
    const l = leaks(t, allowed);
    r.allowed = allowed;
    r.leaks = { count: l.packets.length + l.unattributed.length, packets: l.packets, unattributed: l.unattributed };
  }
  return r;
}

/** One line: "N packets, longest outage X ms (outages: a lost/b ms, ...), sources {...}[, leaked N]". */
export function describeFailover(r: FailoverReport): string {
  const outagesText = r.outages.map((x) => `${x.lost} lost/${x.durationMs} ms`).join(', ') || 'none';
  return `${r.packets} packets, longest outage ${r.longestOutageMs} ms (${outagesText}), sources ${JSON.stringify(r.sources)}${r.leaks ? `, leaked ${r.leaks.count}` : ''}`;
}
