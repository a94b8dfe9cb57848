import { describe, expect, it } from 'vitest';
import { streamsInBackoff } from './executor.js';

const rec = (t: number, replied: boolean) => ({ t, replied });

describe('streamsInBackoff', () => {
  it('names a stream that wrote after the bound and has had no answer since', () => {
    const records = new Map([
      ['stream a', [rec(900, true), rec(1000, false), rec(1200, false)]],
      ['stream b', [rec(900, true), rec(1000, false), rec(1200, true)]],
    ]);
    expect(streamsInBackoff(records, 1000)).toEqual(['stream a']);
  });
  it('an answer before the bound does not count: it says nothing of the stream after it', () => {
    expect(streamsInBackoff(new Map([['stream a', [rec(999, true), rec(1000, false)]]]), 1000)).toEqual(['stream a']);
  });
  it('a stream that wrote nothing after the bound is not waited for (nothing queued to wait on)', () => {
    expect(streamsInBackoff(new Map([['stream a', [rec(500, false)]]]), 1000)).toEqual([]);
  });
  it('one answer after the bound is enough: the writes queued before it reached the pod with it', () => {
    expect(streamsInBackoff(new Map([['stream a', [rec(1000, false), rec(1100, false), rec(1300, true), rec(1400, false)]]]), 1000)).toEqual([]);
  });
});
