/**
 * vitest setupFiles (unit and lab projects): registers the egresslab matchers (harness/testing/matchers.ts)
 * and notes failing tests, so that a lab started with startTestLab can be kept for inspection
 * when EGRESSLAB_KEEP=on-failure (what `egresslab run` sets).
 */
import { afterEach, expect } from 'vitest';
import { egresslabMatchers } from './matchers.js';
import { noteFailure } from './keep.js';

expect.extend(egresslabMatchers);

afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') noteFailure(ctx.task.name);
});
