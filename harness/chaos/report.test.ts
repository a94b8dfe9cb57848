import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.js';
import type { Timeline } from '../probe/timeline.js';
import { chaosReport, describeReport, regressionScenario, relativeViolation, scenarioFileName } from './report.js';
import { DEFAULT_BOUNDS, type ChaosRun } from './executor.js';
import { mergeSegments } from './evidence.js';
import { artifactId } from './explore.js';
import type { Schedule } from './schedule.js';

const T0 = 1_700_000_000_000;
const schedule: Schedule = {
  version: 1,
  seed: 7,
  topology: 'default',
  steps: [
    { kind: 'partition', node: 'node-3', direction: 'inbound', at: 1000, durationMs: 2000 },
    { kind: 'node-kill', node: 'node-1', at: 2000, durationMs: 1500 },
  ],
};

/** A timeline of `n` packets every 100 ms from t0, unanswered in [lostFrom, lostTo). */
function tl(t0: number, n: number, lost: (t: number) => boolean = () => false): Timeline {
  return {
    from: 'p',
    to: '8.8.8.8',
    proto: 'udp',
    port: 7007,
    intervalMs: 100,
    unattributed: [],
    packets: Array.from({ length: n }, (_, i) => ({ seq: i + 1, t: t0 + i * 100, replied: !lost(t0 + i * 100), observedSources: ['192.168.1.3'] })),
  };
}

function fakeRun(): ChaosRun {
  const partitioned = mergeSegments([tl(T0 - 500, 80, (t) => t >= T0 + 1100 && t < T0 + 3000)]);
  // node-1's probe: halted before the kill at +2.0 s, a new one once it was back at +4.0 s
  const killed = mergeSegments([tl(T0 - 500, 25), tl(T0 + 4000, 40)]);
  return {
    labId: 'chaos-abc123',
    schedule,
    bounds: DEFAULT_BOUNDS,
    flows: [
      { name: 'udp default/client-3 -> 8.8.8.8', pod: 'default/client-3', node: 'node-3', to: '8.8.8.8', proto: 'udp', stream: false, intervalMs: 100 },
      { name: 'udp default/client-1 -> 8.8.8.8', pod: 'default/client-1', node: 'node-1', to: '8.8.8.8', proto: 'udp', stream: false, intervalMs: 100 },
    ],
    startedAt: T0,
    settledAt: T0 + 4000,
    convergedAt: T0 + 5200,
    actions: [
      { step: 0, phase: 'do', dueAt: 1000, startedAt: T0 + 1003, endedAt: T0 + 1090 },
      { step: 1, phase: 'do', dueAt: 2000, startedAt: T0 + 2001, endedAt: T0 + 2600 },
      { step: 0, phase: 'undo', dueAt: 3000, startedAt: T0 + 3002, endedAt: T0 + 3050 },
      { step: 1, phase: 'undo', dueAt: 3500, startedAt: T0 + 3501, endedAt: T0 + 4000, note: 'booted again' },
    ],
    violations: [
      {
        invariant: 'no-leak',
        at: T0 + 2500,
        evidence: { flow: 'udp default/client-1 -> 8.8.8.8', src: '10.10.10.2', allowed: ['192.168.1.1'], count: 3, until: T0 + 2700 },
      },
    ],
    evidence: { edgePackets: [], allowed: [], arpReplies: [], edgeReplies: [], flows: [] },
    timelines: [
      { name: 'udp default/client-3 -> 8.8.8.8', timeline: partitioned, allowedSources: ['192.168.1.3'] },
      { name: 'udp default/client-1 -> 8.8.8.8', timeline: killed, allowedSources: ['192.168.1.1'] },
    ],
    captures: [],
    timing: { labUpMs: 40_000, setupMs: 8000, scheduleMs: 4000, observeMs: 13_000, collectMs: 6000, totalMs: 71_000 },
  };
}

