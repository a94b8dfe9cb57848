import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../cli/main.js';
import { scheduleIssues, universeOf } from './schedule.js';
import { topologyFromArg } from '../topology/load.js';
import { chaosTopology } from './model.js';
import { withoutFlags } from '../cli/chaos-command.js';
import { budgetMs } from './campaign.js';
import type { FieldIssue } from '../util/errors.js';

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const o: string[] = [];
  const e: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => (o.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => (e.push(String(s)), true));
  const code = await main(args);
  vi.restoreAllMocks();
  return { code, stdout: o.join(''), stderr: e.join('') };
}

describe('egresslab chaos', () => {
  afterEach(() => vi.restoreAllMocks());

  it('--dry-run --json prints the schedule of the seed, the same every time, and it validates', async () => {
    const a = await run(['chaos', '--seed', '42', '--steps', '5', '--dry-run', '--json']);
    const b = await run(['chaos', '--seed', '42', '--steps', '5', '--dry-run', '--json']);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    const r = JSON.parse(a.stdout);
    expect(r).toMatchObject({ seed: 42, topology: 'default', dryRun: true });
    expect(r.schedule.steps).toHaveLength(5);
    expect(scheduleIssues(r.schedule, universeOf(chaosTopology(topologyFromArg('default'))))).toEqual([]);
  });

  it('--dry-run in words: one line per step', async () => {
    const r = await run(['chaos', '--seed', '1', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('seed 1, topology default: 8 step(s) (dry run: nothing is executed)');
    expect(r.stdout.trim().split('\n')).toHaveLength(9);
  });

  it('a bad --steps names the flag and the value', async () => {
    const r = await run(['chaos', '--steps', '0', '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--steps: must be from 1 to 200 (value: 0)');
  });

  it('bad run flags are refused before any lab starts, each named with its value', async () => {
    const r = await run(['chaos', '--seed', '1', '--shrink-budget', '-1', '--bound-ms', '5', '--max-duration-ms', '100']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--max-duration-ms: must be from 500');
    expect(r.stdout).toBe('');
    const b = await run(['chaos', '--seed', '1', '--shrink-budget', '-1', '--bound-ms', '5']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('--shrink-budget: must be from 0 to 1000 lab runs (value: -1)');
    expect(b.stderr).toContain('--bound-ms: must be from 1000 to 600000 (value: 5)');
  });

  it('--horizon-ms and --max-duration-ms shape the schedule (the same for the same seed)', async () => {
    const r = await run(['chaos', '--seed', '7', '--steps', '3', '--horizon-ms', '12000', '--max-duration-ms', '6000', '--dry-run', '--json']);
    const s = JSON.parse(r.stdout).schedule as { steps: { at: number; durationMs: number }[] };
    expect(s.steps).toHaveLength(3);
    for (const x of s.steps) {
      expect(x.at).toBeLessThanOrEqual(12_000);
      expect(x.durationMs).toBeLessThanOrEqual(6_000);
    }
  });
});

describe('egresslab chaos --runs / --budget', () => {
  afterEach(() => vi.restoreAllMocks());

  it('--runs N --dry-run --json: the schedules of the base seed and the next ones, each the one --seed S draws', async () => {
    const r = await run(['chaos', '--seed', '2147483646', '--runs', '3', '--steps', '2', '--dry-run', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { baseSeed: number; dryRun: boolean; schedules: { seed: number; steps: unknown[] }[] };
    expect(j).toMatchObject({ baseSeed: 2147483646, dryRun: true });
    expect(j.schedules.map((s) => s.seed)).toEqual([2147483646, 2147483647, -2147483648]);
    const one = await run(['chaos', '--seed', '-2147483648', '--steps', '2', '--dry-run', '--json']);
    expect(j.schedules[2]).toEqual(JSON.parse(one.stdout).schedule);
  });

  it('--runs N --dry-run in words: N schedules, each headed by its seed', async () => {
    const r = await run(['chaos', '--seed', '5', '--runs', '2', '--steps', '1', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('seed '))).toEqual([
      'seed 5, topology default: 1 step(s) (dry run: nothing is executed)',
      'seed 6, topology default: 1 step(s) (dry run: nothing is executed)',
    ]);
  });

  it('bad --runs and --budget are refused before any lab starts, each named with its value', async () => {
    const r = await run(['chaos', '--runs', '0', '--budget', '15 minutes']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('--runs: must be from 1 to 100000 (value: 0)');
    expect(r.stderr).toContain(
      '--budget: must be a duration such as 15m, 90s or 1h30m (time: unknown unit " minutes" in duration "15 minutes") (value: "15 minutes")',
    );
    const short = await run(['chaos', '--budget', '500ms']);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('--budget: must be from 1s to 168h (value: "500ms")');
    const neg = await run(['chaos', '--runs', 'many', '--budget', '-5m']);
    expect(neg.stderr).toContain('--runs: must be a whole number (value: "many")');
    const neg2 = await run(['chaos', '--budget', '-5m']);
    expect(neg2.stderr).toContain('--budget: must be from 1s to 168h (value: "-5m")');
  });

  it('--keep is one lab: refused with --runs; --budget with --dry-run is refused (nothing would run)', async () => {
    const k = await run(['chaos', '--runs', '2', '--keep']);
    expect(k.code).toBe(2);
    expect(k.stderr).toContain('--keep: keeps one lab: not with --runs or --budget (each run has a lab of its own) (value: true)');
    const d = await run(['chaos', '--budget', '10m', '--dry-run']);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain('--budget: means nothing in a dry run (nothing runs): use --runs N to print N schedules (value: "10m")');
  });

  it('a budget reads as Go durations do (agent/masq/duration.ts)', () => {
    const issues: FieldIssue[] = [];
    expect(['15m', '90s', '1h30m', '1.5h', '168h'].map((v) => budgetMs(v, issues))).toEqual([900_000, 90_000, 5_400_000, 5_400_000, 604_800_000]);
    expect(budgetMs(undefined, issues)).toBeUndefined();
    expect(issues).toEqual([]);
    expect(budgetMs('169h', issues)).toBeUndefined();
    expect(issues).toEqual([{ path: '--budget', value: '169h', message: 'must be from 1s to 168h' }]);
  });

  it('the command that re-runs one seed keeps every flag but --runs, --budget, --seed and --json', () => {
    expect(
      withoutFlags(['--runs', '20', '--budget=15m', '--steps', '3', '--json', '--seed', '4', '--shrink-budget', '5'], ['runs', 'budget', 'seed', 'json']),
    ).toEqual(['--steps', '3', '--shrink-budget', '5']);
  });
});

describe('egresslab replay', () => {
  afterEach(() => vi.restoreAllMocks());
  const dir = mkdtempSync(join(tmpdir(), 'egl-replay-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a schedule that does not validate: exit 2, every bad field named, no lab started', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        topology: 'default',
        steps: [
          { kind: 'node-kill', node: 'cp-1', at: 0, durationMs: 1000 },
          { kind: 'partition', node: 'node-1', at: 5, durationMs: 50, direction: 'sideways' },
        ],
      }),
    );
    const r = await run(['replay', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('steps[1].durationMs');
    expect(r.stderr).toContain('steps[1].direction');
    expect(r.stdout).toBe('');
    writeFileSync(file, JSON.stringify({ version: 1, topology: 'default', steps: [{ kind: 'node-kill', node: 'cp-1', at: 0, durationMs: 1000 }] }));
    const cp = await run(['replay', file]);
    expect(cp.code).toBe(2);
    expect(cp.stderr).toContain('is a control-plane node');
  });

  it('no file, or one that cannot be read: exit 2', async () => {
    expect((await run(['replay'])).stderr).toContain('FILE: is required');
    const r = await run(['replay', join(dir, 'missing.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot be read');
  });
});
