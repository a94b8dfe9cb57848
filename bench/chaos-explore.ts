/**
 * Benchmark (issue 15): the chaos explorer over many schedules — seeds --seed (default random,
 * printed), +1, ... each drawn with the CLI's defaults (8 steps within 30 s, none longer than 10 s)
 * and run on a fresh lab through the same loop as `egresslab chaos --runs N` (harness/chaos/campaign.ts:
 * explore, artifacts and the shrink of each violation within --shrink-budget lab runs). Prints the
 * violations found per invariant, schedules per hour (the seeds' own runs, and counting the shrink
 * runs too), the shrink ratio (steps before -> after over the schedules that shrank), side by side, and
 * the steps carried out per variant (which faults and churn the schedules exercised, and which never came up).
 * Usage: node dist/bench/chaos-explore.js [--runs 100] [--seed S] [--steps 8] [--shrink-budget 5] [--budget 15m]
 */
import { programArgs } from '../harness/util/args.js';
import { topologyFromArg } from '../harness/topology/load.js';
import { chaosTopology } from '../harness/chaos/model.js';
import { generateSchedule, universeOf } from '../harness/chaos/schedule.js';
import { artifactId, explore } from '../harness/chaos/explore.js';
import { budgetMs, describeCoverage, describeSummary, runCampaign, shrinkRatio, stepCoverage } from '../harness/chaos/campaign.js';
import { abortOnSignal } from '../harness/cli/abort-on-signal.js';
import { INVARIANT_NAMES } from '../harness/chaos/invariants.js';
import type { FieldIssue } from '../harness/util/errors.js';

const { flags } = programArgs('dist/bench/chaos-explore.js', {
  flags: {
    runs: { value: true, int: true },
    seed: { value: true, int: true },
    steps: { value: true, int: true },
    'shrink-budget': { value: true, int: true, arg: 'RUNS' },
    budget: { value: true, arg: 'DURATION' },
  },
  about: '  N chaos schedules on fresh labs (the loop of "egresslab chaos --runs N"): violations per invariant, schedules per hour, shrink ratio.',
  check: (f) => {
    const issues: FieldIssue[] = [];
    if (f.runs !== undefined && f.runs < 1) issues.push({ path: '--runs', value: f.runs, message: 'must be at least 1' });
    if (f.steps !== undefined && (f.steps < 1 || f.steps > 200)) issues.push({ path: '--steps', value: f.steps, message: 'must be from 1 to 200' });
    if (f['shrink-budget'] !== undefined && (f['shrink-budget'] < 0 || f['shrink-budget'] > 1000))
      issues.push({ path: '--shrink-budget', value: f['shrink-budget'], message: 'must be from 0 to 1000 lab runs' });
    if (f.seed !== undefined && (f.seed < -(2 ** 31) || f.seed >= 2 ** 31))
      issues.push({ path: '--seed', value: f.seed, message: 'must be a 32-bit whole number' });
    budgetMs(f.budget, issues);
    return issues;
  },
});
const runs = flags.runs ?? 100;
const steps = flags.steps ?? 8;
const shrinkBudget = flags['shrink-budget'] ?? 5;
const budget = budgetMs(flags.budget, []);
const baseSeed = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
const topology = topologyFromArg('default');
const u = universeOf(chaosTopology(topology));
const err = (s: string) => process.stderr.write(`${s}\n`);

err(
  `chaos-explore: ${runs} schedule(s) of ${steps} step(s) from base seed ${baseSeed}, shrink budget ${shrinkBudget} lab run(s)${budget !== undefined ? `, time budget ${Math.round(budget / 1000)} s` : ''}`,
);
const abort = abortOnSignal();
let shrinkRuns = 0;
const c = await runCampaign({
  baseSeed,
  runs,
  ...(budget !== undefined ? { budgetMs: budget } : {}),
  progress: err,
  signal: abort.signal,
  runOne: async (seed, _i, deadline) => {
    const schedule = generateSchedule(seed, u, { steps });
    const r = await explore(schedule, {
      topology,
      topologyArg: 'default',
      shrinkBudget,
      command: `node dist/bench/chaos-explore.js --seed ${seed} --runs 1 --steps ${steps}`,
      id: artifactId(schedule, new Date()),
      progress: () => {},
      signal: abort.signal,
      ...(deadline !== undefined ? { deadline } : {}),
    });
    shrinkRuns += r.report.shrunk?.runs ?? 0;
    return { report: r.report, runMs: r.runMs };
  },
}).finally(() => abort.dispose());

const hours = c.elapsedMs / 3_600_000;
const ran = c.runs.filter((r) => r.report);
const ownMs = ran.reduce((a, r) => a + (r.runMs ?? 0), 0);
const sr = shrinkRatio(c);
console.log(
  `\nchaos explorer: ${c.runsDone} schedule(s) of ${steps} step(s) (seeds ${c.seeds[0]}..${c.seeds.at(-1)}), ${(c.elapsedMs / 1000).toFixed(0)} s wall; ${c.errors.length} could not run`,
);
console.log(`  violations found:    ${INVARIANT_NAMES.map((n) => `${n} ${c.violations[n].count} (${c.violations[n].seeds.length} schedule(s))`).join(', ')}`);
console.log(
  `  schedules per hour:  ${(c.runsDone / hours).toFixed(1)} with their shrinks (${shrinkRuns} shrink run(s)) | ${ran.length ? ((ran.length * 3_600_000) / ownMs).toFixed(1) : '-'} on their own runs alone (mean ${ran.length ? (ownMs / ran.length / 1000).toFixed(1) : '-'} s a schedule)`,
);
console.log(
  `  shrink ratio:        ${sr ? `${sr.stepsBefore} -> ${sr.stepsAfter} step(s) over ${sr.shrunk} schedule(s) (${(sr.stepsAfter / sr.stepsBefore).toFixed(2)}; ${sr.confirmed} confirmed by a re-run)` : 'nothing shrank (no violation, or --shrink-budget 0)'}`,
);
console.log(`  steps carried out:   ${describeCoverage(stepCoverage(c.runs))}`);
console.log(`  100 schedules at this rate: about ${((100 / c.runsDone) * hours).toFixed(1)} h`);
for (const l of describeSummary(c).slice(1)) err(l);
process.exitCode = c.stopped.reason === 'signal' ? 130 : 0;
