import { describe, expect, it } from 'vitest';
import { campaignExitCode, describeCoverage, describeSummary, nextRun, runCampaign, seedAt, shrinkRatio, stepCoverage, type OneRun } from './campaign.js';
import { STEP_VARIANTS, generateSchedule, stepVariant, universeOf } from './schedule.js';
import { chaosTopology } from './model.js';
import { topologyFromArg } from '../topology/load.js';
import type { ChaosReport, ShrunkReport } from './report.js';
import type { Violation } from './invariants.js';

/** A report as explore returns it, with only what the campaign reads filled in. */
function report(seed: number, violations: Violation['invariant'][] = [], extra: { files?: string[]; shrunk?: ShrunkReport } = {}): ChaosReport {
  return {
    seed,
    topology: 'default',
    lab: `chaos-${seed}`,
    steps: [],
    violations: violations.map((invariant, i) => ({ invariant, at: 1000 * i, evidence: { flow: 'udp x' } })),
    shrunk: extra.shrunk ?? null,
    files: extra.files ?? [],
    actions: [],
    flows: [],
    settledAt: 0,
    convergedAt: 0,
    bounds: {
      boundMs: 10_000,
      tailMs: 3000,
      transitionMs: 3000,
      fenceMs: 1000,
      arpWindowMs: 600,
      probeTimeoutMs: 1000,
      replyTransitMs: 300,
      streamBackoffMs: 60_000,
    },
    timing: { labUpMs: 0, setupMs: 0, scheduleMs: 0, observeMs: 0, collectMs: 0, totalMs: 0 },
  };
}

/** A fake clock and a fake runOne: each run takes `ms(i)` of the clock and returns `result(seed, i)`. */
function fake(ms: (i: number) => number, result: (seed: number, i: number) => OneRun | Error = (seed) => ({ report: report(seed), runMs: 0 })) {
  let t = 1_000_000;
  const calls: { seed: number; index: number; deadline: number | undefined; at: number }[] = [];
  return {
    now: () => t,
    calls,
    runOne: async (seed: number, index: number, deadline: number | undefined): Promise<OneRun> => {
      calls.push({ seed, index, deadline, at: t });
      t += ms(index);
      const r = result(seed, index);
      if (r instanceof Error) throw r;
      return { ...r, runMs: r.runMs || ms(index) };
    },
  };
}

describe('seeds of a campaign', () => {
  it('are the base seed, then successive ones, wrapping within 32 bits', () => {
    expect([0, 1, 2].map((i) => seedAt(42, i))).toEqual([42, 43, 44]);
    expect([0, 1, 2].map((i) => seedAt(2147483646, i))).toEqual([2147483646, 2147483647, -2147483648]);
    expect(seedAt(-5, 3)).toBe(-2);
  });
});

describe('whether to start another run', () => {
  const base = { done: 0, elapsedMs: 0, aborted: false, consecutiveErrors: 0, maxConsecutiveErrors: 3 };

  it('the first run always starts, even when a run may take longer than the budget', () => {
    expect(nextRun({ ...base, budgetMs: 1000 })).toEqual({ go: true });
  });

  it('a later run starts only while the time left is at least the last run took, and says why not', () => {
    expect(nextRun({ ...base, done: 2, budgetMs: 300_000, elapsedMs: 180_000, lastMs: 120_000 })).toEqual({ go: true });
    const no = nextRun({ ...base, done: 2, budgetMs: 300_000, elapsedMs: 180_001, lastMs: 120_000 });
    expect(no).toEqual({
      go: false,
      reason: 'budget',
      message: '120 s of the budget of 300 s left, less than the last run took (120 s): no run started after 2 run(s)',
    });
    expect(nextRun({ ...base, done: 2, budgetMs: 300_000, elapsedMs: 300_000, lastMs: 1 })).toMatchObject({
      go: false,
      reason: 'budget',
      message: 'the budget of 300 s is spent (300 s elapsed) after 2 run(s)',
    });
  });

  it('stops at --runs, on an abort, and after too many runs in a row that could not run', () => {
    expect(nextRun({ ...base, done: 3, runs: 3 })).toMatchObject({ go: false, reason: 'runs' });
    expect(nextRun({ ...base, done: 2, runs: 3 })).toEqual({ go: true });
    expect(nextRun({ ...base, done: 1, runs: 3, aborted: true })).toMatchObject({ go: false, reason: 'signal' });
    expect(nextRun({ ...base, done: 3, consecutiveErrors: 3 })).toMatchObject({ go: false, reason: 'errors' });
  });
});

