import { describe, expect, it } from 'vitest';
import { summarizeLastApply } from './cluster-status.js';

describe('summarizeLastApply (the LAST APPLY column of egresslab status)', () => {
  it('says how the rules went in and how long the sync took', () => {
    expect(summarizeLastApply({ kind: 'delta', added: 1, removed: 0, reason: null, totalMs: 112 })).toBe('delta +1 -0, 112 ms');
    expect(summarizeLastApply({ kind: 'full', added: 0, removed: 0, reason: 'rules changed', totalMs: 433 })).toBe('full (rules changed), 433 ms');
    expect(summarizeLastApply({ kind: 'full', reason: null })).toBe('full');
  });

  it('is null when the agent has no record yet or writes something else', () => {
    expect(summarizeLastApply(undefined)).toBeNull();
    expect(summarizeLastApply(null)).toBeNull();
    expect(summarizeLastApply({ kind: 'sideways', totalMs: 1 })).toBeNull();
    expect(summarizeLastApply('full')).toBeNull();
  });
});
