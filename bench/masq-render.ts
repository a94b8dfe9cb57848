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

function randomDisjointCidrs(count: number, seed: number): string[] {
  // Pick distinct /24 .. /30 blocks inside distinct /16s' worth of space: choose a random aligned
  // block in 11.0.0.0-126.255.255.255 and keep it if its /24 has not been used yet.
  let x = seed >>> 0;
  const rnd = (): number => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x;
  };
  const used = new Set<number>();
  const out: string[] = [];
  while (out.length < count) {
    const slash24 = (11 << 16) + (rnd() % (116 << 16)); // index of a /24 in 11.0.0.0/8 .. 126.0.0.0/8
    if (used.has(slash24)) continue;
    used.add(slash24);
    const prefix = 24 + (rnd() % 7); // /24 .. /30
    const hostBits = 32 - prefix;
    const offset = hostBits >= 8 ? 0 : ((rnd() % 256) >> hostBits) << hostBits;
    const a = slash24 * 256 + offset;
    out.push(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${prefix}`);
  }
  return out;
}

function main(): void {
  const count = Number(process.argv[2] ?? 10_000);
  const iterations = Number(process.argv[3] ?? 20);
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