describe('a campaign', () => {
  it('--runs 3: three seeds from the base, each run once, the summary counts violations per invariant and lists the files', async () => {
    const f = fake(
      () => 60_000,
      (seed, i) => ({
        report: i === 1 ? report(seed, ['no-leak', 'no-leak', 'convergence'], { files: [`artifacts/chaos/seed-${seed}/schedule.json`] }) : report(seed),
        runMs: 0,
      }),
    );
    const lines: string[] = [];
    const c = await runCampaign({ baseSeed: 10, runs: 3, runOne: f.runOne, now: f.now, progress: (l) => lines.push(l) });
    expect(f.calls.map((x) => [x.seed, x.index, x.deadline])).toEqual([
      [10, 0, undefined],
      [11, 1, undefined],
      [12, 2, undefined],
    ]);
    expect(c).toMatchObject({
      baseSeed: 10,
      runsRequested: 3,
      budgetMs: null,
      runsDone: 3,
      seeds: [10, 11, 12],
      elapsedMs: 180_000,
      errors: [],
      files: ['artifacts/chaos/seed-11/schedule.json'],
    });
    expect(c.stopped.reason).toBe('runs');
    expect(c.violations).toEqual({
      'no-leak': { count: 2, seeds: [11] },
      'single-arp-owner': { count: 0, seeds: [] },
      convergence: { count: 1, seeds: [11] },
      'replies-reach-pod': { count: 0, seeds: [] },
    });
    expect(c.runs.map((r) => r.report!.seed)).toEqual([10, 11, 12]);
    expect(campaignExitCode(c)).toBe(1);
    expect(lines).toContain('run 2: seed 11: 3 violation(s) (no-leak, convergence) in 60 s');
    expect(describeSummary(c)[2]).toBe('violations per invariant: no-leak 2 (seeds 11), single-arp-owner 0, convergence 1 (seeds 11), replies-reach-pod 0');
    expect(describeSummary(c, (seed) => `npx egresslab chaos --seed ${seed} --steps 3`).slice(3, 5)).toEqual([
      'broken: no-leak, convergence',
      '  seed 11 again: npx egresslab chaos --seed 11 --steps 3',
    ]);
  });

  it('exit 0 only when every run ran and no invariant broke', async () => {
    const f = fake(() => 1000);
    const c = await runCampaign({ baseSeed: 1, runs: 2, runOne: f.runOne, now: f.now });
    expect(campaignExitCode(c)).toBe(0);
    expect(describeSummary(c)[3]).toBe('no invariant broke');
  });

  it('--budget: runs while the time left covers the last run, passes the deadline down, and says why it stopped', async () => {
    // runs take 50, 70, 65 s ...; budget 200 s: after 3 runs 185 s are spent, 15 s left < 65 s
    const durations = [50_000, 70_000, 65_000, 10_000];
    const f = fake((i) => durations[i]!);
    const lines: string[] = [];
    const c = await runCampaign({ baseSeed: 5, budgetMs: 200_000, runOne: f.runOne, now: f.now, progress: (l) => lines.push(l) });
    expect(c.seeds).toEqual([5, 6, 7]);
    expect(f.calls.every((x) => x.deadline === 1_000_000 + 200_000)).toBe(true);
    expect(c.stopped).toEqual({
      reason: 'budget',
      message: '15 s of the budget of 200 s left, less than the last run took (65 s): no run started after 3 run(s)',
    });
    expect(lines.at(-1)).toBe(`stopped: ${c.stopped.message}`);
    expect(c.elapsedMs).toBe(185_000);
  });

  it('the estimate is the last lab run without its shrink (a shrink happens only on a violation)', async () => {
    // run 1 took 200 s wall, of which its own lab run 60 s (then a shrink); 100 s left of 300: run 2 starts
    const f = fake(
      (i) => (i === 0 ? 200_000 : 60_000),
      (seed, i) => ({ report: report(seed), runMs: i === 0 ? 60_000 : 0 }),
    );
    const c = await runCampaign({ baseSeed: 0, budgetMs: 300_000, runOne: f.runOne, now: f.now });
    expect(c.seeds).toEqual([0, 1]);
    expect(c.runs[0]).toMatchObject({ ms: 200_000, runMs: 60_000 });
  });

  it('--runs and --budget: whichever runs out first', async () => {
    const f = fake(() => 10_000);
    expect((await runCampaign({ baseSeed: 0, runs: 2, budgetMs: 3_600_000, runOne: f.runOne, now: f.now })).stopped.reason).toBe('runs');
  });

  it('a run that cannot run is recorded with its error, the campaign goes on, exit 1; three in a row stop it', async () => {
    const f = fake(
      () => 5000,
      (seed, i) => (i === 1 || i >= 3 ? new Error(`lab ${i} failed`) : { report: report(seed), runMs: 0 }),
    );
    const c = await runCampaign({ baseSeed: 100, budgetMs: 3_600_000, runOne: f.runOne, now: f.now });
    expect(c.seeds).toEqual([100, 101, 102, 103, 104, 105]);
    expect(c.errors).toEqual([
      { seed: 101, error: 'lab 1 failed' },
      { seed: 103, error: 'lab 3 failed' },
      { seed: 104, error: 'lab 4 failed' },
      { seed: 105, error: 'lab 5 failed' },
    ]);
    expect(c.stopped.reason).toBe('errors');
    expect(campaignExitCode(c)).toBe(1);
    expect(describeSummary(c)).toContain('seed 101 could not run: lab 1 failed');
  });

  it('an abort during a run: that run ends (its error recorded), no other starts, exit 130', async () => {
    const ctl = new AbortController();
    const f = fake(
      () => 1000,
      (seed, i) => {
        if (i === 1) {
          ctl.abort();
          return new Error('chaos run interrupted');
        }
        return { report: report(seed), runMs: 0 };
      },
    );
    const c = await runCampaign({ baseSeed: 0, runs: 5, runOne: f.runOne, now: f.now, signal: ctl.signal });
    expect(c.seeds).toEqual([0, 1]);
    expect(c.stopped.reason).toBe('signal');
    expect(campaignExitCode(c)).toBe(130);
    expect(c.errors).toEqual([{ seed: 1, error: 'interrupted: chaos run interrupted' }]);
    expect(describeSummary(c)).toContain('seed 1 did not finish: interrupted: chaos run interrupted');
  });

  it('the shrink ratio sums the steps before and after over the runs that shrank', async () => {
    const shrunk = (before: number, after: number, confirmed: boolean): ShrunkReport => ({
      invariant: 'no-leak',
      steps: [],
      stepsBefore: before,
      stepsAfter: after,
      runs: 4,
      exhausted: false,
      confirmed,
    });
    const f = fake(
      () => 1000,
      (seed, i) => ({ report: i === 0 ? report(seed) : report(seed, ['no-leak'], { shrunk: i === 1 ? shrunk(8, 1, true) : shrunk(6, 2, false) }), runMs: 0 }),
    );
    const c = await runCampaign({ baseSeed: 0, runs: 3, runOne: f.runOne, now: f.now });
    expect(shrinkRatio(c)).toEqual({ shrunk: 2, stepsBefore: 14, stepsAfter: 3, confirmed: 1 });
    expect(describeSummary(c)).toContain('shrunk: 2 schedule(s), 14 -> 3 step(s) (1 confirmed by a re-run)');
    expect(shrinkRatio({ runs: [] })).toBeNull();
  });
});

