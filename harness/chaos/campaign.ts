/**
 * Many chaos schedules in a row (issue 15: `egresslab chaos --runs N --budget D`, the chaos bench):
 * seeds base, base + 1, ... (32-bit, wrapping), one run each until the runs or the time budget run
 * out, an abort, or the lab failing several times in a row; then a summary — runs done, seeds,
 * violations per invariant, files written, each run's report. Pure apart from the `runOne` callback
 * (in the CLI: draw the seed's schedule and explore it on a fresh lab) and the clock it is given.
 *
 * The budget: the first run always starts; a later one starts only while the time left is at least
 * the last run's duration (its lab run, without its shrink: a shrink happens only on a violation, and
 * explore() gates each of its runs by the same deadline). A run that has started is finished.
 */
import { nsToMs, parseGoDuration } from '../../agent/masq/duration.js';
import type { FieldIssue } from '../util/errors.js';
import { INVARIANT_NAMES, type InvariantName } from './invariants.js';
import type { ChaosReport } from './report.js';
import { STEP_VARIANTS, stepVariant } from './schedule.js';

/** What runOne returns: the run's report and how long its own lab run took (ms, without a shrink). */
export interface OneRun {
  report: ChaosReport;
  runMs: number;
}

/** Options of runCampaign. */
export interface CampaignOptions {
  baseSeed: number;
  /** most runs (absent: until the budget runs out) */
  runs?: number;
  /** time budget, ms (absent: until the runs are done) */
  budgetMs?: number;
  /** runs one seed; `deadline` (ms on `now`'s clock) is when the budget ends, absent without one */
  runOne: (seed: number, index: number, deadline: number | undefined) => Promise<OneRun>;
  /** the clock (default Date.now) */
  now?: () => number;
  progress?: (line: string) => void;
  signal?: AbortSignal;
  /** the campaign stops after this many runs in a row that failed to run (default 3: the lab or the engine is broken) */
  maxConsecutiveErrors?: number;
}

/** One seed's run: its report, or the error that kept it from running; its wall time (ms, shrink included). */
export interface CampaignRun {
  seed: number;
  ms: number;
  /** the lab run alone, without a shrink (the estimate of the next run) */
  runMs?: number;
  report?: ChaosReport;
  error?: string;
}

/** Why the campaign stopped. */
export type StopReason = 'runs' | 'budget' | 'signal' | 'errors';

/** The campaign's summary (`egresslab chaos --runs/--budget --json` prints it). */
export interface CampaignSummary {
  baseSeed: number;
  /** --runs and --budget as given (null: not given) */
  runsRequested: number | null;
  budgetMs: number | null;
  runsDone: number;
  seeds: number[];
  elapsedMs: number;
  stopped: { reason: StopReason; message: string };
  /** per invariant: violations found, and the seeds whose run broke it */
  violations: Record<InvariantName, { count: number; seeds: number[] }>;
  /** seeds whose run could not run (the lab failed) */
  errors: { seed: number; error: string }[];
  /** every file the runs wrote (artifacts of each violation) */
  files: string[];
  runs: CampaignRun[];
}

/** A --budget value as ms: a Go-style duration (15m, 90s, 1h30m) from 1 s to 7 days; undefined when absent. */
export function budgetMs(value: string | undefined, issues: FieldIssue[]): number | undefined {
  if (value === undefined) return undefined;
  const d = parseGoDuration(value.trim());
  if (!d.ok) {
    issues.push({ path: '--budget', value, message: `must be a duration such as 15m, 90s or 1h30m (${d.message})` });
    return undefined;
  }
  const ms = nsToMs(d.ns);
  if (ms < 1000 || ms > 7 * 24 * 3_600_000) {
    issues.push({ path: '--budget', value, message: 'must be from 1s to 168h' });
    return undefined;
  }
  return Math.round(ms);
}

/** The i-th seed from `base`: base + i as a signed 32-bit whole number (fast-check's seed range). */
export function seedAt(base: number, i: number): number {
  return ((((base + i) % 2 ** 32) + 2 ** 32 + 2 ** 31) % 2 ** 32) - 2 ** 31;
}

/** Where the campaign stands before a run. */
export interface CampaignState {
  /** runs done so far */
  done: number;
  runs?: number;
  budgetMs?: number;
  elapsedMs: number;
  /** the last run's duration (its lab run when it ran, else its wall time) */
  lastMs?: number;
  aborted: boolean;
  consecutiveErrors: number;
  maxConsecutiveErrors: number;
}

const s = (ms: number) => `${Math.round(ms / 1000)} s`;

