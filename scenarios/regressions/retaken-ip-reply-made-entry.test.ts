/**
 * Chaos regression: a node that takes back the floating IP of its own pod's policy SNATs the pod's
 * connection to it again, even when its conntrack entry of the connection was made by the far end's
 * reply while another node held the IP.
 *
 * Found by: the 100-schedule bench, seed 994173047 (no-leak x4 and convergence x2; not reproduced by
 * the shrink's re-runs: the order of two packets decides it), on the agent of f94996a. node-1 released
 * 192.168.1.100 (its pod alice/frontend-1's pair local -> routed to node-2: flushed); the next packet
 * of the pod's stream node-1 saw was the far end's answer, de-NATed by node-2, and loose pickup made
 * node-1's entry the other way round (`src=8.8.8.8 dst=10.10.10.1 sport=7007 dport=59580` in the
 * evidence). node-1 took the IP back 3 s later (routed -> local): its flush of the pair matched only
 * entries whose original source was the pod, the reversed entry stayed (and the binding node-1 had
 * kept for the retake could not be loaded over it: same tuple), and the pod's segments, in its reply
 * direction, were never SNATed: they reached the internet from 10.10.10.1 four times over 26 s.
 * Fixed with seed 994173003's finding: a pair's flush deletes both orientations
 * (agent/gateway/render.ts conntrackFlushArgs; reply-made-entry-no-leak.test.ts is the other case).
 *
 * Deterministic here: alice/frontend-1 (node-1) opens one connection from a fixed port and sends a
 * line; the internet holds back its answer. node-1 is cut off until 192.168.1.100 is on node-2, then
 * healed; the internet lets its answer go: it comes back through node-2 and makes node-1's entry
 * reversed (checked, as the premise). node-2 is then cut off until the IP is back on node-1, and
 * healed; the client writes a line every 300 ms. Judged on the internet's capture: no packet from the
 * pod IP; the pod's lines after the take from 192.168.1.100 and the connection's own port, and
 * answered (the client's log).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { clusterApi } from '../../harness/cluster/access.js';
import { stopProcess } from '../../harness/lab/process.js';
import { pollUntil } from '../../harness/util/poll.js';
import type { DecodedPacket } from '../../harness/pcap/pcap.js';
import { applySeed } from '../gateway/gateway-kit.js';
import { clientLog as kitClientLog, linesWritten, moveIPByCutOff, reverseEntryOfHeldConnection, seedHeldConnection } from './held-answer-kit.js';

const CONNECTION = seedHeldConnection('retake-client', 41237);
const {
  pod: POD,
  podIP: POD_IP,
  node: NODE,
  other: OTHER,
  ip: IP,
  far: INTERNET,
  port: PORT,
  localPort: RETAKE_PORT,
  client: CLIENT,
  log: LOG,
  go: GO,
} = CONNECTION;

let lab: Lab;
let api: KubeClient;
beforeAll(async () => {
  lab = await startTestLab('default', 'retake');
  api = await clusterApi(lab, { timeoutMs: 5000 });
  // the seed: 192.168.1.100-102, one per worker (node-1 first); policy egress (role=frontend) -> 192.168.1.100
  await applySeed(api);
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

const clientLog = (): Promise<string> => kitClientLog(lab, NODE, LOG);

describe('chaos regression: a node taking back the IP of its own pod, its entry made by a reply', () => {
  it("SNATs the pod's connection to the egress IP again: the take's flush removes the entry the reply made", async () => {
    const cap = await lab.capture('internet', 'eth0', { filter: `tcp and port ${PORT}` });
    let got: DecodedPacket[] = [];
    let retakenAt = 0;
    try {
      // the IP to node-2; the held answer comes back through it and makes node-1's entry reversed
      await reverseEntryOfHeldConnection(lab, api, CONNECTION);
      // the IP back to node-1 (node-2 cut off until it is there): its pod's pair route -> local
      retakenAt = Date.now();
      await moveIPByCutOff(lab, api, OTHER, NODE, IP);
      const answersBefore = ((await clientLog()).match(/^data /gm) ?? []).length;
      await lab.exec(NODE, ['touch', GO]);
      await pollUntil(() => clientLog(), {
        what: `${POD} to write 10 lines after the take, or its connection to end`,
        timeoutMs: 20_000,
        intervalMs: 100,
        accept: (l) => linesWritten(l) >= 10 || /error|close/.test(l),
      });
      // the lines are answered through node-1 (the binding it kept at the release, loaded at the take)
      await pollUntil(() => clientLog(), {
        what: `answers to ${POD}'s lines after the take`,
        timeoutMs: 10_000,
        intervalMs: 100,
        accept: (l) => (l.match(/^data /gm) ?? []).length >= answersBefore + 5 || /error|close/.test(l),
      });
    } finally {
      got = (await cap.stop()).packets;
      await stopProcess(lab, NODE, CLIENT).catch(() => undefined);
      await lab.exec(NODE, ['rm', '-f', GO]).catch(() => undefined);
    }
    const out = got.filter((p) => p.ip?.tcp && p.ip.dst === INTERNET);
    // the verdict: never the pod IP; after the take, the pod's lines from the egress IP and the connection's own port
    expect(
      out.filter((p) => p.ip!.src === POD_IP).map((p) => `${Math.round(p.t - retakenAt)} ms after the take began: ${p.ip!.src}:${p.ip!.tcp!.sport}`),
    ).toEqual([]);
    expect(
      out.filter((p) => p.t > retakenAt && p.ip!.src === IP && p.ip!.tcp!.sport === RETAKE_PORT && p.ip!.tcp!.payload.toString() === 'more\n').length,
    ).toBeGreaterThan(4);
    expect(await clientLog()).not.toMatch(/error|close/);
  }, 300_000);
});
