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
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeEach, expect } from 'vitest';
import type { TestContext } from 'vitest';
import type { Lab } from '../lab/lab.js';
import { LOG_DIR } from '../lab/process.js';
import { RUN_DIR } from '../inlab/protocol.js';
import { R } from '../../lib/kube/client.js';
import { artifactsDir, projectRoot } from '../util/paths.js';
import { ValidationError } from '../util/errors.js';
import { WIRER } from '../topology/plan.js';
import { renderTimelineSvg, escapeXml } from '../report/timeline-svg.js';
import type { Timeline } from '../probe/timeline.js';
import { summarize } from '../report/failover.js';
import { failoverFacts, posixRelative, writeDiagnosticsRecord, writeFailoverRecord } from '../report/run-data.js';
import { LABEL, docker } from '../docker/client.js';

/** What collectArtifacts wrote: its folder, the files, and what could not be collected. */
export interface DiagnosticsReport {
  dir: string;
  /** Files written, relative to dir. */
  files: string[];
  /** What could not be collected (the rest was). */
  problems: string[];
  durationMs: number;
}

/** Per-container networking state; each line: file name, command. */
const COMMANDS: [string, string][] = [
  ['nft-ruleset', 'nft list ruleset'],
  ['iptables-save', 'iptables-save'],
  ['ip-addr', 'ip -d addr'],
  ['ip-route', 'ip route show table all'],
  ['ip-rule', 'ip rule'],
  ['ip-neigh', 'ip neigh'],
  ['conntrack', 'conntrack -L'],
  ['tc-qdisc', 'tc qdisc show'],
  ['processes', `sh -c 'ps -eo pid,ppid,stat,etime,args | grep -v -e EGL-SECTION -e "ps -eo"'`],
];
const SECTION = '@@EGL-SECTION ';
const EXIT = '@@EGL-EXIT ';
/** Largest tail of a log file kept. */
const MAX_FILE_BYTES = 5_000_000;

/** One shell script per container: every section delimited, failures kept with their exit code. */
export function diagnosticsScript(): string {
  return [
    `run() { name=$1; shift; printf '\\n${SECTION}%s@@\\n' "$name"; "$@" 2>&1; printf '\\n${EXIT}%s@@\\n' "$?"; }`,
    ...COMMANDS.map(([name, cmd]) => `run ${name} ${cmd}`),
    `for ns in $(ip netns list 2>/dev/null | cut -d' ' -f1); do`,
    `  run "netns-$ns-ip-addr" ip netns exec "$ns" ip addr`,
    `  run "netns-$ns-ip-route" ip netns exec "$ns" ip route`,
    `done`,
    `for f in ${LOG_DIR}/*.log ${RUN_DIR}/observed*.jsonl; do`,
    `  [ -f "$f" ] || continue`,
    `  run "files/$(basename "$f")" tail -c ${MAX_FILE_BYTES} "$f"`,
    `done`,
    'true',
  ].join('\n');
}

/** Splits the script's output into files: name -> content (a failed command's text ends with its exit code). */
export function parseDiagnostics(output: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const chunk of output.split(`\n${SECTION}`).slice(1)) {
    const nl = chunk.indexOf('@@\n');
    const name = chunk.slice(0, nl < 0 ? undefined : nl);
    let body = nl < 0 ? '' : chunk.slice(nl + 3);
    const m = new RegExp(`\\n?${EXIT}(\\d+)@@\\n?$`).exec(body);
    if (m) {
      body = body.slice(0, m.index);
      if (m[1] !== '0') body += `${body.endsWith('\n') || body === '' ? '' : '\n'}(exit ${m[1]})\n`;
    }
    files.set(name.replace(/[^A-Za-z0-9._/-]+/g, '_').replace(/\.\.+/g, '.'), body);
  }
  return files;
}

/**
 * A folder name for a test: lower-case words joined by "-", at most 80 characters. A longer name is
 * cut at a word boundary and gets 6 hex digits of its full text's hash, so two long names sharing
 * their first 70 characters still get two folders.
 */
