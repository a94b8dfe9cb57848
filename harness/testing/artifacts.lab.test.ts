/**
 * Artifacts of a failing scenario, against a real lab: a deliberately failing check (the foundation
 * lab has no gateway, so nothing leaves as 192.168.1.100) run inside withArtifacts, which must leave
 * a folder with each node's rules, routes, conntrack, logs, the captures and the timeline SVG, and
 * put its path in the failure message. The failure is expected: this test passes.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import './setup.js';
import type { Lab } from '../lab/lab.js';
import { startTestLab } from './lab.js';
import { artifactsOnFailure, collectDiagnostics, recordTimeline, withArtifacts, type DiagnosticsReport } from './artifacts.js';
import { pollUntil } from '../util/poll.js';
import { artifactsDir } from '../util/paths.js';
import { LEAK_COLOUR } from '../report/timeline-svg.js';

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('foundation', 'art');
});
afterAll(async () => {
  await lab?.down();
});

const read = (dir: string, f: string) => readFileSync(join(dir, f), 'utf8');

describe('artifacts on failure', () => {
  it("withArtifacts: a failing check leaves a folder with every node's state, captures and the timeline, and says where", async () => {
    const cap = await lab.capture('node-1', 'eth0', { filter: 'udp' });
    const p = await lab.continuousProbe('alice/frontend-1', '8.8.8.8', { proto: 'udp', intervalMs: 20, timeoutMs: 200 });
    await pollUntil(async () => (await p.records()).length >= 10, { what: '10 probe packets settled', timeoutMs: 15_000, intervalMs: 50 });
    const timeline = await p.stop();
    await cap.stop();

    const error = await withArtifacts(lab, 'deliberately failing: egress via 192.168.1.100', async () => {
      recordTimeline('alice/frontend-1 udp to the internet', timeline, ['192.168.1.100']);
      // No gateway in this lab: the internet sees the pod IP. This must fail.
      expect(timeline).toHaveNoLeaks(['192.168.1.100']);
    }).then(
      () => undefined,
      (e: unknown) => e as Error & { artifacts?: DiagnosticsReport },
    );

    expect(error).toBeInstanceOf(Error);
    expect(error!.message).toContain('to be observed with a source other than 192.168.1.100');
    const m = /\n {2}artifacts: (\S+) \((\d+) files in (\d+) ms/.exec(error!.message);
    expect(m, error!.message).not.toBeNull();
    const report = error!.artifacts!;
    const dir = report.dir;
    expect(dir).toBe(join(artifactsDir(), lab.id, 'deliberately-failing-egress-via-192-168-1-100'));
    expect(existsSync(dir)).toBe(true);
    process.stderr.write(
      `diagnostics of lab ${lab.id}: ${report.files.length} files in ${report.durationMs} ms; problems: ${JSON.stringify(report.problems)}\n`,
    );

    // node-1: rules, addresses, routes (other nodes' pod CIDRs), policy rules, neighbours, conntrack.
    expect(read(dir, 'node-1/nft-ruleset.txt')).not.toMatch(/^\(exit [1-9]/);
    expect(existsSync(join(dir, 'node-1/iptables-save.txt'))).toBe(true);
    expect(read(dir, 'node-1/ip-addr.txt')).toContain('192.168.1.1/24');
    expect(read(dir, 'node-1/ip-route.txt')).toContain('10.10.11.0/24 via 192.168.1.2');
    expect(read(dir, 'node-1/ip-rule.txt')).toMatch(/from all lookup main/);
    expect(existsSync(join(dir, 'node-1/ip-neigh.txt'))).toBe(true);
    expect(existsSync(join(dir, 'node-1/conntrack.txt'))).toBe(true);
    // Pods' namespaces.
    const podRoutes = readdirSync(join(dir, 'node-1')).filter((f) => /^netns-.*-ip-route\.txt$/.test(f));
    expect(podRoutes.length).toBeGreaterThanOrEqual(2);
    expect(podRoutes.map((f) => read(join(dir, 'node-1'), f)).join('\n')).toContain('default via 169.254.1.1');
    // The router, the switch, every node; the endpoints' observation logs.
    for (const k of ['node-2', 'node-3', 'cp-1', 'router', 'switch', 'vpc']) expect(existsSync(join(dir, k, 'ip-route.txt')), k).toBe(true);
    expect(read(dir, 'router/ip-route.txt')).toContain('10.10.10.0/24 via 192.168.1.1');
    expect(read(dir, 'internet/files/observed.jsonl')).toContain('"src":"10.10.10.1"');
    // Managed process logs (the capture's tcpdump ran as one).
    expect(readdirSync(join(dir, 'node-1/files')).some((f) => f.endsWith('.log'))).toBe(true);
    // The capture taken during the test, and the timeline as JSON and SVG with the leaks in red.
    expect(readdirSync(join(dir, 'captures')).some((f) => f.startsWith('node-1-eth0-') && f.endsWith('.pcap'))).toBe(true);
    const svg = read(dir, 'timelines/alice-frontend-1-udp-to-the-internet.svg');
    expect(svg).toContain('<svg');
    expect(svg).toContain(LEAK_COLOUR);
    expect(svg).toContain('10.10.10.1');
    expect(JSON.parse(read(dir, 'timelines/alice-frontend-1-udp-to-the-internet.json')).packets.length).toBe(timeline.packets.length);
    expect(existsSync(join(dir, 'timelines.svg'))).toBe(true);
    expect(read(dir, 'SUMMARY.txt')).toContain('node-1/nft-ruleset.txt');
    expect(read(dir, 'index.html')).toContain('timelines.svg');
    // This lab runs no cluster: no API folder, and that is not a problem.
    expect(existsSync(join(dir, 'api'))).toBe(false);
  });

  it("the onTestFailed hook appends the folder to the failing test's errors", async () => {
    const errors = [{ name: 'AssertionError', message: 'expected 1 to be 2', stack: 'AssertionError: expected 1 to be 2\n    at x.test.ts:1:1' }];
    const ctx = { task: { name: 'fake', fullTestName: 'hook > a fake failure', result: { state: 'fail', errors } } };
    await artifactsOnFailure(() => lab, Date.now())(ctx as never);
    expect(errors[0]!.message).toMatch(/^expected 1 to be 2\n {2}artifacts: \S+hook-a-fake-failure \(\d+ files in \d+ ms/);
    expect(errors[0]!.stack).toMatch(/expected 1 to be 2\n {2}artifacts: .*\n {4}at x\.test\.ts/);
    const dir = /artifacts: (\S+)/.exec(errors[0]!.message)![1]!;
    expect(existsSync(join(dir.startsWith('/') ? dir : join(process.cwd(), dir), 'node-1', 'nft-ruleset.txt'))).toBe(true);
  });

  it('a node that is down leaves UNAVAILABLE.txt instead of failing the collection', async () => {
    await lab.faults.kill('node-3');
    try {
      const report = await collectDiagnostics(lab, join(artifactsDir(), lab.id, 'node-3-down'));
      expect(report.problems.some((p) => p.startsWith('node-3:'))).toBe(true);
      expect(readFileSync(join(report.dir, 'node-3/UNAVAILABLE.txt'), 'utf8')).toMatch(/container state: exited/);
      expect(report.files).toContain('node-1/ip-route.txt');
    } finally {
      await lab.faults.start('node-3');
    }
  });
});
