import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  LINK_LOCAL_CIDR,
  cidrRange,
  cidrTextContains,
  coveringCidrList,
  intToIPv4,
  ipv4ToInt,
  isAligned,
  isIPv4,
  isUsableHost,
  nthAddress,
  overlaps,
  parseCidr4,
  prefixLength,
  withPrefix,
} from './addresses.js';
import ipaddr from 'ipaddr.js';
import {
  type Cidr,
  type CidrParse,
  cidrContainsAddress,
  dottedQuadToInt,
  formatCidr,
  maskFor,
  normaliseCidrs,
  normaliseCidrStrings,
  parseCidr,
} from './addresses.js';

describe('coveringCidrList', () => {
  it('keeps the entries no other one contains, in address order; drops unparsable ones and duplicates', () => {
    expect(coveringCidrList(['172.16.100.0/24', '0.0.0.0/0'])).toEqual(['0.0.0.0/0']);
    expect(coveringCidrList(['10.0.0.0/8', '10.1.0.0/16', 'x', '9.0.0.0/8', '10.0.0.0/8', '11.0.0.1/32'])).toEqual(['9.0.0.0/8', '10.0.0.0/8', '11.0.0.1/32']);
  });
  it('property: the same addresses as the whole list, and no two entries overlap', () => {
    const cidr = fc
      .tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }))
      .map(([a, p]) => `${intToIPv4(p === 0 ? 0 : (a & (~0 << (32 - p))) >>> 0)}/${p}`);
    fc.assert(
      fc.property(fc.array(cidr, { maxLength: 12 }), fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { minLength: 1, maxLength: 20 }), (list, probes) => {
        const out = coveringCidrList(list);
        for (let i = 0; i < out.length; i++) for (let j = i + 1; j < out.length; j++) expect(overlaps(out[i]!, out[j]!)).toBe(false);
        for (const a of probes) {
          const ip = intToIPv4(a);
          expect(out.some((c) => cidrTextContains(c, ip))).toBe(list.some((c) => cidrTextContains(c, ip)));
        }
      }),
    );
  });
});

