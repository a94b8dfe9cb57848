/**
 * `egresslab chaos` and `egresslab replay`: the chaos explorer (issue 15, docs/chaos.md). chaos
 * draws a schedule from a seed (same seed, same schedule: printed before it runs), runs it on a
 * fresh lab and checks the invariants on the recorded evidence; on a violation it writes
 * artifacts/chaos/<id>/ and shrinks the schedule within --shrink-budget lab runs. replay runs a
 * schedule.json through the same executor and reports the same way. With --runs and/or --budget,
 * chaos runs many seeds in a row (harness/chaos/campaign.ts), each on a fresh lab, and ends with a
 * summary. Exit 0 only when no invariant broke (1: one broke, or the lab failed; 2: bad input;
 * 130: interrupted).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseCommand, type CommandSpec } from '../util/args.js';
import { ValidationError, type FieldIssue } from '../util/errors.js';
import { topologyFromArg } from '../topology/load.js';
import { describeStep, generateSchedule, scheduleFromJson, universeOf, type Schedule } from '../chaos/schedule.js';
import { chaosTopology } from '../chaos/model.js';
import { DEFAULT_BOUNDS, type ChaosBounds } from '../chaos/executor.js';
import { artifactId, explore, timeStamp } from '../chaos/explore.js';
import { describeReport } from '../chaos/report.js';
import { budgetMs, campaignExitCode, describeSummary, runCampaign, seedAt } from '../chaos/campaign.js';
import type { Topology } from '../topology/types.js';
import { abortOnSignal } from './abort-on-signal.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const err = (s: string) => process.stderr.write(`${s}\n`);

const RUN_FLAGS = {
  topology: { value: true, arg: 'FILE|NAME' },
  json: {},
  keep: {},
  'shrink-budget': { value: true, int: true, arg: 'RUNS' },
  'bound-ms': { value: true, int: true, arg: 'MS' },
} as const;

/** The chaos and replay commands' flags and help. */
export const CHAOS_SPECS: Record<string, CommandSpec> = {
  chaos: {
    flags: {
      seed: { value: true, int: true },
      steps: { value: true, int: true },
      'horizon-ms': { value: true, int: true, arg: 'MS' },
      'max-duration-ms': { value: true, int: true, arg: 'MS' },
      runs: { value: true, int: true },
      budget: { value: true, arg: 'DURATION' },
      ...RUN_FLAGS,
      'dry-run': {},
    },
    about: `  Draws a random fault schedule from a seed (same seed, same schedule; printed before it runs) for a
  topology (default: default, with a pod on every node), brings a fresh lab up with the seed's
  gateway and policy, runs the schedule under continuous probes, far-end captures and an ARP
  observer, and checks the invariants on that evidence (docs/chaos.md). On a violation it writes
  artifacts/chaos/<id>/ (schedule.json, evidence, report, a regression scenario) and shrinks the
  schedule, each candidate on a fresh lab, within --shrink-budget runs (default 0: no shrink).
  --steps (default 8), --horizon-ms (latest start, default 30000) and --max-duration-ms (default
  10000) shape the schedule; --bound-ms is the convergence bound (default ${DEFAULT_BOUNDS.boundMs}). --keep leaves the
  lab up. --dry-run only prints the schedule. --json prints {seed, steps, violations, shrunk, files, ...}.
  --runs N and/or --budget DURATION (15m, 90s, 1h30m): many seeds in a row — --seed (default: random,
  printed) then the next ones — each on a fresh lab, until N runs are done or the budget runs out (a
  run starts only while the time left is at least the last run took; one that started is finished);
  then a summary (--json: {baseSeed, runsDone, seeds, violations per invariant, files, runs: [each
  run's report]}). Exit 0 only when no invariant broke.
  Examples: npx egresslab chaos --seed 42 --steps 8 --json
            npx egresslab chaos --runs 20 --budget 15m`,
  },
  replay: {
    flags: { ...RUN_FLAGS },
    args: 'FILE',
    maxPositionals: 1,
    about: `  Runs a schedule.json (written by "egresslab chaos", or by hand) on a fresh lab through the same
  executor and reports the same way (--topology: the topology it was drawn for, default its
  "topology" field as a fixture name).
  Example: npx egresslab replay artifacts/chaos/seed-42-20250101T120000Z/schedule.json --json`,
  },
};

