/**
 * The run report comes out of a plain vitest run: vitest.config.ts lists the report reporter, and
 * here it runs for real on a tiny suite (a test that records a failover timeline, a failing test, a
 * skipped one, a second file, and a failing test whose diagnostics recordArtifactsOnFailure collects
 * from a stand-in lab), with the artifacts folder redirected. The previous run's records are gone,
 * run.json holds every verdict, and report.html shows them with the failover's SVG under its test
 * and the diagnostics folder and pcap of the failed one.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.js';
import { run } from './run.js';
import type { RunRecord } from '../report/run-data.js';

const dir = join(projectRoot(), 'artifacts', `report-selftest-${process.pid}`);
const artifacts = join(dir, 'artifacts');
const rel = `artifacts/report-selftest-${process.pid}`;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the report reporter', () => {
  it('a vitest run with it leaves run.json and report.html: verdicts, the failure, the failover', async () => {
    mkdirSync(join(artifacts, 'failovers'), { recursive: true });
    writeFileSync(join(artifacts, 'failovers', 'from-the-previous-run.json'), '{}');
    const reporter = join(projectRoot(), 'harness/testing/report-reporter.ts');
    const artifactsModule = join(projectRoot(), 'harness/testing/artifacts.ts');
    writeFileSync(
      join(dir, 'vitest.config.mjs'),
      `export default { test: { include: ["*.check.ts"], reporters: ["default", ${JSON.stringify(reporter)}] } };\n`,
    );
    writeFileSync(
      join(dir, 'failover.check.ts'),
      [
        "import { describe, expect, it } from 'vitest';",
        `import { recordTimeline } from ${JSON.stringify(artifactsModule)};`,
        'const packets = Array.from({ length: 30 }, (_, i) => ({ seq: i + 1, t: 1_000 + i * 20, replied: i < 10 || i >= 20, observedSources: i < 10 || i >= 20 ? ["192.168.1.100"] : [] }));',
        "describe('failover', () => {",
        "  it('SIGKILL of <b>the holder</b>', () => {",
        "    const t = recordTimeline('udp alice -> 8.8.8.8', { from: 'alice', to: '8.8.8.8', proto: 'udp', intervalMs: 20, packets, unattributed: [] }, ['192.168.1.100']);",
        '    expect(t.packets).toHaveLength(30);',
        '  });',
        "  it('fails', () => { expect('observed 10.10.10.2').toBe('observed 192.168.1.100'); });",
        "  it.skip('is skipped', () => {});",
        '});',
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'other.check.ts'), "import { expect, it } from 'vitest';\nit('passes', () => { expect(1 + 1).toBe(2); });\n");
    // a failing test whose diagnostics are collected (a stand-in lab with no container; the Docker
    // client points nowhere) after it took a capture
    writeFileSync(
      join(dir, 'diag.check.ts'),
      [
        "import { mkdirSync, writeFileSync } from 'node:fs';",
        "import { join } from 'node:path';",
        "import { expect, it } from 'vitest';",
        `import { recordArtifactsOnFailure } from ${JSON.stringify(artifactsModule)};`,
        "const lab = { id: 'fake-lab', plan: { containers: [] }, topology: { name: 'fake', cluster: false } };",
        'recordArtifactsOnFailure(() => lab as never);',
        "it('egress via the gateway', () => {",
        "  const captures = join(process.env.EGRESSLAB_ARTIFACTS!, 'fake-lab', 'captures');",
        '  mkdirSync(captures, { recursive: true });',
        "  writeFileSync(join(captures, 'node-1-eth0-1.pcap'), '');",
        "  expect('10.10.10.1').toBe('192.168.1.100');",
        '});',
        '',
      ].join('\n'),
    );

    const r = await run(
      process.execPath,
      [join(projectRoot(), 'node_modules/vitest/vitest.mjs'), 'run', '--root', dir, '--config', join(dir, 'vitest.config.mjs')],
      {
        env: { ...process.env, EGRESSLAB_ARTIFACTS: artifacts, CI: '', DOCKER_HOST: `unix://${join(dir, 'no-engine.sock')}` },
      },
    );
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^egresslab report: .*report\.html \(\d+ kB; 5 tests, 1 failover timeline\)$/m);
    expect(existsSync(join(artifacts, 'failovers', 'from-the-previous-run.json'))).toBe(false);

    const runJson = JSON.parse(readFileSync(join(artifacts, 'run.json'), 'utf8')) as RunRecord;
    expect(runJson.reason).toBe('failed');
    const byFile = Object.fromEntries(runJson.files.map((f) => [f.file, f]));
    expect(Object.keys(byFile).sort()).toEqual([`${rel}/diag.check.ts`, `${rel}/failover.check.ts`, `${rel}/other.check.ts`]);
    const fo = byFile[`${rel}/failover.check.ts`]!;
    expect(fo.state).toBe('failed');
    expect(fo.tests.map((t) => [t.name, t.state])).toEqual([
      ['failover > SIGKILL of <b>the holder</b>', 'passed'],
      ['failover > fails', 'failed'],
      ['failover > is skipped', 'skipped'],
    ]);
    expect(fo.tests[1]!.errors[0]).toMatch(
      /^AssertionError: expected 'observed 10\.10\.10\.2' to be 'observed 192\.168\.1\.100'.*\n {4}at artifacts\/report-selftest-\d+\/failover\.check\.ts:9:\d+/,
    );
    expect(fo.tests[0]!.durationMs).toBeGreaterThanOrEqual(0);

    const html = readFileSync(join(artifacts, 'report.html'), 'utf8');
    expect(html).toContain('<title>egresslab run: failed (2 failed, 2 passed, 1 skipped)</title>');
    expect(html).toContain('<span class="r-v r-v-passed">passed</span><span class="r-name">failover &gt; SIGKILL of &lt;b&gt;the holder&lt;/b&gt;</span>');
    expect(html).toContain('<pre class="r-msg">AssertionError: expected &apos;observed 10.10.10.2&apos; to be &apos;observed 192.168.1.100&apos;');
    expect(html.match(/<svg /g)).toHaveLength(1);
    // the failover sits under the test that recorded it (recordTimeline's test name is vitest's full name)
    const item = html.slice(
      html.indexOf('<span class="r-name">failover &gt; SIGKILL'),
      html.indexOf('</li>', html.indexOf('<span class="r-name">failover &gt; SIGKILL')),
    );
    expect(item).toContain('<figure class="r-fo" id="fo-1">');
    expect(html).not.toContain('recorded outside a test');
    expect(html).toContain('<dt>longest outage</dt><dd>220 ms (10 lost)</dd>');
    expect(html).toContain('<dt>leaks</dt><dd><span class="r-good">0</span></dd>');

    // the failed test's diagnostics: the folder and the pcap, linked relative to the report
    const diag = byFile[`${rel}/diag.check.ts`]!.tests[0]!;
    expect(diag.state).toBe('failed');
    expect(diag.errors[0]).toContain('artifacts: ');
    const folder = 'fake-lab/egress-via-the-gateway';
    expect(existsSync(join(artifacts, folder, 'SUMMARY.txt'))).toBe(true);
    const diagItem = html.slice(
      html.indexOf('<span class="r-name">egress via the gateway</span>'),
      html.indexOf('</li>', html.indexOf('<span class="r-name">egress via the gateway</span>')),
    );
    expect(diagItem).toContain(`<a href="${folder}/index.html">${folder}/</a>`);
    expect(diagItem).toContain(`<a href="${folder}/captures/node-1-eth0-1.pcap">node-1-eth0-1.pcap</a>`);
  }, 120_000);
});
