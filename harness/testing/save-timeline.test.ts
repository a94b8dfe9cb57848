import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Timeline } from '../probe/timeline.js';
import { keepTimelines, recordTimeline, saveTimeline, slug } from './artifacts.js';
import { loadReportData } from '../report/run-data.js';
import { summarize } from '../report/failover.js';

function timeline(): Timeline {
  const packets = Array.from({ length: 5 }, (_, i) => ({ seq: i + 1, t: 1_000 + i * 20, replied: i !== 2, observedSources: i === 2 ? [] : ['10.10.10.1'] }));
  return { from: 'alice/frontend-1', to: '172.16.100.10', proto: 'udp', intervalMs: 20, packets, unattributed: [] };
}

let dir: string;
const saved = { artifacts: process.env.EGRESSLAB_ARTIFACTS, keep: process.env.EGRESSLAB_KEEP_TIMELINES };
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'egl-timelines-'));
  process.env.EGRESSLAB_ARTIFACTS = dir;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  for (const [k, v] of [
    ['EGRESSLAB_ARTIFACTS', saved.artifacts],
    ['EGRESSLAB_KEEP_TIMELINES', saved.keep],
  ] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('keeping a timeline SVG from a passing test', () => {
  it('saveTimeline writes <name>.svg and .json under artifacts/timelines/<test>/', () => {
    const t = timeline();
    const file = saveTimeline('alice to the VPC', t, ['10.10.10.1']);
    const folder = join(dir, 'timelines', slug(expect.getState().currentTestName!));
    expect(file).toBe(join(folder, 'alice-to-the-vpc.svg'));
    expect(readFileSync(file, 'utf8')).toMatch(/^<\?xml|^<svg/);
    const json = JSON.parse(readFileSync(join(folder, 'alice-to-the-vpc.json'), 'utf8')) as Timeline & { name: string; allowedSources: string[] };
    expect(json.name).toBe('alice to the VPC');
    expect(json.allowedSources).toEqual(['10.10.10.1']);
    expect(json.packets).toEqual(t.packets);
  });

  it('an explicit folder or test name', () => {
    expect(saveTimeline('x', timeline(), undefined, { dir: join(dir, 'mine') })).toBe(join(dir, 'mine', 'x.svg'));
    expect(saveTimeline('x', timeline(), undefined, { testName: 'My Test' })).toBe(join(dir, 'timelines', 'my-test', 'x.svg'));
  });

  it('EGRESSLAB_KEEP_TIMELINES=1 makes recordTimeline write at once; other values are named in the error', () => {
    const folder = join(dir, 'timelines', slug(expect.getState().currentTestName!));
    process.env.EGRESSLAB_KEEP_TIMELINES = '0';
    recordTimeline('not kept', timeline());
    expect(existsSync(join(folder, 'not-kept.svg'))).toBe(false);
    process.env.EGRESSLAB_KEEP_TIMELINES = '1';
    recordTimeline('kept', timeline());
    expect(existsSync(join(folder, 'kept.svg'))).toBe(true);
    expect(keepTimelines({ EGRESSLAB_KEEP_TIMELINES: 'yes' })).toBe(true);
    expect(keepTimelines({})).toBe(false);
    expect(() => keepTimelines({ EGRESSLAB_KEEP_TIMELINES: 'maybe' })).toThrow(
      'environment: EGRESSLAB_KEEP_TIMELINES: must be 1 (write every recorded timeline) or 0 (value: "maybe")',
    );
  });
});

describe('every recorded timeline goes to the run report', () => {
  it('recordTimeline writes failovers/<slug>.json (its test, flow and summarize() facts) and the SVG, pass or fail', () => {
    const t = timeline();
    t.packets[4]!.observedSources = ['10.10.10.9']; // one packet seen with another source: a leak
    recordTimeline('alice to the VPC', t, ['10.10.10.1']);
    expect(readdirSync(join(dir, 'failovers')).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    const [f] = loadReportData(dir).failovers;
    const r = summarize(t, ['10.10.10.1']);
    expect(f).toMatchObject({
      file: 'harness/testing/save-timeline.test.ts',
      test: expect.getState().currentTestName,
      name: 'alice to the VPC',
      flow: { proto: 'udp', from: 'alice/frontend-1', to: '172.16.100.10', intervalMs: 20 },
      facts: {
        packets: 5,
        answered: 4,
        outages: 1,
        longestOutageMs: r.longestOutageMs,
        longestLost: 1,
        resumed: true,
        sources: { '10.10.10.1': 3, '10.10.10.9': 1 },
        allowedSources: ['10.10.10.1'],
        leaks: 1,
      },
    });
    expect(f!.svgText).toMatch(/^<\?xml[\s\S]*<svg[\s\S]*alice to the VPC[\s\S]*<\/svg>\n$/);
    // without allowed sources, leaks are not checked (null), not 0
    recordTimeline('no allowed sources', timeline());
    expect(loadReportData(dir).failovers.find((x) => x.name === 'no allowed sources')!.facts.leaks).toBeNull();
  });
});
