/**
 * The run report in a real browser: headless Chromium from Debian's package (bin/setup installs it),
 * driven by playwright-core against that installed binary (nothing is downloaded). The fixture run
 * (report-fixture.ts: two test files, a failed test with a message, two failovers whose SVGs the
 * project's renderer drew) is written through the same writers the test run uses, the report built
 * from it is opened from disk, and the test checks what a person sees: the verdicts, the failure
 * message, one drawn SVG per failover; and that the page logged no error, ran nothing and fetched
 * nothing. The page and its screenshot stay in artifacts/report-check/ (report.html, report.png).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.js';
import { writeDiagnosticsRecord, writeFailoverRecord, writeRunRecord } from './run-data.js';
import { writeReport } from './write-report.js';
import { FIXTURE_FAILED_TEST, FIXTURE_FAILURE, FIXTURE_LAB_FILE, fixtureDiagnostics, fixtureFailovers, fixtureRun } from './report-fixture.js';

/** Debian's chromium package. */
const CHROMIUM = '/usr/bin/chromium';
/** Running as root in a container: no sandbox; the new headless mode; no GPU. */
const CHROMIUM_ARGS = ['--no-sandbox', '--headless=new', '--disable-gpu'];

const dir = join(projectRoot(), 'artifacts', 'report-check');
let browser: Browser | undefined;
afterAll(async () => {
  await browser?.close();
});

describe('the run report in headless Chromium', () => {
  it('shows every verdict, the failure message and one drawn SVG per failover; no error, no script, no request', async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed (${CHROMIUM}): run bin/setup, which installs Debian's chromium package when it is missing`);
    }
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const f of fixtureFailovers()) writeFailoverRecord(dir, f.record, f.svg);
    writeDiagnosticsRecord(dir, fixtureDiagnostics());
    const run = fixtureRun();
    writeRunRecord(dir, run);
    const report = writeReport(dir);

    const t0 = performance.now();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
    const launchMs = performance.now() - t0;
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('dialog', (d) => {
      problems.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    page.on('request', (r) => requests.push(r.url()));
    const url = pathToFileURL(report.file).href;
    const t1 = performance.now();
    await page.goto(url, { waitUntil: 'load', timeout: 30_000 });
    const loadMs = performance.now() - t1;
    console.log(`report ${report.bytes} bytes; chromium ${browser.version()} started in ${Math.round(launchMs)} ms, report loaded in ${Math.round(loadMs)} ms`);

    // the verdicts: the whole run in the title, each test of the open lab file with its verdict
    await expect.poll(() => page.title()).toBe('egresslab run: failed (1 failed, 3 passed, 1 skipped)');
    const lab = run.files.find((f) => f.file === FIXTURE_LAB_FILE)!;
    for (const t of lab.tests) {
      const item = page.locator('li.r-test', { has: page.locator('.r-name', { hasText: t.name }) });
      expect(await item.locator('.r-v').textContent(), t.name).toBe(t.state);
      expect(await item.locator('.r-v').isVisible(), t.name).toBe(true);
    }
    // the unit file (all passed) is folded: its line says passed; opened, its tests show theirs
    const unit = run.files.find((f) => f.project === 'unit')!;
    const unitFile = page.locator('details.r-file', { has: page.locator('summary .r-path', { hasText: unit.file }) });
    expect(await unitFile.locator('summary .r-v').textContent()).toBe('passed');
    expect(await unitFile.locator('li.r-test').first().isVisible()).toBe(false);
    await unitFile.locator('summary').click();
    await expect.poll(() => unitFile.locator('li.r-test').first().isVisible()).toBe(true);
    expect(await unitFile.locator('li.r-test .r-v').allInnerTexts()).toEqual(unit.tests.map((t) => t.state));

    // the failed test's message, as text (its markup shown, not applied)
    const failed = page.locator('li.r-test', { has: page.locator('.r-name', { hasText: FIXTURE_FAILED_TEST }) });
    expect(await failed.locator('.r-name').textContent()).toBe(FIXTURE_FAILED_TEST);
    const message = failed.locator('pre.r-msg');
    expect(await message.isVisible()).toBe(true);
    expect(await message.textContent()).toBe(FIXTURE_FAILURE);
    expect(await page.locator('script, img, iframe, main b:text-is("not bold")').count()).toBe(0);
    expect(await failed.locator('a', { hasText: 'node-1-eth0-1.pcap' }).getAttribute('href')).toBe(fixtureDiagnostics().pcaps[0]);

    // one SVG per failover, drawn: a real box, packet marks inside it
    const svgs = page.locator('figure.r-fo svg');
    expect(await svgs.count()).toBe(fixtureFailovers().length);
    for (const svg of await svgs.all()) {
      await svg.scrollIntoViewIfNeeded();
      const box = await svg.boundingBox();
      expect(box, 'SVG bounding box').not.toBeNull();
      expect(box!.width).toBeGreaterThan(600);
      expect(box!.height).toBeGreaterThan(100);
      const mark = await svg.locator('circle.pkt').first().boundingBox();
      expect(mark!.width).toBeGreaterThan(0);
    }
    expect(await page.locator('figure.r-fo rect.leak').count()).toBe(2);

    await page.screenshot({ path: join(dir, 'report.png'), fullPage: true });
    expect(problems).toEqual([]);
    expect(requests).toEqual([url]);
  }, 120_000);
});