describe('which steps a campaign carried out (stepCoverage)', () => {
  const at = { at: 1000, durationMs: 2000 };
  const withSteps = (seed: number, steps: ChaosReport['steps'], noEffectSteps: number[] = []): ChaosReport => ({
    ...report(seed),
    steps,
    actions: steps.flatMap((_, i) => [
      {
        step: i,
        phase: 'do' as const,
        dueAt: 0,
        startedAt: 0,
        endedAt: 1,
        ...(noEffectSteps.includes(i) ? { note: 'nothing to black-hole', noEffect: true as const } : {}),
      },
      { step: i, phase: 'undo' as const, dueAt: 0, startedAt: 0, endedAt: 1 },
    ]),
  });

  it('counts each variant over the runs that reported, those without effect apart, and lists every variant never carried out', () => {
    const runs = [
      {
        report: withSteps(
          1,
          [
            { kind: 'partition', node: 'node-1', direction: 'outbound', ...at },
            { kind: 'blackhole-gateway', node: 'node-2', floatingIP: '192.168.1.100', ...at },
            { kind: 'policy', action: 'relabel-pod', policy: 'chaos-1', pod: 'default/client-1', destinations: ['0.0.0.0/0'], ...at },
          ],
          [1],
        ),
      },
      {
        report: withSteps(2, [
          { kind: 'blackhole-gateway', node: 'node-1', floatingIP: '192.168.1.101', ...at },
          { kind: 'partition', node: 'node-3', direction: 'outbound', ...at },
        ]),
      },
      // a run that could not run counts for nothing
      { error: 'lab failed' },
    ];
    const rows = stepCoverage(runs);
    const row = (v: string) => rows.find((r) => r.variant === v);
    expect(row('partition outbound')).toEqual({ variant: 'partition outbound', done: 2, noEffect: 0 });
    expect(row('blackhole-gateway')).toEqual({ variant: 'blackhole-gateway', done: 2, noEffect: 1 });
    expect(row('policy relabel-pod')).toEqual({ variant: 'policy relabel-pod', done: 1, noEffect: 0 });
    expect(row('partition both')).toEqual({ variant: 'partition both', done: 0, noEffect: 0 });
    // every variant the generator can draw has a row, in STEP_VARIANTS order
    expect(rows.map((r) => r.variant)).toEqual(STEP_VARIANTS);
    const line = describeCoverage(rows);
    expect(
      line.startsWith(
        'partition outbound 2, blackhole-gateway 2 (1 without effect), policy relabel-pod 1; never carried out: node-kill, node-stop, node-pause, partition both, partition inbound,',
      ),
    ).toBe(true);
    expect(line.endsWith('floating-ip add, floating-ip remove')).toBe(true);
  });

  it('the variants cover every step the generator draws: 200 schedules of 8 steps', () => {
    const u = universeOf(chaosTopology(topologyFromArg('default')));
    const drawn = new Set(Array.from({ length: 200 }, (_, i) => generateSchedule(1000 + i, u, { steps: 8 }).steps.map(stepVariant)).flat());
    // nothing drawn outside the list, and the list holds nothing the generator never draws
    expect([...drawn].filter((v) => !STEP_VARIANTS.includes(v))).toEqual([]);
    expect(STEP_VARIANTS.filter((v) => !drawn.has(v))).toEqual([]);
  });

  it('the campaign summary says it; nothing when no run reported', async () => {
    const f = fake(
      () => 1000,
      (seed) => ({ report: withSteps(seed, [{ kind: 'controller-restart', at: 500, durationMs: 0 }]), runMs: 0 }),
    );
    const c = await runCampaign({ baseSeed: 1, runs: 2, runOne: f.runOne, now: f.now });
    expect(describeSummary(c).find((l) => l.startsWith('steps carried out: '))).toMatch(
      /^steps carried out: controller-restart 2; never carried out: node-kill, /,
    );
    const g = fake(
      () => 1000,
      () => new Error('lab failed'),
    );
    const none = await runCampaign({ baseSeed: 1, runs: 1, runOne: g.runOne, now: g.now });
    expect(describeSummary(none).some((l) => l.startsWith('steps carried out'))).toBe(false);
  });
});
