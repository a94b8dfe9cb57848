/**
 * Writes the run report: the data an artifacts folder holds (run-data.ts) rendered by html.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadReportData, posixRelative, REPORT_PATHS } from './run-data.js';
import { renderReportHtml } from './html.js';

/** What writeReport wrote. */
export interface WrittenReport {
  file: string;
  bytes: number;
  tests: number;
  failovers: number;
  /** Whether run.json was there (without it the report has failovers and diagnostics only). */
  hasRun: boolean;
}

/**
 * Builds the report of an artifacts folder and writes it (default: report.html in that folder).
 * Links to pcaps and diagnostics are relative to where the report is written.
 */
export function writeReport(artifacts: string, out: string = join(artifacts, REPORT_PATHS.report)): WrittenReport {
  const data = loadReportData(artifacts);
  const prefix = posixRelative(dirname(out), artifacts);
  const html = renderReportHtml(data, { linkPrefix: prefix ? `${prefix}/` : '' });
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, html);
  return {
    file: out,
    bytes: Buffer.byteLength(html),
    tests: data.run?.files.reduce((n, f) => n + f.tests.length, 0) ?? 0,
    failovers: data.failovers.length,
    hasRun: data.run !== undefined,
  };
}
