/**
 * The user's path of issue 14, end to end, in a temporary directory: `npm pack` of this repository
 * (its prepack step builds and bundles the in-lab code; packed from a clean copy of the checkout, so
 * the checkout's dist/ is never rebuilt under a running suite), the tarball installed into a fresh
 * `npm init -y` project as a user installs it, `npx egresslab init`, and the scaffolded scenario run
 * with `npx vitest run` against a real lab: SNAT seen at the far end, and a failover of the egress
 * gateway's holder with zero leaks. Then the scenario is edited to expect a deliberately wrong
 * source, and the run fails with a message naming the expected and the observed address, and the
 * diagnostics land in the project's artifacts/ (not in node_modules).
 *
 * Needs the engine and the base image (the lab project's global setup); the nested vitest finds the
 * image built and removes its lab itself. Slow: a full build, an install, two lab runs.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.js';
import { listLabs, removeLabObjects } from '../lab/registry.js';
import { copyCheckout, npmPack, userProject, userRun, type PackResult } from '../testing/user-project.js';

const work = mkdtempSync(join(tmpdir(), 'egl-package-lab-'));
const project = join(work, 'my-egress-tests');
const figures: string[] = [];
let labsBefore = new Set<string>();
let pack: PackResult;

/** What the scaffold's SNAT test asserts, and the deliberately wrong expectation put in its place. */
const RIGHT = 'expect(r).toBeSeenFrom(lab.nodeAddress(pod));';
const WRONG_SOURCE = '192.168.1.99';
const WRONG = `expect(r).toBeSeenFrom('${WRONG_SOURCE}');`;

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const npx = (args: string[], timeoutMs: number) => userRun(project, 'npx', args, { timeoutMs });

beforeAll(async () => {
  labsBefore = new Set((await listLabs()).map((l) => l.id));
});

afterAll(async () => {
  if (figures.length) console.log(`package (lab) figures:\n  ${figures.join('\n  ')}`);
  // a nested run that crashed leaves its lab (egress-<hex>): remove what this file started
  for (const l of await listLabs()) if (!labsBefore.has(l.id) && l.id.startsWith('egress-')) await removeLabObjects(l.id).catch(() => {});
  await rm(work, { recursive: true, force: true });
}, 180_000);

describe('egresslab in your own repository (npm pack, install, init, vitest run)', () => {
  it('npm pack of a clean copy of the checkout builds, bundles the payload and makes the tarball', async () => {
    const src = await copyCheckout(projectRoot(), join(work, 'egresslab'));
    expect(existsSync(join(src, 'dist')), 'a clean copy has no build output').toBe(false);
    pack = await npmPack(src, join(work, 'pack'));
    figures.push(`npm pack (prepack: tsc + payload): ${secs(pack.ms)}, ${pack.files.length} files, ${(pack.size / 1024).toFixed(0)} kB`);
    expect(pack.output).toMatch(/prepack: in-lab payload bundled into dist\/payload\/ \(\d+ files/);
    expect(pack.files).toEqual(expect.arrayContaining(['dist/harness/public/index.js', 'dist/harness/public/index.d.ts', 'dist/payload/dist/agent/main.js', 'dist/payload/dist/controller/main.js', 'bin/egresslab.js']));
  }, 900_000);

  it('installs into a fresh npm init -y project, and egresslab init scaffolds it', async () => {
    const p = await userProject(project, pack.tarball);
    figures.push(`npm install of the tarball: ${secs(p.installMs)}`);
    const init = await npx(['egresslab', 'init'], 120_000);
    expect(init.code, init.stderr).toBe(0);
    for (const f of ['vitest.config.mts', 'lab/topology.yaml', 'lab/gateway.yaml', 'scenarios/egress.test.ts', '.github/workflows/egress.yml']) expect(existsSync(join(project, f)), f).toBe(true);
    expect(readFileSync(join(project, 'scenarios/egress.test.ts'), 'utf8').split(RIGHT).length - 1, `the scaffold asserts "${RIGHT}" once`).toBe(1);
  }, 900_000);

  it('the scaffolded scenario passes against a lab: SNAT with the node IP, and a failover under the egress IP with zero leaks', async () => {
    const t0 = Date.now();
    const r = await npx(['vitest', 'run'], 900_000);
    figures.push(`npx vitest run (lab up, SNAT, failover, lab down): ${secs(Date.now() - t0)}`);
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.code, output).toBe(0);
    expect(output).toMatch(/✓ .*SNAT: a pod reaching a public address is seen with its node IP/);
    expect(output).toMatch(/✓ .*failover: killing the egress IP holder moves the IP, traffic resumes under it, zero leaks/);
    expect(output).toMatch(/Tests +2 passed \(2\)/);
    // the scenario's own report line: the IP moved, and nothing leaked
    expect(output).toMatch(/node-\d killed, 192\.168\.1\.100 moved to (node-\d|cp-1): \d+ packets, longest outage \d+ ms .*, leaked 0\n/);
  }, 900_000);

  it('a deliberately wrong expected source fails the run, naming the expected and the observed address, with artifacts in the project', async () => {
    const file = join(project, 'scenarios/egress.test.ts');
    writeFileSync(file, readFileSync(file, 'utf8').replace(RIGHT, WRONG));
    const t0 = Date.now();
    const r = await npx(['vitest', 'run', '-t', 'SNAT'], 900_000);
    figures.push(`npx vitest run -t SNAT (failing): ${secs(Date.now() - t0)}`);
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.code, output).toBe(1);
    expect(output).toMatch(/Tests +1 failed \| 1 skipped \(2\)/);
    // the message: what was expected, what the far end saw (default/client-1 runs on node-1, 192.168.1.1)
    expect(output).toMatch(new RegExp(`expected the far end to observe ${WRONG_SOURCE.replace(/\./g, '\\.')} for udp default/client-1 -> 8\\.8\\.8\\.8:\\d+, it observed 192\\.168\\.1\\.1:\\d+ \\(evidence: \\w+, at: internet\\)`));
    // and where the diagnostics are: the project's artifacts/, not node_modules
    const at = /artifacts: (artifacts\/egress-[0-9a-f]{6}\/[^\s]+) \(\d+ files/.exec(output);
    expect(at, output).not.toBeNull();
    expect(existsSync(join(project, at![1]!)), at![1]).toBe(true);
    expect(readdirSync(join(project, at![1]!)).length).toBeGreaterThan(0);
    expect(existsSync(join(project, 'node_modules/egresslab/artifacts'))).toBe(false);
  }, 900_000);
});
