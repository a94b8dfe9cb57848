/**
 * The IPv4 path on plain numbers (packed CIDR keys, issue 17) against the bigint path it replaces
 * for IPv4: same CIDRs, same intervals, same texts, for random lists full of duplicates, nested,
 * adjacent and sibling blocks, /0 and /32.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Cidr,
  cidr4Key,
  cidr4KeyLast,
  cidr4KeyNetwork,
  cidr4KeyPrefix,
  formatAddr,
  formatCidr,
  formatCidr4Key,
  formatIPv4,
  intToIPv4,
  maskOf,
  normaliseCidr4Keys,
  normaliseCidrs,
  normaliseCidrsBigint,
  parseCidr,
  parseCidr4Key,
} from './addresses.js';
import { formatInterval, formatInterval4, formatIntervalBigint, intervalsOfCidr4Keys, intervalsOfCidrs } from './intervals.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** [address, prefix]: mostly crowded into 10.0.0.0/20 (overlaps, nesting, adjacency), some anywhere, some edges. */
const block = fc.oneof(
  {
    arbitrary: fc.tuple(
      fc.integer({ min: 0, max: 4095 }).map((o) => 0x0a000000 + o),
      fc.integer({ min: 20, max: 32 }),
    ),
    weight: 6,
  },
  { arbitrary: fc.tuple(u32, fc.integer({ min: 0, max: 32 })), weight: 2 },
  { arbitrary: fc.constantFrom<[number, number]>([0, 0], [0xffffffff, 32], [0, 32], [0xffffffff, 0], [0x80000000, 1], [0, 1], [0x7fffffff, 32]), weight: 1 },
);
/** A block cut into all its 2^k sub-blocks: siblings that merge back, level after level. */
const tiled = fc.tuple(u32, fc.integer({ min: 0, max: 28 }), fc.integer({ min: 1, max: 4 })).map(([n, p, k]) => {
  const base = (n & maskOf(p)) >>> 0;
  const size = 2 ** (32 - p - k);
  return Array.from({ length: 2 ** k }, (_, i): [number, number] => [base + i * size, p + k]);
});
/** 2..6 blocks of one size, one after the other from any aligned start: adjacent, sibling or not. */
const run = fc.tuple(u32, fc.integer({ min: 1, max: 32 }), fc.integer({ min: 2, max: 6 })).map(([n, p, k]) => {
  const size = 2 ** (32 - p);
  const base = (n & maskOf(p)) >>> 0;
  return Array.from({ length: k }, (_, i): [number, number] => [(base + i * size) % 2 ** 32, p]);
});
/** A list of IPv4 Cidrs, addresses not always aligned (normaliseCidrs masks them), in random order. */
const cidrList = fc
  .tuple(fc.array(block, { maxLength: 40 }), fc.array(fc.oneof(tiled, run), { maxLength: 3 }))
  .chain(([blocks, groups]) => {
    const all = [...blocks, ...groups.flat()];
    return fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length });
  })
  .map((l) => l.map(([n, prefix]): Cidr => ({ family: 4, network: BigInt(n), prefix })));

const keysOf = (l: readonly Cidr[]): Float64Array => Float64Array.from(l, (c) => cidr4Key(Number(c.network), c.prefix));
/** intervalsOfCidrs' intervals of a list (network addresses masked first, as cidr4Key does), as pairs. */
const pairsOf = (l: readonly Cidr[]): number[] =>
  intervalsOfCidrs(l.map((c) => ({ ...c, network: c.network & BigInt(maskOf(c.prefix)) }))).flatMap((iv) => [Number(iv.first), Number(iv.last)]);