/** Whether to start another run, and if not why (in words). */
export function nextRun(c: CampaignState): { go: true } | { go: false; reason: StopReason; message: string } {
  if (c.aborted) return { go: false, reason: 'signal', message: `interrupted after ${c.done} run(s)` };
  if (c.consecutiveErrors >= c.maxConsecutiveErrors)
    return { go: false, reason: 'errors', message: `the last ${c.consecutiveErrors} runs could not run (see their errors): stopped` };
  if (c.runs !== undefined && c.done >= c.runs) return { go: false, reason: 'runs', message: `${c.done} run(s) done, as asked` };
  if (c.budgetMs !== undefined) {
    const left = c.budgetMs - c.elapsedMs;
    if (left <= 0)
      return { go: false, reason: 'budget', message: `the budget of ${s(c.budgetMs)} is spent (${s(c.elapsedMs)} elapsed) after ${c.done} run(s)` };
    if (c.done > 0 && c.lastMs !== undefined && left < c.lastMs)
      return {
        go: false,
        reason: 'budget',
        message: `${s(left)} of the budget of ${s(c.budgetMs)} left, less than the last run took (${s(c.lastMs)}): no run started after ${c.done} run(s)`,
      };
  }
  return { go: true };
}

/** Runs seeds until nextRun says stop (see the file's header); never throws for a run that failed. */
export async function runCampaign(o: CampaignOptions): Promise<CampaignSummary> {
  const now = o.now ?? Date.now;
  const progress = o.progress ?? (() => {});
  const t0 = now();
  const deadline = o.budgetMs !== undefined ? t0 + o.budgetMs : undefined;
  const runs: CampaignRun[] = [];
  let consecutiveErrors = 0;
  let lastMs: number | undefined;
  for (;;) {
    const d = nextRun({
      done: runs.length,
      ...(o.runs !== undefined ? { runs: o.runs } : {}),
      ...(o.budgetMs !== undefined ? { budgetMs: o.budgetMs } : {}),
      elapsedMs: now() - t0,
      ...(lastMs !== undefined ? { lastMs } : {}),
      aborted: o.signal?.aborted ?? false,
      consecutiveErrors,
      maxConsecutiveErrors: o.maxConsecutiveErrors ?? 3,
    });
    if (!d.go) {
      progress(`stopped: ${d.message}`);
      return summarize(o, runs, now() - t0, { reason: d.reason, message: d.message });
    }
    const seed = seedAt(o.baseSeed, runs.length);
    progress(
      `run ${runs.length + 1}${o.runs !== undefined ? `/${o.runs}` : ''}: seed ${seed}${deadline !== undefined ? ` (${s(deadline - now())} of the budget left)` : ''}`,
    );
    const t = now();
    try {
      const r = await o.runOne(seed, runs.length, deadline);
      const ms = now() - t;
      runs.push({ seed, ms, runMs: r.runMs, report: r.report });
      lastMs = r.runMs;
      consecutiveErrors = 0;
      const v = r.report.violations;
      progress(
        `run ${runs.length}: seed ${seed}: ${v.length ? `${v.length} violation(s) (${[...new Set(v.map((x) => x.invariant))].join(', ')})` : 'no invariant broke'} in ${s(ms)}`,
      );
    } catch (e) {
      const ms = now() - t;
      const interrupted = o.signal?.aborted ?? false;
      const error = `${interrupted ? 'interrupted: ' : ''}${e instanceof Error ? e.message : String(e)}`;
      runs.push({ seed, ms, error });
      lastMs = ms;
      consecutiveErrors++;
      progress(`run ${runs.length}: seed ${seed} ${interrupted ? 'interrupted' : 'could not run'} (${s(ms)}): ${error}`);
    }
  }
}

function summarize(o: CampaignOptions, runs: CampaignRun[], elapsedMs: number, stopped: CampaignSummary['stopped']): CampaignSummary {
  const violations = Object.fromEntries(INVARIANT_NAMES.map((n) => [n, { count: 0, seeds: [] as number[] }])) as CampaignSummary['violations'];
  for (const r of runs) {
    for (const v of r.report?.violations ?? []) {
      const x = violations[v.invariant];
      x.count++;
      if (!x.seeds.includes(r.seed)) x.seeds.push(r.seed);
    }
  }
  return {
    baseSeed: o.baseSeed,
    runsRequested: o.runs ?? null,
    budgetMs: o.budgetMs ?? null,
    runsDone: runs.length,
    seeds: runs.map((r) => r.seed),
    elapsedMs,
    stopped,
    violations,
    errors: runs.flatMap((r) => (r.error !== undefined ? [{ seed: r.seed, error: r.error }] : [])),
    files: runs.flatMap((r) => r.report?.files ?? []),
    runs,
  };
}

/** The exit code of a campaign: 0 only when every run ran and no invariant broke; 130 interrupted; else 1. */
export function campaignExitCode(c: CampaignSummary): number {
  if (c.stopped.reason === 'signal') return 130;
  return c.errors.length || INVARIANT_NAMES.some((n) => c.violations[n].count > 0) ? 1 : 0;
}

