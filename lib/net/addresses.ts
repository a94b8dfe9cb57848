/**
 * Addresses: the one module for IP address and CIDR parsing and arithmetic, on top of ipaddr.js.
 * The agent, the controller and the harness all use it; it imports nothing of theirs.
 *
 * Three dialects, for three callers' needs:
 *
 *   IPv4, strict      `isIPv4`, `parseCidr4` (with the reason a CIDR is refused), `Cidr4` with
 *                     32-bit numbers: the controller's and the gateway datapath's objects.
 *   IPv4, on text     `cidrRange`, `cidrTextContains`, `overlaps`, `nthAddress`, ...: the harness's
 *                     topology arithmetic (host bits allowed, masked away).
 *   Go net.ParseCIDR  `parseCidr`, `Cidr` (IPv4 and IPv6 as bigints), `normaliseCidrs`: what
 *                     upstream ip-masq-agent validates with, for the masquerade agent.
 *
 * Addresses are written in dotted four-part decimal only: "010.0.0.1" (octal in inet_aton),
 * "10.1" and hex forms are refused everywhere.
 */
import ipaddr from 'ipaddr.js';

/** Upstream ip-masq-agent's `linkLocalCIDR` (cmd/ip-masq-agent/ip-masq-agent.go). */
export const LINK_LOCAL_CIDR = '169.254.0.0/16';
/** Upstream ip-masq-agent's `linkLocalCIDRIPv6`. */
export const LINK_LOCAL_CIDR_IPV6 = 'fe80::/10';

// ---------------------------------------------------------------------------------------------
// IPv4 addresses

/** Whether `text` is a dotted four-part decimal IPv4 address (no leading zeros, no short forms). */
export function isIPv4(text: unknown): text is string {
  return typeof text === 'string' && ipaddr.IPv4.isValidFourPartDecimal(text);
}

/** An IPv4 address as an unsigned 32-bit number. */
export function ipv4ToInt(ip: string | ipaddr.IPv4): number {
  const bytes = (typeof ip === 'string' ? ipaddr.IPv4.parse(ip) : ip).toByteArray();
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

/** The IPv4 address of an unsigned 32-bit number. */
export function intToIPv4(n: number): string {
  return formatIPv4(n);
}

/** "0" .. "255": octet texts, so that formatting an address converts no number to text (issue 17). */
const OCTET_TEXT: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));

/**
 * The dotted text of an unsigned 32-bit number (intToIPv4), by table look-up and concatenation: no
 * array, no BigInt. The masquerade agent formats 10,000 addresses with it per render (issue 17).
 */
export function formatIPv4(n: number): string {
  return `${OCTET_TEXT[(n >>> 24) & 255]!}.${OCTET_TEXT[(n >>> 16) & 255]!}.${OCTET_TEXT[(n >>> 8) & 255]!}.${OCTET_TEXT[n & 255]!}`;
}

/**
 * The IPv4 ranges no host can have as its own unicast address, with what each is called. Listed
 * here rather than taken from ipaddr.js's range names: its "reserved" also holds documentation and
 * benchmarking networks (192.0.2.0/24, 198.18.0.0/15, 203.0.113.0/24, ...), which are ordinary
 * unicast addresses a lab may well use. The limited broadcast address comes before 240.0.0.0/4,
 * which contains it.
 */
export const NON_UNICAST_RANGES: readonly { readonly cidr: string; readonly name: string; readonly address: string }[] = Object.freeze([
  { cidr: '0.0.0.0/8', name: 'unspecified addresses', address: 'an unspecified address (0.0.0.0/8)' },
  { cidr: '127.0.0.0/8', name: 'loopback addresses', address: 'a loopback address (127.0.0.0/8)' },
  { cidr: '169.254.0.0/16', name: 'link-local addresses', address: 'a link-local address (169.254.0.0/16)' },
  { cidr: '224.0.0.0/4', name: 'multicast addresses', address: 'a multicast address (224.0.0.0/4)' },
  { cidr: '255.255.255.255/32', name: 'the limited broadcast address', address: 'the limited broadcast address' },
  { cidr: '240.0.0.0/4', name: 'reserved addresses', address: 'a reserved address (240.0.0.0/4)' },
]);

