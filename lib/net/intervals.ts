/**
 * Address intervals: the contents of an nftables interval set as the kernel holds them.
 *
 * An interval set with `auto-merge` keeps sorted, disjoint and NON-ADJACENT closed intervals: nft
 * joins 10.0.1.0/24 + 10.0.2.0/24 into one element 10.0.1.0-10.0.2.255, and a later
 * `delete element { 10.0.2.0/24 }` then fails ("element does not exist", nft 1.0.6 cannot split an
 * element). So whoever wants to name existing elements (to delete them) must name them the way the
 * kernel holds them: `intervalsOfCidrs` gives exactly that list, `formatInterval` its nft text, and
 * `mergeIntervals` turns any listing (prefixes, ranges, single addresses, in any order) back into it,
 * so that two descriptions of the same addresses compare equal whatever their representation.
 *
 * Addresses are bigints of one family (lib/net/addresses.ts `Cidr`), so one code path serves IPv4
 * and IPv6.
 */
import { type Cidr, cidr4KeyLast, cidr4KeyNetwork, type Family, familyBits, formatAddr, formatIPv4, parseCidr } from './addresses.js';

/** A closed interval of addresses of one family: first..last, both included. */
export interface Interval {
  first: bigint;
  last: bigint;
}

/** The interval a CIDR covers. */
export function intervalOfCidr(c: Cidr): Interval {
  return { first: c.network, last: c.network + (1n << BigInt(familyBits(c.family) - c.prefix)) - 1n };
}

/**
 * Sorts, then joins overlapping AND adjacent intervals: the kernel's view of a set with auto-merge.
 * Linear after the sort; the input is not modified.
 */
export function mergeIntervals(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const top = out[out.length - 1];
    if (top && iv.first <= top.last + 1n) {
      if (iv.last > top.last) out[out.length - 1] = { first: top.first, last: iv.last };
    } else {
      out.push({ first: iv.first, last: iv.last });
    }
  }
  return out;
}

/** The intervals a list of CIDRs covers, as an auto-merge set holds them (see mergeIntervals). */
export function intervalsOfCidrs(cidrs: readonly Cidr[]): Interval[] {
  return mergeIntervals(cidrs.map(intervalOfCidr));
}

/** Number of addresses in an interval. */
function sizeOf(iv: Interval): bigint {
  return iv.last - iv.first + 1n;
}

/**
 * nft text of one element: `a.b.c.d/n` when the interval is exactly one CIDR block, a single address
 * for a /32 (/128), `first-last` otherwise (nft accepts all three in an interval set and lists them
 * the same way).
 */
export function formatInterval(family: Family, iv: Interval): string {
  if (family === 4 && iv.first >= 0n && iv.first <= iv.last && iv.last <= 0xffffffffn) {
    return formatInterval4(Number(iv.first), Number(iv.last)); // no BigInt arithmetic (issue 17)
  }
  return formatIntervalBigint(family, iv);
}

/** formatInterval on bigints, for either family: the reference formatInterval4 is held to. */
export function formatIntervalBigint(family: Family, iv: Interval): string {
  const size = sizeOf(iv);
  if ((size & (size - 1n)) === 0n && iv.first % size === 0n) {
    const hostBits = size.toString(2).length - 1;
    const prefix = familyBits(family) - hostBits;
    return `${formatAddr(family, iv.first)}/${prefix}`;
  }
  return `${formatAddr(family, iv.first)}-${formatAddr(family, iv.last)}`;
}

const SLASH_PREFIX_TEXT: readonly string[] = Array.from({ length: 33 }, (_, i) => `/${i}`);

/**
 * formatInterval for an IPv4 interval on numbers: `first` and `last` unsigned 32-bit,
 * first <= last.
 */
