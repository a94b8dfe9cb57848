/**
 * Replays a regression scenario's schedule on the default topology with the explorer's bounds for
 * regressions (docs/chaos.md, "Regression scenarios"): a 5 s convergence bound (the explorer's
 * default is 10 s: the bugs kept here show within seconds of their step) and a 3 s transition time
 * after a policy or ConfigMap step. Every step must have been carried out.
 */
import { expect } from 'vitest';
import { type ChaosRun, runSchedule } from '../../harness/chaos/executor.js';
import type { Schedule } from '../../harness/chaos/schedule.js';
import type { Topology } from '../../harness/topology/types.js';

export const REGRESSION_TRANSITION_MS = 3000;

export async function replayRegression(schedule: Schedule, topology: Topology): Promise<ChaosRun> {
  const run = await runSchedule(schedule, {
    topology,
    bounds: { boundMs: 5000, tailMs: 3000, transitionMs: REGRESSION_TRANSITION_MS, fenceMs: 1000, arpWindowMs: 600, probeTimeoutMs: 1000, replyTransitMs: 300 },
  });
  expect(run.actions.filter((a) => a.error)).toEqual([]);
  return run;
}
