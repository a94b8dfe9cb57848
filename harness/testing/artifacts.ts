/**
 * Artifacts of a failing scenario: one folder per failed test, artifacts/<lab>/<test-name-slug>/,
 * holding what someone needs to understand the failure without the lab:
 *
 *   <container>/nft-ruleset.txt, iptables-save.txt, ip-addr.txt, ip-route.txt, ip-rule.txt,
 *     ip-neigh.txt, conntrack.txt, tc-qdisc.txt, netns-<pod netns>-ip-addr.txt / -ip-route.txt,
 *     files/<managed process>.log, files/observed*.jsonl (the responders' observation logs)
 *     for every node, the router, the switch and the endpoints; a command that fails leaves its
 *     error text and exit code in its file, a container that is down leaves UNAVAILABLE.txt
 *   api/<resource>.json, api/events.txt  the API objects and Events (labs running a cluster)
 *   captures/*.pcap                      the captures the test took (stopped ones)
 *   timelines/<name>.json + .svg, timelines.svg   timelines recorded with recordTimeline()
 *   containers.json, index.html, SUMMARY.txt
 *
 * For the run report (artifacts/report.html, harness/report/): every timeline recordTimeline()
 * keeps is also written at once, pass or fail, as artifacts/failovers/<slug>.json (the test, the
 * flow, summarize()'s facts) + .svg, and every diagnostics collection leaves
 * artifacts/failures/<slug>.json (the test, the folder, its pcaps).
 *
 * Two ways to use it in a test file:
 *   recordArtifactsOnFailure(() => lab)      installs a per-test hook: a failing test gets its folder,
 *                                            and the path is appended to the failure message
 *   await withArtifacts(lab, 'name', fn)     runs fn; if it throws, collects and rethrows with the path
 *
 * The collection itself is harness/testing/diagnostics.ts (no vitest: the CLI's chaos explorer uses it).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeEach, expect } from 'vitest';
import type { TestContext } from 'vitest';
import type { Lab } from '../lab/lab.js';
import { artifactsDir, projectRoot } from '../util/paths.js';
import { ValidationError } from '../util/errors.js';
import { renderTimelineSvg } from '../report/timeline-svg.js';
import type { Timeline } from '../probe/timeline.js';
import { summarize } from '../report/failover.js';
import { failoverFacts, posixRelative, writeDiagnosticsRecord, writeFailoverRecord } from '../report/run-data.js';
import { clearRecordedTimelines, pushRecordedTimeline, recordedTimelines } from './recorded-timelines.js';
import { collectLabDiagnostics, errorText, slug, type CollectOptions, type DiagnosticsReport } from './diagnostics.js';

export { diagnosticsScript, parseDiagnostics, renderEvents, slug, type CollectOptions, type DiagnosticsReport, type RecordedTimeline } from './diagnostics.js';

/**
 * Dumps the state of every node, the router, the switch and the endpoints (two at a time, at low priority), the API
 * objects and Events (cluster labs), captures and timelines into `dir`. Never throws for what it
 * cannot collect: that is recorded in the files and in `problems`. Timelines: by default those
 * recorded with recordTimeline since the test began.
 */
export function collectDiagnostics(lab: Lab, dir: string, options: CollectOptions = {}): Promise<DiagnosticsReport> {
  return collectLabDiagnostics(lab, dir, { ...options, timelines: options.timelines ?? recordedTimelines() });
}

// ---------------------------------------------------------------- timelines recorded by a test

/**
 * Keeps a timeline for the artifacts of the current test (rendered as SVG + JSON if it fails), and
 * records it for the run report at once, pass or fail: artifacts/failovers/<slug>.json (the test, the
 * flow, summarize()'s outages, sources and leaks against `allowedSources`) and its SVG. With
 * EGRESSLAB_KEEP_TIMELINES=1 the whole timeline is also written at once (see saveTimeline).
 */