export function formatInterval4(first: number, last: number): string {
  const size = last - first + 1; // 1 .. 2^32
  // A power of two (2^32 included: its int32 is 0) aligned to its size is one CIDR block.
  if ((size & (size - 1)) === 0 && first % size === 0) {
    const hostBits = size === 2 ** 32 ? 32 : 31 - Math.clz32(size);
    return formatIPv4(first) + SLASH_PREFIX_TEXT[32 - hostBits]!;
  }
  return `${formatIPv4(first)}-${formatIPv4(last)}`;
}

/**
 * intervalsOfCidrs for packed IPv4 CIDRs (lib/net/addresses.ts cidr4Key) on numbers: the intervals
 * as one array of pairs `[first0, last0, first1, last1, ...]`, sorted, overlapping and adjacent
 * blocks joined (mergeIntervals). Sorts a copy only when `keys` is not sorted already (a
 * normaliseCidr4Keys result is).
 */
export function intervalsOfCidr4Keys(keys: ArrayLike<number>): Float64Array {
  let sorted = keys;
  for (let i = 1; i < keys.length; i++) {
    if (keys[i]! < keys[i - 1]!) {
      sorted = Float64Array.from(keys).sort();
      break;
    }
  }
  const out = new Float64Array(2 * sorted.length);
  let n = 0; // numbers in out
  for (let i = 0; i < sorted.length; i++) {
    const first = cidr4KeyNetwork(sorted[i]!);
    const last = cidr4KeyLast(sorted[i]!);
    if (n > 0 && first <= out[n - 1]! + 1) {
      if (last > out[n - 1]!) out[n - 1] = last;
    } else {
      out[n++] = first;
      out[n++] = last;
    }
  }
  return out.slice(0, n);
}

/** Whether two interval lists are the same list (compare merged lists: see mergeIntervals). */
export function sameIntervals(a: readonly Interval[], b: readonly Interval[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.first !== b[i]!.first || a[i]!.last !== b[i]!.last) return false;
  }
  return true;
}

/**
 * What turns the element list `from` into `to`, element by element: `removed` are the elements of
 * `from` that are not elements of `to` (the SAME interval, not merely the same addresses), `added`
 * the elements of `to` that are not in `from`. Both inputs sorted and disjoint (merged lists); one
 * linear walk. Deleting `removed` then adding `added` leaves exactly `to` when `from` was exactly
 * what the set held: an added element never touches a kept one (both are elements of `to`, which
 * are non-adjacent), only removed ones, which are gone first.
 */
export function diffIntervals(from: readonly Interval[], to: readonly Interval[]): { removed: Interval[]; added: Interval[] } {
  const removed: Interval[] = [];
  const added: Interval[] = [];
  let i = 0;
  let j = 0;
  while (i < from.length || j < to.length) {
    const a = from[i];
    const b = to[j];
    if (a && b && a.first === b.first && a.last === b.last) {
      i++;
      j++;
    } else if (a && (!b || a.first < b.first || (a.first === b.first && a.last < b.last))) {
      removed.push(a);
      i++;
    } else {
      added.push(b!);
      j++;
    }
  }
  return { removed, added };
}

/** One address of a family as a bigint, or null. */
export function parseAddr(family: Family, text: string): bigint | null {
  const p = parseCidr(`${text}/${familyBits(family)}`);
  return p.ok && p.cidr.family === family ? p.cidr.network : null;
}

/**
 * One element as nft writes it: `addr`, `addr/len` (host bits allowed, masked like nft), or
 * `first-last`; null when it is none of these (or of another family).
 */
export function parseElementText(family: Family, text: string): Interval | null {
  const s = text.trim();
  const dash = s.indexOf('-');
  if (dash > 0) {
    const first = parseAddr(family, s.slice(0, dash).trim());
    const last = parseAddr(family, s.slice(dash + 1).trim());
    return first !== null && last !== null && first <= last ? { first, last } : null;
  }
  if (s.includes('/')) {
    const p = parseCidr(s);
    return p.ok && p.cidr.family === family ? intervalOfCidr(p.cidr) : null;
  }
  const a = parseAddr(family, s);
  return a === null ? null : { first: a, last: a };
}
