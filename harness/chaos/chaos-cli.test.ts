import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../cli/main.js';
import { scheduleIssues, universeOf } from './schedule.js';
import { topologyFromArg } from '../topology/load.js';

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
    expect(scheduleIssues(r.schedule, universeOf(topologyFromArg('default')))).toEqual([]);
  });

  it('--dry-run in words: one line per step', async () => {
    const r = await run(['chaos', '--seed', '1', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('seed 1, topology default: 8 step(s) (dry run: nothing is executed)');
    expect(r.stdout.trim().split('\n')).toHaveLength(9);
  });

  it('without --dry-run: exit 2, says running is not implemented', async () => {
    const r = await run(['chaos', '--seed', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('running schedules against a lab is not implemented yet; use --dry-run');
    expect(r.stdout).toBe('');
  });

  it('a bad --steps names the flag and the value', async () => {
    const r = await run(['chaos', '--steps', '0', '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--steps: must be from 1 to 200 (value: 0)');
  });
});
