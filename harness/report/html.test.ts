/**
 * The run report page (renderReportHtml): what it shows of a run, that hostile names and messages
 * stay text, and that it needs nothing outside itself. The same fixture is opened in a real browser
 * by report-browser.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { durationText, inlineSvg, renderReportHtml, stripAnsi } from './html.js';
import { escapeXml } from './timeline-svg.js';
import { FIXTURE_FAILED_TEST, FIXTURE_FAILURE, FIXTURE_LAB_FILE, fixtureReportData } from './report-fixture.js';
import type { ReportData } from './run-data.js';

/** The text between two markers of the page. */
function between(html: string, from: string, to: string): string {
  const i = html.indexOf(from);
  expect(i, `"${from}" in the page`).toBeGreaterThanOrEqual(0);
  const j = html.indexOf(to, i + from.length);
  return html.slice(i, j < 0 ? undefined : j);
}

describe('the run report page', () => {
  const data = fixtureReportData();
  const html = renderReportHtml(data);

  it('lists every test file and every test with its verdict and duration', () => {
    for (const f of data.run!.files) {
      expect(html).toContain(`<span class="r-path">${escapeXml(f.file)}</span>`);
      for (const t of f.tests)
        expect(html).toMatch(new RegExp(`<span class="r-v r-v-${t.state}">${t.state}</span><span class="r-name">${escapeRe(escapeXml(t.name))}</span>`));
    }
    expect(html).toContain('<span class="r-name">failover &gt; SIGKILL of the holder</span><span class="r-dur">41.3 s</span>');
    expect(html).toMatch(/<title>egresslab run: failed \(1 failed, 3 passed, 1 skipped\)<\/title>/);
    // the unit file (all passed) is folded, the lab file (a failure, failovers) open
    expect(html).toMatch(
      /<details class="r-file">\n<summary><span class="r-v r-v-passed">passed<\/span><span class="r-path">harness\/probe\/timeline\.test\.ts/,
    );
    expect(html).toMatch(
      new RegExp(`<details class="r-file" open>\n<summary><span class="r-v r-v-failed">failed</span><span class="r-path">${escapeRe(FIXTURE_LAB_FILE)}`),
    );
  });

  it("shows the failed test's message as text, listed under Failures with a link to it", () => {
    const failed = between(html, `<span class="r-name">${escapeXml(FIXTURE_FAILED_TEST)}</span>`, '</li>');
    expect(failed).toContain(`<pre class="r-msg">${escapeXml(FIXTURE_FAILURE)}</pre>`);
    const failures = between(html, '<h2>Failures</h2>', '</ul>');
    const anchor = /<a href="#(t-\d+)">/.exec(failures)![1]!;
    expect(html).toContain(`<li class="r-test" id="${anchor}"><span class="r-v r-v-failed">failed</span>`);
  });

  it('escapes hostile test names, timeline names, pod names and messages', () => {
    // nothing of the fixture's markup survives as markup
    expect(html).not.toMatch(/<script|<img|<b>not|<i>frontend|onerror=alert\(1\)>/i);
    expect(html).toContain('partition of &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co');
    expect(html).toContain('partition tcp &lt;img src=x onerror=alert(1)&gt; -&gt; 8.8.8.8');
    expect(html).toContain('tcp alice/&lt;i&gt;frontend-2&lt;/i&gt; \u2192 8.8.8.8');
    expect(html).toContain('to be 0 &lt;b&gt;not bold&lt;/b&gt;');
  });

  it('for each failover: its SVG inline, the longest outage, observed sources and leaks', () => {
    expect(html.match(/<svg /g)).toHaveLength(data.failovers.length);
    expect(html).not.toContain('<?xml');
    const [clean, leaky] = data.failovers;
    const fig = (i: number) => between(html, `<figure class="r-fo" id="fo-${i}">`, '</figure>');
    expect(fig(1)).toContain(`<dt>longest outage</dt><dd>${durationText(clean!.facts.longestOutageMs)} (${clean!.facts.longestLost} lost)</dd>`);
    expect(fig(1)).toContain('<dt>observed sources</dt><dd>192.168.1.100 (109)</dd>');
    expect(fig(1)).toContain('<dt>leaks</dt><dd><span class="r-good">0</span></dd>');
    expect(fig(1)).toContain('<svg role="img" aria-label="timeline: SIGKILL udp alice/frontend-1 -&gt; 8.8.8.8"');
    expect(fig(2)).toContain('<dt>longest outage</dt><dd>340 ms (16 lost)</dd>');
    expect(fig(2)).toContain('<dt>observed sources</dt><dd>192.168.1.100 (82), 192.168.1.2 (2)</dd>');
    expect(fig(2)).toContain(`<dt>leaks</dt><dd><span class="r-bad">${leaky!.facts.leaks}</span></dd>`);
    expect(leaky!.facts.leaks).toBe(2);
    // each failover sits under its test, and the overview links to it
    expect(between(html, `<span class="r-name">${escapeXml(FIXTURE_FAILED_TEST)}</span>`, '</li>')).toContain('<figure class="r-fo" id="fo-2">');
    const overview = between(html, '<h2>Failovers</h2>', '</table>');
    expect(overview).toContain('<a href="#fo-1">SIGKILL udp alice/frontend-1 -&gt; 8.8.8.8</a>');
    expect(overview).toContain('<td class="r-num"><span class="r-bad">2</span></td>');
    expect(html).toContain('<span class="r-bad">2 leaked packets</span>');
  });

  it("links the failed test's diagnostics folder and pcaps by relative path", () => {
    const failed = between(html, `<span class="r-name">${escapeXml(FIXTURE_FAILED_TEST)}</span>`, '</li>');
    expect(failed).toContain(
      'diagnostics: <a href="px-1/partition-of-script/index.html">px-1/partition-of-script/</a> (12 files, <a href="px-1/partition-of-script/SUMMARY.txt">SUMMARY.txt</a>)',
    );
    expect(failed).toContain('pcaps: <a href="px-1/partition-of-script/captures/node-1-eth0-1.pcap">node-1-eth0-1.pcap</a>');
    // a report written elsewhere links back into the artifacts folder
    expect(renderReportHtml(data, { linkPrefix: '../artifacts/' })).toContain('<a href="../artifacts/px-1/partition-of-script/index.html">');
  });

  it('needs nothing outside itself: no script, no external URL, no external stylesheet or image', () => {
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|url\(/i);
    const refs = [...html.matchAll(/\b(?:href|src)="([^"]*)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(0);
    for (const r of refs) expect(r, r).not.toMatch(/^[a-z][a-z0-9+.-]*:|^\/\//i);
    // the only absolute URL is the SVG namespace (an identifier, never fetched)
    expect([...html.matchAll(/[a-z]+:\/\/[^\s"'<>]+/gi)].map((m) => m[0])).toEqual(data.failovers.map(() => 'http://www.w3.org/2000/svg'));
  });

  it('without run.json: the failovers and diagnostics found, and says why there are no verdicts', () => {
    const partial: ReportData = { ...data, run: undefined };
    const page = renderReportHtml(partial);
    expect(page).toContain('No run.json in the artifacts folder');
    expect(page.match(/<svg /g)).toHaveLength(2);
    expect(page).toContain('px-1/partition-of-script/captures/node-1-eth0-1.pcap');
    expect(page).not.toContain('<h2>Test files</h2>');
  });

  it('a failover recorded outside a test (beforeAll) shows under its file; unreadable records are listed', () => {
    const extra = { ...data.failovers[0]!, test: '', name: 'warm-up in beforeAll' };
    const page = renderReportHtml({ ...data, failovers: [...data.failovers, extra], problems: ['failovers/x.json: Unexpected token'] });
    const file = between(page, `<span class="r-path">${FIXTURE_LAB_FILE}</span>`, '</details>');
    expect(file).toContain('recorded outside a test:');
    expect(file).toContain('<b>warm-up in beforeAll</b>');
    expect(page).toContain('<h2>Records that could not be read</h2><ul><li>failovers/x.json: Unexpected token</li></ul>');
  });

  it('an SVG that could run or fetch something is linked, not embedded', () => {
    const bad = { ...data.failovers[0]!, svgText: '<svg xmlns="http://www.w3.org/2000/svg"><rect onload="alert(1)"/></svg>' };
    const page = renderReportHtml({ ...data, failovers: [bad] });
    expect(page).not.toContain('onload=');
    expect(page).not.toContain('<svg');
    expect(page).toContain('timeline SVG <a href="failovers/fixture-1.svg">failovers/fixture-1.svg</a>: not embedded: it holds the attribute onload');
  });
});

describe('inlineSvg', () => {
  it('drops the XML declaration and adds a role and an escaped label', () => {
    const r = inlineSvg(
      '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"><text>&lt;script&gt; onerror=x href=y</text></svg>\n',
      'a "b"',
    );
    expect(r).toEqual({
      svg: '<svg role="img" aria-label="a &quot;b&quot;" xmlns="http://www.w3.org/2000/svg" width="10"><text>&lt;script&gt; onerror=x href=y</text></svg>',
    });
  });

  it.each([
    ['<svg><script>alert(1)</script></svg>', 'it holds the element <script>'],
    ['<svg><a href="https://example.org"><text>x</text></a></svg>', 'it holds the element <a>'],
    ['<svg><image href="x.png"/></svg>', 'it holds the element <image>'],
    ['<svg onload="alert(1)"></svg>', 'it holds the attribute onload'],
    ['<svg><rect fill="url(https://example.org/x)"/></svg>', 'its attribute fill refers outside'],
    ['<svg><style>@import "https://example.org/x.css";</style></svg>', 'its style refers outside'],
    ['<svg><foreignObject><div/></foreignObject></svg>', 'it holds the element <foreignobject>'],
    ['<svg><!ENTITY x "y"><text>&x;</text></svg>', 'it holds a declaration, comment or processing instruction'],
  ])('refuses %s', (svg, why) => {
    expect(inlineSvg(svg, 'x')).toEqual({ problem: `not embedded: ${why}` });
  });

  it('refuses what is not an SVG document', () => {
    expect(inlineSvg('<html></html>', 'x')).toEqual({ problem: 'not an SVG document' });
  });
});

describe('text helpers', () => {
  it('durations as a person reads them; ANSI colours removed', () => {
    expect([850, 1240, 41_250, 125_000].map(durationText)).toEqual(['850 ms', '1.24 s', '41.3 s', '2 min 5 s']);
    expect(stripAnsi('\u001b[31mexpected\u001b[39m 1')).toBe('expected 1');
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
