/**
 * What the run report (artifacts/report.html, harness/report/html.ts) is built from, as the run
 * leaves it in the artifacts folder — nothing here is re-computed from a lab:
 *
 *   run.json                    every test file and test with its verdict, duration and failure
 *                               messages (written by the vitest reporter, harness/testing/report-reporter.ts)
 *   failovers/<slug>.json, .svg one per timeline a test recorded with recordTimeline(): the test, the
 *                               flow, the facts summarize() found (outages, sources, leaks) and the SVG
 *   failures/<slug>.json        one per diagnostics collection (a failing test's folder): the test,
 *                               the folder, its pcaps
 *
 * The records are written while the run goes (by the test workers), the report at its end.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, relative, sep } from 'node:path';
import type { FailoverReport } from './failover.js';
import type { Proto } from '../inlab/protocol.js';

/** The folders and files of the run report inside the artifacts folder. */
export const REPORT_PATHS = { run: 'run.json', failovers: 'failovers', failures: 'failures', report: 'report.html' } as const;

/** A verdict as vitest gives it ("pending": not finished, e.g. an interrupted run). */
export type Verdict = 'passed' | 'failed' | 'skipped' | 'pending';

/** One test of run.json. */
export interface TestRecord {
  /** Full name: "describe > test". */
  name: string;
  state: Verdict;
  durationMs?: number;
  /** Failure messages (no ANSI colours), the diff when the assertion gave one. */
  errors: string[];
  /** Times the test was retried. */
  retries?: number;
  /** Why it was skipped, when the test said (ctx.skip(note)). */
  note?: string;
}

/** One test file of run.json. */
export interface TestFileRecord {
  /** Path relative to the project root, "/"-separated. */
  file: string;
  /** The vitest project ("unit", "lab"). */
  project: string;
  /** The file's verdict (a file that could not be loaded is "failed" with errors). */
  state: Verdict;
  durationMs?: number;
  /** Errors outside any test: loading the file, a failing beforeAll/afterAll. */
  errors: string[];
  tests: TestRecord[];
}

/** run.json: the verdicts of one run. */
export interface RunRecord {
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** vitest's reason for the end of the run. */
  reason: 'passed' | 'failed' | 'interrupted';
  files: TestFileRecord[];
  /** Errors no test owns (vitest's unhandled errors). */
  unhandledErrors: string[];
}

/** The facts of a failover the report shows: summarize()'s result without the packet lists. */
export interface FailoverFacts {
  packets: number;
  answered: number;
  deliveryRatio: number;
  /** How many outages (runs of lost packets). */
  outages: number;
  longestOutageMs: number;
  longestLost: number;
  /** Traffic was answered again at the end (no outage still open, something answered). */
  resumed: boolean;
  neverAnswered: boolean;
  /** Packets per source the far end observed. */
  sources: Record<string, number>;
  /** The sources that are not leaks; null when the test gave none (leaks not checked). */
  allowedSources: string[] | null;
  /** Leaked packets and unmatched observations with another source; null when not checked. */
  leaks: number | null;
  /** Stream probes (one long-lived TCP connection): whether it survived and why not. */
  stream?: { survived: boolean; reason: string; connections: number };
}

/** failovers/<slug>.json: one timeline a test recorded. */
export interface FailoverRecord {
  /** The test file, relative to the project root, "/"-separated. */
  file: string;
  /** The test's full name ("" when recorded outside a test, e.g. in beforeAll). */
  test: string;
  /** The name the test gave the timeline. */
  name: string;
  flow: { proto: Proto; from: string; to: string; port?: number; intervalMs: number };
  facts: FailoverFacts;
  /** The timeline SVG, relative to the artifacts folder ("failovers/<slug>.svg"). */
  svg: string;
  recordedAt: string;
}

/** failures/<slug>.json: where the diagnostics of a test went. */
export interface DiagnosticsRecord {
  file: string;
  test: string;
  /** What the collection was for: the test, or the name given to withArtifacts. */
  label: string;
  /** The diagnostics folder, relative to the artifacts folder. */
  dir: string;
  /** Number of files collected. */
  files: number;
  /** The pcaps in it, relative to the artifacts folder. */
  pcaps: string[];
  /** What could not be collected. */
  problems: string[];
  collectedAt: string;
}

/** A failover with its SVG's text (or why it cannot be shown). */
export interface LoadedFailover extends FailoverRecord {
  svgText?: string;
  svgProblem?: string;
}

/** Everything the report is built from. */
export interface ReportData {
  /** Absent when the run left no run.json (e.g. vitest ran with other reporters). */
  run?: RunRecord;
  failovers: LoadedFailover[];
  diagnostics: DiagnosticsRecord[];
  /** Records that could not be read. */
  problems: string[];
}

/** The report's facts from summarize()'s result (and the timeline's stream summary, if any). */
export function failoverFacts(r: FailoverReport, stream?: { survived: boolean; reason: string; connections: readonly unknown[] }): FailoverFacts {
  return {
    packets: r.packets,
    answered: r.answered,
    deliveryRatio: r.deliveryRatio,
    outages: r.outages.length,
    longestOutageMs: r.longestOutageMs,
    longestLost: r.longestLost,
    resumed: !r.neverAnswered && r.open === undefined,
    neverAnswered: r.neverAnswered,
    sources: r.sources,
    allowedSources: r.allowed ? [...r.allowed] : null,
    leaks: r.leaks ? r.leaks.count : null,
    ...(stream ? { stream: { survived: stream.survived, reason: stream.reason, connections: stream.connections.length } } : {}),
  };
}

