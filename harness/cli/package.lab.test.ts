/**
 * egresslab as a dev dependency of someone else's repository (issue 14), the user's path end to
 * end in a temporary directory: the tarball `npm pack` makes, installed into a fresh `npm init -y`
 * project; the CLI and the exports map from there; `egresslab init`; the scaffolded files
 * type-checked against the installed declarations; and the scaffolded scenario run with
 * `npx vitest run` against a real lab — SNAT seen at the far end, a failover of the gateway's holder
 * with zero leaks — plus one deliberately wrong expectation added to it, which fails the run with
 * a message naming the expected and the observed address, its diagnostics in the project.
 *
 * One pack, one install, one nested lab run, so the file costs about one lab. The tarball is packed
 * from this checkout's dist/ with the prepack step's two halves done apart: the build must be
 * current (checked first; `npm test` builds), and the payload is bundled here (writePrebuiltPayload,
 * what bin/prepack.ts does, itself tested in bin/prepack.test.ts); `npm pack --ignore-scripts` then
 * packs without rebuilding dist/ under a running suite. The install skips the dependencies' install
 * scripts (ssh2's optional native build alone takes ~30 s here; it has a pure-JS fallback).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.js';
import { writePrebuiltPayload } from '../lab/payload.js';
import { INIT_FILES } from './init-command.js';
import { npmPack, userProject, userRun, type PackResult } from '../testing/user-project.js';
import { listLabs, removeLabObjects } from '../lab/registry.js';

/** The deliberately wrong source the test adds to the scaffolded scenario. */
const WRONG_SOURCE = '192.168.1.99';

const root = projectRoot();
const work = mkdtempSync(join(tmpdir(), 'egl-package-'));
const figures: string[] = [];
let pack: PackResult;
let project: string;

/** The version of a package this checkout has installed (so that npm finds it in its cache). */
const installed = (name: string) => (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/** Sources (lib, agent, controller, harness, bin) newer than their build output: the tarball would not be the code. */
function staleBuild(): string[] {
  const stale: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel))) {
      const file = `${rel}/${name}`;
      if (statSync(join(root, file)).isDirectory()) walk(file);
      else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) {
        const out = join(root, 'dist', file.replace(/\.ts$/, '.js'));
        if (!existsSync(out) || statSync(out).mtimeMs < statSync(join(root, file)).mtimeMs) stale.push(file);
      }
    }
  };
  for (const top of ['lib', 'agent', 'controller', 'harness', 'bin']) walk(top);
  return stale;
}

/** Every file under `dir` (node_modules aside) with its content: what a refused init must leave as it was. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      if (name === 'node_modules') continue;
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else out[relative(dir, full)] = readFileSync(full, 'utf8');
    }
  };
  walk(dir);
  return out;
}

const npx = (args: string[], timeoutMs = 120_000) => userRun(project, 'npx', args, { timeoutMs });
/** The installed CLI run directly (what npx runs, without npm's start-up): for the calls after the first. */
const egresslab = (args: string[]) => userRun(project, process.execPath, [join(project, 'node_modules/.bin/egresslab'), ...args], { timeoutMs: 120_000 });
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

beforeAll(async () => {
  const stale = staleBuild();
  if (stale.length)
    throw new Error(
      `dist/ is older than ${stale.length} source file(s) (${stale.slice(0, 5).join(', ')}${stale.length > 5 ? ', ...' : ''}): run "npm run build:code" first (npm test does)`,
    );
  const payload = await writePrebuiltPayload();
  figures.push(`payload bundled: ${payload.files.length} files, ${(payload.bytes / 1024).toFixed(0)} kB in ${payload.bundleMs.toFixed(0)} ms`);
  pack = await npmPack(root, join(work, 'pack'), { ignoreScripts: true });
  figures.push(
    `npm pack: ${pack.files.length} files, ${(pack.size / 1024).toFixed(0)} kB packed (${(pack.unpackedSize / 1024).toFixed(0)} kB unpacked) in ${secs(pack.ms)}`,
  );
  const p = await userProject(
    join(work, 'my-egress-tests'),
    pack.tarball,
    [`typescript@${installed('typescript')}`, `@types/node@${installed('@types/node')}`],
    { ignoreScripts: true },
  );
  project = p.dir;
  figures.push(`npm install --ignore-scripts of the tarball (+ typescript, @types/node) into an npm init -y project: ${secs(p.installMs)}`);
}, 300_000);

afterAll(async () => {
  if (figures.length) console.log(`package figures:\n  ${figures.join('\n  ')}`);
  await rm(work, { recursive: true, force: true });
}, 120_000);