export function recordTimeline(name: string, timeline: Timeline, allowedSources?: readonly string[]): Timeline {
  pushRecordedTimeline({ name, timeline, ...(allowedSources ? { allowedSources } : {}) });
  if (keepTimelines()) saveTimeline(name, timeline, allowedSources);
  recordForReport('failover', () => {
    const { file, test } = currentTest();
    const facts = failoverFacts(summarize(timeline, allowedSources), timeline.stream);
    const flow = {
      proto: timeline.proto,
      from: timeline.from,
      to: timeline.to,
      ...(timeline.port !== undefined ? { port: timeline.port } : {}),
      intervalMs: timeline.intervalMs,
    };
    const svg = renderTimelineSvg({ timeline, label: name, ...(allowedSources ? { allowedSources } : {}) }, { title: name });
    writeFailoverRecord(artifactsDir(), { file, test, name, flow, facts, recordedAt: new Date().toISOString() }, svg);
  });
  return timeline;
}

/** The running test's file (relative to the project root) and full name ("" outside a test). */
function currentTest(): { file: string; test: string } {
  const state = expect.getState();
  return { file: state.testPath ? posixRelative(projectRoot(), state.testPath) : '', test: state.currentTestName ?? '' };
}

/** Writes a record of the run report; a failure to write costs the report that record, never the test. */
function recordForReport(what: string, write: () => void): void {
  try {
    write();
  } catch (error) {
    process.stderr.write(`egresslab: could not record the ${what} for the run report: ${errorText(error)}\n`);
  }
}

/** Leaves failures/<slug>.json for the run report: where the diagnostics of a test went. */
function recordDiagnostics(file: string, test: string, label: string, report: DiagnosticsReport): void {
  recordForReport('diagnostics', () => {
    const dir = posixRelative(artifactsDir(), report.dir);
    writeDiagnosticsRecord(artifactsDir(), {
      file,
      test,
      label,
      dir,
      files: report.files.length,
      pcaps: report.files.filter((f) => f.endsWith('.pcap')).map((f) => `${dir}/${f}`),
      problems: report.problems,
      collectedAt: new Date().toISOString(),
    });
  });
}

/**
 * Whether EGRESSLAB_KEEP_TIMELINES asks to write every recorded timeline, passing tests included:
 * "1", "true", "yes" -> true; unset, "", "0", "false", "no" -> false; anything else is an error.
 */
export function keepTimelines(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env.EGRESSLAB_KEEP_TIMELINES ?? '').trim().toLowerCase();
  if (v === '1' || v === 'true' || v === 'yes') return true;
  if (v === '' || v === '0' || v === 'false' || v === 'no') return false;
  throw new ValidationError('environment', [
    { path: 'EGRESSLAB_KEEP_TIMELINES', value: env.EGRESSLAB_KEEP_TIMELINES, message: 'must be 1 (write every recorded timeline) or 0' },
  ]);
}

/** Options of saveTimeline. */
export interface SaveTimelineOptions {
  /** The test the folder is named after (default: the running test's full name). */
  testName?: string;
  /** The folder to write into (default: artifacts/timelines/<test-name-slug>/). */
  dir?: string;
}

/**
 * Writes a timeline now, whether the test passes or fails: `<name-slug>.svg` and `.json` in
 * artifacts/timelines/<test-name-slug>/ (artifacts/ is EGRESSLAB_ARTIFACTS when set). Writing the
 * same name again in the test replaces the file. Returns the SVG's path.
 *
 * @example
 * ```ts
 * const t = await p.stop();
 * const svg = saveTimeline('alice udp through the failover', t, ['192.168.1.100']);
 * // artifacts/timelines/<this-test>/alice-udp-through-the-failover.svg
 * ```
 */
export function saveTimeline(name: string, timeline: Timeline, allowedSources?: readonly string[], options: SaveTimelineOptions = {}): string {
  const testName = options.testName ?? expect.getState().currentTestName;
  if (options.dir === undefined && !testName)
    throw new Error(`saveTimeline(${JSON.stringify(name)}): no test is running; pass options.testName or options.dir`);
  const dir = options.dir ?? join(artifactsDir(), 'timelines', slug(testName!));
  mkdirSync(dir, { recursive: true });
  const base = slug(name);
  writeFileSync(join(dir, `${base}.json`), `${JSON.stringify({ name, allowedSources: allowedSources ?? null, ...timeline }, null, 2)}\n`);
  const file = join(dir, `${base}.svg`);
  writeFileSync(file, renderTimelineSvg({ timeline, label: name, ...(allowedSources ? { allowedSources } : {}) }, { title: name }));
  return file;
}

