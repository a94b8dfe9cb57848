/**
 * Render benchmark for the masquerade ruleset: N random, non-overlapping IPv4 CIDRs (default
 * 10,000) -> parse/validate + normalise + render. Pure CPU, no nft, no root.
 *
 *   npm run build && node dist/bench/masq-render.js [count] [iterations] [--baseline DIST] [--cold N]
 *
 * Parse+validate is timed three ways in the same process, interleaved: the YAML text the lab writes
 * (harness masqConfigYaml) through the `yaml` library only (parseMasqConfigLibraryOnly), the same
 * text through parseMasqConfig (its fast path for a long nonMasqueradeCIDRs block, issue 17), and
 * the same config as JSON. The two YAML results are checked to be equal before timing.
 *
 * Render is timed warm (after two warm-up calls, as above) and cold: the first call in a fresh
 * process, --cold N child processes (default 5), once with node's defaults and once with --jitless
 * (a stand-in for code not yet optimised: the agent renders once per change, on a loaded node, so
 * its render runs mostly cold; issue 17). With --baseline DIST (the `dist` directory of another
 * build, e.g. an earlier commit's: `git archive C | tar -x -C dist/base-C`, then tsc -p there, or a
 * copy of its dist under this dist/ so that `yaml` resolves), that build's renderMasqRuleset is timed
 * the same way, interleaved, after its output is checked to be the same, and both print side by side.
 *
 * (Timing of the in-lab `nft -f` apply is a separate, lab-side benchmark.)
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { masqDecodePath, parseMasqConfig, parseMasqConfigLibraryOnly, type MasqConfig, type ParseResult } from '../agent/masq/config.js';
import { renderMasqRuleset, type RenderOptions, type RenderResult } from '../agent/masq/render.js';
import { randomDisjointCidrs } from '../lib/net/random-cidrs.js';
import { programArgs } from '../harness/util/args.js';
import { masqConfigYaml } from '../harness/cluster/masq-applied.js';

type Render = (config: MasqConfig, opts: RenderOptions) => RenderResult;

const RENDER_OPTS: RenderOptions = { podCidrs: ['10.244.1.0/24'] };
const THIS_DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function loadRender(dist: string): Promise<Render> {
  const m = (await import(pathToFileURL(path.join(dist, 'agent/masq/render.js')).href)) as { renderMasqRuleset: Render };
  return m.renderMasqRuleset;
}

function inputs(count: number): { yamlText: string; jsonText: string; cidrs: string[] } {
  const cidrs = randomDisjointCidrs(count, 42);
  return {
    cidrs,
    yamlText: masqConfigYaml({ nonMasqueradeCIDRs: cidrs, masqLinkLocal: false, resyncInterval: '60s' }),
    jsonText: JSON.stringify({ nonMasqueradeCIDRs: cidrs, masqLinkLocal: false, resyncInterval: '60s' }),
  };
}

/** Child process: the first (cold) render of `dist`'s renderMasqRuleset, in ms, on stdout. */
async function coldChild(dist: string, count: number): Promise<void> {
  const parsed = parseMasqConfig(inputs(count).yamlText);
  if (!parsed.ok) throw new Error('config does not parse');
  const render = await loadRender(dist);
  const t0 = performance.now();
  render(parsed.config, RENDER_OPTS);
  process.stdout.write(`${performance.now() - t0}\n`);
}

/** First-call render times of each build, `runs` fresh processes each (interleaved), with `nodeFlags`. */
function coldRuns(dists: readonly string[], count: number, runs: number, nodeFlags: string[]): number[][] {
  const out = dists.map((): number[] => []);
  for (let i = 0; i < runs; i++) {
    dists.forEach((d, k) => {
      const args = [...nodeFlags, fileURLToPath(import.meta.url), String(count), '--child', d];
      const text = execFileSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      out[k]!.push(Number(text.trim()));
    });
  }
  return out;
}

