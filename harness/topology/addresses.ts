/**
 * IPv4 address arithmetic on top of ipaddr.js. Every address computation in the harness goes
 * through here.
 */
import ipaddr from 'ipaddr.js';

export type Cidr = [ipaddr.IPv4, number];

/** The 11 destinations ip-masq-agent never masquerades by default (SPEC 1): the agent owns the list. */
export { DEFAULT_NON_MASQUERADE_CIDRS } from '../../agent/masq/constants.js';

export const LINK_LOCAL_CIDR = '169.254.0.0/16';

/** Whether `text` is a dotted-quad IPv4 address. */
export function isIPv4(text: unknown): text is string {
  return typeof text === 'string' && ipaddr.IPv4.isValidFourPartDecimal(text);
}

/** Parses "a.b.c.d/n"; returns undefined when it is not an IPv4 CIDR. */
export function parseCidr(text: unknown): Cidr | undefined {
  if (typeof text !== 'string' || !/^\d+\.\d+\.\d+\.\d+\/\d{1,2}$/.test(text)) return undefined;
  try {
    // Check the text itself: ipaddr.js reads "010" as octal 8, and its output is always decimal.
    if (!ipaddr.IPv4.isValidFourPartDecimal(text.slice(0, text.indexOf('/')))) return undefined;
    const [addr, bits] = ipaddr.IPv4.parseCIDR(text);
    if (bits < 0 || bits > 32) return undefined;
    return [addr, bits];
  } catch {
    return undefined;
  }
}

/** An IPv4 address as an unsigned 32-bit number. */
export function toInt(ip: string | ipaddr.IPv4): number {
  const bytes = (typeof ip === 'string' ? ipaddr.IPv4.parse(ip) : ip).toByteArray();
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

/** The IPv4 address of an unsigned 32-bit number. */
export function fromInt(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function maskOf(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** Network address and size of a CIDR. */
export function cidrRange(cidr: string): { first: number; last: number; bits: number } {
  const parsed = parseCidr(cidr);
  if (!parsed) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const [addr, bits] = parsed;
  const first = (toInt(addr) & maskOf(bits)) >>> 0;
  const last = (first + 2 ** (32 - bits) - 1) >>> 0;
  return { first, last, bits };
}

/** True when the address part has no host bits set (10.0.0.0/8 yes, 10.0.0.1/8 no). */
export function isAligned(cidr: string): boolean {
  const parsed = parseCidr(cidr);
  if (!parsed) return false;
  return toInt(parsed[0]) === cidrRange(cidr).first;
}

/** Whether `cidr` contains `ip`. */
export function contains(cidr: string, ip: string): boolean {
  const parsed = parseCidr(cidr);
  if (!parsed || !isIPv4(ip)) return false;
  return ipaddr.IPv4.parse(ip).match(parsed);
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
  return fromInt(ip);
}

/** Usable host addresses (excludes network and broadcast for prefixes shorter than /31). */
export function isUsableHost(cidr: string, ip: string): boolean {
  if (!contains(cidr, ip)) return false;
  const { first, last, bits } = cidrRange(cidr);
  if (bits >= 31) return true;
  const n = toInt(ip);
  return n !== first && n !== last;
}

/** "a.b.c.d/n" where n is the CIDR's prefix length: an interface address. */
export function withPrefix(ip: string, cidr: string): string {
  return `${ip}/${prefixLength(cidr)}`;
}