// ---------------------------------------------------------------- vitest integration

/** artifacts/<lab>/<slug>, with -2, -3... when a previous failure (a retry) took the name. */
export function artifactFolder(labId: string, testName: string): string {
  const base = join(artifactsDir(), labId, slug(testName));
  let dir = base;
  for (let i = 2; existsSync(dir); i++) dir = `${base}-${i}`;
  return dir;
}

function describeReport(r: DiagnosticsReport): string {
  const rel = relative(process.cwd(), r.dir);
  const shown = rel && !rel.startsWith('..') ? rel : r.dir;
  return `artifacts: ${shown} (${r.files.length} files in ${r.durationMs} ms${r.problems.length ? `; not collected: ${r.problems.length}, see SUMMARY.txt` : ''})`;
}

/**
 * Runs `fn`; if it throws, collects the lab's diagnostics into artifacts/<lab>/<slug(testName)>/ and
 * rethrows the error with the folder appended to its message.
 */
export async function withArtifacts<T>(lab: Lab, testName: string, fn: () => Promise<T> | T): Promise<T> {
  const since = Date.now();
  const before = recordedTimelines().length;
  try {
    return await fn();
  } catch (error) {
    const report = await collectDiagnostics(lab, artifactFolder(lab.id, testName), {
      since,
      timelines: recordedTimelines().slice(before),
      failure: errorText(error),
    });
    const { file, test } = currentTest();
    recordDiagnostics(file, test, testName, report);
    const line = describeReport(report);
    if (error instanceof Error) {
      error.message += `\n  ${line}`;
      if (error.stack) error.stack = error.stack.replace(/^([\s\S]*?)(\n\s+at )/, (_, head: string, at: string) => `${head}\n  ${line}${at}`);
      (error as Error & { artifacts?: DiagnosticsReport }).artifacts = report;
    }
    throw error;
  }
}

/** The onTestFailed handler recordArtifactsOnFailure installs (exported for tests). */
export function artifactsOnFailure(getLab: () => Lab | undefined, since: number): (ctx: TestContext) => Promise<void> {
  return async (ctx) => {
    const lab = getLab();
    if (!lab) return;
    const task = ctx.task;
    const name = task.fullTestName ?? task.name;
    const errors = task.result?.errors ?? [];
    const report = await collectDiagnostics(lab, artifactFolder(lab.id, name), {
      since,
      failure: errors.map((e) => `${e.name ?? 'Error'}: ${e.message}`).join('\n\n'),
    });
    recordDiagnostics(task.file ? posixRelative(projectRoot(), task.file.filepath) : '', name, name, report);
    addToFailure(task, name, describeReport(report));
  };
}

/**
 * Adds `line` (where the failure's evidence went) to a failed test's errors, which the failure
 * output (console reporter, JUnit) prints, and to stderr.
 */
export function addToFailure(task: TestContext['task'], name: string, line: string): void {
  for (const e of task.result?.errors ?? []) {
    e.message = `${e.message}\n  ${line}`;
    if (e.stack) e.stack = e.stack.replace(/^([\s\S]*?)(\n\s+at )/, (_, head: string, at: string) => `${head}\n  ${line}${at}`);
  }
  process.stderr.write(`egresslab: ${name}: ${line}\n`);
}

/**
 * Installs, for every test of the file, a hook that collects artifacts when the test fails (into
 * artifacts/<lab>/<test-name-slug>/, with the timelines recorded via recordTimeline during the
 * test) and appends the folder's path to the failure message. Call at the top level of a test file.
 */
export function recordArtifactsOnFailure(getLab: () => Lab | undefined): void {
  beforeEach((ctx) => {
    clearRecordedTimelines();
    ctx.onTestFailed(artifactsOnFailure(getLab, Date.now()));
  });
}
