import { describe, expect, it } from 'vitest';
import { formatInterval, sameIntervals } from '../../lib/net/intervals.js';
import { defaultMasqConfig } from './config.js';
import { elementInterval, parseNftTableJson } from './listing.js';
import { renderMasqRuleset } from './render.js';
import { FULL_IP, FULL_IP6, TERSE_IP } from './testing/nft-json.js';

describe('parseNftTableJson (nft 1.0.6 listings)', () => {
  const rendered = renderMasqRuleset(
    {
      ...defaultMasqConfig(),
      nonMasqueradeCIDRs: ['10.0.1.0/24', '10.0.2.0/24', '192.168.0.0/16', '8.8.8.8/32', 'fc00::/7', '2001:db8::/64', '2001:db8:0:1::/64'],
    },
    { podCidrs: ['10.244.1.0/24', 'fd00:1::/64'], enableIPv6: true },
  );
  const renderedSet = (family: 'ip' | 'ip6', name: string) => rendered.sets.find((s) => s.family === family && s.name === name)!;

  it('reads every element form back into exactly the intervals that were rendered', () => {
    const ip = parseNftTableJson(FULL_IP);
    expect([...ip.sets.keys()]).toEqual(['podcidrs', 'nonmasq']);
    const nonmasq = ip.sets.get('nonmasq')!;
    expect(nonmasq.addrFamily).toBe(4);
    // listed as "8.8.8.8", {"range": [...]}, {"prefix": ...}
    expect(nonmasq.intervals!.map((iv) => formatInterval(4, iv))).toEqual(['8.8.8.8/32', '10.0.1.0-10.0.2.255', '192.168.0.0/16']);
    expect(sameIntervals(nonmasq.intervals!, renderedSet('ip', 'nonmasq').intervals)).toBe(true);
    expect(sameIntervals(ip.sets.get('podcidrs')!.intervals!, renderedSet('ip', 'podcidrs').intervals)).toBe(true);
    const ip6 = parseNftTableJson(FULL_IP6);
    expect(ip6.sets.get('nonmasq')!.addrFamily).toBe(6);
    expect(sameIntervals(ip6.sets.get('nonmasq')!.intervals!, renderedSet('ip6', 'nonmasq').intervals)).toBe(true);
  });

  it('the rules key of the full listing equals that of the terse one (-t, no elements)', () => {
    const full = parseNftTableJson(FULL_IP);
    const terse = parseNftTableJson(TERSE_IP);
    expect(full.rulesKey).toBe(terse.rulesKey);
    expect(terse.sets.get('nonmasq')!.intervals).toEqual([]); // terse: no elements listed
    expect(full.rulesKey).not.toContain('192.168.0.0');
    expect(full.rulesKey).not.toContain('metainfo');
  });

  it('the rules key changes with a rule or a set declaration, not with handles, key order or the nft version', () => {
    const base = parseNftTableJson(FULL_IP).rulesKey;
    const doc = JSON.parse(FULL_IP) as { nftables: Record<string, Record<string, unknown>>[] };
    const edit = (f: (d: typeof doc) => void): string => {
      const d = JSON.parse(JSON.stringify(doc)) as typeof doc;
      f(d);
      return parseNftTableJson(JSON.stringify(d)).rulesKey;
    };
    expect(
      edit((d) => d.nftables.push({ rule: { family: 'ip', table: 'egresslab_masq', chain: 'postrouting', handle: 99, expr: [{ accept: null }] } })),
    ).not.toBe(base);
    expect(edit((d) => (d.nftables[3]!.set!.flags = []))).not.toBe(base);
    expect(edit((d) => (d.nftables[4]!.chain!.policy = 'drop'))).not.toBe(base);
    expect(edit((d) => d.nftables.splice(5, 1))).not.toBe(base); // a rule removed
    expect(edit((d) => d.nftables.splice(5, 2, d.nftables[6]!, d.nftables[5]!))).not.toBe(base); // two rules swapped
    // the same tables re-created: new handles, same content
    expect(edit((d) => d.nftables.forEach((o) => Object.values(o).forEach((v) => 'handle' in v && (v.handle = Number(v.handle) + 100))))).toBe(base);
    expect(edit((d) => (d.nftables[0]!.metainfo!.version = '1.1.1'))).toBe(base);
    expect(edit((d) => (d.nftables[3]!.set = Object.fromEntries(Object.entries(d.nftables[3]!.set!).reverse())))).toBe(base);
    expect(edit((d) => (d.nftables[3]!.set!.elem = ['1.1.1.1']))).toBe(base);
  });

  it('elements: wrapped in {"elem": {"val": ...}}, unreadable ones make the set unreadable (null)', () => {
    expect(elementInterval(4, { elem: { val: { prefix: { addr: '10.0.0.0', len: 8 } }, timeout: 5 } })).toEqual({ first: 10n << 24n, last: (11n << 24n) - 1n });
    expect(elementInterval(4, { range: ['10.0.0.9', '10.0.0.1'] })).toBeNull();
    expect(elementInterval(4, { concat: ['10.0.0.1', 80] })).toBeNull();
    const doc = JSON.parse(FULL_IP) as { nftables: { set?: { elem?: unknown[] } }[] };
    doc.nftables[3]!.set!.elem!.push({ concat: ['10.0.0.1', 80] });
    expect(parseNftTableJson(JSON.stringify(doc)).sets.get('nonmasq')!.intervals).toBeNull();
  });

  it('refuses what is not an nft JSON listing', () => {
    expect(() => parseNftTableJson('table ip egresslab_masq {}')).toThrow();
    expect(() => parseNftTableJson('{"tables": []}')).toThrow(/nftables/);
  });
});
