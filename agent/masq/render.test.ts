import { describe, expect, it } from 'vitest';
import { defaultMasqConfig, type MasqConfig } from './config.js';
import { EGRESS_GW_BYPASS_MARK } from './constants.js';
import { chooseSetUpdateForm, renderFlavour, renderMasqRemoval, renderMasqRuleset, renderMasqSetDelta, renderSetUpdates, type RenderResult } from './render.js';
import { formatInterval } from '../../lib/net/intervals.js';
import { nonMasqElements } from './testing/fakes.js';

const POD = ['10.244.1.0/24'];
const cfg = (over: Partial<MasqConfig> = {}): MasqConfig => ({ ...defaultMasqConfig(), ...over });

/** Rule lines of the (ip) postrouting chain, in order. */
function chainRules(ruleset: string): string[] {
  const m = /table ip egresslab_masq \{\n[\s\S]*?chain postrouting \{\n([\s\S]*?)\n\t\}/.exec(ruleset);
  if (!m) throw new Error('no chain');
  return m[1]!.split('\n').map((l) => l.trim());
}

describe('renderMasqRuleset', () => {
  it('is one transaction that drops and recreates the table (atomic replace)', () => {
    const { ruleset, tables } = renderMasqRuleset(cfg(), { podCidrs: POD });
    const lines = ruleset.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines.slice(0, 4)).toEqual([
      'table ip egresslab_masq {}',
      'delete table ip egresslab_masq',
      'table ip6 egresslab_masq {}',
      'delete table ip6 egresslab_masq',
    ]);
    expect(lines[4]).toBe('table ip egresslab_masq {');
    expect(ruleset.match(/^table ip egresslab_masq \{$/gm)).toHaveLength(1);
    expect(tables).toEqual([{ family: 'ip', name: 'egresslab_masq' }]);
  });

  it('chain order: bypass mark, pod source, local, link-local, set, masquerade', () => {
    const rules = chainRules(renderMasqRuleset(cfg(), { podCidrs: POD }).ruleset);
    expect(rules[0]).toBe('type nat hook postrouting priority srcnat; policy accept;');
    expect(rules.slice(1).map((r) => r.replace(/ comment ".*"$/, ''))).toEqual([
      `meta mark & 0x${EGRESS_GW_BYPASS_MARK.toString(16).padStart(8, '0')} == 0x${EGRESS_GW_BYPASS_MARK.toString(16).padStart(8, '0')} return`,
      'ip saddr != @podcidrs return',
      'fib daddr type local return',
      'ip daddr 169.254.0.0/16 counter return',
      'ip daddr @nonmasq counter return',
      'counter masquerade fully-random',
    ]);
  });

  it('masqLinkLocal: true drops the link-local exemption', () => {
    const rules = chainRules(renderMasqRuleset(cfg({ masqLinkLocal: true }), { podCidrs: POD }).ruleset);
    expect(rules.some((r) => r.includes('169.254.0.0/16'))).toBe(false);
    expect(rules.at(-1)).toMatch(/masquerade/);
  });

  it('link-local listed in nonMasqueradeCIDRs stays exempt even with masqLinkLocal (like upstream)', () => {
    const r = renderMasqRuleset(cfg({ masqLinkLocal: true, nonMasqueradeCIDRs: ['169.254.0.0/16'] }), { podCidrs: POD });
    expect(nonMasqElements(r.ruleset)).toEqual(['169.254.0.0/16']);
  });

  it('the set holds the normalised elements', () => {
    const r = renderMasqRuleset(
      cfg({ nonMasqueradeCIDRs: ['10.0.0.0/8', '10.1.0.0/16', '192.168.0.0/24', '192.168.1.0/24', '192.168.0.0/24', '8.8.8.8/32'] }),
      { podCidrs: POD },
    );
    expect(nonMasqElements(r.ruleset)).toEqual(['8.8.8.8/32', '10.0.0.0/8', '192.168.0.0/23']);
    expect(r.nonMasqElements).toEqual(['8.8.8.8/32', '10.0.0.0/8', '192.168.0.0/23']);
    expect(r.ruleset).toMatch(/set nonmasq \{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = /);
    // no auto-merge: the elements never overlap or touch, and its merge pass made nft -f ~40 % slower
    expect(r.ruleset).not.toContain('auto-merge');
  });

  it('0.0.0.0/0 becomes a single element', () => {
    const r = renderMasqRuleset(cfg({ nonMasqueradeCIDRs: ['0.0.0.0/0', '10.0.0.0/8'] }), { podCidrs: POD });
    expect(nonMasqElements(r.ruleset)).toEqual(['0.0.0.0/0']);
  });

  it('empty list renders an empty set (everything but link-local masqueraded)', () => {
    const r = renderMasqRuleset(cfg({ nonMasqueradeCIDRs: [] }), { podCidrs: POD });
    expect(nonMasqElements(r.ruleset)).toEqual([]);
    expect(r.ruleset).not.toMatch(/elements = \{\s*\}/);
    expect(chainRules(r.ruleset).some((l) => l.startsWith('ip daddr 169.254.0.0/16'))).toBe(true);
  });

  it('pod CIDRs go in their own set, normalised', () => {
    const r = renderMasqRuleset(cfg(), { podCidrs: ['10.244.1.0/25', '10.244.1.128/25', '10.250.0.0/24'] });
    expect(r.ruleset).toMatch(/set podcidrs \{[^}]*elements = \{ 10\.244\.1\.0\/24, 10\.250\.0\.0\/24 \}/);
  });

  it('bypass hook can be disabled or moved', () => {
    expect(renderMasqRuleset(cfg(), { podCidrs: POD, gatewayBypass: null }).ruleset).not.toContain('meta mark');
    expect(renderMasqRuleset(cfg(), { podCidrs: POD, gatewayBypass: { mark: 0x10, mask: 0xf0 } }).ruleset).toContain(
      'meta mark & 0x000000f0 == 0x00000010 return',
    );
  });

  it('10,000 CIDRs render as one set, element lines wrapped', () => {
    const list = Array.from({ length: 10_000 }, (_, i) => `${20 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/25`);
    const r = renderMasqRuleset(cfg({ nonMasqueradeCIDRs: list }), { podCidrs: POD });
    expect(r.nonMasqElements).toHaveLength(10_000);
    expect(chainRules(r.ruleset)).toHaveLength(7);
  });

  it('ip6 twin only with enableIPv6 and an IPv6 pod CIDR', () => {
    const c = cfg({ nonMasqueradeCIDRs: ['10.0.0.0/8', 'fc00::/7'] });
    const without = renderMasqRuleset(c, { podCidrs: ['10.244.1.0/24', 'fd00:1::/64'] });
    expect(without.tables.map((t) => t.family)).toEqual(['ip']);
    const withV6 = renderMasqRuleset(c, { podCidrs: ['10.244.1.0/24', 'fd00:1::/64'], enableIPv6: true });
    expect(withV6.tables.map((t) => t.family)).toEqual(['ip', 'ip6']);
    expect(withV6.ruleset).toContain('ip6 daddr fe80::/10 counter return');
    expect(withV6.ruleset).toMatch(/table ip6 egresslab_masq \{[\s\S]*elements = \{ fc00::\/7 \}/);
    expect(nonMasqElements(withV6.ruleset)).toEqual(['10.0.0.0/8']);
  });

  it('refuses no pod CIDR, a bad pod CIDR, a bad table name', () => {
    expect(() => renderMasqRuleset(cfg(), { podCidrs: [] })).toThrow(/pod CIDR/);
    expect(() => renderMasqRuleset(cfg(), { podCidrs: ['nope'] })).toThrow(/pod CIDR/);
    expect(() => renderMasqRuleset(cfg(), { podCidrs: POD, tableName: 'x; flush ruleset' })).toThrow(/table name/);
  });
});

describe('removal and flavours', () => {
  it('removal deletes both families without failing when absent', () => {
    expect(
      renderMasqRemoval()
        .split('\n')
        .filter((l) => l && !l.startsWith('#')),
    ).toEqual(['table ip egresslab_masq {}', 'delete table ip egresslab_masq', 'table ip6 egresslab_masq {}', 'delete table ip6 egresslab_masq']);
  });

  it('default-snat renders the default list; no-snat renders nothing', () => {
    const d = renderFlavour({ kind: 'default-snat' }, { podCidrs: POD });
    expect(d).not.toBeNull();
    expect(nonMasqElements(d!.ruleset)).toEqual(renderMasqRuleset(defaultMasqConfig(), { podCidrs: POD }).nonMasqElements);
    expect(d!.ruleset).toContain('disableDefaultSnat=false');
    expect(renderFlavour({ kind: 'no-snat' }, { podCidrs: POD })).toBeNull();
    const a = renderFlavour({ kind: 'agent', config: cfg({ nonMasqueradeCIDRs: ['1.0.0.0/8'] }) }, { podCidrs: POD });
    expect(nonMasqElements(a!.ruleset)).toEqual(['1.0.0.0/8']);
  });
});

describe('set contents (what the kernel holds)', () => {
  it('adjacent blocks that are not siblings are written as one range, as auto-merge holds them', () => {
    const r = renderMasqRuleset(cfg({ nonMasqueradeCIDRs: ['10.0.1.0/24', '10.0.2.0/24', '192.168.0.0/16'] }), { podCidrs: POD });
    expect(nonMasqElements(r.ruleset)).toEqual(['10.0.1.0-10.0.2.255', '192.168.0.0/16']);
    expect(r.nonMasqElements).toEqual(['10.0.1.0/24', '10.0.2.0/24', '192.168.0.0/16']); // the normalised CIDRs (status)
    const nonmasq = r.sets.find((s) => s.name === 'nonmasq')!;
    expect(nonmasq).toMatchObject({ family: 'ip', table: 'egresslab_masq', addrFamily: 4 });
    expect(nonmasq.intervals.map((iv) => formatInterval(4, iv))).toEqual(['10.0.1.0-10.0.2.255', '192.168.0.0/16']);
    expect(r.sets.map((s) => s.name)).toEqual(['podcidrs', 'nonmasq']);
  });

  it('the skeleton changes with anything but the nonmasq elements', () => {
    const base = renderMasqRuleset(cfg({ nonMasqueradeCIDRs: ['10.0.0.0/8'] }), { podCidrs: POD });
    expect(renderMasqRuleset(cfg({ nonMasqueradeCIDRs: ['10.0.0.0/8', '1.0.0.0/8'] }), { podCidrs: POD }).skeleton).toBe(base.skeleton);
    expect(renderMasqRuleset(cfg({ nonMasqueradeCIDRs: [] }), { podCidrs: POD }).skeleton).toBe(base.skeleton);
    expect(base.skeleton).not.toContain('10.0.0.0/8');
    expect(base.skeleton).toContain('10.244.1.0/24'); // pod CIDRs are part of it
    for (const other of [
      renderMasqRuleset(cfg({ nonMasqueradeCIDRs: ['10.0.0.0/8'], masqLinkLocal: true }), { podCidrs: POD }),
      renderMasqRuleset(cfg({ nonMasqueradeCIDRs: ['10.0.0.0/8'] }), { podCidrs: ['10.244.2.0/24'] }),
      renderMasqRuleset(cfg({ nonMasqueradeCIDRs: ['10.0.0.0/8'] }), { podCidrs: POD, gatewayBypass: null }),
      renderMasqRuleset(cfg({ nonMasqueradeCIDRs: ['10.0.0.0/8'] }), { podCidrs: POD, comment: 'other' }),
      renderMasqRuleset(cfg({ nonMasqueradeCIDRs: ['10.0.0.0/8'] }), { podCidrs: POD, tableName: 'other' }),
    ]) {
      expect(other.skeleton).not.toBe(base.skeleton);
    }
  });
});

describe('renderMasqSetDelta', () => {
  const HEADER = '# egresslab ip-masq-agent: set elements update, one nft transaction (nft -f applies the file atomically)\n';
  const r = (cidrs: string[], over: Partial<MasqConfig> = {}, podCidrs = POD): RenderResult =>
    renderMasqRuleset(cfg({ nonMasqueradeCIDRs: cidrs, ...over }), { podCidrs, enableIPv6: true });
  const delta = (a: string[], b: string[]) => renderMasqSetDelta(r(a), r(b));
  const big = (n: number, first = 0): string[] => Array.from({ length: n }, (_, i) => `${20 + ((first + i) >> 8)}.${(first + i) & 255}.0.0/24`);

  it('rules, flags or pod CIDRs differ: no delta (the table is re-created)', () => {
    expect(renderMasqSetDelta(r(['10.0.0.0/8']), r(['10.0.0.0/8'], { masqLinkLocal: true }))).toBeNull();
    expect(renderMasqSetDelta(r(['10.0.0.0/8']), r(['10.0.0.0/8'], {}, ['10.244.2.0/24']))).toBeNull();
  });

  it('one CIDR added to a big set: one add element, nothing else', () => {
    const d = delta(big(1000), [...big(1000), '203.0.113.0/24'])!;
    expect(d.ruleset).toBe(`${HEADER}add element ip egresslab_masq nonmasq { 203.0.113.0/24 }\n`);
    expect(d).toMatchObject({ added: 1, removed: 0, updates: [{ family: 'ip', name: 'nonmasq', form: 'elements', added: 1, removed: 0, size: 1001 }] });
  });

  it('one CIDR removed from a big set: one delete element', () => {
    const d = delta([...big(1000), '203.0.113.0/24'], big(1000))!;
    expect(d.ruleset).toBe(`${HEADER}delete element ip egresslab_masq nonmasq { 203.0.113.0/24 }\n`);
    expect(d).toMatchObject({ added: 0, removed: 1 });
  });

  it('deletions come first: an added element may overlap a deleted one (10/8 -> 10/9 + 10.128/10)', () => {
    const d = delta(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'], ['10.0.0.0/9', '10.128.0.0/10', '172.16.0.0/12', '192.168.0.0/16'])!;
    expect(d.ruleset).toBe(
      `${HEADER}delete element ip egresslab_masq nonmasq { 10.0.0.0/8 }\nadd element ip egresslab_masq nonmasq { 10.0.0.0-10.191.255.255 }\n`,
    );
  });

  it('a block next to a kept one: the joined element is replaced, never added to (auto-merge would join them)', () => {
    const d = delta(['10.0.1.0/24', ...big(50)], ['10.0.1.0/24', '10.0.2.0/24', ...big(50)])!;
    expect(d.ruleset).toBe(
      `${HEADER}delete element ip egresslab_masq nonmasq { 10.0.1.0/24 }\nadd element ip egresslab_masq nonmasq { 10.0.1.0-10.0.2.255 }\n`,
    );
  });

  it('removing the middle of a joined range deletes the whole range and adds the pieces (no partial delete)', () => {
    const d = delta(['10.0.1.0/24', '10.0.2.0/23', '10.0.4.0/22', ...big(50)], ['10.0.1.0/24', '10.0.4.0/22', ...big(50)])!;
    expect(d.ruleset).toBe(
      `${HEADER}delete element ip egresslab_masq nonmasq { 10.0.1.0-10.0.7.255 }\nadd element ip egresslab_masq nonmasq { 10.0.1.0/24, 10.0.4.0/22 }\n`,
    );
    expect(d).toMatchObject({ added: 2, removed: 1 });
  });

  it('from an empty set: flush + add (the flush makes the result exact; costs nothing)', () => {
    const d = delta([], ['10.0.0.0/8', '192.168.0.0/16'])!;
    expect(d.ruleset).toBe(`${HEADER}flush set ip egresslab_masq nonmasq\nadd element ip egresslab_masq nonmasq { 10.0.0.0/8, 192.168.0.0/16 }\n`);
    expect(d.updates[0]).toMatchObject({ form: 'flush', added: 2, removed: 0, size: 2 });
  });

  it('to an empty set: a lone flush', () => {
    const d = delta(big(1000), [])!;
    expect(d.ruleset).toBe(`${HEADER}flush set ip egresslab_masq nonmasq\n`);
    expect(d.updates[0]).toMatchObject({ form: 'flush', added: 0, removed: 1000, size: 0 });
  });

  it('many deletions from a big set: flush + add the new contents instead (cheaper with nft 1.0.6)', () => {
    const d = delta(big(1000), big(1000, 500))!; // 500 go, 500 come
    expect(d.updates[0]).toMatchObject({ form: 'flush', added: 500, removed: 500, size: 1000 });
    expect(d.ruleset.startsWith(`${HEADER}flush set ip egresslab_masq nonmasq\nadd element ip egresslab_masq nonmasq { 21.244.0.0/24, `)).toBe(true);
    expect(d.ruleset).not.toContain('delete element');
    // a couple of deletions stay element by element
    expect(delta(big(1000), big(1000, 2))!.updates[0]).toMatchObject({ form: 'elements', added: 2, removed: 2 });
  });

  it('chooseSetUpdateForm: adds plus deletes weighted by the set size, against re-adding everything', () => {
    expect(chooseSetUpdateForm(10_000, 10_001, 1, 0)).toBe('elements');
    expect(chooseSetUpdateForm(10_000, 9_999, 0, 1)).toBe('elements'); // one delete ~ 1,000 adds
    expect(chooseSetUpdateForm(10_000, 10_000, 20, 20)).toBe('flush'); // 20 deletes ~ 20,000 adds > flush + 10,000 adds
    expect(chooseSetUpdateForm(11, 12, 2, 1)).toBe('elements'); // small sets: a delete costs an add
    expect(chooseSetUpdateForm(0, 5, 5, 0)).toBe('flush');
    expect(chooseSetUpdateForm(5, 0, 0, 5)).toBe('flush');
  });

  it('long element lists are wrapped, 8 per line', () => {
    const d = delta([], big(20))!;
    const add = d.ruleset.split('\n').slice(2).join('\n');
    expect(add.split('\n')).toHaveLength(3 + 1);
    expect(add.split('\n')[1]).toMatch(/^\t20\.8\.0\.0\/24, /);
  });

  it('same elements: an empty update', () => {
    expect(delta(['10.0.0.0/8'], ['10.0.0.0/8'])).toEqual({ ruleset: HEADER, updates: [], added: 0, removed: 0, preferFull: false });
  });

  it('preferFull: filling a big set from empty costs nft less as a re-created table; anything else is an update', () => {
    expect(delta([], big(10_000))!.preferFull).toBe(true); // 124 vs 143 ms measured
    expect(delta([], big(1_000))!.preferFull).toBe(false); // 42 vs 31 ms
    expect(delta(big(10_000), [...big(10_000), '203.0.113.0/24'])!.preferFull).toBe(false);
    expect(delta(big(10_000), big(10_000, 500))!.preferFull).toBe(false); // flush + add 159 vs re-create 184 ms
    expect(delta(big(10_000), [])!.preferFull).toBe(false); // a lone flush
  });

  it('IPv6 twin: both sets in the one transaction, each in its cheaper form', () => {
    const pods = ['10.244.1.0/24', 'fd00:1::/64'];
    const a = r(['10.0.0.0/8', 'fc00::/7'], {}, pods);
    const b = r(['10.0.0.0/8', '192.168.0.0/16', 'fc00::/8'], {}, pods);
    expect(renderMasqSetDelta(a, b)!.ruleset).toBe(
      `${HEADER}add element ip egresslab_masq nonmasq { 192.168.0.0/16 }\nflush set ip6 egresslab_masq nonmasq\nadd element ip6 egresslab_masq nonmasq { fc00::/8 }\n`,
    );
    expect(renderMasqSetDelta(a, b)!.updates.map((u) => `${u.family}:${u.form}`)).toEqual(['ip:elements', 'ip6:flush']);
  });

  it('renderSetUpdates: a set that does not exist yet cannot be updated in place', () => {
    const a = r(['10.0.0.0/8']);
    expect(
      renderSetUpdates(
        a.sets.filter((s) => s.name !== 'nonmasq'),
        a.sets,
      ),
    ).toBeNull();
  });
});
