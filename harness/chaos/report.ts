/**
 * What the chaos explorer reports (issue 15), pure: the JSON `egresslab chaos --json` and `replay
 * --json` print ({seed, steps, violations: [{invariant, at, evidence}], shrunk, files} and the
 * run's figures), its text form, and the vitest scenario that replays a failing schedule and asserts
 * the invariant it broke (written next to the evidence, ready for scenarios/regressions/).
 *
 * Times in the report are ms after the schedule's start (the executor's time 0), so they read
 * against the schedule's own `at`s; the evidence's time fields (`until`, `from`, `sentAt`,
 * `answeredAt`, `replyLeftEdgeAt`) likewise.
 */
import { summarize } from '../report/failover.js';
import { describeStep, type Schedule, type Step } from './schedule.js';
import { conntrackKeeps, type InvariantName, type Violation } from './invariants.js';
import type { ChaosBounds, ChaosRun } from './executor.js';

/** A shrink's outcome in the report. */
export interface ShrunkReport {
  /** the invariant the shrink kept breaking */
  invariant: InvariantName;
  steps: Step[];
  stepsBefore: number;
  stepsAfter: number;
  /** lab runs the shrink made (each a fresh lab) */
  runs: number;
  /** the budget ran out before no smaller failing schedule was found */
  exhausted: boolean;
  /** a final re-run of the shrunk schedule broke the invariant again (null: no budget left to check) */
  confirmed: boolean | null;
}

/** Per flow: what its timeline shows (times relative to the schedule's start). */
export interface FlowReport {
  flow: string;
  node: string;
  packets: number;
  answered: number;
  /** probe segments (a new one after its node booted again) */
  segments: number;
  /** runs of unanswered packets: first and last lost packet's send time, how many */
  outages: { from: number; to: number; lost: number }[];
  /** spans with no packet sent at all (the probe was down with its node) */
  gaps: { from: number; to: number }[];
  /**
   * established bindings that kept a source no window allowed any more, across a change that keeps
   * them (an ip-masq-agent ConfigMap change: conntrack keeps the SNAT a flow started with): the
   * post-NAT source and port, the binding's first packet, the change, the packets kept and the last
   */
  kept?: { src: string; sport: number | null; since: number; change: number; packets: number; until: number }[];
}

/** The report of one schedule's run (and its shrink). */
export interface ChaosReport {
  seed: number | null;
  topology: string;
  lab: string;
  steps: Step[];
  violations: Violation[];
  shrunk: ShrunkReport | null;
  files: string[];
  /** each action as it ran: due and actual times, what it did when that depended on the lab */
  actions: { step: number; phase: 'do' | 'undo'; dueAt: number; startedAt: number; endedAt: number; note?: string; noEffect?: true }[];
  flows: FlowReport[];
  /** the last undo (settled) and convergence, relative; convergedAt null: not within the bound */
  settledAt: number;
  convergedAt: number | null;
  bounds: ChaosBounds;
  timing: ChaosRun['timing'];
}

const TIME_KEYS = new Set(['until', 'from', 'sentAt', 'answeredAt', 'replyLeftEdgeAt']);
const rel = (t: number, start: number) => Math.round(t - start);

/** A violation with its times relative to the schedule's start. */
export function relativeViolation(v: Violation, start: number): Violation {
  const evidence = Object.fromEntries(Object.entries(v.evidence).map(([k, x]) => [k, TIME_KEYS.has(k) && typeof x === 'number' ? rel(x, start) : x]));
  return { invariant: v.invariant, at: rel(v.at, start), evidence };
}

/** A gap in a timeline: consecutive packets sent more than `factor` intervals apart. */
function gaps(packets: readonly { t: number }[], intervalMs: number, start: number): { from: number; to: number }[] {
  const out: { from: number; to: number }[] = [];
  const sorted = [...packets].sort((a, b) => a.t - b.t);
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i]!.t - sorted[i - 1]!.t > 5 * intervalMs) out.push({ from: rel(sorted[i - 1]!.t, start), to: rel(sorted[i]!.t, start) });
  return out;
}

/** The report of a run (and its shrink, and the files written). */
export function chaosReport(run: ChaosRun, shrunk: ShrunkReport | null = null, files: string[] = []): ChaosReport {
  const start = run.startedAt;
  const nodeOf = new Map(run.flows.map((f) => [f.name, f.node]));
  const keeps = conntrackKeeps(run.evidence.edgePackets, run.evidence.allowed, run.evidence.conntrack ?? [], run.evidence.podSent);
  const kept = new Map<string, NonNullable<FlowReport['kept']>[number][]>();
  for (const p of [...run.evidence.edgePackets].sort((a, b) => a.t - b.t)) {
    const k = keeps(p);
    if (!k) continue;
    const list = kept.get(p.flow) ?? [];
    const same = list.find((b) => b.src === p.src && b.sport === (p.sport ?? null) && b.since === rel(k.since, start));
    if (same) {
      same.packets++;
      same.until = rel(p.t, start);
    } else list.push({ src: p.src, sport: p.sport ?? null, since: rel(k.since, start), change: rel(k.change, start), packets: 1, until: rel(p.t, start) });
    kept.set(p.flow, list);
  }
  return {
    seed: run.schedule.seed ?? null,
    topology: run.schedule.topology,
    lab: run.labId,
    steps: run.schedule.steps,
    violations: run.violations.map((v) => relativeViolation(v, start)),
    shrunk,
    files,
    actions: run.actions.map((a) => ({
      step: a.step,
      phase: a.phase,
      dueAt: a.dueAt,
      startedAt: rel(a.startedAt, start),
      endedAt: rel(a.endedAt, start),
      ...(a.note ? { note: a.note } : {}),
      ...(a.noEffect ? { noEffect: a.noEffect } : {}),
    })),
    flows: run.timelines.map(({ name, timeline }) => {
      const r = summarize(timeline);
      const segs = (timeline as { segments?: unknown[] }).segments?.length ?? 1;
      return {
        flow: name,
        node: nodeOf.get(name) ?? '?',
        packets: r.packets,
        answered: r.answered,
        segments: segs,
        outages: r.outages.map((o) => ({ from: rel(o.start, start), to: rel(o.end, start), lost: o.lost })),
        gaps: gaps(timeline.packets, timeline.intervalMs, start),
        ...(kept.has(name) ? { kept: kept.get(name)! } : {}),
      };
    }),
    settledAt: rel(run.settledAt, start),
    convergedAt: run.convergedAt === undefined ? null : rel(run.convergedAt, start),
    bounds: run.bounds,
    timing: run.timing,
  };
}

