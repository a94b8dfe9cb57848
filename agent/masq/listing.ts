/**
 * Reading back `nft -j -s list table <family> <name>` (JSON, stateless), for the resync check.
 *
 *  - `rulesKey`: the listing with every set's elements and every object's kernel handle taken out,
 *    as canonical JSON: the CONTENT of the tables, sets (declarations), chains and rules, in order.
 *    It equals the key of the TERSE listing (`-t`: sets without their elements) of the same table,
 *    so a terse listing right after an apply is the baseline, and a resync's full listing is
 *    compared with it without keeping (or re-listing) 10,000 elements on the apply path. Without
 *    handles it is also the same after every re-create of the same rules, so a full apply that
 *    changes no rule needs no new baseline. A rule someone added, removed, replaced or moved, a
 *    changed policy or set declaration changes it; an identical object deleted and re-created does
 *    not (nothing to repair).
 *  - `sets`: each named set's elements as merged intervals (lib/net/intervals.ts), to compare with
 *    what was rendered whatever the representation nft chose (prefix, range, single address; nft
 *    also lists an element as it was added, so two adjacent blocks added by someone else show as
 *    two elements, which merging makes equal to the one range we render), and as the kernel holds
 *    them (`elements`, sorted, not merged): a repair deletes those, since nft deletes only whole
 *    elements.
 *
 * Shape (nft 1.0.6; see testing/nft-json.ts for captured listings):
 *   {"nftables": [{"metainfo": {...}}, {"table": {...}}, {"set": {..., "elem": [ELEM, ...]}},
 *                 {"chain": {...}}, {"rule": {...}}, ...]}
 *   ELEM = "1.2.3.4" | {"prefix": {"addr": A, "len": N}} | {"range": [A, B]}
 *        | {"elem": {"val": ELEM, "timeout": ..., "comment": ...}}
 */
import type { Family } from '../../lib/net/addresses.js';
import { type Interval, mergeIntervals, parseAddr, parseElementText } from '../../lib/net/intervals.js';

export interface ListedSet {
  /** address family of the elements (from the set type, else the table family) */
  addrFamily: Family;
  /** the elements, merged; null when one of them could not be read (then it cannot be compared) */
  intervals: Interval[] | null;
  /** the elements as the kernel holds them, sorted (not merged); null with `intervals` */
  elements: Interval[] | null;
}

export interface TableListing {
  rulesKey: string;
  /** named sets by name */
  sets: Map<string, ListedSet>;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** JSON with object keys sorted: the same data gives the same text whatever the key order. */
function canonical(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k]!)}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** One element of an nft JSON listing as an interval, or null when it is not one we can read. */
export function elementInterval(family: Family, e: Json | undefined): Interval | null {
  if (typeof e === 'string') return parseElementText(family, e);
  if (!isObject(e)) return null;
  if (isObject(e.elem)) return elementInterval(family, e.elem.val);
  if (isObject(e.prefix)) {
    const { addr, len } = e.prefix;
    return typeof addr === 'string' && typeof len === 'number' ? parseElementText(family, `${addr}/${len}`) : null;
  }
  if (Array.isArray(e.range) && e.range.length === 2 && typeof e.range[0] === 'string' && typeof e.range[1] === 'string') {
    const first = parseAddr(family, e.range[0]);
    const last = parseAddr(family, e.range[1]);
    return first !== null && last !== null && first <= last ? { first, last } : null;
  }
  return null;
}

function familyOf(set: { [k: string]: Json }): Family {
  if (set.type === 'ipv6_addr') return 6;
  if (set.type === 'ipv4_addr') return 4;
  return set.family === 'ip6' ? 6 : 4;
}

/** `{"rule": {..., "handle": 4}}` without the handle (numbers the kernel hands out, not content). */
function withoutHandles(o: { [k: string]: Json }): Json {
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(o)) {
    if (isObject(v)) {
      const { handle, ...rest } = v;
      out[k] = rest;
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** Parses one table's JSON listing (full or terse). Throws when it is not an nft JSON listing. */
export function parseNftTableJson(text: string): TableListing {
  const doc = JSON.parse(text) as Json;
  if (!isObject(doc) || !Array.isArray(doc.nftables)) throw new Error('not an nft JSON listing (no "nftables" array)');
  const kept: Json[] = [];
  const sets = new Map<string, ListedSet>();
  for (const o of doc.nftables) {
    if (!isObject(o) || 'metainfo' in o) continue; // the nft version is not part of the rules
    if (isObject(o.set)) {
      const { elem, handle, ...decl } = o.set;
      kept.push({ set: decl });
      const addrFamily = familyOf(o.set);
      let intervals: Interval[] | null = [];
      let elements: Interval[] | null = [];
      if (Array.isArray(elem)) {
        const ivs: Interval[] = [];
        for (const e of elem) {
          const iv = elementInterval(addrFamily, e);
          if (!iv) {
            intervals = null;
            break;
          }
          ivs.push(iv);
        }
        if (intervals) {
          intervals = mergeIntervals(ivs);
          elements = ivs.sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
        } else elements = null;
      }
      if (typeof o.set.name === 'string') sets.set(o.set.name, { addrFamily, intervals, elements });
      continue;
    }
    kept.push(withoutHandles(o));
  }
  return { rulesKey: canonical(kept), sets };
}
