import { describe, expect, it } from 'vitest';
import { normaliseCidrStrings } from './addresses.js';
import { diffIntervals, formatInterval, type Interval, intervalsOfCidrs, mergeIntervals, parseElementText, sameIntervals } from './intervals.js';

const v4 = (cidrs: string[]): Interval[] => intervalsOfCidrs(normaliseCidrStrings(cidrs).v4);
const text4 = (ivs: Interval[]): string[] => ivs.map((iv) => formatInterval(4, iv));
const el = (s: string): Interval => parseElementText(4, s)!;

describe('intervals (the kernel view of an auto-merge interval set)', () => {
  it('joins adjacent blocks that are not siblings into one range, as auto-merge does', () => {
    expect(text4(v4(['10.0.1.0/24', '10.0.2.0/24', '10.0.4.0/24']))).toEqual(['10.0.1.0-10.0.2.255', '10.0.4.0/24']);
    // siblings are already one CIDR after normaliseCidrs
    expect(text4(v4(['10.0.0.0/24', '10.0.1.0/24']))).toEqual(['10.0.0.0/23']);
    // a chain of adjacent blocks ending on a boundary
    expect(text4(v4(['10.0.1.0/24', '10.0.2.0/23', '10.0.4.0/22']))).toEqual(['10.0.1.0-10.0.7.255']);
  });

  it('formats single addresses, whole blocks, ranges and the whole space', () => {
    expect(text4(v4(['8.8.8.8/32']))).toEqual(['8.8.8.8/32']);
    expect(text4(v4(['0.0.0.0/0']))).toEqual(['0.0.0.0/0']);
    expect(formatInterval(4, { first: 1n, last: 2n })).toBe('0.0.0.1-0.0.0.2');
    expect(formatInterval(6, intervalsOfCidrs(normaliseCidrStrings(['fc00::/7']).v6)[0]!)).toBe('fc00::/7');
    expect(formatInterval(4, { first: 0n, last: 2n ** 32n - 1n })).toBe('0.0.0.0/0');
  });

  it('mergeIntervals: any order, overlaps, duplicates and adjacency collapse to the same list', () => {
    const a = mergeIntervals([el('10.0.2.0/24'), el('10.0.0.0/16'), el('10.0.1.0-10.0.3.255'), el('10.2.0.0'), el('10.2.0.1-10.2.0.9')]);
    expect(text4(a)).toEqual(['10.0.0.0/16', '10.2.0.0-10.2.0.9']);
    expect(sameIntervals(a, mergeIntervals([el('10.2.0.0-10.2.0.9'), el('10.0.0.0-10.0.255.255')]))).toBe(true);
    // 10.0.0.0/16 ends at 10.0.255.255: 10.1.0.0 touches it
    expect(text4(mergeIntervals([el('10.0.0.0/16'), el('10.1.0.0')]))).toEqual(['10.0.0.0-10.1.0.0']);
    expect(sameIntervals(a, mergeIntervals([el('10.0.0.0/16')]))).toBe(false);
  });

  it('parseElementText: address, prefix (host bits masked like nft), range; rejects the rest', () => {
    expect(el('1.2.3.4')).toEqual({ first: 0x01020304n, last: 0x01020304n });
    expect(el('10.0.0.1/8')).toEqual(el('10.0.0.0/8'));
    expect(el(' 10.0.0.0 - 10.0.0.255 ')).toEqual(el('10.0.0.0/24'));
    for (const bad of ['', 'nope', '10.0.0.5-10.0.0.1', '10.0.0.0/33', 'fc00::/7', '1.2.3']) expect(parseElementText(4, bad)).toBeNull();
    expect(parseElementText(6, 'fc00::-fc00::ff')).toEqual({ first: 0xfc00n << 112n, last: (0xfc00n << 112n) + 0xffn });
  });

  it('diffIntervals: equal elements are kept; a changed bound is a remove plus an add', () => {
    const from = v4(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']);
    const to = v4(['10.0.0.0/9', '10.128.0.0/10', '172.16.0.0/12', '203.0.113.0/24']);
    const d = diffIntervals(from, to);
    expect(text4(d.removed)).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(text4(d.added)).toEqual(['10.0.0.0-10.191.255.255', '203.0.113.0/24']);
    expect(diffIntervals(from, from)).toEqual({ removed: [], added: [] });
    expect(diffIntervals([], to).added).toEqual(to);
    expect(diffIntervals(from, []).removed).toEqual(from);
  });

  it('diffIntervals: adding a block next to a kept one replaces the kept one (the kernel joins them)', () => {
    const d = diffIntervals(v4(['10.0.1.0/24']), v4(['10.0.1.0/24', '10.0.2.0/24']));
    expect(text4(d.removed)).toEqual(['10.0.1.0/24']);
    expect(text4(d.added)).toEqual(['10.0.1.0-10.0.2.255']);
  });

  it('diffIntervals: removing the middle of a joined range splits it (never a partial delete)', () => {
    const d = diffIntervals(v4(['10.0.1.0/24', '10.0.2.0/23', '10.0.4.0/22']), v4(['10.0.1.0/24', '10.0.4.0/22']));
    expect(text4(d.removed)).toEqual(['10.0.1.0-10.0.7.255']);
    expect(text4(d.added)).toEqual(['10.0.1.0/24', '10.0.4.0/22']);
  });

  it('diffIntervals applied to the old list gives the new one (property over random lists)', () => {
    let x = 7;
    const rnd = (n: number): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x % n);
    for (let round = 0; round < 200; round++) {
      const list = (): string[] => Array.from({ length: rnd(12) }, () => `10.0.${rnd(16)}.${rnd(4) * 64}/${26 - rnd(3)}`);
      const from = v4(list());
      const to = v4(list());
      const { removed, added } = diffIntervals(from, to);
      const key = (i: Interval): string => `${i.first}-${i.last}`;
      const gone = new Set(removed.map(key));
      expect(removed.every((r) => from.some((f) => key(f) === key(r)))).toBe(true); // only existing elements are deleted
      const after = mergeIntervals([...from.filter((f) => !gone.has(key(f))), ...added]);
      expect(sameIntervals(after, to)).toBe(true);
      // no added element touches a kept one: auto-merge has nothing to join
      const kept = from.filter((f) => !gone.has(key(f)));
      for (const a of added) for (const k of kept) expect(a.last + 1n < k.first || k.last + 1n < a.first).toBe(true);
    }
  });
});