describe('the tarball npm pack makes', () => {
  it('has the built code with types for every export, the bundled in-lab payload, docs, fixtures and templates; no tests, no sources', () => {
    const files = new Set(pack.files);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      exports: Record<string, string | { types: string; default: string }>;
      bin: Record<string, string>;
      scripts: Record<string, string>;
    };
    // every export, with its declarations
    for (const [name, target] of Object.entries(pkg.exports)) {
      for (const f of typeof target === 'string' ? [target] : [target.types, target.default])
        expect(files, `export ${name}: ${f}`).toContain(posix.normalize(f));
    }
    expect(Object.keys(pkg.exports).sort()).toEqual(['.', './matchers', './package.json', './vitest', './vitest-global-setup', './vitest-setup']);
    expect(files).toContain(pkg.bin.egresslab);
    // the in-lab programs, the agent and the controller, bundled: nothing is built on the user's side
    for (const f of [
      'package.json',
      'payload.json',
      'dist/agent/main.js',
      'dist/controller/main.js',
      'dist/harness/inlab/responder.js',
      'dist/harness/inlab/probe-client.js',
      'dist/harness/inlab/helper.js',
      'dist/harness/inlab/tunnel.js',
    ]) {
      expect(files, f).toContain(`dist/payload/${f}`);
    }
    // every module ships with its declarations and its source map (sources inlined)
    const js = pack.files.filter((f) => /^dist\/(lib|agent|controller|harness)\/.*\.js$/.test(f));
    expect(js.length).toBeGreaterThan(100);
    expect(js.filter((f) => !files.has(f.replace(/\.js$/, '.d.ts')) || !files.has(`${f}.map`))).toEqual([]);
    // docs, run-time fixtures, what init writes
    for (const f of [
      'README.md',
      'CHANGELOG.md',
      'docs/own-repository.md',
      'fixtures/topologies/default.yaml',
      'fixtures/manifests/seed-000/02-egressnatpolicy.yaml',
    ])
      expect(files, f).toContain(f);
    for (const f of readdirSync(join(root, 'docs')).filter((n) => n.endsWith('.md'))) expect(files, f).toContain(`docs/${f}`);
    for (const f of INIT_FILES) expect(files, f.template).toContain(`templates/init/${f.template}`);
    // not the tests, nor the sources, nor what only this repository uses
    const outside = (f: string) => !f.startsWith('templates/init/');
    expect(pack.files.filter((f) => outside(f) && /\.test\.(ts|js|d\.ts)$|\.lab\.test\./.test(f))).toEqual([]);
    expect(pack.files.filter((f) => outside(f) && f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(
      pack.files.filter((f) =>
        /^(scenarios|integration|bench|harness|lib|agent|controller|dist\/bench|dist\/bin|dist\/integration|dist\/scenarios|docs\/api)\//.test(f),
      ),
    ).toEqual([]);
    // npm pack builds first (the figures above skipped it: see the header)
    expect(pkg.scripts.prepack).toBe('npm run build:code && node dist/bin/prepack.js');
  });

  it('its documentation stands on its own: every relative link in it points at a file in the package', () => {
    const files = new Set(pack.files);
    const broken: string[] = [];
    for (const md of pack.files.filter((f) => f.endsWith('.md'))) {
      const text = readFileSync(join(root, md), 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1]!;
        if (link.startsWith('#')) continue;
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) {
          broken.push(`${md}: ${link} (leaves the package)`);
          continue;
        }
        const target = posix.normalize(posix.join(posix.dirname(md), link.split('#')[0]!));
        if (!files.has(target)) broken.push(`${md}: ${link} (${target} is not in the package)`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('installed into a fresh project', () => {
  it('the CLI runs; the exports resolve and load; internals are not exported; paths point into the package and the project', async () => {
    const help = await npx(['egresslab', '--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain('egresslab init [--dir DIR] [--force]');
    const script = `
      const { pathToFileURL } = await import('node:url');
      const out = { resolved: {}, refused: null };
      for (const s of ['egresslab', 'egresslab/vitest', 'egresslab/matchers', 'egresslab/vitest-setup', 'egresslab/vitest-global-setup']) out.resolved[s] = import.meta.resolve(s);
      try { import.meta.resolve('egresslab/dist/harness/cli/main.js'); } catch (e) { out.refused = e.code; }
      const api = await import('egresslab');
      out.api = ['startLab', 'Lab', 'pollUntil', 'summarize', 'workerHolder', 'gatewayOf', 'renderTimelineSvg', 'NODE_FAULTS', 'R'].filter((n) => api[n] === undefined);
      out.artifactsDir = api.artifactsDir();
      out.fixture = api.topologyFromArg('default').name;
      out.file = api.topologyFrom('lab-file.yaml').name;
      // internals, by file (the exports map keeps them out of reach of a package specifier)
      const pkg = new URL('./node_modules/egresslab/', pathToFileURL(process.cwd() + '/'));
      const paths = await import(new URL('dist/harness/util/paths.js', pkg));
      const payload = await import(new URL('dist/harness/lab/payload.js', pkg));
      paths.assertBuilt();
      const p = await payload.buildPayload();
      Object.assign(out, { projectRoot: paths.projectRoot(), workspaceRoot: paths.workspaceRoot(), installed: paths.installedPackage(), bindSource: payload.payloadBindSource(), payload: { cached: p.cached, bundleMs: p.bundleMs, files: p.files } });
      console.log(JSON.stringify(out));
    `;
    writeFileSync(join(project, 'lab-file.yaml'), 'name: from-a-file\nnodes:\n  - { name: node-1, role: worker, address: 192.168.1.1 }\n');
    const r = await userRun(project, process.execPath, ['--input-type=module', '-e', script]);
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as Record<string, unknown> & {
      resolved: Record<string, string>;
      payload: { cached: boolean; bundleMs: number; files: string[] };
    };
    const pkgDir = join(project, 'node_modules', 'egresslab');
    expect(o.resolved).toEqual({
      egresslab: `file://${pkgDir}/dist/harness/public/index.js`,
      'egresslab/vitest': `file://${pkgDir}/dist/harness/public/vitest.js`,
      'egresslab/matchers': `file://${pkgDir}/dist/harness/public/matchers.js`,
      'egresslab/vitest-setup': `file://${pkgDir}/dist/harness/testing/setup.js`,
      'egresslab/vitest-global-setup': `file://${pkgDir}/dist/harness/testing/global-setup.js`,
    });
    expect(o.refused).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
    expect(o.api).toEqual([]);
    expect(o).toMatchObject({
      artifactsDir: join(project, 'artifacts'),
      fixture: 'default',
      file: 'from-a-file',
      projectRoot: pkgDir,
      workspaceRoot: project,
      installed: true,
      bindSource: join(pkgDir, 'dist/payload'),
    });
    // volume mode (a remote engine) archives the bundled payload as it is: nothing bundled here
    expect(o.payload).toMatchObject({ cached: true, bundleMs: 0 });
    expect(o.payload.files).toEqual(
      expect.arrayContaining(['payload.json', 'dist/agent/main.js', 'dist/controller/main.js', 'dist/harness/inlab/responder.js']),
    );
  }, 60_000);

  it('egresslab init writes the project; run again it refuses (exit 2, the file named, nothing changed); --force overwrites', async () => {
    const t0 = Date.now();
    const r = await npx(['egresslab', 'init']);
    figures.push(`npx egresslab init: ${secs(Date.now() - t0)}`);
    expect(r.code, r.stderr).toBe(0);
    const templates = join(project, 'node_modules/egresslab/templates/init');
    for (const f of INIT_FILES) {
      expect(r.stdout).toContain(f.target);
      expect(readFileSync(join(project, f.target), 'utf8'), f.target).toBe(readFileSync(join(templates, f.template), 'utf8'));
    }
    const pkg = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as { scripts: Record<string, string>; devDependencies: Record<string, string> };
    expect(pkg.scripts.test).toBe('vitest run');
    expect(Object.keys(pkg.devDependencies)).toContain('egresslab');
    const valid = await egresslab(['validate', '--topology', 'lab/topology.yaml']);
    expect(valid.stdout).toContain('topology egress is valid: 3 node(s), 3 pod(s)');

    const before = snapshot(project);
    const again = await egresslab(['init']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(
      'egresslab init: vitest.config.mts already exists (and lab/topology.yaml, lab/gateway.yaml, scenarios/egress.test.ts, .github/workflows/egress.yml); nothing was written.',
    );
    expect(snapshot(project)).toEqual(before);

    writeFileSync(join(project, 'lab/topology.yaml'), '# mine\n');
    const forced = await egresslab(['init', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(join(project, 'lab/topology.yaml'), 'utf8')).toBe(readFileSync(join(templates, 'lab/topology.yaml'), 'utf8'));

    // egresslab run finds the user's scenario and the user's vitest, builds nothing (vitest only prints its help here)
    const runs = await egresslab(['run', 'egress', '--', '--help']);
    expect(runs.code, runs.stderr).toBe(0);
    expect(runs.stderr).toContain('running scenarios/egress.test.ts');
    expect(runs.stderr).not.toContain('building');
    expect(runs.stdout).toMatch(/vitest\/\d+\.\d+\.\d+/);

    const bad = await egresslab(['init', '--dir', 'nowhere']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--dir: does not exist');
    expect(bad.stderr).toContain('"nowhere"');
  }, 120_000);

  it('the scaffolded files type-check against the installed declarations (npx tsc), and a wrong use of the API does not', async () => {
    expect(existsSync(join(project, 'scenarios/egress.test.ts')), 'init ran first').toBe(true);
    // the check must catch what it is for: a wrong matcher argument, an unknown matcher, an internal module
    writeFileSync(
      join(project, 'scenarios/wrong-usage.test.ts'),
      [
        "import { expect } from 'vitest';",
        "import type { ProbeResult } from 'egresslab';",
        "import 'egresslab/matchers';",
        "import { main } from 'egresslab/dist/harness/cli/main.js';",
        'declare const r: ProbeResult;',
        'expect(r).toBeSeenFrom(42);',
        "expect(r).toBeSeenFromSomewhere('192.168.1.1');",
        'void main;',
        '',
      ].join('\n'),
    );
    const t0 = Date.now();
    const r = await npx(['tsc', '--noEmit', '-p', '.']);
    figures.push(`npx tsc --noEmit of the scaffolded project: ${secs(Date.now() - t0)}`);
    rmSync(join(project, 'scenarios/wrong-usage.test.ts'));
    const errors = r.stdout.split('\n').filter((l) => /error TS\d+/.test(l));
    // every error is in the deliberately wrong file: the scaffold itself has none
    expect(
      errors.filter((l) => !l.startsWith('scenarios/wrong-usage.test.ts(')),
      r.stdout,
    ).toEqual([]);
    expect(errors.map((l) => /^scenarios\/wrong-usage\.test\.ts\((\d+),\d+\): error (TS\d+)/.exec(l)?.slice(1).join(' '))).toEqual([
      '4 TS2307',
      '6 TS2345',
      '7 TS2339',
    ]);
    expect(r.code).not.toBe(0);
  }, 120_000);

  it('the scaffolded scenario passes against a lab (SNAT with the node IP; a failover under the egress IP, zero leaks); a wrong expected source added to it fails, naming both addresses, artifacts in the project', async () => {
    const file = join(project, 'scenarios/egress.test.ts');
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8')}
describe('added by the test', () => {
  it('a deliberately wrong expected source', async () => {
    expect(await lab.probe('default/client-1', INTERNET, { proto: 'udp' })).toBeSeenFrom('${WRONG_SOURCE}');
  });
});
`,
    );
    const labsBefore = new Set((await listLabs()).map((l) => l.id));
    const t0 = Date.now();
    let r: Awaited<ReturnType<typeof npx>>;
    try {
      r = await npx(['vitest', 'run'], 900_000);
    } finally {
      // a nested run that crashed leaves its lab (egress-<hex>): remove what it started
      for (const l of await listLabs()) if (!labsBefore.has(l.id) && l.id.startsWith('egress-')) await removeLabObjects(l.id).catch(() => {});
    }
    figures.push(`npx vitest run of the scaffold (lab up, SNAT, failover, the wrong expectation, lab down): ${secs(Date.now() - t0)}`);
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.code, output).toBe(1);
    expect(output).toMatch(/Tests +1 failed \| 2 passed \(3\)/);
    expect(output).toMatch(/✓ .*SNAT: a pod reaching a public address is seen with its node IP/);
    expect(output).toMatch(/✓ .*failover: killing the egress IP holder moves the IP, traffic resumes under it, zero leaks/);
    // the scenario's own report line: the IP moved, and nothing leaked
    expect(output).toMatch(/node-\d killed, 192\.168\.1\.100 moved to (node-\d|cp-1): \d+ packets, longest outage \d+ ms .*, leaked 0\n/);
    // the failure: what was expected, what the far end saw (default/client-1 runs on node-1, 192.168.1.1)
    expect(output).toMatch(
      new RegExp(
        `expected the far end to observe ${WRONG_SOURCE.replace(/\./g, '\\.')} for udp default/client-1 -> 8\\.8\\.8\\.8:\\d+, it observed 192\\.168\\.1\\.1:\\d+ \\(evidence: \\w+, at: internet\\)`,
      ),
    );
    // and where the diagnostics are: the project's artifacts/, not node_modules
    const at = /artifacts: (artifacts\/egress-[0-9a-f]{6}\/[^\s]+) \(\d+ files/.exec(output);
    expect(at, output).not.toBeNull();
    expect(readdirSync(join(project, at![1]!)).length).toBeGreaterThan(0);
    expect(existsSync(join(project, 'node_modules/egresslab/artifacts'))).toBe(false);
  }, 900_000);
});
