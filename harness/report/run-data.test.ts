/**
 * The run report's data in the artifacts folder: records written while the run goes (in parallel
 * workers: never two under one name), read back at its end, unreadable ones named, the previous
 * run's cleared; and the report written where asked with links that still reach the artifacts.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadReportData, recordSlug, REPORT_PATHS, resetReportData, writeDiagnosticsRecord, writeFailoverRecord, writeRunRecord } from './run-data.js';
import { writeReport } from './write-report.js';
import { fixtureDiagnostics, fixtureFailovers, fixtureRun } from './report-fixture.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'egl-report-data-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writeFixture(artifacts: string): void {
  for (const f of fixtureFailovers()) writeFailoverRecord(artifacts, f.record, f.svg);
  writeDiagnosticsRecord(artifacts, fixtureDiagnostics());
  writeRunRecord(artifacts, fixtureRun());
}

describe('report data', () => {
  it('what the run wrote is what the report reads: run.json, each failover with its SVG, the diagnostics', () => {
    writeFixture(dir);
    const data = loadReportData(dir);
    expect(data.problems).toEqual([]);
    expect(data.run).toEqual(fixtureRun());
    expect(data.diagnostics).toEqual([fixtureDiagnostics()]);
    const written = fixtureFailovers();
    expect(data.failovers.map((f) => f.name)).toEqual(written.map((f) => f.record.name));
    data.failovers.forEach((f, i) => {
      expect(f.facts).toEqual(written[i]!.record.facts);
      expect(f.svg).toMatch(/^failovers\/[a-z0-9-]+\.svg$/);
      expect(f.svgText).toBe(written[i]!.svg);
      expect(existsSync(join(dir, f.svg.replace(/\.svg$/, '.json')))).toBe(true);
    });
  });

  it('the same test and timeline recorded twice (a retry) keeps both, under two names', () => {
    const [f] = fixtureFailovers();
    const a = writeFailoverRecord(dir, f!.record, f!.svg);
    const b = writeFailoverRecord(dir, f!.record, f!.svg);
    expect(b).toBe(a.replace(/\.json$/, '-2.json'));
    expect(readdirSync(join(dir, REPORT_PATHS.failovers)).sort()).toEqual(
      [a, b]
        .flatMap((p) => [
          p.split('/').pop()!,
          p
            .split('/')
            .pop()!
            .replace(/\.json$/, '.svg'),
        ])
        .sort(),
    );
    expect(
      loadReportData(dir)
        .failovers.map((x) => x.svg)
        .sort(),
    ).toEqual(
      [a, b]
        .map(
          (p) =>
            `failovers/${p
              .split('/')
              .pop()!
              .replace(/\.json$/, '.svg')}`,
        )
        .sort(),
    );
  });

  it('names unreadable records and missing SVGs instead of failing', () => {
    writeFixture(dir);
    writeFileSync(join(dir, REPORT_PATHS.failovers, 'broken.json'), '{"file": ');
    writeFileSync(join(dir, REPORT_PATHS.failures, 'odd.json'), '[1, 2]');
    const [f] = fixtureFailovers();
    const json = writeFailoverRecord(dir, { ...f!.record, name: 'svg gone' }, f!.svg);
    rmSync(json.replace(/\.json$/, '.svg'));
    const data = loadReportData(dir);
    expect(data.problems).toHaveLength(2);
    expect(data.problems[0]).toMatch(/^failovers\/broken\.json: .*JSON/);
    expect(data.problems[1]).toBe('failures/odd.json: not a record of the expected shape');
    const gone = data.failovers.find((x) => x.name === 'svg gone')!;
    expect(gone.svgText).toBeUndefined();
    expect(gone.svgProblem).toMatch(/^failovers\/.*\.svg is missing$/);
  });

  it("a new run clears the previous run's report data and nothing else", () => {
    writeFixture(dir);
    writeReport(dir);
    mkdirSync(join(dir, 'px-1', 'some-test'), { recursive: true });
    writeFileSync(join(dir, 'junit.xml'), '<testsuites/>');
    resetReportData(dir);
    expect(readdirSync(dir).sort()).toEqual(['junit.xml', 'px-1']);
    expect(loadReportData(dir)).toEqual({ failovers: [], diagnostics: [], problems: [] });
  });

  it('a report written elsewhere links back into the artifacts folder', () => {
    const artifacts = join(dir, 'ci', 'artifacts');
    writeFixture(artifacts);
    const r = writeReport(artifacts, join(dir, 'out', 'r.html'));
    expect(r).toMatchObject({ tests: 5, failovers: 2, hasRun: true });
    const html = readFileSync(r.file, 'utf8');
    expect(r.bytes).toBe(Buffer.byteLength(html));
    expect(html).toContain('<a href="../ci/artifacts/px-1/partition-of-script/captures/node-1-eth0-1.pcap">');
    expect(readFileSync(writeReport(artifacts).file, 'utf8')).toContain('<a href="px-1/partition-of-script/captures/node-1-eth0-1.pcap">');
  });

  it('record names: lower-case words, at most 80 characters, long ones kept apart by a hash', () => {
    expect(recordSlug('Failover > SIGKILL of the holder udp a/b -> 8.8.8.8')).toBe('failover-sigkill-of-the-holder-udp-a-b-8-8-8-8');
    const long = 'x'.repeat(100);
    expect(recordSlug(long)).toHaveLength(80);
    expect(recordSlug(long)).not.toBe(recordSlug(`${long}y`));
    expect(recordSlug('???')).toBe('record');
  });
});
