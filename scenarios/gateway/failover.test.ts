/**
 * Failover of the egress gateway (SPEC 2 rule 4, issue 6): continuous UDP, TCP and ICMP probes from
 * matched pods (on every node but the broken one) to 8.8.8.8 while the holder of 192.168.1.100 is
 * killed (SIGKILL), stopped, paused (hung) and partitioned. From the timelines: traffic resumes
 * under the SAME egressSourceIP on a new holder, the interruption is bounded (generous 5 s here;
 * the 1 s goal is measured by bench/gateway-failover.ts), and ZERO packets are ever observed with
 * another source (fail-closed: never the node IP, never the pod IP). The second policy's traffic
 * (192.168.1.101, to 8.8.4.4, on another holder) is untouched. The lab's default lease (600 ms)
 * is kept: this file is about failover speed.
 *
 * Fixture: fixtures/manifests/gateway/failover.yaml.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { recordArtifactsOnFailure, recordTimeline } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import { outages, sourceCounts, type Timeline } from '../../harness/probe/timeline.js';
import type { Proto } from '../../harness/inlab/protocol.js';
import type { KubeClient } from '../../controller/client/client.js';
import { allUp, breakNode as breakHolder, gw, restoreNode as restoreHolder, type NodeFault, startFailoverLab, waitIPOff, waitIPOn, waitSeenFrom } from './gateway.js';
import { workerHolder } from '../../harness/cluster/holder.js';

const IP_A = '192.168.1.100';
const IP_B = '192.168.1.101';
const DST_A = '8.8.8.8';
const DST_B = '8.8.4.4';
const MATCHED = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3', 'default/client-1'];

let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  ({ lab, api } = await startFailoverLab('gwfo'));
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

type Fault = NodeFault;
const breakNode = (fault: Fault, node: string) => breakHolder(lab, fault, node);
const restoreNode = (fault: Fault, node: string) => restoreHolder(lab, fault, node);


function summary(name: string, t: Timeline): string {
  const o = outages(t);
  const longest = o.reduce((m, x) => Math.max(m, x.durationMs), 0);
  return `${name}: ${t.packets.length} packets, longest outage ${longest} ms (${o.map((x) => `${x.lost} lost/${x.durationMs} ms`).join(', ') || 'none'}), sources ${JSON.stringify(sourceCounts(t))}`;
}

async function faultCycle(fault: Fault): Promise<void> {
  // a loaded 2-core machine may make a node miss its 600 ms lease now and then: wait for all Up
  // (the controller runs on cp-1: breaking cp-1 would be a controller outage, not a failover, so
  // an IP that flaps onto cp-1 is first moved to a worker)
  const before = await pollUntil(
    async () => {
      const h = await workerHolder(lab, api, IP_A);
      return { h, g: await gw(api) };
    },
    { what: `every node Up, both IPs assigned, ${IP_A} on a worker`, timeoutMs: 60_000, intervalMs: 50, accept: ({ h, g }) => allUp(g) && g.assignments[IP_A] === h && !!g.assignments[IP_B] },
  ).then((x) => x.g);
  const holder = before.assignments[IP_A]!;
  const holderB = before.assignments[IP_B]!;
  // after flaps both IPs may sit on one node (rule 5: no reshuffle); then B moves too
  const bUntouched = holderB !== holder;
  await waitSeenFrom(lab, MATCHED.find((p) => lab.pod(p).node !== holder)!, DST_A, IP_A);
  // matched pods that survive the fault: on every other node
  const pods = MATCHED.filter((p) => lab.pod(p).node !== holder);
  const flows: { name: string; proto: Proto; from: string; to: string; ip: string }[] = [];
  const seenNodes = new Set<string>();
  for (const p of pods) {
    if (seenNodes.has(lab.pod(p).node)) continue;
    seenNodes.add(lab.pod(p).node);
    flows.push({ name: `${fault} udp ${p} -> ${DST_A}`, proto: 'udp', from: p, to: DST_A, ip: IP_A });
  }
  flows.push({ name: `${fault} tcp ${pods[0]} -> ${DST_A}`, proto: 'tcp', from: pods[0]!, to: DST_A, ip: IP_A });
  flows.push({ name: `${fault} icmp ${pods[pods.length - 1]} -> ${DST_A}`, proto: 'icmp', from: pods[pods.length - 1]!, to: DST_A, ip: IP_A });
  flows.push({ name: `${fault} udp ${pods[0]} -> ${DST_B} (other IP)`, proto: 'udp', from: pods[0]!, to: DST_B, ip: IP_B });
  const probes = await Promise.all(flows.map((f) => lab.continuousProbe(f.from, f.to, { proto: f.proto, intervalMs: 20, timeoutMs: 300 })));
  let timelines: Timeline[] = [];
  let newHolder = '';
  try {
    await pollUntil(async () => Math.min(...(await Promise.all(probes.map((p) => p.answeredAfter(0))))), { what: '10 answered packets on every probe before the fault', timeoutMs: 15_000, accept: (n) => n >= 10 });
    const tFault = Date.now();
    await breakNode(fault, holder);
    try {
      const g = await pollUntil(() => gw(api), { what: `${IP_A} to move off ${holder}`, timeoutMs: 15_000, intervalMs: 20, accept: (s) => !!s.assignments[IP_A] && s.assignments[IP_A] !== holder });
      newHolder = g.assignments[IP_A]!;
      // answered packets count only once the new holder holds the IP: a paused holder's kernel keeps
      // forwarding (and answering) until then, which would end the wait before the switch-over
      await waitIPOn(lab, newHolder, IP_A);
      const tTaken = Date.now();
      await pollUntil(async () => Math.min(...(await Promise.all(probes.map((p) => p.answeredAfter(Math.max(tFault + 100, tTaken)))))), {
        what: `20 answered packets on every probe after the ${fault} of ${holder}`,
        timeoutMs: 15_000,
        accept: (n) => n >= 20,
      });
    } finally {
      await restoreNode(fault, holder);
    }
    // a returning holder (unpaused, healed) first drops the IP it no longer holds
    await waitIPOff(lab, holder, IP_A);
    const tBack = Date.now();
    await pollUntil(async () => Math.min(...(await Promise.all(probes.map((p) => p.answeredAfter(tBack + 100))))), {
      what: `10 answered packets on every probe after ${holder} is back`,
      timeoutMs: 20_000,
      accept: (n) => n >= 10,
    });
    timelines = await Promise.all(probes.map((p) => p.stop()));
  } finally {
    await Promise.all(probes.map((p) => p.stop().catch(() => undefined)));
  }
  // the node is back (Up) and the assignment did not move back (rule 5)
  const after = await pollUntil(() => gw(api), { what: `every node Up again after the ${fault} of ${holder}`, timeoutMs: 30_000, intervalMs: 50, accept: (s) => allUp(s) });
  await waitIPOn(lab, after.assignments[IP_A]!, IP_A);

  const lines = flows.map((f, i) => summary(f.name, timelines[i]!));
  console.log(`[${fault}] ${IP_A}: ${holder} -> ${newHolder} (${IP_B} on ${holderB}) (back: ${after.assignments[IP_A]})\n  ${lines.join('\n  ')}`);
  expect(newHolder).not.toBe(holder);
  // (rule 5, no move back when the node returns, holds too; but a loaded node missing its 600 ms
  // lease moves the IP again meanwhile, so it is logged above rather than asserted here)
  flows.forEach((f, i) => {
    const t = recordTimeline(flows[i]!.name, timelines[i]!, [f.ip]);
    expect(t).toHaveNoLeaks([f.ip]);
    expect(t).toBeObservedOnlyFrom([f.ip]);
    if (f.ip === IP_A) {
      expect(t).toFailOverWithin(5_000);
      // traffic resumed under the same egress IP: the last answered packets were seen from it
      const tail = t.packets.filter((p) => p.replied).slice(-5);
      expect(tail.every((p) => p.observedSources.length === 0 || p.observedSources.every((s) => s === IP_A))).toBe(true);
    } else if (bUntouched) {
      // the other policy's traffic is untouched (its holder was not broken)
      expect(t).toFailOverWithin(1_000);
    } else {
      expect(t).toFailOverWithin(5_000);
    }
  });
}

describe('failover of the egress gateway holder, zero leaks', () => {
  it('SIGKILL of the holder', async () => {
    await faultCycle('kill');
  });
  it('clean stop of the holder', async () => {
    await faultCycle('stop');
  });
  it('hung holder (paused)', async () => {
    await faultCycle('pause');
  });
  it('holder cut off the segment (partition)', async () => {
    await faultCycle('partition');
  });
});