describe('constants', () => {
  it("names upstream ip-masq-agent's link-local range", () => {
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

describe('parseCidr4', () => {
  it('parses a.b.c.d/n', () => {
    expect(parseCidr4('10.10.10.0/24')).toEqual({ ok: true, value: { base: ipv4ToInt('10.10.10.0'), prefix: 24, text: '10.10.10.0/24' } });
    expect(parseCidr4('0.0.0.0/0')).toMatchObject({ ok: true, value: { prefix: 0 } });
    expect(parseCidr4('1.2.3.4/32')).toMatchObject({ ok: true, value: { prefix: 32 } });
  });
  it('refuses host bits when strict (the default), masks them away otherwise', () => {
    expect(parseCidr4('10.0.0.1/8')).toEqual({ ok: false, reason: 'must be the network address of the block (did you mean 10.0.0.0/8?)' });
    expect(parseCidr4('10.0.0.1/8', false)).toMatchObject({ ok: true, value: { text: '10.0.0.0/8' } });
  });
  it('refuses IPv6, missing prefix, out-of-range prefix and non-decimal octets', () => {
    for (const bad of ['fd00::/8', '::/0', '10.0.0.0', '10.0.0.0/33', '10.0.0.0/-1', '256.0.0.0/8', '0x0a.0.0.0/8', '10.0.0/8', '10.0.0.0/8 ', 42, undefined]) {
      expect(parseCidr4(bad, false).ok, String(bad)).toBe(false);
    }
    expect(parseCidr4('fd00::/8')).toEqual({ ok: false, reason: 'must be an IPv4 CIDR (IPv6 is not supported)' });
  });
  it('refuses leading zeros instead of reading them as octal (010.0.0.0/8 is not 8.0.0.0/8)', () => {
    expect(parseCidr4('010.0.0.0/8', false).ok).toBe(false);
    expect(parseCidr4('10.010.0.0/16', false).ok).toBe(false);
    expect(isAligned('010.0.0.0/8')).toBe(false);
  });
});

describe('integer conversion', () => {
  it('converts known values', () => {
    expect(ipv4ToInt('0.0.0.0')).toBe(0);
    expect(ipv4ToInt('255.255.255.255')).toBe(0xffffffff);
    expect(ipv4ToInt('192.168.1.1')).toBe(0xc0a80101);
    expect(intToIPv4(0xc0a80101)).toBe('192.168.1.1');
    expect(intToIPv4(0xffffffff)).toBe('255.255.255.255');
  });
  it('round-trips every 32-bit value', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => ipv4ToInt(intToIPv4(n)) === n));
  });
});

describe('cidrRange / isAligned / prefixLength', () => {
  it('gives network address, last address and prefix', () => {
    expect(cidrRange('10.10.10.0/24')).toEqual({ first: ipv4ToInt('10.10.10.0'), last: ipv4ToInt('10.10.10.255'), bits: 24 });
    expect(cidrRange('0.0.0.0/0')).toEqual({ first: 0, last: 0xffffffff, bits: 0 });
    expect(cidrRange('1.2.3.4/32')).toEqual({ first: ipv4ToInt('1.2.3.4'), last: ipv4ToInt('1.2.3.4'), bits: 32 });
    // Host bits are masked away.
    expect(cidrRange('10.0.0.1/8').first).toBe(ipv4ToInt('10.0.0.0'));
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

describe('cidrTextContains / overlaps', () => {
  it('cidrTextContains', () => {
    expect(cidrTextContains('10.10.10.0/24', '10.10.10.255')).toBe(true);
    expect(cidrTextContains('10.10.10.0/24', '10.10.11.0')).toBe(false);
    expect(cidrTextContains('0.0.0.0/0', '8.8.8.8')).toBe(true);
    expect(cidrTextContains('not-a-cidr', '10.0.0.1')).toBe(false);
    expect(cidrTextContains('10.0.0.0/8', 'not-an-ip')).toBe(false);
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

// Go net.ParseCIDR semantics (the masquerade agent's dialect)

const norm = (list: string[]) => normaliseCidrStrings(list).v4.map(formatCidr);

describe('parseCidr (Go net.ParseCIDR semantics)', () => {
  it('parses and reports alignment', () => {
    const p = parseCidr('10.0.0.1/8');
    expect(p).toMatchObject({ ok: true, aligned: false, cidr: { family: 4, prefix: 8, network: 10n << 24n } });
    expect(parseCidr('10.0.0.0/8')).toMatchObject({ ok: true, aligned: true });
    expect(parseCidr('fc00::/7')).toMatchObject({ ok: true, aligned: true, cidr: { family: 6, prefix: 7 } });
  });
  it('refuses leading zeros in octets, short forms, zones, v4-mapped', () => {
    for (const s of ['01.0.0.0/8', '10.1/16', '0x0a.0.0.0/8', 'fe80::1%eth0/64', '::ffff:10.0.0.0/104', '1.2.3.4/33', '::/129']) {
      expect(parseCidr(s).ok, s).toBe(false);
    }
  });
});

// parseCidr as it was before the hand-written IPv4 reader (issue 17): ipaddr.js for both families.
function parseCidrReference(s: string): CidrParse {
  const bad = (): CidrParse => ({ ok: false, message: `invalid CIDR address: ${s}` });
  const slash = s.indexOf('/');
  if (slash < 0) return bad();
  const addrPart = s.slice(0, slash);
  const maskPart = s.slice(slash + 1);
  let family: 4 | 6;
  let ip: bigint | null;
  if (addrPart.includes(':')) {
    family = 6;
    ip = null;
    if (!addrPart.includes('%') && ipaddr.IPv6.isValid(addrPart)) {
      ip = 0n;
      for (const b of ipaddr.IPv6.parse(addrPart).toByteArray()) ip = (ip << 8n) | BigInt(b);
    }
  } else {
    family = 4;
    ip = isIPv4(addrPart) ? BigInt(ipv4ToInt(addrPart)) : null;
  }
  if (ip === null) return bad();
  if (!/^[0-9]+$/.test(maskPart)) return bad();
  const prefix = Number(maskPart.length > 8 ? 'x' : maskPart);
  if (!Number.isInteger(prefix) || prefix > (family === 4 ? 32 : 128)) return bad();
  if (family === 6 && ip >> 32n === 0xffffn) {
    return { ok: false, message: `IPv4-mapped IPv6 CIDR ${s} is not supported; write the IPv4 CIDR` };
  }
  const network = ip & maskFor(family, prefix);
  return { ok: true, cidr: { family, network, prefix }, ip, aligned: network === ip };
}

describe('dottedQuadToInt and parseCidr against ipaddr.js (the hand-written IPv4 reader, issue 17)', () => {
  const octetText = fc.oneof(
    fc.integer({ min: 0, max: 255 }).map(String),
    fc.integer({ min: 256, max: 100_000 }).map(String),
    fc.constantFrom('', '0', '00', '01', '007', '0255', '255', '256', '1e2', '0x1', '+1', '-1', ' 1', '1 ', '١'),
  );
  const quadish = fc.oneof(
    fc.array(octetText, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.')),
    fc.string({ unit: fc.constantFrom(...'0123456789.'.split('')), maxLength: 20 }),
    fc.string({ maxLength: 16 }),
  );

  it("property: dottedQuadToInt accepts exactly what isIPv4 accepts, with ipv4ToInt's value", () => {
    fc.assert(
      fc.property(quadish, (s) => {
        expect(dottedQuadToInt(s)).toBe(isIPv4(s) ? ipv4ToInt(s) : null);
      }),
      { numRuns: 3000 },
    );
    for (const s of ['0.0.0.0', '255.255.255.255', '1.2.3.4', '10.0.0.1']) expect(dottedQuadToInt(s), s).toBe(ipv4ToInt(s));
    for (const s of ['', '1.2.3', '1.2.3.4.', '.1.2.3.4', '1..2.3', '1.2.3.04', '1.2.3.256', '1.2.3.1000', '1.2.3.4 ', '1.2.3.0x1']) {
      expect(dottedQuadToInt(s), s).toBeNull();
    }
  });

  it('property: parseCidr gives the same result as the ipaddr.js-only version', () => {
    const v6ish = fc.oneof(
      fc.constantFrom('::', '::1', 'fc00::', 'fe80::1%eth0', '::ffff:10.0.0.0', '1:2', '1::2::3', 'FC00::', '::10.0.0.1'),
      fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%'.split('')), maxLength: 24 }),
    );
    const maskText = fc.oneof(
      fc.integer({ min: 0, max: 140 }).map(String),
      fc.constantFrom('', '08', '0032', '-1', '+8', '1e1', ' 8', '8 ', '999999999', '0x8'),
    );
    const cidrText = fc.oneof(
      fc.tuple(fc.oneof(quadish, v6ish), maskText).map(([a, m]) => `${a}/${m}`),
      fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map(([n, m]) => `${intToIPv4(n)}/${m}`),
      fc.string({ maxLength: 20 }),
    );
    fc.assert(
      fc.property(cidrText, (s) => {
        expect(parseCidr(s)).toStrictEqual(parseCidrReference(s));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('normaliseCidrs', () => {
  it('dedupes', () => {
    expect(norm(['10.0.0.0/8', '10.0.0.0/8', '10.0.0.0/08'])).toEqual(['10.0.0.0/8']);
  });
  it('drops CIDRs contained in others, whatever the order', () => {
    expect(norm(['10.1.2.0/24', '10.0.0.0/8', '10.255.255.255/32'])).toEqual(['10.0.0.0/8']);
    expect(norm(['10.0.0.0/8', '10.1.2.0/24'])).toEqual(['10.0.0.0/8']);
  });
  it('merges siblings into parents, recursively', () => {
    expect(norm(['10.0.0.0/9', '10.128.0.0/9'])).toEqual(['10.0.0.0/8']);
    expect(norm(['192.168.0.0/24', '192.168.1.0/25', '192.168.1.128/25'])).toEqual(['192.168.0.0/23']);
    // adjacent but not siblings: stay apart
    expect(norm(['192.168.1.0/24', '192.168.2.0/24'])).toEqual(['192.168.1.0/24', '192.168.2.0/24']);
  });
  it('/0 swallows everything', () => {
    expect(norm(['10.0.0.0/8', '0.0.0.0/0', '1.2.3.4/32'])).toEqual(['0.0.0.0/0']);
    expect(norm(['0.0.0.0/1', '128.0.0.0/1'])).toEqual(['0.0.0.0/0']);
  });
  it('/32 edges', () => {
    expect(norm(['1.2.3.4/32', '1.2.3.5/32'])).toEqual(['1.2.3.4/31']);
    expect(norm(['1.2.3.5/32', '1.2.3.6/32'])).toEqual(['1.2.3.5/32', '1.2.3.6/32']);
    expect(norm(['255.255.255.255/32', '0.0.0.0/32'])).toEqual(['0.0.0.0/32', '255.255.255.255/32']);
  });
  it('sorts by address', () => {
    expect(norm(['192.168.0.0/16', '10.0.0.0/8', '172.16.0.0/12'])).toEqual(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']);
  });
  it('keeps the 11 defaults as they are (already disjoint, no siblings)', () => {
    const d = [
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      '100.64.0.0/10',
      '192.0.0.0/24',
      '192.0.2.0/24',
      '192.88.99.0/24',
      '198.18.0.0/15',
      '198.51.100.0/24',
      '203.0.113.0/24',
      '240.0.0.0/4',
    ];
    expect(norm(d)).toHaveLength(11);
    expect(new Set(norm(d))).toEqual(new Set(d));
  });
  it('IPv6 works too', () => {
    expect(normaliseCidrStrings(['fc00::/8', 'fd00::/8', 'fd00:1::/32']).v6.map(formatCidr)).toEqual(['fc00::/7']);
  });
  it('refuses mixed families', () => {
    const a = parseCidr('10.0.0.0/8');
    const b = parseCidr('fc00::/7');
    if (!a.ok || !b.ok) throw new Error('parse');
    expect(() => normaliseCidrs([a.cidr, b.cidr])).toThrow(/mixed/);
  });

  // Property: same address coverage, sorted, disjoint, and no mergeable sibling pair left.
  const cidrArb = fc.record({ a: fc.integer({ min: 0, max: 0xffff }), p: fc.integer({ min: 16, max: 32 }) }).map(({ a, p }): Cidr => {
    const network = ((10n << 24n) | (BigInt(a) << 8n) | BigInt(a & 0xff)) & (((1n << 32n) - 1n) ^ ((1n << BigInt(32 - p)) - 1n));
    return { family: 4, network, prefix: p };
  });
  it('property: coverage preserved, output sorted/disjoint/minimal', () => {
    fc.assert(
      fc.property(fc.array(cidrArb, { maxLength: 40 }), fc.array(fc.integer({ min: 0, max: 0xffffff }), { minLength: 50, maxLength: 50 }), (input, probes) => {
        const out = normaliseCidrs(input);
        for (const pr of probes) {
          const addr = (10n << 24n) | BigInt(pr);
          const inIn = input.some((c) => cidrContainsAddress(c, addr));
          const inOut = out.filter((c) => cidrContainsAddress(c, addr)).length;
          expect(inOut).toBe(inIn ? 1 : 0);
        }
        // every input network is covered
        for (const c of input) expect(out.some((o) => cidrContainsAddress(o, c.network))).toBe(true);
        for (let i = 1; i < out.length; i++) {
          const a = out[i - 1]!;
          const b = out[i]!;
          const aEnd = a.network + (1n << BigInt(32 - a.prefix)) - 1n;
          expect(b.network > aEnd).toBe(true);
          const siblings = a.prefix === b.prefix && ((a.network >> BigInt(32 - a.prefix)) & 1n) === 0n && b.network === aEnd + 1n;
          expect(siblings).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });
});
