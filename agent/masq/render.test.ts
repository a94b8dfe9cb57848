import { describe, expect, it } from 'vitest';
import { defaultMasqConfig, type MasqConfig } from './config.js';
import { EGRESS_GW_BYPASS_MARK } from './constants.js';
import { renderFlavour, renderMasqRemoval, renderMasqRuleset } from './render.js';
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
    expect(r.ruleset).toMatch(/set nonmasq \{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n/);
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
    expect(renderMasqRemoval().split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([
      'table ip egresslab_masq {}',
      'delete table ip egresslab_masq',
      'table ip6 egresslab_masq {}',
      'delete table ip6 egresslab_masq',
    ]);
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
