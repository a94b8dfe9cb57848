/**
 * A small run for the report's tests (harness/report/*.test.ts): two test files, one failed test
 * with a message, a skipped one, two failovers whose SVGs the project's own renderer draws from
 * synthetic timelines (one clean, one with an outage and two leaked packets), and the diagnostics of
 * the failed test with a pcap. Names are hostile on purpose (markup, quotes, ampersands).
 */
import type { Timeline } from '../probe/timeline.js';
import { summarize } from './failover.js';
import { renderTimelineSvg } from './timeline-svg.js';
import { failoverFacts, type DiagnosticsRecord, type FailoverRecord, type LoadedFailover, type ReportData, type RunRecord } from './run-data.js';

/** The egress IP both fixture failovers are allowed to leave with. */
export const FIXTURE_EGRESS_IP = '192.168.1.100';
/** The node IP the second fixture failover leaks. */
export const FIXTURE_LEAK_IP = '192.168.1.2';
/** The failed test's name and message (markup in both). */
export const FIXTURE_FAILED_TEST = `failover > partition of <script>alert("x")</script> & co`;
export const FIXTURE_FAILURE = `AssertionError: expected 2 packets with a source other than ${FIXTURE_EGRESS_IP} to be 0 <b>not bold</b>\n  artifacts: artifacts/px-1/partition (12 files in 400 ms)`;
/** The file of the failover tests. */
export const FIXTURE_LAB_FILE = 'scenarios/gateway/fixture-failover.test.ts';

/**
 * A synthetic timeline: `n` packets every 20 ms from a fixed epoch, packets `lost` (inclusive seq range)
 * unanswered and seen nowhere, the packets in `leak` seen with the leak IP, the rest with the egress IP.
 */
export function fixtureTimeline(proto: 'udp' | 'tcp', from: string, n: number, lost: [number, number], leak: number[] = []): Timeline {
  const t0 = Date.UTC(2026, 0, 2, 3, 4, 5);
  const packets = Array.from({ length: n }, (_, i) => {
    const seq = i + 1;
    const isLost = seq >= lost[0] && seq <= lost[1];
    return {
      seq,
      t: t0 + i * 20,
      replied: !isLost,
      ...(isLost ? {} : { rttMs: 1.5 }),
      observedSources: isLost ? [] : [leak.includes(seq) ? FIXTURE_LEAK_IP : FIXTURE_EGRESS_IP],
    };
  });
  return { from, to: '8.8.8.8', proto, intervalMs: 20, packets, unattributed: [] };
}

function failover(file: string, test: string, name: string, t: Timeline, at: string): { record: Omit<FailoverRecord, 'svg'>; svg: string } {
  const allowed = [FIXTURE_EGRESS_IP];
  return {
    record: {
      file,
      test,
      name,
      flow: { proto: t.proto, from: t.from, to: t.to, intervalMs: t.intervalMs },
      facts: failoverFacts(summarize(t, allowed)),
      recordedAt: at,
    },
    svg: renderTimelineSvg({ timeline: t, label: name, allowedSources: allowed }, { title: name }),
  };
}

/** The fixture's failovers (records without their SVG file name) and their SVGs, as recordTimeline would write them. */
export function fixtureFailovers(): { record: Omit<FailoverRecord, 'svg'>; svg: string }[] {
  return [
    failover(
      FIXTURE_LAB_FILE,
      'failover > SIGKILL of the holder',
      'SIGKILL udp alice/frontend-1 -> 8.8.8.8',
      fixtureTimeline('udp', 'alice/frontend-1', 150, [50, 90]),
      '2026-01-02T03:05:00.000Z',
    ),
    failover(
      FIXTURE_LAB_FILE,
      FIXTURE_FAILED_TEST,
      `partition tcp <img src=x onerror=alert(1)> -> 8.8.8.8`,
      fixtureTimeline('tcp', 'alice/<i>frontend-2</i>', 100, [30, 45], [60, 61]),
      '2026-01-02T03:06:00.000Z',
    ),
  ];
}

/** The failed test's diagnostics record. */
export function fixtureDiagnostics(): DiagnosticsRecord {
  return {
    file: FIXTURE_LAB_FILE,
    test: FIXTURE_FAILED_TEST,
    label: FIXTURE_FAILED_TEST,
    dir: 'px-1/partition-of-script',
    files: 12,
    pcaps: ['px-1/partition-of-script/captures/node-1-eth0-1.pcap'],
    problems: [],
    collectedAt: '2026-01-02T03:06:01.000Z',
  };
}

/** run.json of the fixture: the lab file (one passed, one failed test) and a unit file (two passed, one skipped). */
export function fixtureRun(): RunRecord {
  return {
    startedAt: '2026-01-02T03:04:00.000Z',
    finishedAt: '2026-01-02T03:07:00.000Z',
    durationMs: 180_000,
    reason: 'failed',
    files: [
      {
        file: 'harness/probe/timeline.test.ts',
        project: 'unit',
        state: 'passed',
        durationMs: 40,
        errors: [],
        tests: [
          { name: 'outages > one run of lost packets', state: 'passed', durationMs: 3, errors: [] },
          { name: 'outages > none', state: 'passed', durationMs: 1, errors: [] },
          { name: 'outages > later', state: 'skipped', errors: [] },
        ],
      },
      {
        file: FIXTURE_LAB_FILE,
        project: 'lab',
        state: 'failed',
        durationMs: 150_000,
        errors: [],
        tests: [
          { name: 'failover > SIGKILL of the holder', state: 'passed', durationMs: 41_250, errors: [] },
          { name: FIXTURE_FAILED_TEST, state: 'failed', durationMs: 62_000, errors: [FIXTURE_FAILURE] },
        ],
      },
    ],
    unhandledErrors: [],
  };
}

/** The whole fixture as the report builder takes it (SVG names as writeFailoverRecord gives them). */
export function fixtureReportData(): ReportData {
  const failovers: LoadedFailover[] = fixtureFailovers().map((f, i) => ({ ...f.record, svg: `failovers/fixture-${i + 1}.svg`, svgText: f.svg }));
  return { run: fixtureRun(), failovers, diagnostics: [fixtureDiagnostics()], problems: [] };
}
