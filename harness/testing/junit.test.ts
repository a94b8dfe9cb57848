/**
 * CI systems read a JUnit XML report: vitest's junit reporter writes it (vitest.config.ts, with CI
 * set) and bin/junit-summary.js turns it into the plain closing line. Here both run for real on a
 * tiny suite with one passing, one failing and one skipped test.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.js';
import { run } from './run.js';

const dir = join(projectRoot(), 'artifacts', `junit-selftest-${process.pid}`);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('JUnit report', () => {
  it('is produced with each test case and its failure, and summarised in one plain line', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'vitest.config.mjs'), 'export default { test: { include: ["*.check.ts"] } };\n');
    writeFileSync(
      join(dir, 'sample.check.ts'),
      [
        "import { expect, it } from 'vitest';",
        "it('passes', () => { expect(1 + 1).toBe(2); });",
        "it('fails', () => { expect('observed 10.10.10.2').toBe('observed 192.168.1.1'); });",
        "it.skip('is skipped', () => {});",
        '',
      ].join('\n'),
    );
    const xml = join(dir, 'junit.xml');
    const r = await run(process.execPath, [
      join(projectRoot(), 'node_modules/vitest/vitest.mjs'),
      'run',
      '--root',
      dir,
      '--config',
      join(dir, 'vitest.config.mjs'),
      '--reporter=junit',
      `--outputFile=${xml}`,
    ]);
    expect(r.code).not.toBe(0);
    const report = readFileSync(xml, 'utf8');
    expect(report).toMatch(/<testsuites[^>]*tests="3"[^>]*failures="1"/);
    expect(report).toMatch(/<testcase[^>]*name="passes"/);
    expect(report).toMatch(/<testcase[^>]*name="fails"[\s\S]*?<failure[\s\S]*?observed 192\.168\.1\.1/);
    const summary = await run(process.execPath, [join(projectRoot(), 'bin/junit-summary.js'), xml]);
    expect(summary.stdout.trim()).toBe('tests: 1 passed, 1 failed, 1 skipped');
  });
});
