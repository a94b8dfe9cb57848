/**
 * The chaos explorer end to end (issue 15): `egresslab chaos` on one fixed, short seed — three
 * steps within 12 s, none longer than 6 s: node-3 cut off inbound, random loss on node-2's link,
 * node-1 stopped cleanly — on a fresh lab, through the CLI as a user runs it. Asserted: the schedule
 * printed first is the seed's (the same as --dry-run), the JSON report's shape, every step done and
 * undone, each fault visible in the recorded evidence (the partition as an outage of node-3's
 * flows, the loss as lost packets of node-2's, the stop as a gap in node-1's probes, which start
 * again once it is back), and no invariant broken (exit 0).
 *
 * Then one random seed (EGRESSLAB_CHAOS_SEED when set, else drawn; printed in the test's name with
 * the command that replays it) through `egresslab chaos --runs 1 --budget`: a short schedule (two
 * steps within 8 s, none longer than 4 s), the campaign's summary, and no invariant broken — on a
 * violation the report's evidence is in the failure. Only it: -t "random seed".
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, type RunResult } from '../testing/run.js';
import { describeReport, type ChaosReport, type FlowReport } from './report.js';
import type { CampaignSummary } from './campaign.js';
import { INSTANT_KINDS } from './schedule.js';

const ARGS = ['--seed', '7', '--steps', '3', '--horizon-ms', '12000', '--max-duration-ms', '6000'];

let run: RunResult;
let report: ChaosReport;

const seed7 = async () => {
  run = await runCli(['chaos', ...ARGS, '--json'], { timeoutMs: 600_000 });
  if (run.code !== 0 || !run.stdout.trim()) process.stderr.write(run.stderr);
  report = JSON.parse(run.stdout) as ChaosReport;
  const t = report.timing;
  process.stdout.write(
    `chaos seed 7: lab up ${t.labUpMs} ms, observers ${t.setupMs} ms, schedule ${t.scheduleMs} ms, convergence + tail ${t.observeMs} ms, evidence ${t.collectMs} ms; total ${t.totalMs} ms (converged ${report.convergedAt === null ? 'never' : `${report.convergedAt - report.settledAt} ms after the last undo`})\n`,
  );
};

/** The actions of step i: when it was done and undone (ms after the start). */
function spanOf(i: number): { doneAt: number; doEnd: number; undoAt: number; undoEnd: number } {
  const d = report.actions.find((a) => a.step === i && a.phase === 'do')!;
  const u = report.actions.find((a) => a.step === i && a.phase === 'undo')!;
  return { doneAt: d.startedAt, doEnd: d.endedAt, undoAt: u.startedAt, undoEnd: u.endedAt };
}
const flowsOn = (node: string, f: (x: FlowReport) => boolean = () => true) => report.flows.filter((x) => x.node === node && f(x));
const udp = (x: FlowReport) => x.flow.startsWith('udp ');

