import { describe, expect, it } from 'vitest';
import { topologyFromArg } from '../topology/load.js';
import { generateSchedule, universeOf, type Schedule } from './schedule.js';
import { nodesInvolved, shrinkSchedule } from './shrink.js';

const u = universeOf(topologyFromArg('default'));

describe('shrinking a failing schedule', () => {
  it('reaches the minimal failing schedule of a synthetic predicate: one kill longer than 1 s', async () => {
    // "the bug": any node-kill lasting 1 s or more
    const fails = async (s: Schedule) => s.steps.some((x) => x.kind === 'node-kill' && x.durationMs >= 1000);
    let seed = 0;
    let start = generateSchedule(seed, u, { steps: 12 });
    while (!(await fails(start))) start = generateSchedule(++seed, u, { steps: 12 });
    const r = await shrinkSchedule(start, u, fails, { maxRuns: 500 });
    expect(r.stepsBefore).toBe(12);
    expect(r.stepsAfter).toBe(1);
    const [only] = r.schedule.steps;
    expect(only).toMatchObject({ kind: 'node-kill', durationMs: 1000, at: 0 });
    expect(r.exhausted).toBe(false);
    expect(await fails(r.schedule)).toBe(true);
  });

  it('fewer nodes: two faults that must overlap end up on as few nodes as the constraints allow', async () => {
    const s: Schedule = {
      version: 1,
      topology: 'default',
      steps: [
        { kind: 'agent-restart', node: 'node-1', at: 0, durationMs: 0 },
        { kind: 'link-loss', node: 'node-2', mode: 'burst', lossPercent: 50, at: 100, durationMs: 4000 },
        { kind: 'agent-restart', node: 'node-3', at: 200, durationMs: 0 },
      ],
    };
    // fails when an agent restarts twice while some link loses packets
    const fails = async (x: Schedule) => x.steps.filter((y) => y.kind === 'agent-restart').length >= 2 && x.steps.some((y) => y.kind === 'link-loss');
    const r = await shrinkSchedule(s, u, fails);
    expect(r.schedule.steps).toHaveLength(3);
    expect(nodesInvolved(r.schedule)).toHaveLength(1);
    expect(r.schedule.steps.find((y) => y.kind === 'link-loss')!.durationMs).toBe(100);
  });

  it('stops at the run budget', async () => {
    const r = await shrinkSchedule(generateSchedule(3, u), u, async () => false, { maxRuns: 5 });
    expect(r.runs).toBe(5);
    expect(r.exhausted).toBe(true);
    expect(r.stepsAfter).toBe(8);
  });

  it('stops when `stop` says so (a time budget): no run after it, reported as exhausted, the smallest failing schedule so far kept', async () => {
    const fails = async (x: Schedule) => x.steps.length >= 2;
    let calls = 0;
    const r = await shrinkSchedule(generateSchedule(3, u), u, async (x) => (calls++, fails(x)), { stop: () => calls >= 2 });
    expect(calls).toBe(2);
    expect(r.runs).toBe(2);
    expect(r.exhausted).toBe(true);
    expect(await fails(r.schedule)).toBe(true);
    expect(r.stepsAfter).toBeLessThan(8);
  });
});
