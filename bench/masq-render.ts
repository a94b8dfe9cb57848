/**
 * Render benchmark for the masquerade ruleset: N random, non-overlapping IPv4 CIDRs (default
 * 10,000) -> parse/validate + normalise + render. Pure CPU, no nft, no root.
 *
 *   npm run build && node dist/bench/masq-render.js [count] [iterations]
 *
 * Parse+validate is timed three ways in the same process, interleaved: the YAML text the lab writes
 * (harness masqConfigYaml) through the `yaml` library only (parseMasqConfigLibraryOnly), the same
 * text through parseMasqConfig (its fast path for a long nonMasqueradeCIDRs block, issue 17), and
 * the same config as JSON. The two YAML results are checked to be equal before timing.
 *
 * (Timing of the in-lab `nft -f` apply is a separate, lab-side benchmark.)
 */
import { isDeepStrictEqual } from 'node:util';
import { masqDecodePath, parseMasqConfig, parseMasqConfigLibraryOnly, type ParseResult } from '../agent/masq/config.js';
import { renderMasqRuleset } from '../agent/masq/render.js';
import { randomDisjointCidrs } from '../lib/net/random-cidrs.js';
import { programArgs } from '../harness/util/args.js';
import { masqConfigYaml } from '../harness/cluster/masq.js';

function main(): void {
  const { positionals } = programArgs('dist/bench/masq-render.js', {
    flags: {},
    args: '[COUNT] [ITERATIONS]',
    maxPositionals: 2,
    intPositionals: true,
    about: '  Parse, normalise and render the masquerade ruleset of COUNT random CIDRs (default 10000), ITERATIONS times (default 20).',
  });
  const count = Number(positionals[0] ?? 10_000);
  const iterations = Number(positionals[1] ?? 20);
  const cidrs = randomDisjointCidrs(count, 42);
  const yamlText = masqConfigYaml({ nonMasqueradeCIDRs: cidrs, masqLinkLocal: false, resyncInterval: '60s' });
  const jsonText = JSON.stringify({ nonMasqueradeCIDRs: cidrs, masqLinkLocal: false, resyncInterval: '60s' });

  const path = masqDecodePath(yamlText);
  const reference = parseMasqConfigLibraryOnly(yamlText);
  if (!isDeepStrictEqual(parseMasqConfig(yamlText), reference)) throw new Error('fast path and library path disagree');
  if (!reference.ok) throw new Error(JSON.stringify(reference.errors.slice(0, 3)));

  const ways: { name: string; text: string; parse: (t: string) => ParseResult; ms: number[] }[] = [
    { name: 'YAML, library path', text: yamlText, parse: parseMasqConfigLibraryOnly, ms: [] },
    { name: `YAML, parseMasqConfig (${path})`, text: yamlText, parse: parseMasqConfig, ms: [] },
    { name: 'JSON', text: jsonText, parse: parseMasqConfig, ms: [] },
  ];
  const renderMs: number[] = [];
  let bytes = 0;
  let elements = 0;
  for (let i = 0; i < iterations + 2; i++) {
    // first two are warm-up; the order rotates so that no way always runs after the same one
    for (let k = 0; k < ways.length; k++) {
      const w = ways[(i + k) % ways.length]!;
      const t0 = performance.now();
      const parsed = w.parse(w.text);
      const t1 = performance.now();
      if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 3)));
      if (i >= 2) w.ms.push(t1 - t0);
    }
    const t1 = performance.now();
    const r = renderMasqRuleset(reference.config, { podCidrs: ['10.244.1.0/24'] });
    const t2 = performance.now();
    if (i >= 2) renderMs.push(t2 - t1);
    bytes = r.ruleset.length;
    elements = r.nonMasqElements.length;
  }
  const q = (a: number[], f: number): number => {
    const s = [...a].sort((p, r) => p - r);
    return s[Math.min(s.length - 1, Math.floor(f * s.length))] ?? NaN;
  };
  const stat = (a: number[]): string =>
    `p50 ${q(a, 0.5).toFixed(1).padStart(6)} ms, p95 ${q(a, 0.95).toFixed(1).padStart(6)} ms, max ${Math.max(...a).toFixed(1).padStart(6)} ms`;
  const width = Math.max(...ways.map((w) => w.name.length));
  const libraryP50 = q(ways[0]!.ms, 0.5);
  process.stdout.write(
    `masq-render: ${count} CIDRs (${(yamlText.length / 1024).toFixed(0)} KiB of YAML) -> ${elements} set elements, ` +
      `${(bytes / 1024).toFixed(0)} KiB ruleset, ${iterations} iterations (node ${process.version})\n` +
      `  parse+validate:\n` +
      ways.map((w) => `    ${w.name.padEnd(width)}  ${stat(w.ms)}  (${(libraryP50 / q(w.ms, 0.5)).toFixed(1)}x)\n`).join('') +
      `  normalise+render: ${stat(renderMs)}\n`,
  );
}

main();
