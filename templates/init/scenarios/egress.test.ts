/**
 * Egress NAT, proven at the far end (written by `npx egresslab init`: make it yours).
 *
 *  1. SNAT: a pod that no egress policy selects sends to a public address (8.8.8.8, answered by the
 *     lab's fake internet); the far end observes the packet with the address of the pod's node
 *     (ip-masq-agent: everything outside the non-masquerade ranges is masqueraded), and the reply
 *     comes back to the pod.
 *  2. Failover: with lab/gateway.yaml applied, a selected pod leaves as the egress IP 192.168.1.100.
 *     The node holding that IP is killed (SIGKILL) under a continuous UDP probe: the IP moves to
 *     another node, traffic resumes under the SAME egress IP, and no packet is ever observed with
 *     another source (zero leaks: never the node IP, never the pod IP).
 *
 * The lab (lab/topology.yaml) comes up in beforeAll and is removed in afterAll. A failing test
 * leaves its diagnostics (rulesets, routes, conntrack, API objects, logs, timelines) under
 * artifacts/<lab>/<test>/ and prints that path with the failure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeFailover, gatewayOf, pollUntil, summarize, workerHolder, type KubeClient, type Lab } from 'egresslab';
import { recordArtifactsOnFailure, recordTimeline, startTestLab } from 'egresslab/vitest';

/** The egress IP of the policy in lab/gateway.yaml. */
const EGRESS_IP = '192.168.1.100';
/** A public address: the lab's internet answers it and records the source it saw. */
const INTERNET = '8.8.8.8';

let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  lab = await startTestLab('lab/topology.yaml', 'egress'); // lab id egress-<random>
  api = await lab.api(); // the lab's Kubernetes API (admin)
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('egress NAT', () => {
  it('SNAT: a pod reaching a public address is seen with its node IP', async () => {
    const pod = 'default/client-1';
    const r = await lab.probe(pod, INTERNET, { proto: 'udp' });
    expect(r).toBeSeenFrom(lab.nodeAddress(pod));
    expect(r).toGetReply();
  });

  it('failover: killing the egress IP holder moves the IP, traffic resumes under it, zero leaks', async () => {
    await lab.apply('lab/gateway.yaml');
    // the node that holds the egress IP: always a worker (breaking the control plane would take
    // the API server down with it)
    const holder = await workerHolder(lab, api, EGRESS_IP);
    const pod = ['shop/web-1', 'shop/web-2'].find((p) => lab.pod(p).node !== holder)!;
    // the policy is in force: the far end sees the egress IP, and the reply comes back
    await pollUntil(() => lab.probe(pod, INTERNET, { proto: 'udp' }), {
      what: `${pod} -> ${INTERNET} seen from ${EGRESS_IP}`,
      timeoutMs: 30_000,
      intervalMs: 200,
      accept: (r) => r.observedSource === EGRESS_IP && r.replyReceived,
    });

    const probe = await lab.continuousProbe(pod, INTERNET, { proto: 'udp', intervalMs: 20, timeoutMs: 300 });
    let newHolder = '';
    try {
      await pollUntil(() => probe.answeredAfter(0), { what: '10 answered packets before the kill', timeoutMs: 15_000, accept: (n) => n >= 10 });
      await lab.faults.kill(holder);
      try {
        const moved = await pollUntil(() => gatewayOf(api), {
          what: `${EGRESS_IP} to move off ${holder}`,
          timeoutMs: 30_000,
          intervalMs: 50,
          accept: (g) => !!g.assignments[EGRESS_IP] && g.assignments[EGRESS_IP] !== holder,
        });
        newHolder = moved.assignments[EGRESS_IP]!;
        const movedAt = Date.now();
        await pollUntil(() => probe.answeredAfter(movedAt), {
          what: `20 answered packets after ${EGRESS_IP} moved to ${newHolder}`,
          timeoutMs: 30_000,
          accept: (n) => n >= 20,
        });
      } finally {
        await lab.faults.start(holder); // undo the fault, whatever happened
      }
    } finally {
      await probe.stop().catch(() => undefined);
    }
    // kept under artifacts/ (JSON and SVG) when the test fails
    const t = recordTimeline(`udp ${pod} to ${INTERNET} through the kill of ${holder}`, await probe.stop(), [EGRESS_IP]);
    console.log(`${holder} killed, ${EGRESS_IP} moved to ${newHolder}: ${describeFailover(summarize(t, [EGRESS_IP]))}`);
    expect(newHolder).not.toBe(holder);
    expect(t).toFailOverWithin(5_000);
    expect(t).toHaveNoLeaks([EGRESS_IP]);
    expect(t).toBeObservedOnlyFrom([EGRESS_IP]);
  });
});
