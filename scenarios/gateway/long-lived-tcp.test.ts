/**
 * A long-lived TCP connection through the egress gateway while its holder fails (issue 6). One
 * stream probe (ONE connection, a line every 50 ms, each answered with the source IP:port the far
 * end saw) from a matched pod on each surviving worker to 8.8.8.8 while the holder of
 * 192.168.1.100 is killed (SIGKILL), stopped cleanly, paused (hung) or cut off the segment. Asserted per fault:
 *   - the SAME connection carries on after the failover: never broken (no RST/error), never
 *     replaced, same local port, and the far end saw the same source IP AND port before and after;
 *   - the interruption is bounded (5 s here; bench/gateway-failover.ts measures the 1 s goal);
 *   - zero leaks: every client-to-server segment the internet's link carried for these flows (a
 *     capture there: the responder only logs SYNs) came from 192.168.1.100.
 * The agents run with their defaults (conntrack sync on: docs/gateway.md); the lab's default lease
 * (600 ms) is kept: this file is about how long the connection is interrupted.
 * scenarios/gateway/conntrack-sync.test.ts compares sync on/off with many connections.
 *
 * Fixture: fixtures/manifests/gateway/failover.yaml.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import { NODE_FAULTS } from '../../harness/faults/faults.js';
import { workerHolder } from '../../harness/cluster/holder.js';
import type { Timeline } from '../../harness/probe/timeline.js';
import { describeSegment, segmentLeaks, startStreams, stopAndSegments, streamOutcome, survivalReport, type Segment } from '../../harness/probe/stream.js';
import {
  allUp,
  breakNode as breakHolder,
  expectSameConnection,
  streamsAnsweredOrBroken,
  gw,
  restoreNode as restoreHolder,
  type NodeFault,
  startFailoverLab,
  waitIPOff,
  waitIPOn,
  waitMovedOff,
  waitSeenFrom,
} from './gateway-kit.js';

const IP_A = '192.168.1.100';
const IP_B = '192.168.1.101';
const DST = '8.8.8.8';
const PORT = 7007;
const MATCHED = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3'];

let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  ({ lab, api } = await startFailoverLab('gwlt'));
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

type Fault = NodeFault;
const breakNode = (fault: Fault, node: string) => breakHolder(lab, fault, node);
const restoreNode = (fault: Fault, node: string) => restoreHolder(lab, fault, node);

interface Run {
  holder: string;
  newHolder: string;
  labels: string[];
  timelines: Timeline[];
  segments: Segment[];
}

async function streamThroughFault(fault: Fault): Promise<Run> {
  // the controller runs on cp-1: the broken holder is always a worker
  const holder = await pollUntil(() => workerHolder(lab, api, IP_A), {
    what: `every node Up and ${IP_A} on a worker`,
    timeoutMs: 60_000,
    intervalMs: 50,
  });
  await pollUntil(() => gw(api), {
    what: 'every node Up, both IPs assigned',
    timeoutMs: 30_000,
    intervalMs: 50,
    accept: (g) => allUp(g) && !!g.assignments[IP_A] && !!g.assignments[IP_B],
  });
  const pods = MATCHED.filter((p) => lab.pod(p).node !== holder);
  await waitSeenFrom(lab, pods[0]!, DST, IP_A);
  const labels = pods.map((p) => `${fault}: ${p} (${lab.pod(p).node}) -> ${DST}:${PORT}`);
  const cap = await lab.capture('internet', 'eth0', { filter: `tcp and dst host ${DST} and dst port ${PORT}` });
  const streams = await startStreams(
    lab,
    pods.map((p) => ({ from: p, to: DST, port: PORT })),
    { intervalMs: 50, timeoutMs: 300 },
  );
  let newHolder = '';
  let timelines: Timeline[] = [];
  let segments: Segment[] = [];
  try {
    await pollUntil(async () => Math.min(...(await Promise.all(streams.map((p) => p.answeredAfter(0))))), {
      what: '10 answered lines on every stream before the fault',
      timeoutMs: 15_000,
      accept: (n) => n >= 10,
    });
    const tFault = Date.now();
    await breakNode(fault, holder);
    try {
      newHolder = await waitMovedOff(api, IP_A, holder);
      // count answers only once the new holder holds the IP (a paused holder's kernel keeps forwarding until then)
      await waitIPOn(lab, newHolder, IP_A);
      const tTaken = Date.now();
      // every stream either carries traffic again or reports its break (no waiting on a dead one)
      await streamsAnsweredOrBroken(streams, Math.max(tFault + 100, tTaken), 20, `after the ${fault} of ${holder}`);
    } finally {
      await restoreNode(fault, holder);
    }
    // the streams keep running while the old holder returns and drops the IP it no longer holds
    await waitIPOff(lab, holder, IP_A);
    const tBack = Date.now();
    await streamsAnsweredOrBroken(streams, tBack + 100, 5, `after ${holder} is back`);
    timelines = await Promise.all(streams.map((p) => p.stop()));
    segments = await stopAndSegments(cap, DST, PORT);
  } finally {
    await Promise.all(streams.map((p) => p.stop().catch(() => undefined)));
    await cap.stop().catch(() => undefined);
  }
  await pollUntil(() => gw(api), { what: `every node Up again after the ${fault} of ${holder}`, timeoutMs: 30_000, intervalMs: 50, accept: (s) => allUp(s) });
  return { holder, newHolder, labels, timelines, segments };
}

function check(fault: Fault, r: Run): void {
  const outcomes = r.timelines.map((t, i) => streamOutcome(r.labels[i]!, t));
  const report = survivalReport(outcomes);
  const leaks = segmentLeaks(r.segments, [IP_A]);
  console.log(
    `[${fault}] ${IP_A}: ${r.holder} -> ${r.newHolder}; long-lived TCP ${report.text}\n  segments at the internet by source: ${JSON.stringify(leaks.sources)}`,
  );
  expect(r.newHolder).not.toBe(r.holder);
  r.timelines.forEach((t, i) => {
    // the same connection carried on: not broken, not replaced, same local port, same endpoint
    expectSameConnection(t, outcomes[i]!, IP_A);
    expect(t).toFailOverWithin(5_000);
    expect(t).toHaveNoLeaks([IP_A]);
    expect(t).toBeObservedOnlyFrom([IP_A]);
  });
  expect(leaks.leaked.map(describeSegment), 'segments that reached the internet with another source').toEqual([]);
  expect(r.segments.length).toBeGreaterThan(0);
}

// The hung holder (pause) is the subtle one: a paused holder's kernel keeps forwarding and
// de-NATing, so the new holder's OWN pod receives replies already de-NATed by it, which must not be
// picked up against the binding the new holder committed for the same connection
// (agent/gateway/render.ts strayReplyDrop; this case reset the connection in 4 of 5 runs on a loaded
// machine before it).
describe('a long-lived TCP connection through the gateway survives the failover of its holder', () => {
  it.each([NODE_FAULTS.kill, NODE_FAULTS.stop, NODE_FAULTS.pause, NODE_FAULTS.partition])(
    '$title of the holder: the same connection carries on',
    async (fault) => {
      check(fault.name, await streamThroughFault(fault.name));
    },
  );
});
