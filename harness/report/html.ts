/**
 * The run report as one self-contained HTML page (inline CSS, inline SVG, no script, no external
 * URL): the failovers first (each timeline's SVG with its outage, sources and leaks), then every
 * test file with its tests and verdicts, failure messages, and links (relative) to the diagnostics
 * folders and pcaps of the tests that collected them. Pure: ReportData in, text out; every name and
 * message is escaped, and an SVG is embedded only when it holds nothing active or external.
 */
import { escapeXml } from './timeline-svg.js';
import type { DiagnosticsRecord, LoadedFailover, ReportData, TestFileRecord, TestRecord, Verdict } from './run-data.js';

/** Options of renderReportHtml. */
export interface ReportHtmlOptions {
  /** Prepended to every link into the artifacts folder: the path from the report to it ("" when the report is in it). */
  linkPrefix?: string;
}

const esc = escapeXml;

/** Milliseconds as a person reads them: "850 ms", "1.24 s", "2 min 5 s". */
export function durationText(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** Removes ANSI colour codes (vitest's diffs carry them). */
export function stripAnsi(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC is exactly what an ANSI colour code starts with
  return s.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');
}

/** The SVG elements an embedded timeline may use (what harness/report/timeline-svg.ts draws, and shapes like it). */
const SVG_ELEMENTS = new Set(['svg', 'g', 'rect', 'circle', 'ellipse', 'line', 'polyline', 'polygon', 'path', 'text', 'tspan', 'title', 'desc', 'style']);

/**
 * An SVG ready to embed: without its XML declaration, with a role and a label; or why not. Only
 * markup is judged (text is escaped, so every "<" opens a tag): plain shapes, text and style, no
 * event handler, no link or reference (href, src, url()), no declaration or entity.
 */
export function inlineSvg(text: string, label: string): { svg: string } | { problem: string } {
  const s = text.replace(/^\uFEFF?\s*<\?xml[^?]*\?>\s*/, '').trim();
  if (!/^<svg[\s>]/.test(s) || !s.endsWith('</svg>')) return { problem: 'not an SVG document' };
  const refuse = (why: string) => ({ problem: `not embedded: ${why}` });
  if (/<[!?]/.test(s)) return refuse('it holds a declaration, comment or processing instruction');
  for (const m of s.matchAll(/<(\/?)([^\s>/]+)([^>]*)>/g)) {
    const element = m[2]!.toLowerCase();
    if (!SVG_ELEMENTS.has(element)) return refuse(`it holds the element <${element}>`);
    for (const a of m[3]!.matchAll(/([^\s="'/]+)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s>]+))?/g)) {
      const name = a[1]!.toLowerCase();
      if (name.startsWith('on') || name === 'href' || name.endsWith(':href') || name === 'src') return refuse(`it holds the attribute ${name}`);
      if (/url\s*\(|javascript:|expression\s*\(/i.test(a[2] ?? '')) return refuse(`its attribute ${name} refers outside`);
    }
  }
  for (const m of s.matchAll(/<style[^>]*>([\s\S]*?)<\/style>/gi)) {
    if (/url\s*\(|@import|expression\s*\(/i.test(m[1]!)) return refuse('its style refers outside');
  }
  return { svg: s.replace(/^<svg/, `<svg role="img" aria-label="${esc(label)}"`) };
}

const MAX_MESSAGE = 8_000;
const VERDICT_ORDER: Verdict[] = ['failed', 'passed', 'skipped', 'pending'];
const key = (file: string, test: string) => `${file}\u0000${test}`;

function badge(v: Verdict): string {
  return `<span class="r-v r-v-${v}">${v}</span>`;
}

function counts(tests: readonly TestRecord[]): Record<Verdict, number> {
  const c: Record<Verdict, number> = { passed: 0, failed: 0, skipped: 0, pending: 0 };
  for (const t of tests) c[t.state]++;
  return c;
}

function countsText(c: Record<Verdict, number>): string {
  return (
    VERDICT_ORDER.filter((v) => c[v] > 0)
      .map((v) => `${c[v]} ${v === 'pending' ? 'not finished' : v}`)
      .join(', ') || 'no test'
  );
}

function group<T>(items: readonly T[], k: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of items) {
    const list = m.get(k(x));
    if (list) list.push(x);
    else m.set(k(x), [x]);
  }
  return m;
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1b1b;background:#f6f7f9;line-height:1.4}
main{max-width:1200px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d4da;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.r-v{display:inline-block;min-width:52px;text-align:center;border-radius:3px;padding:0 6px;font-size:12px;font-weight:600;color:#fff;margin-right:6px}
.r-v-passed{background:#2e7d32}.r-v-failed{background:#c62828}.r-v-skipped{background:#757575}.r-v-pending{background:#ef6c00}
.r-sum{font-size:15px}.r-sum b{font-size:17px}
.r-bad{color:#c62828;font-weight:600}.r-good{color:#2e7d32}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}
th,td{border:1px solid #dde1e6;padding:3px 6px;text-align:left;vertical-align:top}th{background:#eef0f3}
td.r-num{text-align:right;white-space:nowrap}
details.r-file{background:#fff;border:1px solid #dde1e6;border-radius:4px;margin:6px 0;padding:4px 10px}
details.r-file>summary{cursor:pointer;font-weight:600;font-size:14px}
.r-path{font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:normal}
ol.r-tests{list-style:none;padding-left:4px;margin:6px 0}
li.r-test{margin:4px 0;padding:2px 0;border-top:1px solid #eef0f3}
.r-dur{color:#666;font-size:12px;margin-left:6px}
pre.r-msg{background:#fff4f4;border-left:3px solid #c62828;padding:6px 8px;margin:4px 0 4px 8px;white-space:pre-wrap;word-break:break-word;font-size:12px;max-height:28em;overflow:auto}
.r-links{font-size:13px;margin:4px 0 4px 8px}
figure.r-fo{background:#fff;border:1px solid #dde1e6;border-radius:4px;margin:8px 0 8px 8px;padding:8px}
figure.r-fo figcaption{font-size:14px;margin-bottom:4px}
.r-flow{color:#555;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;margin-left:6px}
dl.r-facts{display:flex;flex-wrap:wrap;gap:4px 18px;margin:4px 0 6px;font-size:13px}
dl.r-facts div{display:flex;gap:5px}dl.r-facts dt{color:#666}dl.r-facts dd{margin:0;font-weight:600}
.r-svg svg{max-width:100%;height:auto;display:block}
.r-note{color:#666;font-size:13px}
`;

/** Builds the report page. */
export function renderReportHtml(data: ReportData, options: ReportHtmlOptions = {}): string {
  const prefix = options.linkPrefix ?? '';
  const href = (path: string) => esc(`${prefix}${path}`.split('/').map(encodeURIComponent).join('/'));
  const link = (path: string, text: string) => `<a href="${href(path)}">${esc(text)}</a>`;
  const run = data.run;
  const files = run?.files ?? [];
  const allTests = files.flatMap((f) => f.tests.map((t) => ({ file: f, test: t })));
  const testKeys = new Set(allTests.map(({ file, test }) => key(file.file, test.name)));
  const fileKeys = new Set(files.map((f) => f.file));
  const foByTest = group(data.failovers, (f) => key(f.file, f.test));
  const diagByTest = group(data.diagnostics, (d) => key(d.file, d.test));
  const foId = new Map<LoadedFailover, string>(data.failovers.map((f, i) => [f, `fo-${i + 1}`]));
  const testId = new Map<TestRecord, string>(allTests.map(({ test }, i) => [test, `t-${i + 1}`]));
  const verdictOf = new Map<string, Verdict>(allTests.map(({ file, test }) => [key(file.file, test.name), test.state]));

  const flowText = (f: LoadedFailover) =>
    `${f.flow.proto} ${f.flow.from} \u2192 ${f.flow.to}${f.flow.port !== undefined ? `:${f.flow.port}` : ''}, a packet every ${f.flow.intervalMs} ms`;
  const sourcesText = (s: Record<string, number>) =>
    Object.entries(s)
      .map(([ip, n]) => `${ip} (${n})`)
      .join(', ') || 'none';
  const leaksHtml = (n: number | null) =>
    n === null ? '<span class="r-note">not checked</span>' : n > 0 ? `<span class="r-bad">${n}</span>` : '<span class="r-good">0</span>';
  const outageText = (f: LoadedFailover) => (f.facts.outages === 0 ? 'none' : `${durationText(f.facts.longestOutageMs)} (${f.facts.longestLost} lost)`);

  function failoverFigure(f: LoadedFailover): string {
    const x = f.facts;
    const facts: [string, string][] = [
      ['longest outage', esc(outageText(f))],
      ['outages', String(x.outages)],
      ['resumed', x.neverAnswered ? '<span class="r-bad">never answered</span>' : x.resumed ? 'yes' : '<span class="r-bad">no (lost at the end)</span>'],
      ['observed sources', esc(sourcesText(x.sources))],
      ['allowed', esc(x.allowedSources ? x.allowedSources.join(', ') || 'none' : 'not given')],
      ['leaks', leaksHtml(x.leaks)],
      ['answered', `${x.answered}/${x.packets} (${(x.deliveryRatio * 100).toFixed(1)}%)`],
      ...(x.stream
        ? ([['connection', x.stream.survived ? 'survived' : `<span class="r-bad">${esc(x.stream.reason || 'did not survive')}</span>`]] as [string, string][])
        : []),
    ];
    let picture: string;
    if (f.svgText === undefined) picture = `<p class="r-note">timeline SVG: ${esc(f.svgProblem ?? 'missing')}</p>`;
    else {
      const s = inlineSvg(f.svgText, `timeline: ${f.name}`);
      picture = 'svg' in s ? `<div class="r-svg">${s.svg}</div>` : `<p class="r-note">timeline SVG ${link(f.svg, f.svg)}: ${esc(s.problem)}</p>`;
    }
    return [
      `<figure class="r-fo" id="${foId.get(f)}">`,
      `<figcaption><b>${esc(f.name)}</b><span class="r-flow">${esc(flowText(f))}</span></figcaption>`,
      `<dl class="r-facts">${facts.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${v}</dd></div>`).join('')}</dl>`,
      picture,
      '</figure>',
    ].join('\n');
  }

  function diagnosticsHtml(d: DiagnosticsRecord): string {
    const dir = d.dir.replace(/\/+$/, '');
    const pcaps = d.pcaps.length ? ` \u00b7 pcaps: ${d.pcaps.map((p) => link(p, p.split('/').pop() ?? p)).join(', ')}` : ' \u00b7 no pcap';
    const label = d.label && d.label !== d.test ? ` (${esc(d.label)})` : '';
    const problems = d.problems.length ? ` \u00b7 <span class="r-bad">not collected: ${d.problems.length}</span>` : '';
    return `<p class="r-links">diagnostics${label}: ${link(`${dir}/index.html`, `${dir}/`)} (${d.files} files, ${link(`${dir}/SUMMARY.txt`, 'SUMMARY.txt')})${pcaps}${problems}</p>`;
  }

  function messages(errors: readonly string[]): string {
    return errors
      .map((e) => {
        const text = stripAnsi(e);
        return `<pre class="r-msg">${esc(text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}\n\u2026 (${text.length - MAX_MESSAGE} more characters)` : text)}</pre>`;
      })
      .join('\n');
  }

  function testItem(file: TestFileRecord, t: TestRecord): string {
    const k = key(file.file, t.name);
    const fos = foByTest.get(k) ?? [];
    const diags = diagByTest.get(k) ?? [];
    return [
      `<li class="r-test" id="${testId.get(t)}">${badge(t.state)}<span class="r-name">${esc(t.name)}</span>` +
        `${t.durationMs !== undefined ? `<span class="r-dur">${esc(durationText(t.durationMs))}</span>` : ''}` +
        `${t.retries ? `<span class="r-dur">${t.retries} retr${t.retries === 1 ? 'y' : 'ies'}</span>` : ''}` +
        `${t.note ? `<span class="r-dur">${esc(t.note)}</span>` : ''}`,
      messages(t.errors),
      ...diags.map(diagnosticsHtml),
      ...fos.map(failoverFigure),
      '</li>',
    ].join('\n');
  }

  function fileSection(f: TestFileRecord): string {
    const c = counts(f.tests);
    // failovers and diagnostics recorded in the file outside its tests (beforeAll, afterAll)
    const orphanFo = data.failovers.filter((x) => x.file === f.file && !testKeys.has(key(x.file, x.test)));
    const orphanDiag = data.diagnostics.filter((x) => x.file === f.file && !testKeys.has(key(x.file, x.test)));
    const hasFailovers = f.tests.some((t) => foByTest.has(key(f.file, t.name))) || orphanFo.length > 0;
    const interesting =
      f.state === 'failed' ||
      c.failed > 0 ||
      f.errors.length > 0 ||
      hasFailovers ||
      orphanDiag.length > 0 ||
      f.tests.some((t) => diagByTest.has(key(f.file, t.name)));
    return [
      `<details class="r-file"${interesting ? ' open' : ''}>`,
      `<summary>${badge(f.state)}<span class="r-path">${esc(f.file)}</span> <span class="r-dur">${esc(countsText(c))}${f.durationMs !== undefined ? `, ${esc(durationText(f.durationMs))}` : ''}</span></summary>`,
      messages(f.errors),
      ...orphanDiag.map(diagnosticsHtml),
      orphanFo.length ? `<p class="r-note">recorded outside a test:</p>\n${orphanFo.map(failoverFigure).join('\n')}` : '',
      f.tests.length ? `<ol class="r-tests">\n${f.tests.map((t) => testItem(f, t)).join('\n')}\n</ol>` : '<p class="r-note">no test</p>',
      '</details>',
    ].join('\n');
  }

  // ---- header
  const c = counts(allTests.map((x) => x.test));
  const failedFiles = files.filter((f) => f.state === 'failed' || f.errors.length > 0);
  const overall: Verdict = !run
    ? 'pending'
    : c.failed > 0 || failedFiles.length > 0 || run.unhandledErrors.length > 0 || run.reason === 'failed'
      ? 'failed'
      : run.reason === 'interrupted'
        ? 'pending'
        : 'passed';
  const leakTotal = data.failovers.reduce((n, f) => n + (f.facts.leaks ?? 0), 0);
  const worst = data.failovers.reduce<LoadedFailover | undefined>((w, f) => (!w || f.facts.longestOutageMs > w.facts.longestOutageMs ? f : w), undefined);
  const title = run ? `egresslab run: ${overall === 'pending' ? 'interrupted' : overall} (${countsText(c)})` : 'egresslab run: failovers (no test results)';

  const header = [
    `<h1>${badge(overall)}${esc(title)}</h1>`,
    run
      ? `<p class="r-sum"><b>${c.failed}</b> failed, <b>${c.passed}</b> passed, <b>${c.skipped}</b> skipped${c.pending ? `, <b>${c.pending}</b> not finished` : ''} in ${files.length} test ${files.length === 1 ? 'file' : 'files'} \u00b7 ${data.failovers.length} failover ${data.failovers.length === 1 ? 'timeline' : 'timelines'}, ${leakTotal === 0 ? '<span class="r-good">0 leaked packets</span>' : `<span class="r-bad">${leakTotal} leaked packets</span>`}${worst?.facts.outages ? ` \u00b7 longest outage ${esc(durationText(worst.facts.longestOutageMs))} (<a href="#${foId.get(worst)}">${esc(worst.name)}</a>)` : ''}</p>` +
        `<p class="r-note">started ${esc(run.startedAt)}, took ${esc(durationText(run.durationMs))}${run.reason === 'interrupted' ? ', <span class="r-bad">interrupted</span>' : ''}</p>`
      : `<p class="r-note">No run.json in the artifacts folder (vitest ran without the report reporter): the failovers and diagnostics found are shown, not the verdicts.</p>`,
  ].join('\n');

  // ---- failed tests, at the top
  const failedList = allTests.filter(({ test }) => test.state === 'failed');
  const failedSection =
    failedList.length || failedFiles.length || (run?.unhandledErrors.length ?? 0) > 0
      ? [
          '<h2>Failures</h2>',
          '<ul>',
          ...failedList.map(
            ({ file, test }) =>
              `<li>${badge('failed')}<a href="#${testId.get(test)}">${esc(test.name)}</a> <span class="r-path r-dur">${esc(file.file)}</span></li>`,
          ),
          ...failedFiles
            .filter((f) => f.errors.length > 0)
            .map((f) => `<li>${badge('failed')}<span class="r-path">${esc(f.file)}</span>: outside its tests (loading it, beforeAll or afterAll)</li>`),
          '</ul>',
          ...(run?.unhandledErrors.length ? ['<h3>Errors outside any test</h3>', messages(run.unhandledErrors)] : []),
        ].join('\n')
      : '';

  // ---- failovers overview
  const overview = data.failovers.length
    ? [
        `<h2>Failovers</h2>`,
        '<table><thead><tr><th>test</th><th>timeline</th><th>longest outage</th><th>outages</th><th>resumed</th><th>observed sources</th><th>leaks</th></tr></thead><tbody>',
        ...data.failovers.map((f) => {
          const v = verdictOf.get(key(f.file, f.test));
          return `<tr><td>${v ? badge(v) : ''}${esc(f.test || `${f.file} (outside a test)`)}</td><td><a href="#${foId.get(f)}">${esc(f.name)}</a></td><td class="r-num">${esc(outageText(f))}</td><td class="r-num">${f.facts.outages}</td><td>${f.facts.neverAnswered ? '<span class="r-bad">never answered</span>' : f.facts.resumed ? 'yes' : '<span class="r-bad">no</span>'}</td><td>${esc(sourcesText(f.facts.sources))}</td><td class="r-num">${leaksHtml(f.facts.leaks)}</td></tr>`;
        }),
        '</tbody></table>',
      ].join('\n')
    : '';

  // ---- test files by project: projects with failovers or failures first
  const byPath = [...files].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const projects = [...group(byPath, (f) => f.project).entries()].sort(([a, fa], [b, fb]) => {
    const weight = (fs: TestFileRecord[]) => (fs.some((f) => f.state === 'failed' || data.failovers.some((x) => x.file === f.file)) ? 0 : 1);
    return weight(fa) - weight(fb) || a.localeCompare(b);
  });
  const filesSection = run
    ? [
        '<h2>Test files</h2>',
        ...projects.map(([p, fs]) =>
          [
            `<h3>${esc(p || 'tests')} (${fs.length} ${fs.length === 1 ? 'file' : 'files'}, ${esc(countsText(counts(fs.flatMap((f) => f.tests))))})</h3>`,
            ...fs.map(fileSection),
          ].join('\n'),
        ),
      ].join('\n')
    : '';

  // ---- records of files not in run.json (a partial run, or no run.json)
  const strayFo = data.failovers.filter((f) => !fileKeys.has(f.file));
  const strayDiag = data.diagnostics.filter((d) => !fileKeys.has(d.file));
  const stray =
    strayFo.length || strayDiag.length
      ? [
          `<h2>${run ? 'Recorded by files not in the results' : 'Recorded failovers and diagnostics'}</h2>`,
          ...[
            ...group([...strayFo.map((f) => ({ file: f.file, test: f.test })), ...strayDiag.map((d) => ({ file: d.file, test: d.test }))], (x) =>
              key(x.file, x.test),
            ).values(),
          ].map((xs) => {
            const k = key(xs[0]!.file, xs[0]!.test);
            return [
              `<h3><span class="r-path">${esc(xs[0]!.file)}</span>${xs[0]!.test ? ` \u203a ${esc(xs[0]!.test)}` : ''}</h3>`,
              ...(diagByTest.get(k) ?? []).map(diagnosticsHtml),
              ...(foByTest.get(k) ?? []).map(failoverFigure),
            ].join('\n');
          }),
        ].join('\n')
      : '';

  const problems = data.problems.length ? `<h2>Records that could not be read</h2><ul>${data.problems.map((p) => `<li>${esc(p)}</li>`).join('')}</ul>` : '';

  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head><body><main>',
    header,
    failedSection,
    overview,
    filesSection,
    stray,
    problems,
    '</main></body></html>',
    '',
  ]
    .filter((x) => x !== '')
    .join('\n');
}
