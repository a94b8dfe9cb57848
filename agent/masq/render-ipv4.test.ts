/**
 * renderMasqRuleset's IPv4 path on numbers (issue 17) against the bigint composition it replaced:
 * normaliseCidrs, then intervalsOfCidrs, then formatInterval, all on bigints.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Cidr, formatCidr, intToIPv4, maskOf, normaliseCidrsBigint, parseCidr } from '../../lib/net/addresses.js';
import { formatIntervalBigint, intervalsOfCidrs } from '../../lib/net/intervals.js';
import { defaultMasqConfig } from './config.js';
import { renderMasqRuleset } from './render.js';
import { nonMasqElements } from './testing/fakes.js';

/** Aligned IPv4 CIDR texts crowded into 10.0.0.0/22 (duplicates, nesting, adjacency), plus anywhere, /0 and /32. */
const cidr4 = fc
  .oneof(
    {
      arbitrary: fc.tuple(
        fc.integer({ min: 0, max: 1023 }).map((o) => 0x0a000000 + o),
        fc.integer({ min: 22, max: 32 }),
      ),
      weight: 6,
    },
    { arbitrary: fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })), weight: 1 },
    { arbitrary: fc.constantFrom<[number, number]>([0, 0], [0xffffffff, 32]), weight: 1 },
  )
  .map(([n, p]) => `${intToIPv4((n & maskOf(p)) >>> 0)}/${p}`);
const cidr6 = fc.constantFrom('fc00::/7', 'fc00::/8', 'fd00::/8', '2001:db8::/32', '::/0');

describe('renderMasqRuleset, IPv4 on numbers (issue 17)', () => {
  it('property: same elements, set contents and nonMasqElements as the bigint path', () => {
    fc.assert(
      fc.property(fc.array(cidr4, { maxLength: 60 }), fc.array(cidr6, { maxLength: 3 }), (l4, l6) => {
        const r = renderMasqRuleset({ ...defaultMasqConfig(), nonMasqueradeCIDRs: [...l4, ...l6] }, { podCidrs: ['10.244.1.0/24'] });
        const parsed = (l: string[]): Cidr[] => l.map((s) => (parseCidr(s) as { cidr: Cidr }).cidr);
        const norm4 = normaliseCidrsBigint(parsed(l4));
        const iv4 = intervalsOfCidrs(norm4);
        expect(r.nonMasqElements).toEqual([...norm4, ...normaliseCidrsBigint(parsed(l6))].map(formatCidr));
        expect(r.sets.find((s) => s.name === 'nonmasq')!.intervals).toEqual(iv4);
        expect(nonMasqElements(r.ruleset)).toEqual(iv4.map((iv) => formatIntervalBigint(4, iv)));
      }),
    );
  });
});
