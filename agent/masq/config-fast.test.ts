/**
 * The fast path of parseMasqConfig (issue 17) against the library-only path: same ParseResult,
 * always. The fast path may decline (it then names a reason); it may never differ.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { type FastPathFallback, masqConfigYaml, masqDecodePath, parseMasqConfig, parseMasqConfigLibraryOnly, type ParseOptions } from './config.js';
import { randomDisjointCidrs } from '../../lib/net/random-cidrs.js';

import { intToIPv4 } from '../../lib/net/addresses.js';

function same(text: string, opts: ParseOptions = {}): void {
  expect(parseMasqConfig(text, opts), text).toStrictEqual(parseMasqConfigLibraryOnly(text, opts));
}

// ---------------------------------------------------------------------------------------------
// Generators: config texts in and around the fast path's shape.

const alignedV4 = fc
  .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }))
  .map(([n, p]) => `${intToIPv4((n & (p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0)) >>> 0)}/${p}`);
const anyV4 = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 34 })).map(([n, p]) => `${intToIPv4(n)}/${p}`);
const v6 = fc.constantFrom(
  'fc00::/7',
  '::/0',
  '::1/128',
  'fe80::/10',
  'fe80::1/64',
  '2001:db8::/32',
  'FC00::/7',
  '::ffff:10.0.0.0/104',
  'fc00::1/7',
  '::/129',
  'fc00:::/7',
  '1:2/3',
  'a:b/1',
  '::10.0.0.1/128',
);
const garbage = fc.constantFrom(
  '10.0.0.0/33',
  '10.0.0.0/08',
  '010.0.0.0/8',
  '10.0.0/8',
  '/',
  '1/',
  '/1',
  ':/1',
  '1:/3:',
  '1/2:',
  '0x1f/2',
  '1e3/4',
  '.5/1',
  '1.5',
  '10',
  '0',
  'abc',
  'ab/cd',
  'yes',
  'no',
  'null',
  '~',
  '',
  '10.0.0.0/8 x',
  '1/2#c',
  '1/2 #c',
  'a b/1',
  '[1/2]',
  '{1/2}',
  '&a 1/2',
  '*a',
  '!!str 1/2',
  '"1/2',
  "'1/2",
  '- 1/2',
  '1/2: 3',
  '1/2:3',
  '-1/2',
  '? 1/2',
  '1.2.3.4/32',
  '0.0.0.0/0',
  '2024-01-01/2',
  '1:2:3/4',
  '190:20:30/1',
  '...',
  '---/1',
  '1/2\u2028',
  'é/1',
  // escapes and quotes inside quoted items
  '1\\t/2',
  '1\\/2',
  '\\x31/2',
  '\\u0031/2',
  '1/2\\',
  "a''b/1",
  "1'/2",
  '1"/2',
  '\\"',
  "''",
);
const cidrAlphabet = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF.:/ #-\'"xyz!&*[]{},|>%@`\\'.split('')), maxLength: 12 });
/** Texts of CIDR characters only ([0-9A-Fa-f.:/], what the fast path reads): mostly not CIDRs. */
const cidrCharsOnly = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF.:/'.split('')), minLength: 1, maxLength: 14 });

/**
 * Config texts. `clean`: every part from its usual forms (so that many texts take the fast path,
 * with unusual CIDR values still in the lists); otherwise each part is now and then an unusual one
 * (tabs, CRLF, anchors, markers, continuation lines, ...), mostly texts the fast path must refuse.
 */
