/**
 * The chaos explorer around one schedule (issue 15): run it on a fresh lab; when an invariant
 * broke, write artifacts/chaos/<id>/ — schedule.json, the evidence (the lab's diagnostics collected
 * before teardown: pcaps, timelines with SVGs, API objects, agent logs; evidence.json), report.json
 * and a regression scenario — and shrink the schedule (harness/chaos/shrink.ts) while the same
 * invariant still breaks, each candidate on a fresh lab, within a budget of lab runs, then re-run
 * the shrunk schedule once to confirm it. With a deadline (a time budget, `egresslab chaos --budget`)
 * a shrink or confirming run starts only while the time left is at least the first run's duration.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Lab } from '../lab/lab.js';
import type { Topology } from '../topology/types.js';
import { collectLabDiagnostics } from '../testing/diagnostics.js';
import { artifactsDir } from '../util/paths.js';
import { scheduleToJson, universeOf, type Schedule } from './schedule.js';
import { chaosTopology } from './model.js';
import { shrinkSchedule } from './shrink.js';
import { runSchedule, type ChaosBounds, type ChaosRun } from './executor.js';
import { chaosReport, describeReport, regressionScenario, relativeViolation, scenarioFileName, type ChaosReport, type ShrunkReport } from './report.js';

/** Options of explore. */
export interface ExploreOptions {
  topology: Topology;
  /** how the topology was named on the command line (for the scenario: a fixture name or a path) */
  topologyArg: string;
  keep?: boolean;
  bounds?: Partial<ChaosBounds>;
  /** most lab runs for shrinking and confirming (0: no shrink) */
  shrinkBudget: number;
  /** the command line, for the scenario's header */
  command: string;
  /** the artifacts folder's name (default: seed-<seed>-<time> or schedule-<time>) */
  id?: string;
  /** Receives one line per stage (run, evidence, shrinking), for the CLI's output. */
  progress?: (line: string) => void;
  signal?: AbortSignal;
  /** ms since the epoch: no shrink or confirming run starts unless it can end by then (estimated by the first run's duration) */
  deadline?: number;
  /** the clock the deadline is read against (default Date.now) */
  now?: () => number;
}

/** The report and the run it describes. */
export interface ExploreResult {
  report: ChaosReport;
  run: ChaosRun;
  /** wall time of the schedule's own run (lab up to lab down, evidence included), without its shrink */
  runMs: number;
}

