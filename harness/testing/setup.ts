/**
 * vitest setupFiles (unit and lab projects): registers the egresslab matchers (harness/testing/matchers.ts)
 * and notes failing tests, so that a lab started with startTestLab can be kept for inspection
 * when EGRESSLAB_KEEP=on-failure (what `egresslab run` sets).
 */
import { afterEach, expect } from 'vitest';
import { egresslabMatchers } from './matchers.js';
import { noteFailure, resetFailures } from './keep.js';
import { clearRecordedTimelines } from './recorded-timelines.js';

expect.extend(egresslabMatchers);
// vitest runs setup files again before each test file, also when files share a worker (the lab
// project: isolate false): the failures noted and the timelines recorded are this file's only
resetFailures();
clearRecordedTimelines();

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') noteFailure(ctx.task.name);
});