/** The run flags, checked: budget and bound. */
function runFlags(command: string, flags: Record<string, string | number | boolean | undefined>): { shrinkBudget: number; bounds: Partial<ChaosBounds> } {
  const issues: FieldIssue[] = [];
  const shrinkBudget = (flags['shrink-budget'] as number | undefined) ?? 0;
  if (shrinkBudget < 0 || shrinkBudget > 1000) issues.push({ path: '--shrink-budget', value: shrinkBudget, message: 'must be from 0 to 1000 lab runs' });
  const bound = flags['bound-ms'] as number | undefined;
  if (bound !== undefined && (bound < 1000 || bound > 600_000)) issues.push({ path: '--bound-ms', value: bound, message: 'must be from 1000 to 600000' });
  if (issues.length) throw new ValidationError(command, issues);
  return { shrinkBudget, bounds: bound !== undefined ? { boundMs: bound } : {} };
}

/** Runs and reports a schedule (both commands). */
async function runAndReport(
  schedule: Schedule,
  topology: Topology,
  topologyArg: string,
  flags: Record<string, string | number | boolean | undefined>,
  command: string,
  id: string,
): Promise<number> {
  const { shrinkBudget, bounds } = runFlags(command.split(' ')[1]!, flags);
  const json = Boolean(flags.json);
  // the schedule before it runs (stderr with --json: stdout is the report)
  const show = json ? err : out;
  show(`seed ${schedule.seed ?? '(none)'}, topology ${schedule.topology}: ${schedule.steps.length} step(s)`);
  for (const s of schedule.steps) show(`  ${describeStep(s)}`);
  const abort = abortOnSignal();
  try {
    const { report } = await explore(schedule, {
      topology,
      topologyArg,
      ...(flags.keep ? { keep: true } : {}),
      bounds,
      shrinkBudget,
      command,
      id,
      progress: err,
      signal: abort.signal,
    });
    if (json) out(JSON.stringify(report));
    else for (const l of describeReport(report)) out(l);
    if (flags.keep) err(`lab ${report.lab} kept: "npx egresslab down --lab ${report.lab}" removes it`);
    return report.violations.length ? 1 : 0;
  } finally {
    abort.dispose();
  }
}

/** `egresslab chaos`: draws the schedule of a seed and runs it (--dry-run: prints it only); --runs/--budget: many seeds. */
export async function chaosCmd(argv: string[]): Promise<number> {
  const { flags } = parseCommand('chaos', CHAOS_SPECS.chaos!, argv);
  const steps = (flags.steps as number | undefined) ?? 8;
  const horizonMs = flags['horizon-ms'] as number | undefined;
  const maxDurationMs = flags['max-duration-ms'] as number | undefined;
  const issues: FieldIssue[] = [];
  if (steps < 1 || steps > 200) issues.push({ path: '--steps', value: steps, message: 'must be from 1 to 200' });
  if (flags.seed !== undefined && ((flags.seed as number) < -2147483648 || (flags.seed as number) > 2147483647))
    issues.push({ path: '--seed', value: flags.seed, message: 'must be a 32-bit whole number' });
  if (horizonMs !== undefined && (horizonMs < 0 || horizonMs > 3_600_000))
    issues.push({ path: '--horizon-ms', value: horizonMs, message: 'must be from 0 to 3600000' });
  if (maxDurationMs !== undefined && (maxDurationMs < 500 || maxDurationMs > 3_600_000))
    issues.push({ path: '--max-duration-ms', value: maxDurationMs, message: 'must be from 500 (the shortest duration drawn) to 3600000' });
  const runs = flags.runs as number | undefined;
  if (runs !== undefined && (runs < 1 || runs > 100_000)) issues.push({ path: '--runs', value: runs, message: 'must be from 1 to 100000' });
  const budget = budgetMs(flags.budget as string | undefined, issues);
  const many = runs !== undefined || flags.budget !== undefined;
  if (many && flags.keep) issues.push({ path: '--keep', value: true, message: 'keeps one lab: not with --runs or --budget (each run has a lab of its own)' });
  if (flags['dry-run'] && flags.budget !== undefined)
    issues.push({ path: '--budget', value: flags.budget, message: 'means nothing in a dry run (nothing runs): use --runs N to print N schedules' });
  if (issues.length) throw new ValidationError('chaos', issues);
  runFlags('chaos', flags);
  const seed = (flags.seed as number | undefined) ?? Math.floor(Math.random() * 2 ** 31);
  const topologyArg = (flags.topology as string | undefined) ?? 'default';
  const topology = topologyFromArg(topologyArg);
  const scheduleOf = (seed: number) =>
    generateSchedule(seed, universeOf(chaosTopology(topology)), {
      steps,
      ...(horizonMs !== undefined ? { horizonMs } : {}),
      ...(maxDurationMs !== undefined ? { maxDurationMs } : {}),
    });
  if (many && flags['dry-run']) {
    const schedules = Array.from({ length: runs! }, (_, i) => scheduleOf(seedAt(seed, i)));
    if (flags.json) out(JSON.stringify({ baseSeed: seed, topology: topology.name, dryRun: true, schedules }));
    else
      for (const s of schedules) {
        out(`seed ${s.seed}, topology ${topology.name}: ${s.steps.length} step(s) (dry run: nothing is executed)`);
        for (const x of s.steps) out(`  ${describeStep(x)}`);
      }
    return 0;
  }
  if (many) return campaign(seed, runs, budget, scheduleOf, topology, topologyArg, flags, argv);
  const schedule = scheduleOf(seed);
  if (flags['dry-run']) {
    if (flags.json) out(JSON.stringify({ seed, topology: topology.name, dryRun: true, schedule }));
    else {
      out(`seed ${seed}, topology ${topology.name}: ${schedule.steps.length} step(s) (dry run: nothing is executed)`);
      for (const s of schedule.steps) out(`  ${describeStep(s)}`);
    }
    return 0;
  }
  return runAndReport(schedule, topology, topologyArg, flags, `egresslab chaos ${argv.join(' ')}`, artifactId(schedule, new Date()));
}

