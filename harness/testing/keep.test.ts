import { describe, expect, it } from 'vitest';
import { failedTests, keepMode, noteFailure, resetFailures, shouldKeep } from './keep.js';

describe('keeping a lab after a failure', () => {
  it("on-failure keeps a lab only once a test of this file failed; resetFailures (a new file in the same worker) forgets the last file's", () => {
    resetFailures();
    expect(shouldKeep('on-failure')).toBe(false);
    noteFailure('probe answered');
    expect(failedTests()).toEqual(['probe answered']);
    expect(shouldKeep('on-failure')).toBe(true);
    expect(shouldKeep('never')).toBe(false);
    resetFailures();
    expect(failedTests()).toEqual([]);
    expect(shouldKeep('on-failure')).toBe(false);
    expect(shouldKeep('always')).toBe(true);
  });

  it('reads EGRESSLAB_KEEP', () => {
    expect(keepMode({})).toBe('never');
    expect(keepMode({ EGRESSLAB_KEEP: 'always' })).toBe('always');
    expect(keepMode({ EGRESSLAB_KEEP: '1' })).toBe('on-failure');
    expect(keepMode({ EGRESSLAB_KEEP: 'no' })).toBe('never');
  });
});
