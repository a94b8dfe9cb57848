import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { topologyFromArg } from '../topology/load.js';
import { ValidationError } from '../util/errors.js';
import {
  constraintIssues,
  generateSchedule,
  INSTANT_KINDS,
  NODE_BREAKING_KINDS,
  parseSchedule,
  scheduleArbitrary,
  scheduleFromJson,
  scheduleIssues,
  scheduleToJson,
  stepNode,
  undoneAt,
  universeOf,
  workersOf,
  type Schedule,
} from './schedule.js';

const u = universeOf(topologyFromArg('default'));

describe('chaos schedule generation', () => {
  it('same seed, same schedule; different seeds differ', () => {
    expect(generateSchedule(42, u)).toEqual(generateSchedule(42, u));
    expect(generateSchedule(42, u).steps).toHaveLength(8);
    const distinct = new Set([1, 2, 3, 4, 5].map((s) => JSON.stringify(generateSchedule(s, u).steps)));
    expect(distinct.size).toBe(5);
  });

  it('every generated schedule validates, round-trips through JSON and meets the constraints', () => {
    fc.assert(
      fc.property(scheduleArbitrary(u, { steps: 10 }), (s) => {
        expect(scheduleIssues(JSON.parse(scheduleToJson(s)), u)).toEqual([]);
        expect(scheduleFromJson(scheduleToJson(s), u)).toEqual(s);
        const workers = new Set(workersOf(u));
        for (const step of s.steps) {
          const node = stepNode(step);
          if (node !== undefined) expect(workers.has(node), `${step.kind} on ${node}`).toBe(true);
          if (INSTANT_KINDS.has(step.kind)) expect(step.durationMs).toBe(0);
          // at any step's start, fewer than every worker is broken, one fault per node
          const active = s.steps.filter((o) => NODE_BREAKING_KINDS.has(o.kind) && o.at <= step.at && step.at < undoneAt(o)).map((o) => stepNode(o)!);
          expect(new Set(active).size).toBe(active.length);
          expect(active.length).toBeLessThan(workers.size);
        }
      }),
      { numRuns: 150, seed: 7 },
    );
  });

  it('constraints hold for many seeds', () => {
    for (let seed = 0; seed < 100; seed++) expect(constraintIssues(generateSchedule(seed, u, { steps: 12 }), u), `seed ${seed}`).toEqual([]);
  });
});

describe('chaos schedule validation', () => {
  const good: Schedule = { version: 1, topology: 'default', steps: [{ kind: 'node-kill', node: 'node-1', at: 0, durationMs: 1000 }] };

  it('names the field and the value of every bad input', () => {
    const raw = {
      version: 2,
      topology: 'default',
      extra: 1,
      steps: [
        { kind: 'node-kill', node: 'node-1', at: -1, durationMs: 1000 },
        { kind: 'meteor', at: 0 },
        { kind: 'partition', node: 'node-2', direction: 'sideways', at: 5, durationMs: 10 },
        { kind: 'controller-restart', at: 6, durationMs: 100 },
        { kind: 'link-loss', node: 'node-3', mode: 'random', lossPercent: 150, at: 7, durationMs: 500, keep: 'yes', colour: 'red' },
        'no',
      ],
    };
    const issues = scheduleIssues(raw, u);
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i.value]));
    expect(byPath).toEqual({
      version: 2,
      extra: 1,
      'steps[0].at': -1,
      'steps[1].kind': 'meteor',
      'steps[2].direction': 'sideways',
      'steps[2].durationMs': 10,
      'steps[3].durationMs': 100,
      'steps[4].lossPercent': 150,
      'steps[4].keep': 'yes',
      'steps[4].colour': 'red',
      'steps[5]': 'no',
    });
    expect(() => parseSchedule(raw, u)).toThrow(ValidationError);
    expect(() => parseSchedule(raw, u)).toThrow(/steps\[2\]\.direction: must be one of both, outbound, inbound \(value: "sideways"\)/);
  });

  it('with a topology: unknown nodes, the control plane, every worker broken at once, overlapping faults', () => {
    const bad = {
      ...good,
      steps: [
        { kind: 'node-kill', node: 'node-9', at: 0, durationMs: 1000 },
        { kind: 'node-pause', node: 'cp-1', at: 0, durationMs: 1000 },
        { kind: 'node-kill', node: 'node-1', at: 10, durationMs: 5000 },
        { kind: 'partition', node: 'node-1', direction: 'both', at: 20, durationMs: 1000 },
        { kind: 'node-stop', node: 'node-2', at: 30, durationMs: 5000 },
        { kind: 'node-pause', node: 'node-3', at: 40, durationMs: 5000 },
      ],
    };
    const text = scheduleIssues(bad, u).map((i) => `${i.path} ${JSON.stringify(i.value)} ${i.message}`);
    expect(text).toEqual([
      expect.stringMatching(/^steps\[0\]\.node "node-9" is not a node of topology default/),
      expect.stringMatching(/^steps\[1\]\.node "cp-1" is a control-plane node/),
      expect.stringMatching(/^steps\[3\]\.at 20 node-1 is still under steps\[2\] \(node-kill\)/),
      expect.stringMatching(/^steps\[5\] "node-pause" breaks every worker at once \(node-1, node-2, node-3\)/),
    ]);
    expect(scheduleIssues(good, u)).toEqual([]);
  });

  it('no agent restart on a node that is down or hung (seed 4 drew one on a paused node: the restart failed in the lab); at its undo time it may', () => {
    const steps = (at: number) => [
      { kind: 'node-pause', node: 'node-3', at: 0, durationMs: 2000 },
      { kind: 'agent-restart', node: 'node-3', at },
      { kind: 'partition', node: 'node-2', direction: 'both', at: at + 1, durationMs: 1000 },
      { kind: 'agent-restart', node: 'node-2', at: at + 2 },
    ];
    expect(scheduleIssues({ ...good, steps: steps(1000) }, u).map((i) => `${i.path} ${i.message}`)).toEqual([
      'steps[1].at node-3 is down or hung under steps[0] (node-pause) then: its agent cannot be restarted',
    ]);
    expect(scheduleIssues({ ...good, steps: steps(2000) }, u)).toEqual([]);
  });

  it('bad JSON text is a ValidationError naming the file', () => {
    expect(() => scheduleFromJson('{', u, 'x.json')).toThrow(/x\.json: \(file\): is not JSON/);
  });
});