const secs = (ms: number) => `${ms < 0 ? '-' : '+'}${(Math.abs(ms) / 1000).toFixed(3)} s`;

/** The report in words: the verdict, each violation, the shrink, the files, the figures. */
export function describeReport(r: ChaosReport): string[] {
  const lines = [
    `seed ${r.seed ?? '(none)'}, topology ${r.topology}, lab ${r.lab}: ${r.steps.length} step(s) ran; settled at ${secs(r.settledAt)}, ${r.convergedAt === null ? `NOT converged within ${r.bounds.boundMs} ms` : `converged at ${secs(r.convergedAt)}`}`,
    r.violations.length ? `${r.violations.length} violation(s):` : 'no invariant broke',
    ...r.violations.map((v) => `  ${v.invariant} at ${secs(v.at)}: ${JSON.stringify(v.evidence)}`),
  ];
  if (r.shrunk) {
    const s = r.shrunk;
    lines.push(
      `shrunk (${s.invariant}): ${s.stepsBefore} -> ${s.stepsAfter} step(s) in ${s.runs} run(s)${s.exhausted ? ' (budget exhausted)' : ''}; ${s.confirmed === null ? 'not re-run to confirm (no budget left)' : s.confirmed ? 'confirmed by a re-run' : 'NOT confirmed by a re-run (flaky?)'}`,
      ...s.steps.map((x) => `  ${describeStep(x)}`),
    );
  }
  if (r.files.length) lines.push('files:', ...r.files.map((f) => `  ${f}`));
  const t = r.timing;
  lines.push(
    `lab up ${t.labUpMs} ms, observers ${t.setupMs} ms, schedule ${t.scheduleMs} ms, convergence + tail ${t.observeMs} ms, evidence ${t.collectMs} ms; total ${t.totalMs} ms`,
  );
  return lines;
}

/** Options of the regression scenario text. */
export interface ScenarioOptions {
  /** the artifacts folder's name, e.g. seed-42-20250101T120000 */
  id: string;
  schedule: Schedule;
  /** the violation it reproduces (times relative) */
  violation: Violation;
  /** the topology argument runSchedule gets (a fixture name or a path relative to the project) */
  topologyArg: string;
  /** the bounds the run was judged by (the scenario uses the same) */
  bounds: ChaosBounds;
  /** the command that found it */
  command: string;
}

/** A file name for the scenario: chaos-<id>.test.ts. */
export function scenarioFileName(id: string): string {
  return `chaos-${id.replace(/[^A-Za-z0-9-]+/g, '-')}.test.ts`;
}

/**
 * A vitest scenario (for scenarios/regressions/) that replays `schedule` on a fresh lab with the
 * same bounds and asserts that the invariant it broke holds: it fails while the bug is there.
 */
export function regressionScenario(o: ScenarioOptions): string {
  const json = JSON.stringify(o.schedule, null, 2);
  const evidence = JSON.stringify(o.violation.evidence).replace(/\*\//g, '*\\/');
  return `/**
 * Chaos regression ${o.id}: invariant ${o.violation.invariant} broke ${secs(o.violation.at)} into this schedule.
 * Found by: ${o.command.replace(/\*\//g, '*\\/')}
 * Evidence of the run that found it: artifacts/chaos/${o.id}/ (schedule.json, report.json, evidence/).
 * The violation: ${evidence}
 *
 * Replays the schedule on a fresh lab (harness/chaos/executor.ts) with the same bounds and asserts
 * that ${o.violation.invariant} holds: this file fails until the bug is fixed. Steps:
${o.schedule.steps.map((s) => ` *   ${describeStep(s).replace(/\*\//g, '*\\/')}`).join('\n')}
 */
import { describe, expect, it } from 'vitest';
import { runSchedule } from '../../harness/chaos/executor.js';
import { parseSchedule } from '../../harness/chaos/schedule.js';
import { topologyFromArg } from '../../harness/topology/load.js';

const schedule = parseSchedule(${json.split('\n').join('\n')});

describe(${JSON.stringify(`chaos regression ${o.id}`)}, () => {
  it(${JSON.stringify(`${o.violation.invariant} holds through the schedule`)}, async () => {
    const run = await runSchedule(schedule, { topology: topologyFromArg(${JSON.stringify(o.topologyArg)}), bounds: ${JSON.stringify(o.bounds)} });
    expect(run.actions.filter((a) => a.error)).toEqual([]);
    expect(run.violations.filter((v) => v.invariant === ${JSON.stringify(o.violation.invariant)})).toEqual([]);
  }, 900_000);
});
`;
}