function configTexts(clean: boolean): fc.Arbitrary<string> {
  /** Mostly one of `usual`, now and then one of `unusual` (never when clean). */
  function mostly<T>(usual: readonly T[], unusual: readonly T[], unusualWeight = 1): fc.Arbitrary<T> {
    if (clean) return fc.constantFrom(...usual);
    return fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...usual) }, { weight: unusualWeight, arbitrary: fc.constantFrom(...unusual) });
  }

  const cidr = fc.oneof(
    { weight: 6, arbitrary: alignedV4 },
    { weight: 1, arbitrary: anyV4 },
    { weight: 1, arbitrary: v6 },
    { weight: 1, arbitrary: cidrCharsOnly },
    { weight: clean ? 1 : 2, arbitrary: garbage },
    { weight: clean ? 0 : 1, arbitrary: cidrAlphabet },
  );

  const itemLine = fc
    .record({
      value: cidr,
      quote: mostly(['', '', "'", '"'], ["'", '"'], 3),
      dash: mostly(['- ', '- ', '- ', '-  '], ['-', '-\t', '? ', '- &a ', '- !!str ', '- *a']),
      trail: mostly(['', '', '', ' ', '   ', ' # c', '  # c: d', ' #'], ['#c', ' # é', ' # \u2028x', '\t', ' \t# t', ':', ' x', ' # \u0085']),
    })
    .map(({ value, quote, dash, trail }) => `${dash}${quote}${value}${quote}${trail}`);

  /** Lines that may come between or after items. */
  const otherBlockLine = mostly(
    ['', '  ', '# c', '    # c', '  #', '      # c: d'],
    [
      '  # é',
      '    continued',
      '   x',
      '-',
      '- ',
      '  -',
      '      - 1.2.3.0/24',
      'x',
      '  - 9.9.9.0/24',
      '- 9.9.9.0/24',
      '\t- 9.9.9.0/24',
      '  ? k',
      '...',
      '---',
      '  &a',
      '  *a',
      '  !!str 1/2',
      'k: v',
      '  k: v',
      '- k: v',
    ],
    4,
  );

  const keyLine = mostly(
    ['nonMasqueradeCIDRs:', 'nonMasqueradeCIDRs:', 'nonMasqueradeCIDRs:', 'nonMasqueradeCIDRs:   ', 'nonMasqueradeCIDRs: # the list', 'nonMasqueradeCIDRs: #'],
    [
      'nonMasqueradeCIDRs:#x',
      'nonMasqueradeCIDRs: # é',
      'nonmasqueradecidrs:',
      'NonMasqueradeCIDRs:',
      'NONMASQUERADECIDRS:',
      'nonMasqueradeCIDRs :',
      '"nonMasqueradeCIDRs":',
      "'nonMasqueradeCIDRs':",
      'nonMasqueradeCIDRs: &l',
      'nonMasqueradeCIDRs: !!seq',
      'nonMasqueradeCIDRs: !!set',
      'nonMasqueradeCIDRs: |',
      ' nonMasqueradeCIDRs:',
      'nonMasqueradeCIDRs:\t',
      '? nonMasqueradeCIDRs\n:',
      'nonMasqueradeCIDRs: []',
    ],
    4,
  );

  /** One `nonMasqueradeCIDRs` block: key line, items at one indentation (mostly), other lines in between. */
  const block = fc
    .record({
      key: keyLine,
      indent: fc.constantFrom(0, 0, 2, 2, 4, 1),
      lines: fc.array(
        fc.oneof(
          { weight: 12, arbitrary: itemLine.map((l) => ({ l, shift: 0 })) },
          { weight: clean ? 0 : 1, arbitrary: itemLine.map((l) => ({ l, shift: 1 })) },
          { weight: clean ? 0 : 1, arbitrary: itemLine.map((l) => ({ l, shift: -1 })) },
          { weight: 2, arbitrary: otherBlockLine.map((l) => ({ l, shift: null })) },
        ),
        { minLength: 0, maxLength: 10 },
      ),
    })
    .map(({ key, indent, lines }) => [key, ...lines.map(({ l, shift }) => (shift === null ? l : ' '.repeat(Math.max(0, indent + shift)) + l))].join('\n'));

  /** Other top-level entries (and things that are not entries). */
  const usualEntries = [
    'masqLinkLocal: true',
    'masqLinkLocal: false',
    'resyncInterval: 60s',
    'resyncInterval: 1m',
    'cidrLimit: 3',
    'cidrLimit: 100000',
    'foo: bar',
    '# a comment',
    '',
    'masqLinkLocal: yes',
    'MasqLinkLocal: off',
    'resyncInterval: 5',
    'x: |',
    'x: >-',
    'x: &a',
    'x: !!map',
    'x:',
    '? |',
    '?',
    '? k\n:',
    'list:\n- a\n- b',
    'list2:\n  - a',
    'desc: |\n  text\n  nonMasqueradeCIDRs:\n  - 1.2.3.0/24',
  ];
  const otherEntry = mostly(
    usualEntries,
    [
      'masqLinkLocal: true',
      'masqLinkLocal: false',
      'masqLinkLocal: yes',
      'masqLinkLocal: 7',
      'masqLinkLocal: ~',
      'MasqLinkLocal: off',
      'masqLinkLocalIPv6: true',
      'resyncInterval: 60s',
      'resyncInterval: 1m',
      'resyncInterval: 5',
      'resyncInterval:',
      'resyncInterval: "90s"',
      'cidrLimit: 3',
      'cidrLimit: 100000',
      'cidrLimit: 1.5',
      'foo: bar',
      'foo:',
      '# a comment',
      '',
      '   ',
      '  # indented comment',
      'nested:\n  nonMasqueradeCIDRs:\n  - 1.2.3.0/24',
      'desc: |\n  text\n  nonMasqueradeCIDRs:\n  - 1.2.3.0/24',
      'folded: >\n  a\n  b',
      'base: &b\n  masqLinkLocal: true',
      'base2: &c\n  nonMasqueradeCIDRs: [9.9.9.0/24]',
      'base3: &d\n  NonMasqueradeCidrs: []',
      '<<: *b',
      '<<: *c',
      '<<: *d',
      'f: {a: 1}',
      'f: [\n  1,\n  2]',
      'f: [\nnonMasqueradeCIDRs: x]',
      'nonMasqueradeCIDRs: [1.2.3.0/24]',
      'nonMasqueradeCIDRs: [egresslab-fast-path-placeholder-0d9c2f]',
      'NONMASQUERADECIDRS: []',
      'nonMasqueradeCIDRs:',
      'nonmasqueradecidrs: ~',
      '? complex\n: value',
      '? [a, b]\n: value',
      '"quoted": 1',
      "'nonMasqueradeCIDRs': [8.8.8.0/24]",
      's: "abc\n  def"',
      "s2: 'multi\n  line'",
      'list:\n- a\n- b',
      'list2:\n  - a',
      'x: *undefinedalias',
      'bad: [',
      ': novalue',
      '- toplevel item',
      'k: v # trailing',
      'k2: v\t# tab',
      'm:\n  nonMasqueradeCIDRs: x',
      '---',
      '...',
      '--- # doc',
      '%YAML 1.1',
      'top: &t\n  a: 1\nalias: *t',
      '  indented: 1',
      'key with spaces: 1',
      '"nonMasqueradeCIDRs" : [7.7.7.0/24]',
      'nonMasqueradeCIDRs : []',
      'k: !!str 1',
      'k3: "a\\tb"',
      'é: 1',
      '__proto__: 1',
      '<<: {a: 1}',
      'u: \u2028x',
      'v: "\u0085"',
    ],
    6,
  );

  const prefix = mostly(['', '', '# head\n', '\n'], ['---\n', '--- !!map\n', '&top\n', '!!map\n', '\ufeff', '%YAML 1.1\n---\n', ' ']);
  const suffix = mostly(
    ['', '\n', '\n', '\n', '\n\n', '\n# tail\n', '\n  '],
    ['\n---\nmasqLinkLocal: true\n', '\n...\n', '\n  - 5.5.5.0/24\n', '\n- 5.5.5.0/24\n'],
  );

  return fc
    .record({
      before: fc.array(otherEntry, { maxLength: 4 }),
      blocks: fc.array(block, { minLength: 1, maxLength: clean ? 1 : 2 }),
      between: fc.array(otherEntry, { maxLength: 2 }),
      after: fc.array(otherEntry, { maxLength: 4 }),
      prefix,
      suffix,
      crlf: mostly([false], [true]),
      tab: mostly([false], [true]),
    })
    .map(({ before, blocks, between, after, prefix: pre, suffix: suf, crlf, tab }) => {
      const parts = [...before, blocks[0]!, ...between, ...blocks.slice(1), ...after];
      let text = pre + parts.join('\n') + suf;
      if (crlf) text = text.replace(/\n/g, '\r\n');
      if (tab) text += '\n# tab\there';
      return text;
    });
}

