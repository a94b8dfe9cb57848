/**
 * `egresslab report`: rebuilds the run report from an artifacts folder (e.g. a CI job's), written
 * where asked, with links that reach back into that folder; a folder without run data is refused.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.js';
import { writeDiagnosticsRecord, writeFailoverRecord, writeRunRecord } from '../report/run-data.js';
import { fixtureDiagnostics, fixtureFailovers, fixtureRun } from '../report/report-fixture.js';

let dir: string;
let out: string[];
let err: string[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'egl-report-cmd-'));
  out = [];
  err = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
});
afterEach(() => {
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

describe('egresslab report', () => {
  it('--artifacts DIR --out FILE: the report of that folder, linking back into it', async () => {
    const artifacts = join(dir, 'ci-artifacts');
    for (const f of fixtureFailovers()) writeFailoverRecord(artifacts, f.record, f.svg);
    writeDiagnosticsRecord(artifacts, fixtureDiagnostics());
    writeRunRecord(artifacts, fixtureRun());
    const file = join(dir, 'out', 'report.html');
    expect(await main(['report', '--artifacts', artifacts, '--out', file])).toBe(0);
    expect(out.join('')).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: \\d+ kB, 5 tests, 2 failover timelines\\n$`));
    const html = readFileSync(file, 'utf8');
    expect(html).toContain('<title>egresslab run: failed (1 failed, 3 passed, 1 skipped)</title>');
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html).toContain('<a href="../ci-artifacts/px-1/partition-of-script/index.html">');
  });

  it('without run.json: the failovers only, and it says so', async () => {
    for (const f of fixtureFailovers()) writeFailoverRecord(dir, f.record, f.svg);
    expect(await main(['report', '--artifacts', dir])).toBe(0);
    expect(out.join('')).toMatch(/ kB, 0 tests, 2 failover timelines \(no run\.json: failovers and diagnostics only\)\n$/);
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toContain('No run.json in the artifacts folder');
  });

  it('a folder that is missing or holds no run data: exit 2, saying which and what to do', async () => {
    expect(await main(['report', '--artifacts', join(dir, 'nope')])).toBe(2);
    expect(err.join('')).toContain(`--artifacts: no such folder (value: "${join(dir, 'nope')}")`);
    mkdirSync(join(dir, 'empty'));
    expect(await main(['report', '--artifacts', join(dir, 'empty')])).toBe(2);
    expect(err.join('')).toContain('holds no run data (run.json, failovers/ or failures/): run the tests first (npm test)');
  });
});
