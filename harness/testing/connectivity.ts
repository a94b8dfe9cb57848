/**
 * A connectivity matrix checker in the manner of Calico felix FV's ConnectivityChecker
 * (ExpectSNAT / ExpectSome / ExpectNone, then CheckConnectivity): a scenario lists what it expects
 * of each (from, to) pair, the checker sends every probe at once and fails with the whole matrix —
 * expected and observed side by side — instead of at the first pair that differs.
 *
 * @example
 * ```ts
 * const cc = new ConnectivityChecker(lab);
 * cc.expectSNAT('alice/frontend-1', '8.8.8.8', '192.168.1.100');
 * cc.expectSNAT('paul/backend-1', '8.8.8.8', lab.nodeAddress('paul/backend-1'), { proto: 'udp' });
 * cc.expectNone('default/client-1', '192.168.1.99');
 * await cc.checkConnectivity();
 * ```
 */
import type { ProbeOptions, ProbeResult } from '../probe/probe.js';

/** What one pair must show: answered with exactly this source, answered at all, or nothing at all. */
export type Expected = { snat: string } | 'some' | 'none';

/** One expectation of the matrix. */
export interface Expectation {
  from: string;
  to: string;
  options: ProbeOptions;
  expected: Expected;
}

/** One checked pair: what was expected, what the probe found, and whether they agree. */
export interface CheckedPair extends Expectation {
  result: ProbeResult;
  /** in words: "192.168.1.100 (reply)", "no reply, seen from 10.10.10.2", "nothing" */
  observed: string;
  ok: boolean;
}

/** Who sends the probes: a Lab (or anything with its probe method). */
export interface Prober {
  /** one probe (Lab.probe) */
  probe(from: string, to: string, options?: ProbeOptions): Promise<ProbeResult>;
}

function expectedText(e: Expected): string {
  return e === 'some' ? 'answered' : e === 'none' ? 'nothing' : `answered, seen from ${e.snat} only`;
}

/** What a probe found, in words. */
export function observedText(r: ProbeResult): string {
  const sources = r.observedSources ?? (r.observedSource ? [r.observedSource] : []);
  const seen = sources.length ? `seen from ${sources.join(' and ')}${r.evidence ? ` (${r.evidence})` : ''}` : 'seen nowhere';
  if (r.replyReceived) return `answered, ${seen}`;
  return sources.length ? `no reply, ${seen}` : `nothing${r.error ? ` (${r.error})` : ''}`;
}

/** Whether a probe result meets an expectation. SNAT: answered, and every source the far end saw is the one expected. */
export function meets(r: ProbeResult, e: Expected): boolean {
  if (e === 'some') return r.replyReceived;
  if (e === 'none') return !r.replyReceived && r.observedSource === undefined;
  const sources = r.observedSources ?? (r.observedSource ? [r.observedSource] : []);
  return r.replyReceived && sources.length > 0 && sources.every((s) => s === e.snat);
}

/** Collects expectations of (from, to) pairs, then checks them all at once (see the file comment). */
export class ConnectivityChecker {
  readonly expectations: Expectation[] = [];

  constructor(private readonly prober: Prober) {}

  /** `from` reaches `to`, and the far end sees it come from `source` (and nothing else). */
  expectSNAT(from: string, to: string, source: string, options: ProbeOptions = {}): this {
    this.expectations.push({ from, to, options, expected: { snat: source } });
    return this;
  }

  /** `from` reaches `to` (answered), whatever the source. */
  expectSome(from: string, to: string, options: ProbeOptions = {}): this {
    this.expectations.push({ from, to, options, expected: 'some' });
    return this;
  }

  /** Nothing from `from` reaches `to`: no reply, and the far end saw nothing. */
  expectNone(from: string, to: string, options: ProbeOptions = {}): this {
    this.expectations.push({ from, to, options, expected: 'none' });
    return this;
  }

  /** Sends every probe (at once) and returns each pair checked. */
  async check(): Promise<CheckedPair[]> {
    const results = await Promise.all(this.expectations.map((e) => this.prober.probe(e.from, e.to, e.options)));
    return this.expectations.map((e, i) => {
      const result = results[i]!;
      return { ...e, result, observed: observedText(result), ok: meets(result, e.expected) };
    });
  }

  /** Sends every probe and throws, with the whole matrix, when any pair differs from its expectation. */
  async checkConnectivity(context = 'connectivity'): Promise<CheckedPair[]> {
    const pairs = await this.check();
    if (pairs.some((p) => !p.ok)) throw new Error(`${context}: ${pairs.filter((p) => !p.ok).length} of ${pairs.length} pairs differ\n${matrixText(pairs)}`);
    return pairs;
  }
}

/** The matrix as text, one line per pair: mark, pair, expected, observed. */
export function matrixText(pairs: readonly CheckedPair[]): string {
  return pairs
    .map(
      (p) =>
        `  ${p.ok ? 'ok  ' : 'FAIL'} ${p.options.proto ?? 'tcp'} ${p.from} -> ${p.to}${p.options.port ? `:${p.options.port}` : ''}: expected ${expectedText(p.expected)}; ${p.observed}`,
    )
    .join('\n');
}
