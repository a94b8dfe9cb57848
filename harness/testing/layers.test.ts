/**
 * The import layers (docs/architecture.md): which top-level folder may import which.
 *
 *   lib/                          nothing of the project's but lib/ itself
 *   agent/, controller/           lib/ (never each other: they meet only through the Kubernetes API)
 *   harness/                      lib/, agent/, controller/ (it deploys both into a lab)
 *   integration/, scenarios/,
 *   bench/, bin/                  lib/, agent/, controller/, harness/
 *
 * Nothing imports integration/, scenarios/, bench/ or bin/ from another folder. One allowance:
 * tests of agent/ and controller/ may use the harness's polling helper (harness/util/poll.ts).
 * Every relative import of every .ts file counts, tests included (static, dynamic, re-exports).
 *
 * Inside harness/, no import cycle (type-only imports count too): features (probes, captures,
 * faults, the cluster's programs) depend on the lab runtime interface (harness/lab/runtime.ts), and
 * only the Lab façade imports the features.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.js';

const TOPS = ['lib', 'agent', 'controller', 'harness', 'integration', 'scenarios', 'bench', 'bin'] as const;
type Top = (typeof TOPS)[number];

const BELOW: Record<Top, readonly Top[]> = {
  lib: [],
  agent: ['lib'],
  controller: ['lib'],
  harness: ['lib', 'agent', 'controller'],
  integration: ['lib', 'agent', 'controller', 'harness'],
  scenarios: ['lib', 'agent', 'controller', 'harness'],
  bench: ['lib', 'agent', 'controller', 'harness'],
  bin: ['lib', 'agent', 'controller', 'harness'],
};

/** Files a test of agent/ or controller/ may import from the harness. */
const TEST_HELPERS = new Set(['harness/util/poll.ts']);

/** The relative module specifiers a source imports or re-exports (static and dynamic). */
function relativeImports(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) out.push(m[1]!);
  return out;
}

/** Every import that breaks the layers: "from-file -> imported file (rule)". Paths are "/"-separated, relative to the root. */
function layerViolations(files: ReadonlyMap<string, string>): string[] {
  const bad: string[] = [];
  for (const [file, text] of files) {
    const from = file.split('/')[0] as Top;
    if (!TOPS.includes(from)) continue;
    for (const spec of relativeImports(text)) {
      const target = posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, '.ts');
      const to = target.split('/')[0] as Top;
      if (to === from || !TOPS.includes(to)) continue;
      if (BELOW[from].includes(to)) continue;
      if ((from === 'agent' || from === 'controller') && file.endsWith('.test.ts') && TEST_HELPERS.has(target)) continue;
      bad.push(`${file} -> ${target} (${from}/ may import ${BELOW[from].map((t) => `${t}/`).join(', ') || 'only itself'})`);
    }
  }
  return bad.sort();
}

/** The import graph's strongly connected components of more than one module (or a module importing itself), among files under `under`. */
function importCycles(files: ReadonlyMap<string, string>, under: string): string[][] {
  const edges = new Map<string, string[]>();
  for (const [file, text] of files) {
    if (!file.startsWith(under)) continue;
    const targets = relativeImports(text)
      .map((spec) => posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, '.ts'))
      .filter((t) => t.startsWith(under) && files.has(t));
    edges.set(file, [...new Set(targets)]);
  }
  // Tarjan's algorithm
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (edges.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) visit(v);
  return out.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

function sources(root: string, dir: string, out: Map<string, string>): void {
  let names: string[];
  try {
    names = readdirSync(join(root, dir));
  } catch {
    return;
  }
  for (const name of names) {
    const rel = `${dir}/${name}`;
    const full = join(root, rel);
    if (statSync(full).isDirectory()) sources(root, rel, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.set(relative(root, full).split(sep).join('/'), readFileSync(full, 'utf8'));
  }
}

describe('import layers', () => {
  it('lib/ imports nothing above it; agent/ and controller/ never import each other; nothing imports integration, scenarios, bench or bin', () => {
    const root = projectRoot();
    const files = new Map<string, string>();
    for (const top of TOPS) sources(root, top, files);
    files.delete('harness/testing/layers.test.ts'); // its own examples below are violations on purpose
    // not vacuous: the walk found the shared library and its users
    const imported = [...files].filter(([f, t]) => f.startsWith('agent/') && relativeImports(t).some((s) => s.includes('/lib/')));
    expect(imported.length).toBeGreaterThan(5);
    expect(layerViolations(files)).toEqual([]);
  });

  it('catches an agent importing the controller and back, the library importing above it, and dynamic imports', () => {
    const files = new Map([
      ['agent/node/x.ts', "import { R } from '../../controller/api/server.js';\nimport { isIPv4 } from '../../lib/net/addresses.js';"],
      ['controller/logic/y.ts', "export { Beacon } from '../../agent/node/beacon.js';"],
      ['controller/logic/y.test.ts', "import { pollUntil } from '../../harness/util/poll.js';"],
      ['lib/kube/z.ts', "const m = await import('../../harness/util/poll.js');\nimport type { Lab } from '../../harness/lab/lab.js';"],
      ['harness/cluster/w.ts', "import { parseAgentConfig } from '../../agent/config.js';\nimport { x } from '../../scenarios/gateway/gateway-kit.js';"],
    ]);
    expect(layerViolations(files)).toEqual([
      'agent/node/x.ts -> controller/api/server.ts (agent/ may import lib/)',
      'controller/logic/y.ts -> agent/node/beacon.ts (controller/ may import lib/)',
      'harness/cluster/w.ts -> scenarios/gateway/gateway-kit.ts (harness/ may import lib/, agent/, controller/)',
      'lib/kube/z.ts -> harness/lab/lab.ts (lib/ may import only itself)',
      'lib/kube/z.ts -> harness/util/poll.ts (lib/ may import only itself)',
    ]);
  });

  it('harness/ has no import cycle (type-only imports count): features import the lab runtime, never the Lab', () => {
    const root = projectRoot();
    const files = new Map<string, string>();
    sources(root, 'harness', files);
    // not vacuous: the features import the runtime interface, and the Lab imports the features
    const runtimeUsers = [...files].filter(([f, t]) => !f.startsWith('harness/lab/') && relativeImports(t).some((s) => s.endsWith('/lab/runtime.js')));
    expect(runtimeUsers.length).toBeGreaterThan(4);
    expect(importCycles(files, 'harness/')).toEqual([]);
  });

  it('catches a cycle, type-only imports and self-imports included', () => {
    const files = new Map([
      ['harness/lab/lab.ts', "import { probe } from '../probe/probe.js';\nimport { x } from '../util/poll.js';"],
      ['harness/probe/probe.ts', "import type { Lab } from '../lab/lab.js';"],
      ['harness/faults/faults.ts', "import { restart } from '../cluster/cluster.js';"],
      ['harness/cluster/cluster.ts', "export { Faults } from '../faults/faults.js';"],
      ['harness/util/poll.ts', "import { y } from './poll.js';"],
      ['harness/util/fine.ts', "import { x } from './poll.js';"],
    ]);
    expect(importCycles(files, 'harness/')).toEqual([
      ['harness/cluster/cluster.ts', 'harness/faults/faults.ts'],
      ['harness/lab/lab.ts', 'harness/probe/probe.ts'],
      ['harness/util/poll.ts'],
    ]);
  });
});