describe('the chaos report', () => {
  it("has the JSON shape --json prints: seed, steps, violations {invariant, at, evidence} with times after the schedule's start, shrunk, files", () => {
    const r = JSON.parse(JSON.stringify(chaosReport(fakeRun(), null, ['artifacts/chaos/x/schedule.json'])));
    expect(Object.keys(r).sort()).toEqual([
      'actions',
      'bounds',
      'convergedAt',
      'files',
      'flows',
      'lab',
      'seed',
      'settledAt',
      'shrunk',
      'steps',
      'timing',
      'topology',
      'violations',
    ]);
    expect(r).toMatchObject({
      seed: 7,
      topology: 'default',
      lab: 'chaos-abc123',
      steps: schedule.steps,
      shrunk: null,
      files: ['artifacts/chaos/x/schedule.json'],
      settledAt: 4000,
      convergedAt: 5200,
    });
    expect(r.violations).toEqual([
      {
        invariant: 'no-leak',
        at: 2500,
        evidence: { flow: 'udp default/client-1 -> 8.8.8.8', src: '10.10.10.2', allowed: ['192.168.1.1'], count: 3, until: 2700 },
      },
    ]);
    expect(r.actions[3]).toEqual({ step: 1, phase: 'undo', dueAt: 3500, startedAt: 3501, endedAt: 4000, note: 'booted again' });
  });

  it('per flow: the established bindings a ConfigMap change let keep their source (packets, first and last), none for the others', () => {
    const run = fakeRun();
    const flow = 'udp default/client-1 -> 8.8.8.8';
    // node IP until the ConfigMap change at +1.0 s, pod IP after (transition until +4.0 s); the flow keeps its binding to +6.0 s
    const edgePackets = Array.from({ length: 60 }, (_, i) => ({ t: T0 + i * 100, flow, src: '192.168.1.1', sport: 40001 }));
    run.evidence = {
      ...run.evidence,
      edgePackets,
      allowed: [
        { flow, from: 0, to: T0 + 4000, sources: ['192.168.1.1'] },
        { flow, from: T0 + 1000, sources: ['10.10.10.2'] },
      ],
      conntrack: [{ flow, keeps: [T0 + 1000], ends: [] }],
    };
    const r = chaosReport(run);
    expect(r.flows.find((f) => f.flow === flow)!.kept).toEqual([{ src: '192.168.1.1', sport: 40001, since: 0, change: 1000, packets: 20, until: 5900 }]);
    expect(r.flows.find((f) => f.flow !== flow)!.kept).toBeUndefined();
  });

  it('per flow: the outage a partition caused and the gap a kill left (two probe segments)', () => {
    const [partitioned, killed] = chaosReport(fakeRun()).flows;
    expect(partitioned).toMatchObject({ node: 'node-3', segments: 1, gaps: [] });
    expect(partitioned!.outages).toEqual([{ from: 1100, to: 2900, lost: 19 }]);
    expect(killed).toMatchObject({ node: 'node-1', segments: 2, outages: [], gaps: [{ from: 1900, to: 4000 }] });
  });

  it('in words: the verdict, each violation, the shrink, the figures', () => {
    const text = describeReport(
      chaosReport(fakeRun(), {
        invariant: 'no-leak',
        steps: schedule.steps.slice(1),
        stepsBefore: 2,
        stepsAfter: 1,
        runs: 4,
        exhausted: false,
        confirmed: true,
      }),
    ).join('\n');
    expect(text).toContain('seed 7, topology default, lab chaos-abc123: 2 step(s) ran; settled at +4.000 s, converged at +5.200 s');
    expect(text).toContain('1 violation(s):\n  no-leak at +2.500 s: {"flow":"udp default/client-1 -> 8.8.8.8"');
    expect(text).toContain('shrunk (no-leak): 2 -> 1 step(s) in 4 run(s); confirmed by a re-run\n  +2.000 s for 1.500 s: kill node-1');
    expect(text).toContain('total 71000 ms');
  });

  it('artifact ids and scenario file names', () => {
    expect(artifactId(schedule, new Date('2025-01-02T03:04:05.678Z'))).toBe('seed-7-20250102T030405Z');
    expect(artifactId({}, new Date('2025-01-02T03:04:05.678Z'))).toBe('schedule-20250102T030405Z');
    expect(scenarioFileName('seed-7-20250102T030405Z')).toBe('chaos-seed-7-20250102T030405Z.test.ts');
  });
});

describe('the regression scenario', () => {
  const run = fakeRun();
  const text = regressionScenario({
    id: 'seed-7-20250102T030405Z',
    schedule,
    violation: relativeViolation(run.violations[0]!, run.startedAt),
    topologyArg: 'default',
    bounds: DEFAULT_BOUNDS,
    command: 'egresslab chaos --seed 7 --steps 2 */ injected',
  });
  const dir = join(projectRoot(), 'scenarios', 'regressions');

  it('replays the schedule and asserts the invariant it broke', () => {
    expect(text).toContain('const run = await runSchedule(schedule, { topology: topologyFromArg("default"), bounds: ');
    expect(text).toContain('expect(run.violations.filter((v) => v.invariant === "no-leak")).toEqual([]);');
    expect(text).toContain(' *   +2.000 s for 1.500 s: kill node-1');
    // a "*/" in what it quotes cannot end its header comment early
    expect(text).toContain('--steps 2 *\\/ injected');
  });

  it("type-checks where it is meant to go (scenarios/regressions/), against the project's test config", () => {
    // a virtual file in scenarios/regressions/ (its relative imports resolve from there); everything else from disk
    const file = join(dir, scenarioFileName('seed-7-20250102T030405Z'));
    const config = ts.getParsedCommandLineOfConfigFile(
      join(projectRoot(), 'tsconfig.test.json'),
      {},
      {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (d) => {
          throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
        },
      },
    )!;
    const host = ts.createCompilerHost(config.options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) => (name === file ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, ...rest));
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => name === file || fileExists(name);
    // the project's own declaration files (e.g. harness/lab/tar-stream.d.ts) come with it, as in npm run typecheck
    const rootNames = [file, ...config.fileNames.filter((f) => f.endsWith('.d.ts'))];
    const program = ts.createProgram({ rootNames, options: { ...config.options, noEmit: true }, host });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(problems).toEqual([]);
    // and a broken one does not: the check can fail
    const broken = text.replace('runSchedule(schedule,', 'runSchedule(42,');
    host.getSourceFile = (name, lang, ...rest) => (name === file ? ts.createSourceFile(name, broken, lang) : getSourceFile(name, lang, ...rest));
    const bad = ts.createProgram({ rootNames, options: { ...config.options, noEmit: true }, host });
    expect(ts.getPreEmitDiagnostics(bad).length).toBeGreaterThan(0);
  }, 60_000);
});