export function slug(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (s.length <= 80) return s || 'test';
  let cut = s.slice(0, 73);
  const dash = cut.lastIndexOf('-');
  if (dash >= 40) cut = cut.slice(0, dash);
  return `${cut.replace(/-+$/, '')}-${createHash('sha256').update(name).digest('hex').slice(0, 6)}`;
}

function write(dir: string, file: string, content: string | Buffer, files: string[]): void {
  const full = join(dir, file);
  mkdirSync(join(full, '..'), { recursive: true });
  writeFileSync(full, content);
  files.push(file);
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

async function collectContainer(lab: Lab, key: string, dir: string, files: string[], problems: string[]): Promise<void> {
  try {
    const r = await lab.exec(key, ['sh', '-c', diagnosticsScript()], { check: false, timeoutMs: 30_000 });
    for (const [name, body] of parseDiagnostics(r.stdout)) write(dir, `${key}/${name}${name.startsWith('files/') ? '' : '.txt'}`, body, files);
    if (r.exitCode !== 0) problems.push(`${key}: diagnostics script exited ${r.exitCode}: ${r.stderr.trim().slice(0, 300)}`);
  } catch (error) {
    let state = '';
    try {
      const info = await lab.container(key).inspect();
      state = `container state: ${info.State.Status}${info.State.Paused ? ' (paused)' : ''}, exit code ${info.State.ExitCode}\n`;
    } catch (e) {
      state = `container: ${errorText(e)}\n`;
    }
    write(dir, `${key}/UNAVAILABLE.txt`, `${state}${errorText(error)}\n`, files);
    problems.push(`${key}: ${errorText(error).split('\n')[0]}`);
  }
}

const API_RESOURCES = [
  'nodes',
  'namespaces',
  'pods',
  'configmaps',
  'leases',
  'networkpolicies',
  'anthosNetworkGateways',
  'anthosNetworkGatewayNodes',
  'egressNATPolicies',
  'events',
] as const;

interface EventLike {
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  lastTimestamp?: string;
  eventTime?: string;
  firstTimestamp?: string;
  involvedObject?: { kind?: string; namespace?: string; name?: string };
  source?: { component?: string; host?: string };
  metadata?: { creationTimestamp?: string; namespace?: string };
}

function eventTime(e: EventLike): string {
  return e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp ?? '';
}

/** Kubernetes events as text lines, oldest first. */
export function renderEvents(events: EventLike[]): string {
  return [...events]
    .sort((a, b) => eventTime(a).localeCompare(eventTime(b)))
    .map((e) => {
      const o = e.involvedObject ?? {};
      const who = `${o.kind ?? '?'}/${o.namespace ? `${o.namespace}/` : ''}${o.name ?? '?'}`;
      return `${eventTime(e) || '-'}  ${e.type ?? '-'}  ${e.reason ?? '-'}  ${who}  ${e.message ?? ''}${e.count && e.count > 1 ? ` (x${e.count})` : ''}${e.source?.component ? `  [${e.source.component}${e.source.host ? `@${e.source.host}` : ''}]` : ''}`;
    })
    .join('\n');
}

async function collectApi(lab: Lab, dir: string, files: string[], problems: string[]): Promise<void> {
  if (!lab.topology.cluster || typeof lab.api !== 'function') return;
  let client: Awaited<ReturnType<Lab['api']>> | undefined;
  try {
    client = await lab.api({ timeoutMs: 5_000 });
    const c = client;
    await Promise.all(
      API_RESOURCES.map(async (name) => {
        try {
          const list = await c.list(R[name]);
          write(dir, `api/${name}.json`, `${JSON.stringify(list.items, null, 2)}\n`, files);
          if (name === 'events') write(dir, 'api/events.txt', `${renderEvents(list.items as EventLike[])}\n`, files);
        } catch (error) {
          write(dir, `api/${name}.error.txt`, `${errorText(error)}\n`, files);
          problems.push(`api ${name}: ${errorText(error).split('\n')[0]}`);
        }
      }),
    );
  } catch (error) {
    write(dir, 'api/UNAVAILABLE.txt', `${errorText(error)}\n`, files);
    problems.push(`api: ${errorText(error).split('\n')[0]}`);
  } finally {
    client?.close();
  }
}

function copyCaptures(lab: Lab, dir: string, since: number | undefined, files: string[]): void {
  const from = join(artifactsDir(), lab.id, 'captures');
  if (!existsSync(from)) return;
  for (const f of readdirSync(from)) {
    const full = join(from, f);
    if (since !== undefined && statSync(full).mtimeMs < since - 1000) continue;
    mkdirSync(join(dir, 'captures'), { recursive: true });
    copyFileSync(full, join(dir, 'captures', f));
    files.push(`captures/${f}`);
  }
}

/** Options of collectArtifacts: captures since when, which timelines, the failure text. */
export interface CollectOptions {
  /** Only captures taken since then (ms since the epoch; default: all of the lab's). */
  since?: number;
  /** Timelines to write (default: those recorded with recordTimeline since the test began). */
  timelines?: RecordedTimeline[];
  /** Shown in SUMMARY.txt and index.html. */
  failure?: string;
}

/**
 * Dumps the state of every node, the router, the switch and the endpoints (in parallel), the API
 * objects and Events (cluster labs), captures and timelines into `dir`. Never throws for what it
 * cannot collect: that is recorded in the files and in `problems`.
 */
export async function collectDiagnostics(lab: Lab, dir: string, options: CollectOptions = {}): Promise<DiagnosticsReport> {
  const started = Date.now();
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const problems: string[] = [];
  const keys = lab.plan.containers.map((c) => c.key).filter((k) => k !== WIRER);
  await Promise.all([
    ...keys.map((k) => collectContainer(lab, k, dir, files, problems)),
    collectApi(lab, dir, files, problems),
    (async () => {
      try {
        const list = await docker().listContainers({ all: true, filters: { label: [`${LABEL.lab}=${lab.id}`] } });
        const rows = list.map((c) => ({ key: c.Labels[LABEL.key], role: c.Labels[LABEL.role], state: c.State, status: c.Status, name: c.Names[0] }));
        write(dir, 'containers.json', `${JSON.stringify({ lab: lab.id, topology: lab.topology.name, containers: rows }, null, 2)}\n`, files);
      } catch (error) {
        problems.push(`containers: ${errorText(error)}`);
      }
    })(),
  ]);
  copyCaptures(lab, dir, options.since, files);
  const timelines = options.timelines ?? recordedTimelines();
  writeTimelines(dir, timelines, files);
  const durationMs = Date.now() - started;
  writeIndex(lab, dir, files, problems, durationMs, options.failure);
  return { dir, files: files.sort(), problems, durationMs };
}

// ---------------------------------------------------------------- timelines recorded by a test

/** A timeline kept by recordTimeline, with its name and allowed sources. */
export interface RecordedTimeline {
  name: string;
  timeline: Timeline;
  allowedSources?: readonly string[];
}

let recorded: RecordedTimeline[] = [];

/**
 * Keeps a timeline for the artifacts of the current test (rendered as SVG + JSON if it fails), and
 * records it for the run report at once, pass or fail: artifacts/failovers/<slug>.json (the test, the
 * flow, summarize()'s outages, sources and leaks against `allowedSources`) and its SVG. With
 * EGRESSLAB_KEEP_TIMELINES=1 the whole timeline is also written at once (see saveTimeline).
 */
export function recordTimeline(name: string, timeline: Timeline, allowedSources?: readonly string[]): Timeline {
  recorded.push({ name, timeline, ...(allowedSources ? { allowedSources } : {}) });
  if (keepTimelines()) saveTimeline(name, timeline, allowedSources);
  recordForReport('failover', () => {
    const { file, test } = currentTest();
    const facts = failoverFacts(summarize(timeline, allowedSources), timeline.stream);
    const flow = { proto: timeline.proto, from: timeline.from, to: timeline.to, ...(timeline.port !== undefined ? { port: timeline.port } : {}), intervalMs: timeline.intervalMs };
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
  throw new ValidationError('environment', [{ path: 'EGRESSLAB_KEEP_TIMELINES', value: env.EGRESSLAB_KEEP_TIMELINES, message: 'must be 1 (write every recorded timeline) or 0' }]);
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
  if (options.dir === undefined && !testName) throw new Error(`saveTimeline(${JSON.stringify(name)}): no test is running; pass options.testName or options.dir`);
  const dir = options.dir ?? join(artifactsDir(), 'timelines', slug(testName!));
  mkdirSync(dir, { recursive: true });
  const base = slug(name);
  writeFileSync(join(dir, `${base}.json`), `${JSON.stringify({ name, allowedSources: allowedSources ?? null, ...timeline }, null, 2)}\n`);
  const file = join(dir, `${base}.svg`);
  writeFileSync(file, renderTimelineSvg({ timeline, label: name, ...(allowedSources ? { allowedSources } : {}) }, { title: name }));
  return file;
}

/** The timelines recorded since the current test began. */
export function recordedTimelines(): RecordedTimeline[] {
  return [...recorded];
}

/** Forgets the recorded timelines (the setup file calls it before each test). */
export function clearRecordedTimelines(): void {
  recorded = [];
}

function writeTimelines(dir: string, timelines: RecordedTimeline[], files: string[]): void {
  if (timelines.length === 0) return;
  const used = new Set<string>();
  for (const r of timelines) {
    let base = slug(r.name);
    for (let i = 2; used.has(base); i++) base = `${slug(r.name)}-${i}`;
    used.add(base);
    write(dir, `timelines/${base}.json`, `${JSON.stringify({ name: r.name, allowedSources: r.allowedSources ?? null, ...r.timeline }, null, 2)}\n`, files);
    const row = { timeline: r.timeline, label: r.name, ...(r.allowedSources ? { allowedSources: r.allowedSources } : {}) };
    write(dir, `timelines/${base}.svg`, renderTimelineSvg(row, { title: r.name }), files);
  }
  const rows = timelines.map((r) => ({ timeline: r.timeline, label: r.name, ...(r.allowedSources ? { allowedSources: r.allowedSources } : {}) }));
  write(dir, 'timelines.svg', renderTimelineSvg(rows, { title: 'timelines' }), files);
}

function writeIndex(lab: Lab, dir: string, files: string[], problems: string[], ms: number, failure?: string): void {
  const summary = [
    `lab ${lab.id} (topology ${lab.topology.name}), collected ${new Date().toISOString()} in ${ms} ms`,
    ...(failure ? ['', 'failure:', failure] : []),
    '',
    problems.length ? `not collected:\n${problems.map((p) => `  ${p}`).join('\n')}` : 'everything collected',
    '',
    'files:',
    ...[...files].sort().map((f) => `  ${f}`),
    '',
  ].join('\n');
  write(dir, 'SUMMARY.txt', summary, files);
  const link = (f: string) => `<li><a href="${escapeXml(f)}">${escapeXml(f)}</a></li>`;
  const svgs = files.filter((f) => f.endsWith('.svg'));
  const html = [
    '<!doctype html><html><head><meta charset="utf-8"><title>egresslab artifacts</title></head><body style="font-family:sans-serif">',
    `<h1>lab ${escapeXml(lab.id)}</h1>`,
    failure ? `<pre>${escapeXml(failure)}</pre>` : '',
    ...svgs.filter((f) => f === 'timelines.svg').map((f) => `<p><img src="${escapeXml(f)}" alt="timelines"></p>`),
    problems.length ? `<h2>not collected</h2><ul>${problems.map((p) => `<li>${escapeXml(p)}</li>`).join('')}</ul>` : '',
    `<h2>files</h2><ul>${[...files].sort().map(link).join('')}</ul>`,
    '</body></html>',
    '',
  ].join('\n');
  write(dir, 'index.html', html, files);
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
  const before = recorded.length;
  try {
    return await fn();
  } catch (error) {
    const report = await collectDiagnostics(lab, artifactFolder(lab.id, testName), {
      since,
      timelines: recorded.slice(before),
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
    const line = describeReport(report);
    // The failure output (console reporter, JUnit) prints these errors: the path goes into them.
    for (const e of errors) {
      e.message = `${e.message}\n  ${line}`;
      if (e.stack) e.stack = e.stack.replace(/^([\s\S]*?)(\n\s+at )/, (_, head: string, at: string) => `${head}\n  ${line}${at}`);
    }
    process.stderr.write(`egresslab: ${name}: ${line}\n`);
  };
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