async function main(): Promise<void> {
  const { positionals, flags } = programArgs('dist/bench/masq-render.js', {
    flags: { baseline: { value: true, arg: 'DIST' }, cold: { value: true, int: true }, child: { value: true, arg: 'DIST' } },
    args: '[COUNT] [ITERATIONS]',
    maxPositionals: 2,
    intPositionals: true,
    about: '  Parse, normalise and render the masquerade ruleset of COUNT random CIDRs (default 10000), ITERATIONS times (default 20).',
  });
  const count = Number(positionals[0] ?? 10_000);
  const iterations = Number(positionals[1] ?? 20);
  if (flags.child !== undefined) return coldChild(flags.child, count);
  const { yamlText, jsonText } = inputs(count);
  const builds: { name: string; dist: string; render: Render; warm: number[] }[] = [
    { name: 'this build', dist: THIS_DIST, render: renderMasqRuleset, warm: [] },
  ];
  if (flags.baseline !== undefined) {
    const dist = path.resolve(flags.baseline);
    builds.unshift({ name: `baseline ${path.relative(process.cwd(), dist) || dist}`, dist, render: await loadRender(dist), warm: [] });
  }

  const decodePath = masqDecodePath(yamlText);
  const reference = parseMasqConfigLibraryOnly(yamlText);
  if (!isDeepStrictEqual(parseMasqConfig(yamlText), reference)) throw new Error('fast path and library path disagree');
  if (!reference.ok) throw new Error(JSON.stringify(reference.errors.slice(0, 3)));

  const ways: { name: string; text: string; parse: (t: string) => ParseResult; ms: number[] }[] = [
    { name: 'YAML, library path', text: yamlText, parse: parseMasqConfigLibraryOnly, ms: [] },
    { name: `YAML, parseMasqConfig (${decodePath})`, text: yamlText, parse: parseMasqConfig, ms: [] },
    { name: 'JSON', text: jsonText, parse: parseMasqConfig, ms: [] },
  ];
  for (const b of builds) {
    if (b.render(reference.config, RENDER_OPTS).ruleset !== renderMasqRuleset(reference.config, RENDER_OPTS).ruleset) {
      throw new Error(`${b.name} renders a different ruleset`);
    }
  }
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
    const r = renderMasqRuleset(reference.config, RENDER_OPTS);
    const t2 = performance.now();
    if (i >= 2) renderMs.push(t2 - t1);
    bytes = r.ruleset.length;
    elements = r.nonMasqElements.length;
    for (let k = 0; k < builds.length; k++) {
      const b = builds[(i + k) % builds.length]!;
      const t3 = performance.now();
      b.render(reference.config, RENDER_OPTS);
      if (i >= 2) b.warm.push(performance.now() - t3);
    }
  }
  const coldN = flags.cold ?? 5;
  const dists = builds.map((b) => b.dist);
  const cold = coldN > 0 ? coldRuns(dists, count, coldN, []) : [];
  const jitless = coldN > 0 ? coldRuns(dists, count, coldN, ['--jitless']) : [];
  const q = (a: number[], f: number): number => {
    const s = [...a].sort((p, r) => p - r);
    return s[Math.min(s.length - 1, Math.floor(f * s.length))] ?? NaN;
  };
  const stat = (a: number[]): string =>
    `p50 ${q(a, 0.5).toFixed(1).padStart(6)} ms, p95 ${q(a, 0.95).toFixed(1).padStart(6)} ms, max ${Math.max(...a)
      .toFixed(1)
      .padStart(6)} ms`;
  const width = Math.max(...ways.map((w) => w.name.length));
  const libraryP50 = q(ways[0]!.ms, 0.5);
  process.stdout.write(
    `masq-render: ${count} CIDRs (${(yamlText.length / 1024).toFixed(0)} KiB of YAML) -> ${elements} set elements, ` +
      `${(bytes / 1024).toFixed(0)} KiB ruleset, ${iterations} iterations (node ${process.version})\n` +
      `  parse+validate:\n` +
      ways.map((w) => `    ${w.name.padEnd(width)}  ${stat(w.ms)}  (${(libraryP50 / q(w.ms, 0.5)).toFixed(1)}x)\n`).join('') +
      `  normalise+render: ${stat(renderMs)}\n` +
      `  render, side by side (warm: ${iterations} calls after 2 warm-ups, interleaved; cold: first call in a fresh process, ${coldN} processes each):\n` +
      builds
        .map((b, k) => {
          const c = (a: number[] | undefined): string =>
            a?.length
              ? `p50 ${q(a, 0.5).toFixed(1).padStart(6)} ms, max ${Math.max(...a)
                  .toFixed(1)
                  .padStart(6)} ms`
              : 'not run';
          return `    ${b.name.padEnd(bw)}  warm ${stat(b.warm)}\n` + `    ${''.padEnd(bw)}  cold ${c(cold[k])}   cold --jitless ${c(jitless[k])}\n`;
        })
        .join(''),
  );
}

const bw = 24;
await main();
