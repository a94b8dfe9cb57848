/**
 * Chaos regression: a node that boots again sends nothing of its pods beyond the cluster before its
 * agent has programmed them.
 *
 * Found by: the explorer's bench, seed 1419845312 (8 steps; shrunk to 6, the leak needs its
 * timing): node-2 killed for 3.2 s, then partitioned inbound while the controller restarted. When
 * node-2 booted again its pods were wired before its agent ran; paul/frontend-2's stream had been
 * closed, the far end still sent to it (de-NATed by the holder of its egress IP and forwarded to
 * node-2), and the pod answered with an RST that left node-2 with the pod IP 10.10.11.1: nothing
 * masqueraded or steered it yet (agent started ~0.2 s later, masquerade programmed ~1.8 s later).
 * Any packet a pod sends in that window does the same: a UDP probe, a new connection's SYN.
 * The node's boot hook (written by its agent, run by its init before the agent) fenced only the
 * OTHER nodes' pod traffic. Fixed: the hook also installs a pod guard (agent/gateway/render.ts
 * renderBootGuard: this node's pods reach only the other nodes' pods through the uplink), which
 * the agent lifts once its gateway and masquerade modules have programmed the node
 * (agent/node/agent.ts liftBootGuard).
 *
 * Deterministic here: node-2 is killed, booted by its init without its programs (faults.boot), and
 * its pod probes the internet over UDP and TCP and a pod of node-1. Judged on the internet's capture
 * (every packet to 8.8.8.8 from the kill until node-2's pod is seen with its node IP again): none
 * with the pod's IP; the probe to node-1's pod was answered (the guard keeps the cluster's pods
 * reachable); once started, the pod leaves with node-2's IP. On the agent before the fix the
 * internet saw the UDP probe and the TCP SYNs from 10.10.11.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { processRunning } from '../../harness/lab/process.js';
import { AGENT_PROCESS } from '../../harness/cluster/cluster.js';
import type { CaptureResult } from '../../harness/capture/capture.js';
import { pollUntil } from '../../harness/util/poll.js';
import { NODE_BOOT_HOOK_DIR } from '../../harness/lab/boot.js';
import { nodeIP, podIP, untilSeenFrom } from '../masquerade/masq-kit.js';

const NODE = 'node-2';
const POD = 'paul/frontend-2';
const PEER = 'alice/frontend-1';
const INTERNET = '8.8.8.8';

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('default', 'reboot');
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('chaos regression: a node booting again', () => {
  it("holds its pods' traffic beyond the cluster until its agent has programmed them; then they leave with the node IP", async () => {
    expect(lab.pod(POD).node).toBe(NODE);
    // the premise: node-2's agent has written its boot hook (at its first apply)
    await pollUntil(async () => (await lab.exec(NODE, ['sh', '-c', `ls ${NODE_BOOT_HOOK_DIR}/*.sh`], { check: false })).exitCode === 0, {
      what: `${NODE}'s boot hook in ${NODE_BOOT_HOOK_DIR}`,
      timeoutMs: 10_000,
      intervalMs: 100,
    });

    await lab.faults.kill(NODE);
    const cap = await lab.capture('internet', 'eth0', { filter: `ip and dst host ${INTERNET}` });
    let booted: { agentRunning: boolean; probes: Awaited<ReturnType<Lab['probe']>>[]; peer: Awaited<ReturnType<Lab['probe']>> } | undefined;
    let after: number | undefined;
    let got: CaptureResult | undefined;
    try {
      await lab.faults.boot(NODE);
      try {
        const agentRunning = await processRunning(lab, NODE, AGENT_PROCESS);
        const probes = [await lab.probe(POD, INTERNET, { proto: 'udp', timeoutMs: 1000 }), await lab.probe(POD, INTERNET, { proto: 'tcp', timeoutMs: 1500 })];
        const peer = await lab.probe(POD, podIP(lab, PEER), { proto: 'udp', timeoutMs: 2000 });
        booted = { agentRunning, probes, peer };
      } finally {
        await lab.faults.start(NODE); // even when a probe failed: the capture must see the pod come back
      }
      after = await untilSeenFrom(lab, POD, INTERNET, nodeIP(lab, POD), 10_000);
    } finally {
      got = await cap.stop();
    }

    expect(booted?.agentRunning, 'the premise: booted by its init, the agent not started').toBe(false);
    for (const p of booted!.probes) {
      // unanswered ('timeout'), nothing else: a probe that failed to run proves nothing
      expect([p.error, p.replyReceived], `${p.proto} probe`).toEqual(['timeout', false]);
      expect(p.observedSource, `${p.proto} probe from ${POD} while ${NODE}'s agent was not running`).toBeUndefined();
    }
    const peer = booted!.peer;
    expect([peer.error, peer.replyReceived, peer.observedSource], `udp probe to ${PEER}`).toEqual([undefined, true, podIP(lab, POD)]);
    expect(after).toBeGreaterThanOrEqual(0);

    const fromPod = got!.packets.filter((p) => p.ip?.src === podIP(lab, POD));
    const fromNode = got!.packets.filter((p) => p.ip?.src === nodeIP(lab, POD));
    expect(fromPod.map((p) => `${p.ip!.src} -> ${p.ip!.dst} proto ${p.ip!.proto}`)).toEqual([]);
    expect(fromNode.length, 'the witness: the capture saw node-2 pod traffic after the agent started').toBeGreaterThan(0);
  }, 180_000);
});