describe('egresslab chaos on a lab (seed 7)', () => {
  beforeAll(seed7, 600_000);

  it("prints the seed's schedule before it runs: the one --dry-run prints", async () => {
    const dry = await runCli(['chaos', ...ARGS, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(report.steps).toEqual((JSON.parse(dry.stdout) as { schedule: { steps: unknown[] } }).schedule.steps);
    expect(run.stderr.split('\n')[0]).toBe('seed 7, topology default: 3 step(s)');
    expect(run.stderr.indexOf('  +2.244 s for 1.064 s: partition node-3 (inbound)')).toBeLessThan(run.stderr.indexOf('starting 9 containers'));
  });

  it('reports {seed, steps, violations, shrunk, files} and the run; no invariant broke: exit 0', () => {
    expect(report).toMatchObject({ seed: 7, topology: 'default', shrunk: null, files: [] });
    expect(report.violations).toEqual([]);
    expect(run.code).toBe(0);
    expect(report.steps.map((s) => s.kind)).toEqual(['partition', 'link-loss', 'node-stop']);
    expect(report.convergedAt).not.toBeNull();
    // every probe sent through the whole run, and was answered
    for (const f of report.flows) expect(f.answered, f.flow).toBeGreaterThan(20);
  });

  it('every step was done, then undone after it', () => {
    report.steps.forEach((s, i) => {
      const x = spanOf(i);
      expect(x.doneAt, `${s.kind} started when due`).toBeGreaterThanOrEqual(s.at);
      expect(x.undoAt, `${s.kind} undone after its duration`).toBeGreaterThanOrEqual(Math.max(x.doEnd, s.at + s.durationMs));
    });
    expect(report.settledAt).toBe(Math.max(...report.actions.map((a) => a.endedAt)));
  });

  it('the partition of node-3 shows as an outage of each of its UDP flows while it lasted', () => {
    const p = spanOf(report.steps.findIndex((s) => s.kind === 'partition'));
    const flows = flowsOn('node-3', udp);
    expect(flows.length).toBeGreaterThan(0);
    for (const f of flows)
      expect(
        f.outages.filter((o) => o.from <= p.undoEnd && o.to >= p.doneAt),
        f.flow,
      ).not.toEqual([]);
  });

  it("the loss on node-2's link shows as lost packets of its UDP flows while it lasted", () => {
    const l = spanOf(report.steps.findIndex((s) => s.kind === 'link-loss'));
    for (const f of flowsOn('node-2', udp))
      expect(
        f.outages.filter((o) => o.from <= l.undoEnd && o.to >= l.doneAt),
        f.flow,
      ).not.toEqual([]);
  });

  it('the stop of node-1 shows as a gap in each of its probes, which run again (a second segment) once it is back', () => {
    const s = spanOf(report.steps.findIndex((x) => x.kind === 'node-stop'));
    const flows = flowsOn('node-1');
    expect(flows.length).toBe(5);
    for (const f of flows) {
      expect(f.segments, f.flow).toBe(2);
      expect(
        f.gaps.filter((g) => g.from <= s.doEnd && g.to >= s.undoAt),
        f.flow,
      ).toHaveLength(1);
    }
    // nodes the schedule never touched: one segment, no gap
    for (const f of flowsOn('cp-1')) expect(f, f.flow).toMatchObject({ segments: 1, gaps: [] });
  });
});

/** The random seed: EGRESSLAB_CHAOS_SEED, else drawn now (a 31-bit whole number, as chaos draws one). */
function randomSeed(): number {
  const raw = process.env.EGRESSLAB_CHAOS_SEED;
  if (raw === undefined || raw === '') return Math.floor(Math.random() * 2 ** 31);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) throw new Error(`EGRESSLAB_CHAOS_SEED must be a 32-bit whole number, got ${JSON.stringify(raw)}`);
  return n;
}

const SEED = randomSeed();
const SHORT = ['--steps', '2', '--horizon-ms', '8000', '--max-duration-ms', '4000'];
const REPLAY = `npx egresslab chaos --seed ${SEED} ${SHORT.join(' ')} (or EGRESSLAB_CHAOS_SEED=${SEED} npx vitest run harness/chaos/chaos.lab.test.ts -t "random seed")`;

describe(`egresslab chaos --runs 1 on a random seed: ${SEED} (replay: ${REPLAY})`, () => {
  let r: RunResult;
  let summary: CampaignSummary;

  beforeAll(async () => {
    process.stdout.write(`chaos random seed ${SEED}; replay: ${REPLAY}\n`);
    r = await runCli(['chaos', '--seed', String(SEED), '--runs', '1', '--budget', '4m', ...SHORT, '--json'], { timeoutMs: 600_000 });
    if (r.code !== 0 || !r.stdout.trim()) process.stderr.write(r.stderr);
    summary = JSON.parse(r.stdout) as CampaignSummary;
    const t = summary.runs[0]?.report?.timing;
    if (t)
      process.stdout.write(
        `chaos seed ${SEED}: ${summary.runs[0]!.report!.steps.map((s) => s.kind).join(', ')}; lab up ${t.labUpMs} ms, schedule ${t.scheduleMs} ms, total ${t.totalMs} ms; campaign ${summary.elapsedMs} ms\n`,
      );
  }, 600_000);

  it('the summary: one run of the seed, the schedule --dry-run prints, every step done (and undone)', async () => {
    expect(summary).toMatchObject({ baseSeed: SEED, runsRequested: 1, budgetMs: 240_000, runsDone: 1, seeds: [SEED], errors: [] });
    expect(summary.stopped.reason).toBe('runs');
    const dry = await runCli(['chaos', '--seed', String(SEED), ...SHORT, '--dry-run', '--json']);
    const report = summary.runs[0]!.report!;
    expect(report.seed).toBe(SEED);
    expect(report.steps).toEqual((JSON.parse(dry.stdout) as { schedule: { steps: unknown[] } }).schedule.steps);
    report.steps.forEach((s, i) => {
      expect(
        report.actions.filter((a) => a.step === i).map((a) => a.phase),
        `${s.kind}`,
      ).toEqual(INSTANT_KINDS.has(s.kind) || s.keep ? ['do'] : ['do', 'undo']);
    });
    for (const f of report.flows) expect(f.answered, f.flow).toBeGreaterThan(0);
  });

  it('no invariant broke: exit 0', () => {
    const report = summary.runs[0]!.report!;
    expect(report.violations, `seed ${SEED} broke an invariant; replay: ${REPLAY}\n${describeReport(report).join('\n')}`).toEqual([]);
    expect(Object.values(summary.violations).every((v) => v.count === 0)).toBe(true);
    expect(r.code).toBe(0);
  });
});