describe('IPv4 on numbers = IPv4 on bigints (issue 17)', () => {
  it("property: normaliseCidrs (IPv4 path) and normaliseCidr4Keys give normaliseCidrsBigint's CIDRs", () => {
    fc.assert(
      fc.property(cidrList, (l) => {
        const reference = normaliseCidrsBigint(l);
        expect(normaliseCidrs(l)).toStrictEqual(reference);
        const keys = normaliseCidr4Keys(keysOf(l));
        expect(Array.from(keys, (k) => ({ family: 4, network: BigInt(cidr4KeyNetwork(k)), prefix: cidr4KeyPrefix(k) }))).toStrictEqual(reference);
        expect(Array.from(keys, formatCidr4Key)).toEqual(reference.map(formatCidr));
      }),
    );
  });

  it("property: intervalsOfCidr4Keys gives intervalsOfCidrs' intervals, sorted input or not", () => {
    fc.assert(
      fc.property(cidrList, (l) => {
        const expected = pairsOf(l);
        expect(Array.from(intervalsOfCidr4Keys(keysOf(l)))).toEqual(expected);
        expect(Array.from(intervalsOfCidr4Keys(normaliseCidr4Keys(keysOf(l))))).toEqual(expected);
      }),
    );
  });

  it('property: formatInterval4 and formatInterval (IPv4 path) write what formatIntervalBigint writes', () => {
    const interval = fc.oneof(
      fc.tuple(u32, u32).map(([a, b]) => [Math.min(a, b), Math.max(a, b)]),
      block.map(([n, p]) => [(n & maskOf(p)) >>> 0, cidr4KeyLast(cidr4Key(n, p))]),
      fc.tuple(u32, fc.integer({ min: 0, max: 3 })).map(([n, d]) => [n, Math.min(0xffffffff, n + d)]),
    );
    fc.assert(
      fc.property(interval, ([first, last]) => {
        const iv = { first: BigInt(first!), last: BigInt(last!) };
        const expected = formatIntervalBigint(4, iv);
        expect(formatInterval4(first!, last!)).toBe(expected);
        expect(formatInterval(4, iv)).toBe(expected);
      }),
    );
    expect(formatInterval4(0, 0xffffffff)).toBe('0.0.0.0/0');
    expect(formatInterval4(0x80000000, 0xffffffff)).toBe('128.0.0.0/1');
    expect(formatInterval4(0xffffffff, 0xffffffff)).toBe('255.255.255.255/32');
  });

  it('property: parseCidr4Key reads exactly the IPv4 CIDRs parseCidr reads, to the same network and prefix', () => {
    const text = fc.oneof(
      fc.tuple(u32, fc.integer({ min: 0, max: 40 })).map(([n, m]) => `${intToIPv4(n)}/${m}`),
      fc.tuple(u32, fc.constantFrom('08', '0032', '', '-1', '+8', '1e1', ' 8', '999999999')).map(([n, m]) => `${intToIPv4(n)}/${m}`),
      fc.constantFrom('010.0.0.0/8', '10.0.0/8', '10.0.0.0', '::/0', 'fc00::/7', '::ffff:10.0.0.0/104', '10.0.0.0/8/8', '/8', '1.2.3.4 /8'),
      fc.string({ unit: fc.constantFrom(...'0123456789./:'.split('')), maxLength: 20 }),
    );
    fc.assert(
      fc.property(text, (s) => {
        const p = parseCidr(s);
        const key = parseCidr4Key(s);
        if (p.ok && p.cidr.family === 4) expect(key).toBe(cidr4Key(Number(p.cidr.network), p.cidr.prefix));
        else expect(key).toBeNull();
      }),
    );
  });

  it("property: formatIPv4 and formatAddr(4) keep the array and bigint formulas' texts", () => {
    fc.assert(
      fc.property(fc.oneof(u32, fc.integer(), fc.double()), (n) => {
        expect(formatIPv4(n)).toBe([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.'));
      }),
    );
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 40n), max: 1n << 40n }), (v) => {
        expect(formatAddr(4, v)).toBe([24n, 16n, 8n, 0n].map((sh) => ((v >> sh) & 0xffn).toString()).join('.'));
      }),
    );
  });
});
