/**
 * A lab's diagnostics, collected into one folder (harness/testing/artifacts.ts collects them for a
 * failing test; the chaos explorer for a schedule that broke an invariant): per container its
 * rulesets, routes, neighbours, conntrack, qdiscs, processes, managed process logs and responder
 * observation logs; the API objects and Events; the captures; timelines as JSON and SVG; an index.
 * No vitest in here: the CLI runs it too.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../lab/lab.js';
import { LOG_DIR } from '../lab/process.js';
import { RUN_DIR } from '../inlab/protocol.js';
import { R } from '../../lib/kube/client.js';
import { artifactsDir } from '../util/paths.js';
import { WIRER } from '../topology/plan.js';
import { renderTimelineSvg, escapeXml } from '../report/timeline-svg.js';
import type { Timeline } from '../probe/timeline.js';
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

/**
 * Containers collected at the same time. Each script forks some twenty short commands; all of a
 * lab's containers at once kept both cores of a small machine busy for a second or more, which is
 * exactly what the agents' 600 ms liveness grace cannot afford. Two at a time keeps at most two
 * containers' CPU groups busy, so every other container (the agents, the controller) still gets its
 * share; bench/diagnostics.ts measures the cost and the disturbance.
 */
export const COLLECT_CONCURRENCY = 2;

/**
 * One shell script per container: every section delimited, failures kept with their exit code. It
 * lowers its own priority first (nice 19, idle I/O class; inherited by every command), so inside the
 * container it yields to the agent, the controller and the responders it observes.
 */
export function diagnosticsScript(): string {
  return [
    'renice -n 19 -p $$ >/dev/null 2>&1; ionice -c 3 -p $$ >/dev/null 2>&1',
    `run() { name=$1; shift; printf '\\n${SECTION}%s@@\\n' "$name"; "$@" 2>&1; printf '\\n${EXIT}%s@@\\n' "$?"; }`,
    ...COMMANDS.map(([name, cmd]) => `run ${name} ${cmd}`),
    `for ns in $(ip netns list 2>/dev/null | cut -d' ' -f1); do`,
    // nsenter --net: the pod's namespace without a mount (ip -n and ip netns exec mount, which lab containers may not)
    `  run "netns-$ns-ip-addr" nsenter --net=/run/netns/$ns ip addr`,
    `  run "netns-$ns-ip-route" nsenter --net=/run/netns/$ns ip route`,
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

/** An error as one line of text: "Name: message". */
export function errorText(error: unknown): string {
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
  /** Timelines to write (default: none; artifacts.ts's collectDiagnostics: those recorded with recordTimeline since the test began). */
  timelines?: RecordedTimeline[];
  /** Shown in SUMMARY.txt and index.html. */
  failure?: string;
}

/** Runs `work` on every item, at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/**
 * Dumps the state of every node, the router, the switch and the endpoints (COLLECT_CONCURRENCY
 * containers at a time, each script at the lowest priority inside its container: collecting must not
 * starve what it observes), the API objects and Events (cluster labs), captures and timelines into
 * `dir`. Never throws for what it cannot collect: that is recorded in the files and in `problems`.
 */
export async function collectLabDiagnostics(lab: Lab, dir: string, options: CollectOptions = {}): Promise<DiagnosticsReport> {
  const started = Date.now();
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const problems: string[] = [];
  const keys = lab.plan.containers.map((c) => c.key).filter((k) => k !== WIRER);
  await Promise.all([
    eachLimited(keys, COLLECT_CONCURRENCY, (k) => collectContainer(lab, k, dir, files, problems)),
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
  const timelines = options.timelines ?? [];
  writeTimelines(dir, timelines, files);
  const durationMs = Date.now() - started;
  writeIndex(lab, dir, files, problems, durationMs, options.failure);
  return { dir, files: files.sort(), problems, durationMs };
}

/** A timeline kept by recordTimeline, with its name and allowed sources. */
export interface RecordedTimeline {
  name: string;
  timeline: Timeline;
  allowedSources?: readonly string[];
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
