/**
 * CIDR parsing with Go net.ParseCIDR semantics (what upstream ip-masq-agent validates with), and
 * normalisation of a CIDR list into a minimal, sorted, non-overlapping list, so that nftables
 * interval sets never receive overlapping elements.
 *
 * Addresses are bigints so one code path serves IPv4 and IPv6.
 */
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** Network address (host bits cleared). */
  network: bigint;
  prefix: number;
}

export type CidrParse =
  | { ok: true; cidr: Cidr; ip: bigint; aligned: boolean }
  | { ok: false; message: string };

export function familyBits(f: Family): number {
  return f === 4 ? 32 : 128;
}

function parseIPv4(s: string): bigint | null {
  // Go netip: exactly four decimal fields, 0-255, no leading zeros ("010.0.0.0" is refused).
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseIPv6(s: string): bigint | null {
  if (s.includes('%')) return null; // zones are refused by net.ParseCIDR
  if (!ipaddr.IPv6.isValid(s)) return null;
  let v = 0n;
  for (const b of ipaddr.IPv6.parse(s).toByteArray()) v = (v << 8n) | BigInt(b);
  return v;
}

export function maskFor(family: Family, prefix: number): bigint {
  const bits = BigInt(familyBits(family));
  const host = bits - BigInt(prefix);
  const all = (1n << bits) - 1n;
  return all ^ ((1n << host) - 1n);
}

export function formatAddr(family: Family, v: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((sh) => ((v >> sh) & 0xffn).toString()).join('.');
  }
  const bytes: number[] = [];
  for (let i = 15; i >= 0; i--) bytes.push(Number((v >> BigInt(i * 8)) & 0xffn));
  return ipaddr.fromByteArray(bytes).toString();
}

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
  let family: Family;
  let ip: bigint | null;
  if (addrPart.includes(':')) {
    family = 6;
    ip = parseIPv6(addrPart);
  } else {
    family = 4;
    ip = parseIPv4(addrPart);
  }
  if (ip === null) return bad();
  if (!/^[0-9]+$/.test(maskPart)) return bad();
  const prefix = Number(maskPart.length > 8 ? 'x' : maskPart); // huge values fail like Go's dtoi
  if (!Number.isInteger(prefix) || prefix > familyBits(family)) return bad();
  if (family === 6 && (ip >> 32n) === V4_MAPPED_PREFIX >> 32n) {
    // Go would accept "::ffff:a.b.c.d/n" and then treat it as IPv4 (isIPv6CIDR is false), which
    // iptables-restore then rejects on every sync; we refuse it up front with a clear message.
    return { ok: false, message: `IPv4-mapped IPv6 CIDR ${s} is not supported; write the IPv4 CIDR` };
  }
  const network = ip & maskFor(family, prefix);
  return { ok: true, cidr: { family, network, prefix }, ip, aligned: network === ip };
}

function lastAddr(c: Cidr): bigint {
  return c.network + (1n << BigInt(familyBits(c.family) - c.prefix)) - 1n;
}

/** True when address `a` (of the same family) is inside c. */
export function cidrContains(c: Cidr, a: bigint): boolean {
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