/** A path relative to `from`, "/"-separated (what run.json and the records hold). */
export function posixRelative(from: string, to: string): string {
  return relative(from, to).split(sep).join('/');
}

/** A file name for a record: lower-case words, at most 80 characters (a hash keeps long ones apart). */
export function recordSlug(text: string): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (s.length <= 80) return s || 'record';
  return `${s.slice(0, 73).replace(/-+$/, '')}-${createHash('sha256').update(text).digest('hex').slice(0, 6)}`;
}

/** Creates `<dir>/<base>[-N]<ext>` exclusively (parallel workers never take one name twice); returns the base used. */
function claim(dir: string, base: string, ext: string, content: string): string {
  mkdirSync(dir, { recursive: true });
  for (let i = 1; ; i++) {
    const name = i === 1 ? base : `${base}-${i}`;
    let fd: number;
    try {
      fd = openSync(join(dir, `${name}${ext}`), 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw error;
    }
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    return name;
  }
}

/** Writes failovers/<slug>.svg and .json; returns the JSON's path. */
export function writeFailoverRecord(artifacts: string, record: Omit<FailoverRecord, 'svg'>, svgText: string): string {
  const dir = join(artifacts, REPORT_PATHS.failovers);
  // the JSON claims the name first: its SVG is written under the same one
  const base = claim(dir, recordSlug(`${record.test || record.file} ${record.name}`), '.json', '');
  const full: FailoverRecord = { ...record, svg: `${REPORT_PATHS.failovers}/${base}.svg` };
  writeFileSync(join(dir, `${base}.svg`), svgText);
  writeFileSync(join(dir, `${base}.json`), `${JSON.stringify(full, null, 2)}\n`);
  return join(dir, `${base}.json`);
}

/** Writes failures/<slug>.json; returns its path. */
export function writeDiagnosticsRecord(artifacts: string, record: DiagnosticsRecord): string {
  const dir = join(artifacts, REPORT_PATHS.failures);
  const base = claim(dir, recordSlug(`${record.test || record.file} ${record.label}`), '.json', `${JSON.stringify(record, null, 2)}\n`);
  return join(dir, `${base}.json`);
}

/** Writes run.json. */
export function writeRunRecord(artifacts: string, run: RunRecord): string {
  mkdirSync(artifacts, { recursive: true });
  const file = join(artifacts, REPORT_PATHS.run);
  writeFileSync(file, `${JSON.stringify(run, null, 2)}\n`);
  return file;
}

/** Forgets the previous run's report data (at the start of a run). */
export function resetReportData(artifacts: string): void {
  for (const p of [REPORT_PATHS.failovers, REPORT_PATHS.failures, REPORT_PATHS.run, REPORT_PATHS.report])
    rmSync(join(artifacts, p), { recursive: true, force: true });
}

function readJson<T>(file: string, check: (x: unknown) => x is T, problems: string[], label: string): T | undefined {
  try {
    const x: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (check(x)) return x;
    problems.push(`${label}: not a record of the expected shape`);
  } catch (error) {
    problems.push(`${label}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return undefined;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isRun = (x: unknown): x is RunRecord => isObject(x) && Array.isArray(x.files) && typeof x.startedAt === 'string';
const isFailover = (x: unknown): x is FailoverRecord =>
  isObject(x) && typeof x.file === 'string' && typeof x.name === 'string' && typeof x.svg === 'string' && isObject(x.facts) && isObject(x.flow);
const isDiagnostics = (x: unknown): x is DiagnosticsRecord => isObject(x) && typeof x.file === 'string' && typeof x.dir === 'string' && Array.isArray(x.pcaps);

function jsonFiles(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];
}

/** Largest SVG embedded in the report (a bigger one is linked instead). */
export const MAX_INLINE_SVG_BYTES = 4_000_000;

/** Reads run.json and every record of an artifacts folder (what cannot be read is listed in `problems`). */
export function loadReportData(artifacts: string): ReportData {
  const problems: string[] = [];
  const runFile = join(artifacts, REPORT_PATHS.run);
  const run = existsSync(runFile) ? readJson(runFile, isRun, problems, REPORT_PATHS.run) : undefined;
  const failovers: LoadedFailover[] = [];
  const foDir = join(artifacts, REPORT_PATHS.failovers);
  for (const f of jsonFiles(foDir)) {
    const r = readJson(join(foDir, f), isFailover, problems, `${REPORT_PATHS.failovers}/${f}`);
    if (!r) continue;
    const svgFile = join(artifacts, r.svg);
    const loaded: LoadedFailover = { ...r };
    if (r.svg.split('/').includes('..') || !existsSync(svgFile)) loaded.svgProblem = `${r.svg} is missing`;
    else if (statSync(svgFile).size > MAX_INLINE_SVG_BYTES) loaded.svgProblem = `${r.svg} is too large to embed (${statSync(svgFile).size} bytes)`;
    else loaded.svgText = readFileSync(svgFile, 'utf8');
    failovers.push(loaded);
  }
  failovers.sort((a, b) => a.recordedAt.localeCompare(b.recordedAt));
  const diagnostics: DiagnosticsRecord[] = [];
  const dDir = join(artifacts, REPORT_PATHS.failures);
  for (const f of jsonFiles(dDir)) {
    const r = readJson(join(dDir, f), isDiagnostics, problems, `${REPORT_PATHS.failures}/${f}`);
    if (r) diagnostics.push(r);
  }
  diagnostics.sort((a, b) => a.collectedAt.localeCompare(b.collectedAt));
  return { ...(run ? { run } : {}), failovers, diagnostics, problems };
}
