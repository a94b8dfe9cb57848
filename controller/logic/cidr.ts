// IPv4 address and CIDR helpers (pure). Strict forms only: dotted four-part decimal addresses and
// CIDRs whose address is the network address of the block (10.0.0.1/8 is refused, as upstream
// ip-masq-agent refuses it).
import ipaddr from 'ipaddr.js';

export interface Cidr4 {
  /** network address as an unsigned 32-bit integer */
  readonly base: number;
  readonly prefix: number;
  /** canonical text, e.g. "10.0.0.0/8" */
  readonly text: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

export function isIPv4(text: unknown): text is string {
  return typeof text === 'string' && ipaddr.IPv4.isValidFourPartDecimal(text) && !/(^|\.)0\d/.test(text);
}

/**
 * Why an IPv4 address can never be a host's unicast address (for a floating IP or an egressSourceIP),
 * or null when it can: 0.0.0.0/8, loopback, link-local, multicast, 240.0.0.0/4 and the limited
 * broadcast address (ipaddr.js ranges).
 */
export function nonUnicastReason(ip: string): string | null {
  const range = ipaddr.IPv4.parse(ip).range();
  const reasons: Record<string, string> = {
    unspecified: 'an unspecified address (0.0.0.0/8)',
    broadcast: 'the limited broadcast address',
    multicast: 'a multicast address (224.0.0.0/4)',
    loopback: 'a loopback address (127.0.0.0/8)',
    linkLocal: 'a link-local address (169.254.0.0/16)',
    reserved: 'a reserved address (240.0.0.0/4)',
  };
  return reasons[range] ?? null;
}

export function ipv4ToInt(text: string): number {
  const parts = text.split('.').map((p) => Number(p));
  return (((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!) >>> 0;
}

export function intToIPv4(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : ((0xffffffff << (32 - prefix)) >>> 0);
}

/** Parses an IPv4 CIDR. `strict` (default) requires the address to be the block's network address. */
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

export function cidrContains(cidr: Cidr4, ip: string | number): boolean {
  const n = typeof ip === 'number' ? ip : ipv4ToInt(ip);
  return ((n & maskOf(cidr.prefix)) >>> 0) === cidr.base;
}

/** Contains check on text forms; false when either side does not parse. */
export function cidrTextContains(cidrText: string, ip: string): boolean {
  const c = parseCidr4(cidrText, false);
  return c.ok && isIPv4(ip) && cidrContains(c.value, ip);
}

/** Sorts and de-duplicates CIDR texts numerically (base, then prefix); unparsable entries are dropped. */
export function normaliseCidrList(list: readonly string[]): string[] {
  const seen = new Map<string, Cidr4>();
  for (const t of list) {
    const p = parseCidr4(t, false);
    if (p.ok) seen.set(p.value.text, p.value);
  }
  return [...seen.values()].sort((a, b) => a.base - b.base || a.prefix - b.prefix).map((c) => c.text);
}
