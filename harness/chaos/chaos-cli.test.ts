import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../cli/main.js';
import { scheduleIssues, universeOf } from './schedule.js';
import { topologyFromArg } from '../topology/load.js';
import { chaosTopology } from './model.js';

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

describe('egresslab replay', () => {
  afterEach(() => vi.restoreAllMocks());
  const dir = mkdtempSync(join(tmpdir(), 'egl-replay-'));

  it('a schedule that does not validate: exit 2, every bad field named, no lab started', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ version: 1, topology: 'default', steps: [{ kind: 'node-kill', node: 'cp-1', at: 0, durationMs: 1000 }, { kind: 'partition', node: 'node-1', at: 5, durationMs: 50, direction: 'sideways' }] }));
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