/**
 * Why an IPv4 address can never be a host's unicast address (for a floating IP or an egressSourceIP),
 * or null when it can (NON_UNICAST_RANGES).
 */
export function nonUnicastReason(ip: string): string | null {
  return NON_UNICAST_RANGES.find((r) => cidrTextContains(r.cidr, ip))?.address ?? null;
}

/**
 * The first range of NON_UNICAST_RANGES a CIDR shares addresses with (as "169.254.0.0/16 (link-local
 * addresses)"), or null: a lab range there would give hosts addresses no host can use.
 */
export function nonUnicastOverlap(cidr: string): string | null {
  const r = NON_UNICAST_RANGES.find((x) => overlaps(x.cidr, cidr));
  return r ? `${r.cidr} (${r.name})` : null;
}

// ---------------------------------------------------------------------------------------------
// IPv4 CIDRs, strict (the controller's and the gateway datapath's)

/** A parsed IPv4 CIDR: its network address as a number, its prefix length and canonical text. */
export interface Cidr4 {
  /** network address as an unsigned 32-bit integer */
  readonly base: number;
  readonly prefix: number;
  /** canonical text, e.g. "10.0.0.0/8" */
  readonly text: string;
}

/** A parsed value, or the reason the input was refused (for an error naming field and value). */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/** The 32-bit netmask of a prefix length (24 -> 0xffffff00). */
export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses an IPv4 CIDR. `strict` (default) requires the address to be the block's network address
 * (10.0.0.1/8 is refused, as upstream ip-masq-agent refuses it); without it, host bits are masked away.
 */
export function parseCidr4(text: unknown, strict = true): ParseResult<Cidr4> {
  if (typeof text !== 'string') return { ok: false, reason: 'must be a string in CIDR notation (e.g. 10.0.0.0/8)' };
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  if (!m) {
    if (text.includes(':')) return { ok: false, reason: 'must be an IPv4 CIDR (IPv6 is not supported)' };
    return { ok: false, reason: 'must be a valid CIDR (e.g. 10.0.0.0/8)' };
  }
  const addr = m[1]!;
  const prefix = Number(m[2]);
  if (addr.includes(':')) return { ok: false, reason: 'must be an IPv4 CIDR (IPv6 is not supported)' };
  if (!isIPv4(addr)) return { ok: false, reason: 'must be a valid CIDR (e.g. 10.0.0.0/8)' };
  if (prefix > 32) return { ok: false, reason: 'prefix length must be between 0 and 32' };
  const n = ipv4ToInt(addr);
  const base = (n & maskOf(prefix)) >>> 0;
  if (strict && base !== n) {
    return { ok: false, reason: `must be the network address of the block (did you mean ${intToIPv4(base)}/${prefix}?)` };
  }
  return { ok: true, value: { base, prefix, text: `${intToIPv4(base)}/${prefix}` } };
}

/** Whether a parsed CIDR contains an address (dotted text, or a 32-bit number). */
export function cidrContains(cidr: Cidr4, ip: string | number): boolean {
  const n = typeof ip === 'number' ? ip : ipv4ToInt(ip);
  return (n & maskOf(cidr.prefix)) >>> 0 === cidr.base;
}

/** Whether the CIDR `cidrText` contains the address `ip` (both text); false when either does not parse. */
export function cidrTextContains(cidrText: string, ip: string): boolean {
  const c = parseCidr4(cidrText, false);
  return c.ok && isIPv4(ip) && cidrContains(c.value, ip);
}

/** Sorts and de-duplicates CIDR texts numerically (base, then prefix); unparsable entries are dropped. */
export function normaliseCidrList(list: readonly string[]): string[] {
  return sortedUniqueCidrs(list).map((c) => c.text);
}

/** The parsable IPv4 CIDRs of `list`, host bits masked, duplicates merged, by address then prefix. */
function sortedUniqueCidrs(list: readonly string[]): Cidr4[] {
  const seen = new Map<string, Cidr4>();
  for (const t of list) {
    const p = parseCidr4(t, false);
    if (p.ok) seen.set(p.value.text, p.value);
  }
  return [...seen.values()].sort((a, b) => a.base - b.base || a.prefix - b.prefix);
}

