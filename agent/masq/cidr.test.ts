import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Cidr, cidrContains, formatCidr, normaliseCidrs, normaliseCidrStrings, parseCidr } from './cidr.js';

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
    const d = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '192.0.0.0/24', '192.0.2.0/24', '192.88.99.0/24', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '240.0.0.0/4'];
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
  const cidrArb = fc
    .record({ a: fc.integer({ min: 0, max: 0xffff }), p: fc.integer({ min: 16, max: 32 }) })
    .map(({ a, p }): Cidr => {
      const network = ((10n << 24n) | BigInt(a) << 8n | BigInt(a & 0xff)) & (((1n << 32n) - 1n) ^ ((1n << BigInt(32 - p)) - 1n));
      return { family: 4, network, prefix: p };
    });
  it('property: coverage preserved, output sorted/disjoint/minimal', () => {
    fc.assert(
      fc.property(fc.array(cidrArb, { maxLength: 40 }), fc.array(fc.integer({ min: 0, max: 0xffffff }), { minLength: 50, maxLength: 50 }), (input, probes) => {
        const out = normaliseCidrs(input);
        for (const pr of probes) {
          const addr = (10n << 24n) | BigInt(pr);
          const inIn = input.some((c) => cidrContains(c, addr));
          const inOut = out.filter((c) => cidrContains(c, addr)).length;
          expect(inOut).toBe(inIn ? 1 : 0);
        }
        // every input network is covered
        for (const c of input) expect(out.some((o) => cidrContains(o, c.network))).toBe(true);
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