/** The shrink ratio of the runs that shrank: steps before and after, summed over them (null: none shrank). */
export function shrinkRatio(c: Pick<CampaignSummary, 'runs'>): { shrunk: number; stepsBefore: number; stepsAfter: number; confirmed: number } | null {
  const xs = c.runs.flatMap((r) => (r.report?.shrunk ? [r.report.shrunk] : []));
  if (!xs.length) return null;
  return {
    shrunk: xs.length,
    stepsBefore: xs.reduce((a, x) => a + x.stepsBefore, 0),
    stepsAfter: xs.reduce((a, x) => a + x.stepsAfter, 0),
    confirmed: xs.filter((x) => x.confirmed).length,
  };
}

/** One variant of step over a campaign's runs (stepCoverage). */
export interface StepCoverage {
  /** a STEP_VARIANTS entry */
  variant: string;
  /** steps of this variant in the schedules that ran (every step of a run that reported was carried out) */
  done: number;
  /** of those, the steps that changed nothing in their lab (ExecutedAction.noEffect: e.g. a black hole towards a node that is the holder itself) */
  noEffect: number;
}

/**
 * Which faults and churn a campaign exercised: per variant of step (every variant the generator can
 * draw, those never carried out with 0), the steps carried out in the runs that reported and how many of
 * them changed nothing. A run that could not run (CampaignRun.error) counts for nothing.
 */
export function stepCoverage(runs: readonly Pick<CampaignRun, 'report'>[]): StepCoverage[] {
  const by = new Map<string, StepCoverage>(STEP_VARIANTS.map((v) => [v, { variant: v, done: 0, noEffect: 0 }]));
  for (const r of runs) {
    if (!r.report) continue;
    const noEffect = new Set(r.report.actions.filter((a) => a.phase === 'do' && a.noEffect).map((a) => a.step));
    r.report.steps.forEach((step, i) => {
      const v = stepVariant(step);
      const row = by.get(v) ?? { variant: v, done: 0, noEffect: 0 };
      by.set(v, row);
      row.done++;
      if (noEffect.has(i)) row.noEffect++;
    });
  }
  return [...by.values()];
}

/** stepCoverage in one line: "node-kill 12, partition both 3 (1 without effect), ..., never carried out: X, Y". */
export function describeCoverage(rows: readonly StepCoverage[]): string {
  const drawn = rows.filter((r) => r.done > 0).map((r) => `${r.variant} ${r.done}${r.noEffect ? ` (${r.noEffect} without effect)` : ''}`);
  const never = rows.filter((r) => r.done === 0).map((r) => r.variant);
  return [drawn.join(', ') || '(no step ran)', ...(never.length ? [`never carried out: ${never.join(', ')}`] : [])].join('; ');
}

/** The summary in words; `replay` gives the command that runs one seed again (listed for each seed that broke one). */
export function describeSummary(c: CampaignSummary, replay?: (seed: number) => string): string[] {
  const broke = INVARIANT_NAMES.filter((n) => c.violations[n].count > 0);
  const lines = [
    `chaos: ${c.runsDone} run(s) in ${s(c.elapsedMs)} from base seed ${c.baseSeed}${c.runsRequested !== null ? `, --runs ${c.runsRequested}` : ''}${c.budgetMs !== null ? `, --budget ${s(c.budgetMs)}` : ''}; stopped: ${c.stopped.message}`,
    `seeds: ${c.seeds.join(', ') || '(none)'}`,
    `violations per invariant: ${INVARIANT_NAMES.map((n) => `${n} ${c.violations[n].count}${c.violations[n].seeds.length ? ` (seeds ${c.violations[n].seeds.join(', ')})` : ''}`).join(', ')}`,
    broke.length ? `broken: ${broke.join(', ')}` : c.errors.length ? 'no invariant broke in the runs that ran' : 'no invariant broke',
  ];
  if (replay) for (const seed of [...new Set(broke.flatMap((n) => c.violations[n].seeds))]) lines.push(`  seed ${seed} again: ${replay(seed)}`);
  for (const e of c.errors) lines.push(`seed ${e.seed} ${e.error.startsWith('interrupted: ') ? 'did not finish' : 'could not run'}: ${e.error}`);
  const sr = shrinkRatio(c);
  if (sr) lines.push(`shrunk: ${sr.shrunk} schedule(s), ${sr.stepsBefore} -> ${sr.stepsAfter} step(s) (${sr.confirmed} confirmed by a re-run)`);
  if (c.runs.some((r) => r.report)) lines.push(`steps carried out: ${describeCoverage(stepCoverage(c.runs))}`);
  if (c.files.length) lines.push('files:', ...c.files.map((f) => `  ${f}`));
  return lines;
}
