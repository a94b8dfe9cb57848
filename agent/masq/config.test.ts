import { describe, expect, it } from 'vitest';
import { defaultMasqConfig, formatIssues, parseMasqConfig, type ParseResult } from './config.js';
import { DEFAULT_NON_MASQUERADE_CIDRS } from './constants.js';

function ok(r: ParseResult) {
  if (!r.ok) throw new Error(`expected ok, got ${formatIssues(r.errors)}`);
  return r;
}
function bad(r: ParseResult) {
  if (r.ok) throw new Error(`expected errors, got ${JSON.stringify(r.config)}`);
  return r.errors;
}

describe('parseMasqConfig: defaults and presence (upstream syncConfig)', () => {
  it('absent file -> all defaults, source=defaults', () => {
    const r = ok(parseMasqConfig(null));
    expect(r.source).toBe('defaults');
    expect(r.config).toEqual(defaultMasqConfig());
    expect(r.config.nonMasqueradeCIDRs).toEqual([...DEFAULT_NON_MASQUERADE_CIDRS]);
    expect(r.config.nonMasqueradeCIDRs).toHaveLength(11);
    expect(r.config.masqLinkLocal).toBe(false);
    expect(r.config.resyncIntervalMs).toBe(60_000);
    expect(r.config.cidrLimit).toBeNull();
  });

  it.each([
    ['empty file', ''],
    ['whitespace only', '  \n\n'],
    ['comment only', '# nothing here\n'],
    ['YAML null document', '~\n'],
    ['JSON null', 'null'],
  ])('%s -> defaults (decodes to null)', (_n, text) => {
    const r = ok(parseMasqConfig(text));
    expect(r.source).toBe('file');
    expect(r.config).toEqual(defaultMasqConfig());
  });

  it('absent nonMasqueradeCIDRs key keeps the default list; other keys overwrite', () => {
    const r = ok(parseMasqConfig('masqLinkLocal: true\nresyncInterval: 5m\n'));
    expect(r.config.nonMasqueradeCIDRs).toEqual([...DEFAULT_NON_MASQUERADE_CIDRS]);
    expect(r.config.masqLinkLocal).toBe(true);
    expect(r.config.resyncIntervalMs).toBe(300_000);
  });

  it('explicit list replaces the defaults (YAML)', () => {
    const r = ok(parseMasqConfig('nonMasqueradeCIDRs:\n  - 172.16.0.0/12\n  - 10.0.0.0/8\n'));
    expect(r.config.nonMasqueradeCIDRs).toEqual(['172.16.0.0/12', '10.0.0.0/8']);
    expect(r.config.masqLinkLocal).toBe(false);
    expect(r.config.resyncIntervalMs).toBe(60_000);
  });

  it('explicit list replaces the defaults (JSON), all keys', () => {
    const r = ok(parseMasqConfig('{\n "nonMasqueradeCIDRs": ["172.16.0.0/12", "10.0.0.0/8"],\n "masqLinkLocal": true,\n "resyncInterval": "5s"\n}\n'));
    expect(r.config).toEqual({
      nonMasqueradeCIDRs: ['172.16.0.0/12', '10.0.0.0/8'],
      masqLinkLocal: true,
      masqLinkLocalIPv6: false,
      resyncIntervalMs: 5000,
      cidrLimit: null,
    });
  });

  it('explicit empty list means no exempt destinations', () => {
    expect(ok(parseMasqConfig('nonMasqueradeCIDRs: []\n')).config.nonMasqueradeCIDRs).toEqual([]);
    expect(ok(parseMasqConfig('{"nonMasqueradeCIDRs": []}')).config.nonMasqueradeCIDRs).toEqual([]);
  });

  it('null list (key with no value) is Go nil: no exempt destinations, not the defaults', () => {
    expect(ok(parseMasqConfig('nonMasqueradeCIDRs:\n')).config.nonMasqueradeCIDRs).toEqual([]);
    expect(ok(parseMasqConfig('{"nonMasqueradeCIDRs": null}')).config.nonMasqueradeCIDRs).toEqual([]);
  });

  it('null bool keeps the default (Go no-op)', () => {
    expect(ok(parseMasqConfig('masqLinkLocal: ~\n')).config.masqLinkLocal).toBe(false);
  });

  it('0.0.0.0/0 is accepted', () => {
    expect(ok(parseMasqConfig('nonMasqueradeCIDRs: [0.0.0.0/0]\n')).config.nonMasqueradeCIDRs).toEqual(['0.0.0.0/0']);
  });

  it('more than 64 CIDRs are accepted (no default cidrLimit)', () => {
    const list = Array.from({ length: 1000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const r = ok(parseMasqConfig(JSON.stringify({ nonMasqueradeCIDRs: list })));
    expect(r.config.nonMasqueradeCIDRs).toHaveLength(1000);
  });

  it('an explicit cidrLimit is honoured the upstream way', () => {
    const errs = bad(parseMasqConfig('cidrLimit: 1\nnonMasqueradeCIDRs: [10.0.0.0/8, 192.168.0.0/16]\n'));
    expect(errs[0]?.field).toBe('nonMasqueradeCIDRs');
    expect(errs[0]?.message).toMatch(/up to 1 CIDRs/);
    expect(ok(parseMasqConfig('cidrLimit: 2\nnonMasqueradeCIDRs: [10.0.0.0/8, 192.168.0.0/16]\n')).config.cidrLimit).toBe(2);
  });
});

describe('parseMasqConfig: YAML/JSON decoding like apimachinery ToJSON + encoding/json', () => {
  it('unknown keys are ignored (non-strict decoding), with a warning', () => {
    const r = ok(parseMasqConfig('nonMasqueradeCIDRs: [10.0.0.0/8]\nsomethingElse: 3\n'));
    expect(r.config.nonMasqueradeCIDRs).toEqual(['10.0.0.0/8']);
    expect(r.warnings.map((w) => w.field)).toEqual(['somethingElse']);
  });

  it('keys match case-insensitively, as Go encoding/json does', () => {
    const r = ok(parseMasqConfig('nonMasqueradeCidrs: [10.0.0.0/8]\nMASQLINKLOCAL: true\n'));
    expect(r.config.nonMasqueradeCIDRs).toEqual(['10.0.0.0/8']);
    expect(r.config.masqLinkLocal).toBe(true);
    expect(r.warnings).toHaveLength(2);
  });

  it('repeated keys: the last one wins', () => {
    expect(ok(parseMasqConfig('masqLinkLocal: true\nmasqLinkLocal: false\n')).config.masqLinkLocal).toBe(false);
    expect(ok(parseMasqConfig('{"masqLinkLocal": true, "masqLinkLocal": false}')).config.masqLinkLocal).toBe(false);
  });

  it('YAML 1.1 booleans (yes/on/y) are booleans, as in go-yaml v2', () => {
    expect(ok(parseMasqConfig('masqLinkLocal: yes\n')).config.masqLinkLocal).toBe(true);
    expect(ok(parseMasqConfig('masqLinkLocal: on\n')).config.masqLinkLocal).toBe(true);
    expect(ok(parseMasqConfig('masqLinkLocal: Off\n')).config.masqLinkLocal).toBe(false);
  });

  it('flow-style YAML mapping starting with "{" is parsed as JSON and refused, like upstream', () => {
    const errs = bad(parseMasqConfig('{nonMasqueradeCIDRs: [10.0.0.0/8]}'));
    expect(errs[0]?.field).toBe('(file)');
    expect(errs[0]?.message).toMatch(/invalid JSON/);
  });

  it('only the first YAML document counts', () => {
    const r = ok(parseMasqConfig('nonMasqueradeCIDRs: [10.0.0.0/8]\n---\nnonMasqueradeCIDRs: [192.168.0.0/16]\n'));
    expect(r.config.nonMasqueradeCIDRs).toEqual(['10.0.0.0/8']);
  });

  it.each([
    ['YAML', '*'],
    ['YAML', 'nonMasqueradeCIDRs: [10.0.0.0/8\n'],
    ['JSON', '{*'],
    ['JSON', '{"nonMasqueradeCIDRs": ["10.0.0.0/8",]}'],
  ])('unparsable %s %j is refused with field (file)', (_k, text) => {
    const errs = bad(parseMasqConfig(text));
    expect(errs).toHaveLength(1);
    expect(errs[0]?.field).toBe('(file)');
    expect(errs[0]?.message).toMatch(/invalid (YAML|JSON)/);
  });

  it.each([
    ['a list', '- 10.0.0.0/8\n', 'array'],
    ['a string', 'hello\n', 'string'],
    ['a number', '42\n', 'number'],
  ])('top level that is %s is refused', (_n, text, kind) => {
    const errs = bad(parseMasqConfig(text));
    expect(errs[0]?.message).toContain(`cannot unmarshal ${kind}`);
  });
});

describe('parseMasqConfig: type errors name the field and the value', () => {
  it('number where a list belongs', () => {
    const errs = bad(parseMasqConfig('nonMasqueradeCIDRs: 10\n'));
    expect(errs).toEqual([
      expect.objectContaining({ field: 'nonMasqueradeCIDRs', value: '10', message: expect.stringContaining('cannot unmarshal number 10') }),
    ]);
  });

  it('string where a list belongs', () => {
    const errs = bad(parseMasqConfig('{"nonMasqueradeCIDRs": "10.0.0.0/8"}'));
    expect(errs[0]).toMatchObject({ field: 'nonMasqueradeCIDRs', value: '"10.0.0.0/8"' });
    expect(errs[0]?.message).toContain('[]string');
  });

  it('number inside the list', () => {
    const errs = bad(parseMasqConfig('nonMasqueradeCIDRs: [10.0.0.0/8, 42]\n'));
    expect(errs[0]).toMatchObject({ field: 'nonMasqueradeCIDRs[1]', value: '42' });
  });

  it('string "true" for a bool', () => {
    const errs = bad(parseMasqConfig('{"masqLinkLocal": "true"}'));
    expect(errs[0]).toMatchObject({ field: 'masqLinkLocal', value: '"true"' });
  });

  it('number / null for resyncInterval', () => {
    expect(bad(parseMasqConfig('resyncInterval: 60\n'))[0]).toMatchObject({ field: 'resyncInterval', value: '60' });
    expect(bad(parseMasqConfig('{"resyncInterval": null}'))[0]?.message).toContain('expected string value');
  });

  it('all errors are reported, not only the first', () => {
    const errs = bad(parseMasqConfig('nonMasqueradeCIDRs: 3\nmasqLinkLocal: 7\n'));
    expect(errs.map((e) => e.field)).toEqual(['nonMasqueradeCIDRs', 'masqLinkLocal']);
  });
});

describe('parseMasqConfig: CIDR validation (upstream validateCIDR)', () => {
  it('bad CIDR refuses the whole file', () => {
    const errs = bad(parseMasqConfig('nonMasqueradeCIDRs: [10.0.0.0/8, abcdefg]\n'));
    expect(errs).toEqual([
      { field: 'nonMasqueradeCIDRs[1]', value: '"abcdefg"', message: 'CIDR "abcdefg" could not be parsed, invalid CIDR address: abcdefg' },
    ]);
  });

  it.each(['10.256.0.0/16', '10.0.0.0/33', '10.0.0/8', '010.0.0.0/8', '10.0.0.0', '10.0.0.0/', '10.0.0.0/-1', ' 10.0.0.0/8', '10.0.0.0/8 ', ''])(
    'unparsable %j is refused',
    (cidr) => {
      const errs = bad(parseMasqConfig(JSON.stringify({ nonMasqueradeCIDRs: [cidr] })));
      expect(errs[0]?.field).toBe('nonMasqueradeCIDRs[0]');
      expect(errs[0]?.value).toBe(JSON.stringify(cidr));
      expect(errs[0]?.message).toContain('could not be parsed');
    },
  );

  it('misaligned CIDR is refused with upstream wording', () => {
    const errs = bad(parseMasqConfig('nonMasqueradeCIDRs: [10.0.0.1/8]\n'));
    expect(errs).toEqual([
      {
        field: 'nonMasqueradeCIDRs[0]',
        value: '"10.0.0.1/8"',
        message: 'CIDR "10.0.0.1/8" is not aligned to a CIDR block, ip: "10.0.0.1" network: "10.0.0.0/8"',
      },
    ]);
  });

  it('leading zeros in the prefix length are accepted (Go dtoi)', () => {
    expect(ok(parseMasqConfig('nonMasqueradeCIDRs: ["10.0.0.0/08"]\n')).config.nonMasqueradeCIDRs).toEqual(['10.0.0.0/08']);
  });

  it('/32 and /0 are fine', () => {
    expect(ok(parseMasqConfig('nonMasqueradeCIDRs: [1.2.3.4/32, 0.0.0.0/0]\n')).config.nonMasqueradeCIDRs).toHaveLength(2);
  });

  it('IPv6 refused unless enabled', () => {
    const errs = bad(parseMasqConfig('nonMasqueradeCIDRs: [10.0.0.0/8, "fc00::/7"]\n'));
    expect(errs[0]).toMatchObject({ field: 'nonMasqueradeCIDRs[1]', value: '"fc00::/7"' });
    expect(errs[0]?.message).toContain('ipv6 is not enabled');
    const r = ok(parseMasqConfig('nonMasqueradeCIDRs: [10.0.0.0/8, "fc00::/7"]\n', { enableIPv6: true }));
    expect(r.config.nonMasqueradeCIDRs).toEqual(['10.0.0.0/8', 'fc00::/7']);
  });

  it('misaligned IPv6 is refused even when enabled; zones are refused', () => {
    expect(bad(parseMasqConfig('nonMasqueradeCIDRs: ["fc00::1/7"]\n', { enableIPv6: true }))[0]?.message).toContain('not aligned');
    expect(bad(parseMasqConfig('nonMasqueradeCIDRs: ["fe80::%eth0/10"]\n', { enableIPv6: true }))[0]?.message).toContain('could not be parsed');
  });
});

describe('parseMasqConfig: resyncInterval durations (Go time.ParseDuration)', () => {
  it.each([
    ['60s', 60_000],
    ['1m', 60_000],
    ['1h2m3.5s', 3_723_500],
    ['500ms', 500],
    ['1.5h', 5_400_000],
    ['0', 0],
    ['-1s', -1000],
    ['+2s', 2000],
    ['1µs', 0.001],
    ['.5s', 500],
    ['1s500ms', 1500],
  ])('%s -> %d ms', (s, ms) => {
    expect(ok(parseMasqConfig(JSON.stringify({ resyncInterval: s }))).config.resyncIntervalMs).toBeCloseTo(ms, 9);
  });

  it('a timer holds at most 2^31-1 ms: 2147483647ms passes quietly, 2147483648ms and 720h are clamped with a warning naming the value (issue 12)', () => {
    expect(ok(parseMasqConfig('resyncInterval: 2147483647ms\n')).warnings).toEqual([]);
    for (const s of ['2147483648ms', '720h']) {
      const r = ok(parseMasqConfig(`resyncInterval: ${s}\n`));
      expect(r.warnings).toEqual([
        {
          field: 'resyncInterval',
          value: JSON.stringify(s),
          message: `resyncInterval ${s} is longer than the longest timer (2147483647 ms, 24.8 days): resyncing every 2147483647 ms`,
        },
      ]);
    }
  });

  it.each(['', '60', '1 s', 's', '1d', '.s', '1.s.', '9999999999999999999h'])('%j is refused, naming the field and value', (s) => {
    const errs = bad(parseMasqConfig(JSON.stringify({ resyncInterval: s })));
    expect(errs[0]).toMatchObject({ field: 'resyncInterval', value: JSON.stringify(s) });
    expect(errs[0]?.message).toMatch(/^resyncInterval: time: /);
  });
});