const configText = fc.oneof(configTexts(true), configTexts(false));

// ---------------------------------------------------------------------------------------------

// Runs per property: a few seconds by default; MASQ_FAST_PATH_RUNS=100000 for a long local search.
const RUNS = Number(process.env.MASQ_FAST_PATH_RUNS ?? 2500);

describe('parseMasqConfig fast path = library path (property)', () => {
  // The library warns on stdout for collection keys ("Keys with collection values will be stringified");
  // the generator writes such keys on purpose, and the warnings would drown the test output.
  let restore: () => void = () => undefined;
  beforeAll(() => {
    const spy = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    restore = () => spy.mockRestore();
  });
  afterAll(() => restore());

  it('random texts in and around the fast-path shape decode to the same ParseResult', () => {
    const paths = new Map<string, number>();
    fc.assert(
      fc.property(configText, fc.boolean(), (text, enableIPv6) => {
        const path = masqDecodePath(text);
        paths.set(path, (paths.get(path) ?? 0) + 1);
        same(text, { enableIPv6 });
      }),
      { numRuns: RUNS },
    );
    // The generator must exercise the fast path itself, not only its refusals (counts, not timing).
    const runs = [...paths.values()].reduce((a, b) => a + b, 0);
    expect(paths.get('fast') ?? 0, JSON.stringify(Object.fromEntries(paths))).toBeGreaterThan(runs * 0.1);
  }, 120_000);

  it('texts written the way the lab writes them (yaml stringify) decode to the same ParseResult', () => {
    const entry = fc.oneof(
      { weight: 6, arbitrary: alignedV4 },
      { weight: 1, arbitrary: anyV4 },
      { weight: 1, arbitrary: v6 },
      { weight: 1, arbitrary: garbage },
    );
    let fast = 0;
    let runs = 0;
    fc.assert(
      fc.property(
        fc.record({
          nonMasqueradeCIDRs: fc.option(fc.array(entry, { maxLength: 30 }), { nil: undefined }),
          masqLinkLocal: fc.option(fc.boolean(), { nil: undefined }),
          resyncInterval: fc.option(fc.constantFrom('60s', '1m', '5', 'soon'), { nil: undefined }),
        }),
        fc.boolean(),
        (input, enableIPv6) => {
          const text = masqConfigYaml(input);
          runs++;
          if (masqDecodePath(text) === 'fast') fast++;
          same(text, { enableIPv6 });
        },
      ),
      { numRuns: Math.ceil(RUNS / 5) },
    );
    expect(fast).toBeGreaterThan(runs * 0.3);
  }, 120_000);
});