/** A time as it goes into folder names: 20250101T120000Z. */
export function timeStamp(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** A folder name for a schedule's artifacts: seed-42-20250101T120000Z (schedule-... without a seed). */
export function artifactId(schedule: Pick<Schedule, 'seed'>, now: Date): string {
  return `${schedule.seed !== undefined ? `seed-${schedule.seed}` : 'schedule'}-${timeStamp(now)}`;
}

const show = (f: string) => {
  const r = relative(process.cwd(), f);
  return r && !r.startsWith('..') ? r : f;
};

/**
 * A run's evidence.json: what it recorded and judged (the timelines are in the diagnostics folder,
 * the captures' pcap files where `captures` names them). Also what a failing regression replay leaves.
 */
export function evidenceJson(r: ChaosRun): string {
  const { startedAt, settledAt, convergedAt, bounds, flows, actions, violations, evidence, captures } = r;
  return `${JSON.stringify({ startedAt, settledAt, convergedAt: convergedAt ?? null, bounds, flows, actions, violations, evidence, captures }, null, 1)}\n`;
}

/** Runs `schedule`, and on a violation writes its artifacts and shrinks it (see the file's header). */
export async function explore(schedule: Schedule, o: ExploreOptions): Promise<ExploreResult> {
  const progress = o.progress ?? (() => {});
  const id = o.id ?? artifactId(schedule, new Date());
  const dir = join(artifactsDir(), 'chaos', id);
  const files: string[] = [];
  const write = (name: string, text: string) => {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
    files.push(show(join(dir, name)));
  };
  const collect = async (lab: Lab, r: ChaosRun) => {
    if (!r.violations.length) return;
    progress(`${r.violations.length} violation(s): collecting the evidence into ${show(dir)}`);
    const failure = r.violations.map((v) => JSON.stringify(relativeViolation(v, r.startedAt))).join('\n');
    const d = await collectLabDiagnostics(lab, join(dir, 'evidence'), {
      since: r.startedAt - 60_000,
      timelines: r.timelines.map((t) => ({ name: t.name, timeline: t.timeline, allowedSources: t.allowedSources })),
      failure,
    });
    files.push(show(d.dir));
    write('evidence/evidence.json', evidenceJson(r));
  };
  const now = o.now ?? Date.now;
  const t0 = now();
  const run = await runSchedule(schedule, {
    topology: o.topology,
    ...(o.keep ? { keep: true } : {}),
    ...(o.bounds ? { bounds: o.bounds } : {}),
    progress,
    ...(o.signal ? { signal: o.signal } : {}),
    beforeDown: collect,
  });
  const runMs = now() - t0;
  if (!run.violations.length) return { report: chaosReport(run), run, runMs };

  write('schedule.json', scheduleToJson(schedule));
  const target = run.violations[0]!.invariant;
  let shrunk: ShrunkReport | null = null;
  let replayed: Schedule = schedule;
  let violation = relativeViolation(run.violations[0]!, run.startedAt);
  if (o.shrinkBudget > 0) {
    const u = universeOf(chaosTopology(o.topology));
    let n = 0;
    /** no more runs: aborted, or the time left is less than a run takes (said once) */
    let said = false;
    const outOfTime = (): boolean => {
      if (o.signal?.aborted) return true;
      if (o.deadline === undefined || o.deadline - now() >= runMs) return false;
      if (!said)
        progress(
          `time budget: ${Math.max(0, Math.round((o.deadline - now()) / 1000))} s left, less than a run takes (${Math.round(runMs / 1000)} s): no more shrink runs`,
        );
      said = true;
      return true;
    };
    const attempt = async (candidate: Schedule): Promise<ChaosRun | undefined> => {
      n++;
      progress(`shrink run ${n}: ${candidate.steps.length} step(s)`);
      try {
        return await runSchedule(candidate, { topology: o.topology, ...(o.bounds ? { bounds: o.bounds } : {}), ...(o.signal ? { signal: o.signal } : {}) });
      } catch (e) {
        progress(`shrink run ${n} could not run: ${e instanceof Error ? e.message : String(e)}`);
        return undefined;
      }
    };
    // the last run of the budget confirms the result
    const r = await shrinkSchedule(schedule, u, async (c) => !!(await attempt(c))?.violations.some((v) => v.invariant === target), {
      maxRuns: o.shrinkBudget - 1,
      stop: outOfTime,
    });
    let confirmed: boolean | null = null;
    if (!outOfTime()) {
      const again = await attempt(r.schedule);
      const hit = again?.violations.find((v) => v.invariant === target);
      confirmed = !!hit;
      if (hit && again) violation = relativeViolation(hit, again.startedAt);
    }
    shrunk = { invariant: target, steps: r.schedule.steps, stepsBefore: r.stepsBefore, stepsAfter: r.stepsAfter, runs: n, exhausted: r.exhausted, confirmed };
    if (confirmed) {
      replayed = r.schedule;
      write('schedule.shrunk.json', scheduleToJson(r.schedule));
    }
  }
  const bounds = run.bounds;
  write(scenarioFileName(id), regressionScenario({ id, schedule: replayed, violation, topologyArg: o.topologyArg, bounds, command: o.command }));
  const report = chaosReport(run, shrunk, files);
  write('report.json', `${JSON.stringify(report, null, 1)}\n`);
  write('report.txt', `${describeReport(report).join('\n')}\n`);
  return { report: { ...report, files }, run, runMs };
}