/**
 * The IPv4 CIDRs of `list` that no other entry contains, in address order (unparsable entries
 * dropped, duplicates merged): the same addresses as the whole list, and no two entries overlap —
 * what an nft interval set takes (it refuses overlapping elements: "conflicting intervals").
 * Two CIDRs either nest or are disjoint, so dropping the nested ones is all the merging needed.
 */
export function coveringCidrList(list: readonly string[]): string[] {
  const out: string[] = [];
  let end = -1;
  for (const c of sortedUniqueCidrs(list)) {
    const last = c.base + 2 ** (32 - c.prefix) - 1;
    if (last <= end) continue; // inside the entry kept before it
    out.push(c.text);
    end = last;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// IPv4 CIDR arithmetic on text (the harness's topology)

/** Network address and size of a CIDR (host bits masked away); throws when it is not an IPv4 CIDR. */
export function cidrRange(cidr: string): { first: number; last: number; bits: number } {
  const parsed = parseCidr4(cidr, false);
  if (!parsed.ok) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const { base: first, prefix: bits } = parsed.value;
  const last = (first + 2 ** (32 - bits) - 1) >>> 0;
  return { first, last, bits };
}

/** True when the address part has no host bits set (10.0.0.0/8 yes, 10.0.0.1/8 no). */
export function isAligned(cidr: string): boolean {
  return parseCidr4(cidr, true).ok;
}

/** Whether two CIDRs share any address. */
export function overlaps(a: string, b: string): boolean {
  const ra = cidrRange(a);
  const rb = cidrRange(b);
  return ra.first <= rb.last && rb.first <= ra.last;
}

/** The prefix length of a CIDR (`10.0.0.0/8` -> 8). */
export function prefixLength(cidr: string): number {
  return cidrRange(cidr).bits;
}

/** The n-th address of a CIDR (0 = network address). */
export function nthAddress(cidr: string, n: number): string {
  const { first, last } = cidrRange(cidr);
  const ip = first + n;
  if (ip > last || n < 0) throw new Error(`${cidr} has no address number ${n}`);
  return intToIPv4(ip);
}

/** Usable host addresses (excludes network and broadcast for prefixes shorter than /31). */
export function isUsableHost(cidr: string, ip: string): boolean {
  if (!cidrTextContains(cidr, ip)) return false;
  const { first, last, bits } = cidrRange(cidr);
  if (bits >= 31) return true;
  const n = ipv4ToInt(ip);
  return n !== first && n !== last;
}

/** "a.b.c.d/n" where n is the CIDR's prefix length: an interface address. */
export function withPrefix(ip: string, cidr: string): string {
  return `${ip}/${prefixLength(cidr)}`;
}

// ---------------------------------------------------------------------------------------------
// Go net.ParseCIDR semantics, IPv4 and IPv6 (the masquerade agent's, as upstream ip-masq-agent)
//
// Addresses are bigints so one code path serves both families. normaliseCidrs turns a CIDR list into
// a minimal, sorted, non-overlapping one, so that nftables interval sets never receive overlapping
// elements.

/** An address family: 4 or 6. */
export type Family = 4 | 6;

/** A CIDR of either family, its address a bigint. */
export interface Cidr {
  family: Family;
  /** Network address (host bits cleared). */
  network: bigint;
  prefix: number;
}

/** The result of parseCidr: the CIDR, the address as written and whether it was aligned; or a message. */
export type CidrParse = { ok: true; cidr: Cidr; ip: bigint; aligned: boolean } | { ok: false; message: string };

/** Address width of a family in bits (32 or 128). */
export function familyBits(f: Family): number {
  return f === 4 ? 32 : 128;
}

/**
 * The address of a dotted four-part decimal IPv4 text as an unsigned 32-bit number, or null: exactly
 * the texts isIPv4 accepts (four decimal fields 0-255, no leading zeros: "010.0.0.0" is refused, as
 * Go's netip does), with ipv4ToInt's value, read in one pass without ipaddr.js's regular expressions
 * (parseCidr runs it for every entry of a 10,000-CIDR masquerade config; issue 17). The property
 * test in addresses.test.ts holds it to isIPv4 + ipv4ToInt.
 */
export function dottedQuadToInt(s: string): number | null {
  const len = s.length;
  let n = 0;
  let p = 0;
  for (let part = 0; ; part++) {
    const start = p;
    let v = 0;
    for (; p < len; p++) {
      const d = s.charCodeAt(p) - 48;
      if (d < 0 || d > 9) break;
      if (p - start === 3) return null; // 4+ digits: a leading zero or more than 255
      v = v * 10 + d;
    }
    if (p === start || (p - start > 1 && s.charCodeAt(start) === 48) || v > 255) return null;
    n = n * 256 + v;
    if (part === 3) return p === len ? n : null;
    if (s.charCodeAt(p) !== 46 /* . */) return null;
    p++;
  }
}

function parseIPv6Big(s: string): bigint | null {
  if (s.includes('%')) return null; // zones are refused by net.ParseCIDR
  if (!ipaddr.IPv6.isValid(s)) return null;
  let v = 0n;
  for (const b of ipaddr.IPv6.parse(s).toByteArray()) v = (v << 8n) | BigInt(b);
  return v;
}

/** The netmask of a prefix length in a family, as a bigint. */
export function maskFor(family: Family, prefix: number): bigint {
  const bits = BigInt(familyBits(family));
  const host = bits - BigInt(prefix);
  const all = (1n << bits) - 1n;
  return all ^ ((1n << host) - 1n);
}

/** The text of an address of a family (dotted quad, or RFC 5952 IPv6). */
export function formatAddr(family: Family, v: bigint): string {
  if (family === 4) return formatIPv4(Number(BigInt.asUintN(32, v))); // each octet is (v >> sh) & 0xff
  const bytes: number[] = [];
  for (let i = 15; i >= 0; i--) bytes.push(Number((v >> BigInt(i * 8)) & 0xffn));
  return ipaddr.fromByteArray(bytes).toString();
}

/** "network/prefix" of a CIDR. */
export function formatCidr(c: Cidr): string {
  return `${formatAddr(c.family, c.network)}/${c.prefix}`;
}

const V4_MAPPED_PREFIX = 0xffffn << 32n;

/**
 * Parse like Go's net.ParseCIDR: "<addr>/<decimal prefix>", prefix 0..bits (leading zeros in the
 * prefix are accepted, as Go's dtoi does). Reports whether the address is aligned to its block
 * (upstream refuses misaligned CIDRs such as 10.0.0.1/8 — the caller decides).
 */
export function parseCidr(s: string): CidrParse {
  const bad = (): CidrParse => ({ ok: false, message: `invalid CIDR address: ${s}` });
  const slash = s.indexOf('/');
  if (slash < 0) return bad();
  const addrPart = s.slice(0, slash);
  const maskPart = s.slice(slash + 1);
  if (!addrPart.includes(':')) {
    // IPv4 in 32-bit numbers (bigints only for the result): the common case, kept cheap (issue 17).
    const v4 = ipv4CidrParts(addrPart, maskPart);
    if (v4 === null) return bad();
    const net = (v4.addr & maskOf(v4.prefix)) >>> 0;
    return { ok: true, cidr: { family: 4, network: BigInt(net), prefix: v4.prefix }, ip: BigInt(v4.addr), aligned: net === v4.addr };
  }
  const ip = parseIPv6Big(addrPart);
  if (ip === null) return bad();
  const prefix = prefixLen(maskPart);
  if (prefix === null || prefix > 128) return bad();
  if (ip >> 32n === V4_MAPPED_PREFIX >> 32n) {
    // Go would accept "::ffff:a.b.c.d/n" and then treat it as IPv4 (isIPv6CIDR is false), which
    // iptables-restore then rejects on every sync; we refuse it up front with a clear message.
    return { ok: false, message: `IPv4-mapped IPv6 CIDR ${s} is not supported; write the IPv4 CIDR` };
  }
  const network = ip & maskFor(6, prefix);
  return { ok: true, cidr: { family: 6, network, prefix }, ip, aligned: network === ip };
}

/** The address (host bits kept) and prefix length of an IPv4 CIDR's two texts, or null when they are not one. */
function ipv4CidrParts(addrPart: string, maskPart: string): { addr: number; prefix: number } | null {
  const addr = dottedQuadToInt(addrPart);
  if (addr === null) return null;
  const prefix = prefixLen(maskPart);
  if (prefix === null || prefix > 32) return null;
  return { addr, prefix };
}

/** A CIDR's prefix length text as Go's dtoi reads it (decimal digits, leading zeros fine), or null. */
function prefixLen(s: string): number | null {
  if (!/^[0-9]+$/.test(s)) return null;
  const prefix = Number(s.length > 8 ? 'x' : s); // huge values fail like Go's dtoi
  return Number.isInteger(prefix) ? prefix : null;
}

function lastAddr(c: Cidr): bigint {
  return c.network + (1n << BigInt(familyBits(c.family) - c.prefix)) - 1n;
}

/** True when address `a` (of the same family) is inside c. */
export function cidrContainsAddress(c: Cidr, a: bigint): boolean {
  return a >= c.network && a <= lastAddr(c);
}

/**
 * Normalise CIDRs of ONE family: drop duplicates and CIDRs contained in others, then merge sibling
 * blocks into their parent (10.0.0.0/9 + 10.128.0.0/9 -> 10.0.0.0/8), repeatedly. The result is
 * the minimal list of CIDRs covering exactly the same addresses, sorted by address, pairwise
 * disjoint. 0.0.0.0/0 swallows everything.
 */
export function normaliseCidrs(input: readonly Cidr[]): Cidr[] {
  if (input.length === 0) return [];
  const fam = input[0]!.family;
  for (const c of input) {
    if (c.family !== fam) throw new Error('normaliseCidrs: mixed address families');
  }
  if (fam !== 4) return normaliseCidrsBigint(input);
  // IPv4: on packed numbers (normaliseCidr4Keys), bigints only for the result (issue 17).
  const keys = new Float64Array(input.length);
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (!isPrefix4(c.prefix)) return normaliseCidrsBigint(input); // not a CIDR; keep the bigint path's answer
    keys[i] = cidr4Key(Number(BigInt.asUintN(32, c.network)), c.prefix);
  }
  const norm = normaliseCidr4Keys(keys);
  const out: Cidr[] = new Array<Cidr>(norm.length);
  for (let i = 0; i < norm.length; i++) {
    const k = norm[i]!;
    out[i] = { family: 4, network: BigInt(cidr4KeyNetwork(k)), prefix: cidr4KeyPrefix(k) };
  }
  return out;
}

/**
 * normaliseCidrs on bigints, for either family: the IPv6 path, and the reference the IPv4 path
 * (normaliseCidr4Keys) is held to by a property test.
 */
export function normaliseCidrsBigint(input: readonly Cidr[]): Cidr[] {
  if (input.length === 0) return [];
  const fam = input[0]!.family;
  for (const c of input) {
    if (c.family !== fam) throw new Error('normaliseCidrs: mixed address families');
  }
  const bits = familyBits(fam);
  const sorted = input
    .map((c) => ({ family: c.family, network: c.network & maskFor(c.family, c.prefix), prefix: c.prefix }))
    .sort((a, b) => (a.network < b.network ? -1 : a.network > b.network ? 1 : a.prefix - b.prefix));

  const stack: Cidr[] = [];
  let coveredTo = -1n; // last address covered by what is already on the stack
  for (const c of sorted) {
    if (c.network <= coveredTo) continue; // contained in (or equal to) an earlier, wider block
    stack.push(c);
    coveredTo = lastAddr(c);
    // Merge siblings while possible.
    for (;;) {
      const b = stack[stack.length - 1];
      const a = stack[stack.length - 2];
      if (!a || !b || a.prefix !== b.prefix || a.prefix === 0) break;
      const size = 1n << BigInt(bits - a.prefix);
      const isLeftChild = ((a.network >> BigInt(bits - a.prefix)) & 1n) === 0n;
      if (!isLeftChild || b.network !== a.network + size) break;
      stack.splice(stack.length - 2, 2, { family: fam, network: a.network, prefix: a.prefix - 1 });
    }
  }
  return stack;
}

/** Parse + normalise a list of already-validated CIDR strings, grouped by family. */
export function normaliseCidrStrings(list: readonly string[]): { v4: Cidr[]; v6: Cidr[] } {
  const v4: Cidr[] = [];
  const v6: Cidr[] = [];
  for (const s of list) {
    const p = parseCidr(s);
    if (!p.ok) throw new Error(p.message);
    (p.cidr.family === 4 ? v4 : v6).push(p.cidr);
  }
  return { v4: normaliseCidrs(v4), v6: normaliseCidrs(v6) };
}

// ---------------------------------------------------------------------------------------------
// IPv4 CIDRs packed in one number (the masquerade agent's fast path, issue 17)
//
// The Go-semantics functions above work on bigints so that one code path serves both families; for
// 10,000 IPv4 CIDRs that BigInt work (and its garbage) dominated a render, most of all in cold code.
// Here an IPv4 CIDR is one double, `network * 64 + prefix` (exact: below 2^38), so that a list of
// them is a Float64Array that sorts natively, in normaliseCidrs' order (address, then prefix).

/** Whether `p` is an IPv4 prefix length (an integer 0..32). */
function isPrefix4(p: number): boolean {
  return Number.isInteger(p) && p >= 0 && p <= 32;
}

/** The packed key of an IPv4 CIDR (host bits of `network` cleared; `prefix` an integer 0..32). */
export function cidr4Key(network: number, prefix: number): number {
  return ((network & maskOf(prefix)) >>> 0) * 64 + prefix;
}

/** The network address (unsigned 32-bit) of a packed IPv4 CIDR. */
export function cidr4KeyNetwork(key: number): number {
  return (key - (key % 64)) / 64;
}

/** The prefix length of a packed IPv4 CIDR. */
export function cidr4KeyPrefix(key: number): number {
  return key % 64;
}

/** The last address (unsigned 32-bit) of a packed IPv4 CIDR. */
export function cidr4KeyLast(key: number): number {
  const prefix = key % 64;
  return (key - prefix) / 64 + 2 ** (32 - prefix) - 1;
}

const SLASH_PREFIX_TEXT: readonly string[] = Array.from({ length: 33 }, (_, i) => `/${i}`);

/** "network/prefix" of a packed IPv4 CIDR (formatCidr's text). */
export function formatCidr4Key(key: number): string {
  const prefix = key % 64;
  return formatIPv4((key - prefix) / 64) + SLASH_PREFIX_TEXT[prefix]!;
}

/**
 * parseCidr's answer for an IPv4 CIDR text as a packed key (the network address, host bits cleared),
 * or null whenever parseCidr would not return an IPv4 CIDR (an IPv6 CIDR, or an invalid text: ask
 * parseCidr which, and for its message). A property test holds it to parseCidr.
 */
export function parseCidr4Key(s: string): number | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const addrPart = s.slice(0, slash);
  if (addrPart.includes(':')) return null;
  const v4 = ipv4CidrParts(addrPart, s.slice(slash + 1));
  return v4 === null ? null : cidr4Key(v4.addr, v4.prefix);
}