describe('parseMasqConfig fast path: taken for the lab shape', () => {
  it('10,000 CIDRs written by masqConfigYaml take the fast path and equal the library result', { timeout: 60_000 }, () => {
    const text = masqConfigYaml({ nonMasqueradeCIDRs: randomDisjointCidrs(10_000, 42), masqLinkLocal: false, resyncInterval: '60s' });
    expect(masqDecodePath(text)).toBe('fast');
    const r = parseMasqConfig(text);
    expect(r.ok && r.config.nonMasqueradeCIDRs.length).toBe(10_000);
    expect(r).toStrictEqual(parseMasqConfigLibraryOnly(text));
  });

  it('a bad entry deep in a long list: same errors, fields and values as the library', () => {
    const list = randomDisjointCidrs(2_000, 7);
    list[1234] = '10.0.0.1/8';
    list[1500] = 'fc00::/7';
    list[1999] = '10.0.0.0/33';
    const text = masqConfigYaml({ nonMasqueradeCIDRs: list });
    expect(masqDecodePath(text)).toBe('fast');
    const r = parseMasqConfig(text);
    expect(r.ok ? [] : r.errors.map((e) => e.field)).toEqual(['nonMasqueradeCIDRs[1234]', 'nonMasqueradeCIDRs[1500]', 'nonMasqueradeCIDRs[1999]']);
    same(text);
    same(text, { enableIPv6: true });
  });

  it.each([
    [
      'indented items, comments, blank lines, quotes',
      'masqLinkLocal: true\nnonMasqueradeCIDRs: # exempt\n  # group 1\n  - 10.0.0.0/8 # ten\n\n  - "172.16.0.0/12"\n  - \'fc00::/7\'\n# tail\nresyncInterval: 5m\n',
    ],
    ['compact items (indent 0), no trailing newline', 'nonMasqueradeCIDRs:\n- 10.0.0.0/8\n- 192.168.0.0/16'],
    ['cidrLimit after the list', 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 192.168.0.0/16\ncidrLimit: 1\n'],
    ['unknown keys and a case-folded other key', 'foo: 1\nnonMasqueradeCIDRs:\n  - 10.0.0.0/8\nMASQLINKLOCAL: yes\n'],
    ['an exact duplicate earlier (the last one wins: ours)', 'nonMasqueradeCIDRs : [192.168.0.0/16]\nnonMasqueradeCIDRs:\n  - 10.0.0.0/8\n'],
    [
      'the key in a nested map and in a comment elsewhere',
      '# nonMasqueradeCIDRs: are below\nx:\n  nonMasqueradeCIDRs: 3\nnonMasqueradeCIDRs:\n  - 10.0.0.0/8\n',
    ],
  ])('%s: fast', (_name, text) => {
    expect(masqDecodePath(text)).toBe('fast');
    same(text);
  });
});

describe('parseMasqConfig fast path: every fallback reason, and the same result through the library', () => {
  const L = 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 172.16.0.0/12\n';
  const cases: [FastPathFallback, string, string][] = [
    ['no-block', 'no key at all', 'masqLinkLocal: true\n'],
    ['no-block', 'flow list', 'nonMasqueradeCIDRs: [10.0.0.0/8]\n'],
    ['no-block', 'null list', 'nonMasqueradeCIDRs:\nmasqLinkLocal: true\n'],
    ['no-block', 'key line ends the text', 'nonMasqueradeCIDRs:'],
    ['no-block', 'anchor on the list', 'nonMasqueradeCIDRs: &a\n  - 10.0.0.0/8\n'],
    ['no-block', 'tag on the list', 'nonMasqueradeCIDRs: !!seq\n  - 10.0.0.0/8\n'],
    ['no-block', 'no space before the comment', 'nonMasqueradeCIDRs:#x\n  - 10.0.0.0/8\n'],
    ['no-block', 'first item not CIDR-like', 'nonMasqueradeCIDRs:\n  - yes\n  - 10.0.0.0/8\n'],
    ['no-block', 'first item ends in ":" (a mapping)', 'nonMasqueradeCIDRs:\n  - 1:/3:\n'],
    ['no-block', 'case variant of the key', 'NonMasqueradeCIDRs:\n  - 10.0.0.0/8\n'],
    ['no-block', 'key not at column 0', ' nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n'],
    ['carriage-return', 'CRLF line endings', L.replace(/\n/g, '\r\n')],
    ['tab', 'a tab in a comment', `${L}# a\tb\n`],
    ['bom', 'byte order mark', `\ufeff# head\n${L}`],
    ['no-block', 'byte order mark right before the key', `\ufeff${L}`],
    ['document-marker-or-directive', 'document start', `---\n${L}`],
    ['document-marker-or-directive', 'second document', `${L}---\nmasqLinkLocal: true\n`],
    ['document-marker-or-directive', 'document end', `${L}...\n`],
    ['document-marker-or-directive', 'directive', `%YAML 1.1\n---\n${L}`],
    ['placeholder-in-text', 'the placeholder string itself', `${L}x: egresslab-fast-path-placeholder-0d9c2f\n`],
    ['block-end-ambiguous', 'a continuation line after the last item', `${L}    more\n`],
    ['block-end-ambiguous', 'an item at another indentation', `${L}    - 192.168.0.0/16\n`],
    ['block-end-ambiguous', 'a non-CIDR item', `${L}  - yes\n`],
    ['block-end-ambiguous', 'an item at column 0 after indented ones', `${L}- 192.168.0.0/16\n`],
    ['block-end-ambiguous', 'a comment with a non-ASCII character', `${L}  # é\nmasqLinkLocal: true\n`],
    ['block-end-ambiguous', 'an item comment with a non-ASCII character', 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 172.16.0.0/12 # é\n'],
    ['block-end-ambiguous', 'an explicit key after the list', `${L}? k\n: v\n`],
    ['block-end-ambiguous', 'an item followed by text', `${L}  - 192.168.0.0/16 x\n`],
    ['rest-invalid', 'a YAML error elsewhere (its line number would differ)', `${L}bad: [\n`],
    ['rest-invalid', 'an undefined alias elsewhere', `${L}x: *nope\n`],
    ['rest-not-block-map', 'anchor on the top-level mapping', `&top\n${L}`],
    ['rest-not-block-map', 'tag on the top-level mapping', `!!map\n${L}`],
    ['rest-not-block-map', 'the text is a block scalar', `|\n${L}`],
    ['rest-invalid', 'the key line is inside a multi-line quoted scalar', `s: "abc\n${L}"\n`],
    ['duplicate-key', 'the key again later', `${L}nonMasqueradeCIDRs: [192.168.0.0/16]\n`],
    ['no-block', 'the key in flow style earlier (the first column-0 key line decides)', `nonMasqueradeCIDRs: [192.168.0.0/16]\n${L}`],
    ['duplicate-key', 'a case variant later', `${L}NONMASQUERADECIDRS: []\n`],
    ['duplicate-key', 'a case variant earlier', `nonmasqueradecidrs: ~\n${L}`],
    ['duplicate-key', 'a quoted duplicate', `${L}"nonMasqueradeCIDRs": [7.7.7.0/24]\n`],
    ['duplicate-key', 'a case variant through a merge key', `base: &d\n  NonMasqueradeCidrs: []\n<<: *d\n${L}`],
    ['duplicate-key', 'a second block', `${L}nonMasqueradeCIDRs:\n  - 192.168.0.0/16\n`],
  ];
  it.each(cases)('%s: %s', (reason, _name, text) => {
    expect(masqDecodePath(text)).toBe(`library: ${reason}`);
    same(text);
  });

  it('every reason has a case (but key-not-top-level, a defensive check no input is known to reach)', () => {
    const all: Record<FastPathFallback, true> = {
      'no-block': true,
      'carriage-return': true,
      tab: true,
      bom: true,
      'document-marker-or-directive': true,
      'placeholder-in-text': true,
      'block-end-ambiguous': true,
      'rest-invalid': true,
      'rest-not-block-map': true,
      'key-not-top-level': true,
      'duplicate-key': true,
    };
    expect(new Set([...cases.map((c) => c[0]), 'key-not-top-level'])).toEqual(new Set(Object.keys(all)));
  });

  it('JSON never reaches the fast path', () => {
    expect(masqDecodePath('{"nonMasqueradeCIDRs": ["10.0.0.0/8"]}')).toBe('json');
  });

  it('a merged exact key does not displace the explicit list (explicit keys win over <<)', () => {
    const text = `base: &c\n  nonMasqueradeCIDRs: [9.9.9.0/24]\n<<: *c\n${L}`;
    expect(masqDecodePath(text)).toBe('fast');
    same(text);
  });
});

it('stringify round trip sanity: the lab shape is what masqConfigYaml writes', () => {
  expect(stringifyYaml({ nonMasqueradeCIDRs: ['1.2.3.0/24'] })).toBe('nonMasqueradeCIDRs:\n  - 1.2.3.0/24\n');
});
