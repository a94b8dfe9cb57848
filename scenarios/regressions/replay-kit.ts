/**
 * Replays a regression scenario's schedule on the default topology with the explorer's bounds for
 * regressions (docs/chaos.md, "Regression scenarios"): a 5 s convergence bound (the explorer's
 * default is 10 s: the bugs kept here show within seconds of their step) and a 3 s transition time
 * after a policy or ConfigMap step. Every step must have been carried out.
 *
 * A failing replay (a premise or the invariant) leaves the run's evidence, the same evidence.json the
 * explorer writes, in artifacts/<lab id>/<the test's name as a slug>/ (the far-end captures it names stay in
 * artifacts/<lab id>/captures/), and the failure message names the file: the lab is down by then, so
 * this is what there is to read. `o.at`: the scenario's own actions at schedule times (RunOptions.at).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect, onTestFailed } from 'vitest';
import { addToFailure, artifactFolder } from '../../harness/testing/artifacts.js';
import { type ChaosRun, type RunOptions, runSchedule } from '../../harness/chaos/executor.js';
import { evidenceJson } from '../../harness/chaos/explore.js';
import type { Schedule } from '../../harness/chaos/schedule.js';
import type { Topology } from '../../harness/topology/types.js';

export const REGRESSION_TRANSITION_MS = 3000;

export async function replayRegression(schedule: Schedule, topology: Topology, o: Pick<RunOptions, 'at'> = {}): Promise<ChaosRun> {
  const run = await runSchedule(schedule, {
    ...o,
    topology,
    bounds: { boundMs: 5000, tailMs: 3000, transitionMs: REGRESSION_TRANSITION_MS, fenceMs: 1000, arpWindowMs: 600, probeTimeoutMs: 1000, replyTransitMs: 300 },
  });
  onTestFailed(({ task }) => {
    const name = task.fullTestName ?? task.name;
    const dir = artifactFolder(run.labId, name);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'evidence.json');
    writeFileSync(file, evidenceJson(run));
    addToFailure(task, name, `the replay's evidence: ${relative(process.cwd(), file)}`);
  });
  expect(run.actions.filter((a) => a.error)).toEqual([]);
  return run;
}
