import { describe, expect, it } from 'vitest';
import { overlappingClaims } from './segment-arp.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

describe('overlappingClaims', () => {
  it('finds nothing when one owner hands over to another and never answers again', () => {
    const claims = [0, 50, 100, 150].map((t) => ({ t, mac: A })).concat([400, 450, 500].map((t) => ({ t, mac: B })));
    expect(overlappingClaims(claims, 50)).toEqual([]);
    expect(overlappingClaims([], 50)).toEqual([]);
  });
  it('reports the old owner answering after the new one took over', () => {
    const claims = [
      { t: 0, mac: A },
      { t: 400, mac: B },
      { t: 600, mac: A },
    ];
    expect(overlappingClaims(claims, 50)).toEqual([`${A} answered at 600 ms, ${B} had answered at 400 ms`]);
  });
  it('reports one request answered by two MACs (within one asking period)', () => {
    const claims = [
      { t: 1000, mac: A },
      { t: 1010, mac: B },
    ];
    expect(overlappingClaims(claims, 50)).toEqual([`${A} answered at 0 ms, ${B} had answered at 10 ms`]);
  });
});
