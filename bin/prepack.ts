/**
 * `npm pack` / `npm publish` (package.json "prepack", after `npm run build:code`): makes dist/ what
 * the package ships.
 *
 *   1. removes build outputs whose TypeScript source is gone (a renamed or deleted module would
 *      otherwise ship as a stale file of an older build);
 *   2. bundles the in-lab code (agent, controller, harness/inlab programs) into dist/payload/, which
 *      an installed package mounts into lab containers (harness/lab/payload.ts): users never build
 *      this repository, and need neither rolldown nor the sources.
 *
 * Prints one line per step with what it did.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writePrebuiltPayload } from '../harness/lab/payload.js';
import { projectRoot } from '../harness/util/paths.js';

/** The folders of dist/ the package ships (package.json "files"), each compiled from the folder of the same name. */
export const SHIPPED = ['lib', 'agent', 'controller', 'harness'] as const;

/** Build outputs (.js, .d.ts, .js.map, .d.ts.map) under dist/<top> without their .ts source, relative to root. */
export function staleOutputs(root: string): string[] {
  const stale: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) {
        walk(full);
        continue;
      }
      const m = /^(.*?)(\.d\.ts|\.js)(\.map)?$/.exec(name);
      if (!m) continue;
      const source = join(root, relative(join(root, 'dist'), dir), `${m[1]}.ts`);
      if (!existsSync(source)) stale.push(relative(root, full));
    }
  };
  for (const top of SHIPPED) if (existsSync(join(root, 'dist', top))) walk(join(root, 'dist', top));
  return stale.sort();
}

async function main(): Promise<void> {
  const root = projectRoot();
  const stale = staleOutputs(root);
  for (const f of stale) rmSync(join(root, f));
  process.stdout.write(`prepack: ${stale.length} stale build output(s) removed${stale.length ? `: ${stale.join(', ')}` : ''}\n`);
  const p = await writePrebuiltPayload({ root });
  process.stdout.write(
    `prepack: in-lab payload bundled into ${relative(root, p.dir)}/ (${p.files.length} files, ${(p.bytes / 1024).toFixed(0)} kB, ${p.bundleMs.toFixed(0)} ms)\n`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    process.stderr.write(`prepack: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
