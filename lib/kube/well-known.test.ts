import { describe, expect, it } from 'vitest';
import { DEFAULT_NON_MASQUERADE_CIDRS } from './well-known.js';
import { isAligned } from '../net/addresses.js';

describe('ip-masq-agent defaults', () => {
  it('lists the 11 default non-masquerade CIDRs of ip-masq-agent, frozen', () => {
    expect(DEFAULT_NON_MASQUERADE_CIDRS).toHaveLength(11);
    expect(DEFAULT_NON_MASQUERADE_CIDRS).toContain('10.0.0.0/8');
    expect(DEFAULT_NON_MASQUERADE_CIDRS).toContain('240.0.0.0/4');
    expect(Object.isFrozen(DEFAULT_NON_MASQUERADE_CIDRS)).toBe(true);
    for (const c of DEFAULT_NON_MASQUERADE_CIDRS) expect(isAligned(c), c).toBe(true);
  });
});
