import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_NON_MASQUERADE_CIDRS,
  LINK_LOCAL_CIDR,
  cidrRange,
  contains,
  fromInt,
  isAligned,
  isIPv4,
  isUsableHost,
  nthAddress,
  overlaps,
  parseCidr,
  prefixLength,
  toInt,
  withPrefix,
} from './addresses.js';

describe('constants', () => {
  it('lists the 11 default non-masquerade CIDRs of ip-masq-agent, frozen', () => {
    expect(DEFAULT_NON_MASQUERADE_CIDRS).toHaveLength(11);
    expect(DEFAULT_NON_MASQUERADE_CIDRS).toContain('10.0.0.0/8');
    expect(DEFAULT_NON_MASQUERADE_CIDRS).toContain('240.0.0.0/4');
    expect(Object.isFrozen(DEFAULT_NON_MASQUERADE_CIDRS)).toBe(true);
    for (const c of DEFAULT_NON_MASQUERADE_CIDRS) expect(isAligned(c), c).toBe(true);
    expect(LINK_LOCAL_CIDR).toBe('169.254.0.0/16');
  });
});

describe('isIPv4', () => {
  it('accepts dotted-quad IPv4 only', () => {
    for (const ok of ['0.0.0.0', '10.10.10.1', '255.255.255.255']) expect(isIPv4(ok), ok).toBe(true);
    for (const bad of ['010.1.1.1', '10.1.1', '10.1.1.256', '0x0a.1.1.1', '::1', 'fd00::1', '10.1.1.1/32', '', ' 10.1.1.1', 1, null, undefined]) {
      expect(isIPv4(bad), String(bad)).toBe(false);
    }
  });
});

describe('parseCidr', () => {
  it('parses a.b.c.d/n', () => {
    const p = parseCidr('10.10.10.0/24');
    expect(p?.[0].toString()).toBe('10.10.10.0');
    expect(p?.[1]).toBe(24);
    expect(parseCidr('0.0.0.0/0')?.[1]).toBe(0);
    expect(parseCidr('1.2.3.4/32')?.[1]).toBe(32);
  });
  it('keeps host bits (alignment is a separate question)', () => {
    expect(parseCidr('10.0.0.1/8')?.[0].toString()).toBe('10.0.0.1');
  });
  it('refuses IPv6, missing prefix, out-of-range prefix and non-decimal octets', () => {
    for (const bad of ['fd00::/8', '::/0', '10.0.0.0', '10.0.0.0/33', '10.0.0.0/-1', '256.0.0.0/8', '0x0a.0.0.0/8', '10.0.0/8', '10.0.0.0/8 ', 42, undefined]) {
      expect(parseCidr(bad), String(bad)).toBeUndefined();
    }
  });
  it('refuses leading zeros instead of reading them as octal (010.0.0.0/8 is not 8.0.0.0/8)', () => {
    expect(parseCidr('010.0.0.0/8')).toBeUndefined();
    expect(parseCidr('10.010.0.0/16')).toBeUndefined();
    expect(isAligned('010.0.0.0/8')).toBe(false);
  });
});

describe('integer conversion', () => {
  it('converts known values', () => {
    expect(toInt('0.0.0.0')).toBe(0);
    expect(toInt('255.255.255.255')).toBe(0xffffffff);
    expect(toInt('192.168.1.1')).toBe(0xc0a80101);
    expect(fromInt(0xc0a80101)).toBe('192.168.1.1');
    expect(fromInt(0xffffffff)).toBe('255.255.255.255');
  });
  it('round-trips every 32-bit value', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => toInt(fromInt(n)) === n));
  });
});

describe('cidrRange / isAligned / prefixLength', () => {
  it('gives network address, last address and prefix', () => {
    expect(cidrRange('10.10.10.0/24')).toEqual({ first: toInt('10.10.10.0'), last: toInt('10.10.10.255'), bits: 24 });
    expect(cidrRange('0.0.0.0/0')).toEqual({ first: 0, last: 0xffffffff, bits: 0 });
    expect(cidrRange('1.2.3.4/32')).toEqual({ first: toInt('1.2.3.4'), last: toInt('1.2.3.4'), bits: 32 });
    // Host bits are masked away.
    expect(cidrRange('10.0.0.1/8').first).toBe(toInt('10.0.0.0'));
    expect(prefixLength('100.127.255.252/30')).toBe(30);
  });
  it('throws on a non-CIDR', () => {
    expect(() => cidrRange('nope')).toThrow(/not an IPv4 CIDR: nope/);
  });
  it('tells aligned from misaligned', () => {
    expect(isAligned('10.0.0.0/8')).toBe(true);
    expect(isAligned('10.0.0.1/8')).toBe(false);
    expect(isAligned('192.168.1.0/23')).toBe(false);
    expect(isAligned('192.168.0.0/23')).toBe(true);
    expect(isAligned('garbage')).toBe(false);
  });
});

describe('contains / overlaps', () => {
  it('contains', () => {
    expect(contains('10.10.10.0/24', '10.10.10.255')).toBe(true);
    expect(contains('10.10.10.0/24', '10.10.11.0')).toBe(false);
    expect(contains('0.0.0.0/0', '8.8.8.8')).toBe(true);
    expect(contains('not-a-cidr', '10.0.0.1')).toBe(false);
    expect(contains('10.0.0.0/8', 'not-an-ip')).toBe(false);
  });
  it('overlaps is symmetric and detects nesting and adjacency correctly', () => {
    const cases: [string, string, boolean][] = [
      ['10.0.0.0/8', '10.10.10.0/24', true],
      ['10.10.10.0/24', '10.10.11.0/24', false],
      ['10.10.10.0/23', '10.10.11.0/24', true],
      ['192.168.1.0/24', '192.168.1.255/32', true],
      ['192.168.1.0/24', '192.168.2.0/32', false],
    ];
    for (const [a, b, want] of cases) {
      expect(overlaps(a, b), `${a} ${b}`).toBe(want);
      expect(overlaps(b, a), `${b} ${a}`).toBe(want);
    }
  });
});

describe('nthAddress / isUsableHost / withPrefix', () => {
  it('nthAddress counts from the network address and refuses out of range', () => {
    expect(nthAddress('172.16.100.0/24', 0)).toBe('172.16.100.0');
    expect(nthAddress('172.16.100.0/24', 1)).toBe('172.16.100.1');
    expect(nthAddress('172.16.100.0/24', 255)).toBe('172.16.100.255');
    expect(() => nthAddress('172.16.100.0/24', 256)).toThrow(/has no address number 256/);
    expect(() => nthAddress('172.16.100.0/24', -1)).toThrow(/has no address number -1/);
  });
  it('isUsableHost excludes network and broadcast except on /31 and /32', () => {
    expect(isUsableHost('192.168.1.0/24', '192.168.1.0')).toBe(false);
    expect(isUsableHost('192.168.1.0/24', '192.168.1.255')).toBe(false);
    expect(isUsableHost('192.168.1.0/24', '192.168.1.1')).toBe(true);
    expect(isUsableHost('192.168.1.0/24', '192.168.2.1')).toBe(false);
    expect(isUsableHost('10.0.0.0/31', '10.0.0.0')).toBe(true);
    expect(isUsableHost('10.0.0.0/31', '10.0.0.1')).toBe(true);
    expect(isUsableHost('10.0.0.7/32', '10.0.0.7')).toBe(true);
  });
  it('withPrefix makes an interface address', () => {
    expect(withPrefix('192.168.1.1', '192.168.1.0/24')).toBe('192.168.1.1/24');
  });
});
