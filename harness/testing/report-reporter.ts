/**
 * The vitest reporter that leaves the run report (vitest.config.ts lists it next to 'default', so
 * `npm test` produces it with no extra step): at the start of a run it removes the previous run's
 * report data; at the end it writes artifacts/run.json (every test file and test with its verdict,
 * duration and failure messages) and builds artifacts/report.html from it and from the records the
 * tests left while running (artifacts/failovers/, artifacts/failures/: see harness/report/run-data.ts).
 * A report that cannot be written is said on stderr; it never changes the run's outcome.
 */
import { relative } from 'node:path';
import type { Reporter, TestCase, TestModule, TestRunEndReason } from 'vitest/node';
import { artifactsDir, projectRoot } from '../util/paths.js';
import { posixRelative, resetReportData, writeRunRecord, type RunRecord, type TestFileRecord, type TestRecord, type Verdict } from '../report/run-data.js';
import { writeReport } from '../report/write-report.js';

/** An error as vitest reports it. */
interface ReportedError {
  name?: string;
  message?: string;
  diff?: string;
  stacks?: { file: string; line: number; column: number }[];
}

/** An error as the report shows it: "Name: message", where it was thrown, and the diff when there is one. */
export function errorRecord(e: ReportedError, root: string = projectRoot()): string {
  const at = e.stacks?.[0];
  const where = at ? `\n    at ${at.file.startsWith(root) ? posixRelative(root, at.file) : at.file}:${at.line}:${at.column}` : '';
  return `${e.name ?? 'Error'}: ${e.message ?? ''}${where}${e.diff ? `\n\n${e.diff}` : ''}`;
}

function testRecord(t: TestCase): TestRecord {
  const r = t.result();
  const d = t.diagnostic();
  return {
    name: t.fullName,
    state: r.state,
    ...(d ? { durationMs: Math.round(d.duration) } : {}),
    errors: (r.errors ?? []).map((e) => errorRecord(e)),
    ...(d?.retryCount ? { retries: d.retryCount } : {}),
    ...(r.state === 'skipped' && r.note ? { note: r.note } : {}),
  };
}

/** A test file of run.json from vitest's module: its tests, and the errors outside them (loading it, beforeAll/afterAll). */
export function fileRecord(m: TestModule, root: string = projectRoot()): TestFileRecord {
  const state = m.state();
  const errors = [...m.errors(), ...[...m.children.allSuites()].flatMap((s) => s.errors())].map((e) => errorRecord(e, root));
  return {
    file: posixRelative(root, m.moduleId),
    project: m.project.name,
    state: (state === 'queued' ? 'pending' : state) as Verdict,
    durationMs: Math.round(m.diagnostic().duration),
    errors,
    tests: [...m.children.allTests()].map(testRecord),
  };
}

/** The reporter (a default export: vitest.config.ts names this file). */
export default class RunReportReporter implements Reporter {
  private started = Date.now();

  onTestRunStart(): void {
    this.started = Date.now();
    try {
      resetReportData(artifactsDir());
    } catch (error) {
      process.stderr.write(`egresslab report: could not clear the previous run's report data: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<ReportedError>, reason: TestRunEndReason): void {
    try {
      const finished = Date.now();
      const run: RunRecord = {
        startedAt: new Date(this.started).toISOString(),
        finishedAt: new Date(finished).toISOString(),
        durationMs: finished - this.started,
        reason,
        files: modules.map((m) => fileRecord(m)),
        unhandledErrors: unhandledErrors.map((e) => errorRecord(e)),
      };
      const dir = artifactsDir();
      writeRunRecord(dir, run);
      const r = writeReport(dir);
      const shown = relative(process.cwd(), r.file);
      process.stdout.write(
        `egresslab report: ${shown && !shown.startsWith('..') ? shown : r.file} (${(r.bytes / 1024).toFixed(0)} kB; ${r.tests} ${r.tests === 1 ? 'test' : 'tests'}, ${r.failovers} failover ${r.failovers === 1 ? 'timeline' : 'timelines'})\n`,
      );
    } catch (error) {
      process.stderr.write(`egresslab report: not written: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
  }
}
