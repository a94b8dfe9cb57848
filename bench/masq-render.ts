/**
 * Render benchmark for the masquerade ruleset: N random, non-overlapping IPv4 CIDRs (default
 * 10,000) -> parse/validate + normalise + render. Pure CPU, no nft, no root.
 *
 *   npm run build && node dist/bench/masq-render.js [count] [iterations]
 *
 * (Timing of the in-lab `nft -f` apply is a separate, lab-side benchmark.)
 */
import { parseMasqConfig } from '../agent/masq/config.js';
import { renderMasqRuleset } from '../agent/masq/render.js';
import { randomDisjointCidrs } from './cidrs.js';
import { programArgs } from '../harness/util/args.js';

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
  const text = JSON.stringify({ nonMasqueradeCIDRs: cidrs });

  const parseMs: number[] = [];
  const renderMs: number[] = [];
  let bytes = 0;
  let elements = 0;
  for (let i = 0; i < iterations + 2; i++) {
    const t0 = performance.now();
    const parsed = parseMasqConfig(text);
    const t1 = performance.now();
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 3)));
    const r = renderMasqRuleset(parsed.config, { podCidrs: ['10.244.1.0/24'] });
    const t2 = performance.now();
    if (i >= 2) {
      // first two are warm-up
      parseMs.push(t1 - t0);
      renderMs.push(t2 - t1);
    }
    bytes = r.ruleset.length;
    elements = r.nonMasqElements.length;
  }
  const stat = (a: number[]): string => {
    const s = [...a].sort((p, q) => p - q);
    const q = (f: number): number => s[Math.min(s.length - 1, Math.floor(f * s.length))] ?? NaN;
    return `p50 ${q(0.5).toFixed(1)} ms, p95 ${q(0.95).toFixed(1)} ms, max ${(s.at(-1) ?? NaN).toFixed(1)} ms`;
  };
  process.stdout.write(
    `masq-render: ${count} CIDRs -> ${elements} set elements, ${(bytes / 1024).toFixed(0)} KiB ruleset, ${iterations} iterations (node ${process.version})\n` +
      `  parse+validate: ${stat(parseMs)}\n` +
      `  normalise+render: ${stat(renderMs)}\n`,
  );
}

main();