/**
 * normaliseCidrs for packed IPv4 CIDRs (cidr4Key): the minimal, sorted, pairwise disjoint list
 * covering the same addresses, as a new Float64Array; no object, no BigInt. The input is not modified.
 */
export function normaliseCidr4Keys(keys: ArrayLike<number>): Float64Array {
  const sorted = Float64Array.from(keys).sort();
  const out = new Float64Array(sorted.length);
  let top = 0; // out[0..top) is the stack of normaliseCidrsBigint
  let coveredTo = -1; // last address covered by what is already on the stack
  for (let i = 0; i < sorted.length; i++) {
    const key = sorted[i]!;
    let prefix = key % 64;
    let network = (key - prefix) / 64;
    if (network <= coveredTo) continue; // contained in (or equal to) an earlier, wider block
    coveredTo = network + 2 ** (32 - prefix) - 1;
    // Merge with the block on top of the stack while they are the two halves of one parent.
    while (top > 0 && prefix > 0) {
      const a = out[top - 1]!;
      if (a % 64 !== prefix) break;
      const aNetwork = (a - prefix) / 64;
      const size = 2 ** (32 - prefix);
      if (aNetwork % (2 * size) !== 0 || network !== aNetwork + size) break; // not a left child + its sibling
      top--;
      network = aNetwork;
      prefix--;
    }
    out[top++] = network * 64 + prefix;
  }
  return out.slice(0, top);
}