/** `argv` of chaos without the named flags (`--x`, `--x v` or `--x=v`, as the flag's spec takes a value or not). */
export function withoutFlags(argv: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = /^--([^=]+)(=|$)/.exec(a);
    if (name && names.includes(name[1]!)) {
      if (!a.includes('=') && CHAOS_SPECS.chaos!.flags[name[1]!]?.value) i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/** --runs/--budget: seeds from `baseSeed` on, each explored on a fresh lab, then the summary. */
async function campaign(
  baseSeed: number,
  runs: number | undefined,
  budget: number | undefined,
  scheduleOf: (seed: number) => Schedule,
  topology: Topology,
  topologyArg: string,
  flags: Record<string, string | number | boolean | undefined>,
  argv: string[],
): Promise<number> {
  const { shrinkBudget, bounds } = runFlags('chaos', flags);
  const json = Boolean(flags.json);
  const show = json ? err : out;
  // the command that re-runs one seed of the campaign: the same flags but --runs, --budget, --seed and --json
  const rest = withoutFlags(argv, ['runs', 'budget', 'seed', 'json']);
  const one = (seed: number | string) => ['egresslab chaos --seed', String(seed), ...rest].join(' ');
  show(`base seed ${baseSeed}: seeds ${baseSeed}, ${seedAt(baseSeed, 1)}, ... (one of them again: npx ${one('S')})`);
  const abort = abortOnSignal();
  try {
    const summary = await runCampaign({
      baseSeed,
      ...(runs !== undefined ? { runs } : {}),
      ...(budget !== undefined ? { budgetMs: budget } : {}),
      progress: err,
      signal: abort.signal,
      runOne: async (seed, _i, deadline) => {
        const schedule = scheduleOf(seed);
        show(`seed ${seed}, topology ${schedule.topology}: ${schedule.steps.length} step(s)`);
        for (const s of schedule.steps) show(`  ${describeStep(s)}`);
        const r = await explore(schedule, {
          topology,
          topologyArg,
          bounds,
          shrinkBudget,
          command: one(seed),
          id: artifactId(schedule, new Date()),
          progress: err,
          signal: abort.signal,
          ...(deadline !== undefined ? { deadline } : {}),
        });
        if (!json) for (const l of describeReport(r.report)) out(l);
        return { report: r.report, runMs: r.runMs };
      },
    });
    if (json) out(JSON.stringify(summary));
    else {
      out('');
      for (const l of describeSummary(summary, (seed) => `npx ${one(seed)}`)) out(l);
    }
    return campaignExitCode(summary);
  } finally {
    abort.dispose();
  }
}

/** `egresslab replay FILE`: runs a schedule.json through the same executor. */
export async function replayCmd(argv: string[]): Promise<number> {
  const { flags, positionals } = parseCommand('replay', CHAOS_SPECS.replay!, argv);
  const file = positionals[0];
  if (!file) throw new ValidationError('replay', [{ path: 'FILE', value: file, message: 'is required: a schedule.json' }]);
  runFlags('replay', flags);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ValidationError('replay', [{ path: 'FILE', value: file, message: `cannot be read: ${(e as Error).message}` }]);
  }
  let named: unknown;
  try {
    named = (JSON.parse(text) as { topology?: unknown }).topology;
  } catch {
    named = undefined; // scheduleFromJson names the syntax error
  }
  const topologyArg = (flags.topology as string | undefined) ?? (typeof named === 'string' && /^[a-z0-9-]+$/.test(named) ? named : 'default');
  const topology = topologyFromArg(topologyArg);
  const schedule = scheduleFromJson(text, universeOf(chaosTopology(topology)), file);
  const id = `replay-${basename(file, '.json').replace(/[^A-Za-z0-9-]+/g, '-')}-${timeStamp(new Date())}`;
  return runAndReport(schedule, topology, topologyArg, flags, `egresslab replay ${argv.join(' ')}`, id);
}
