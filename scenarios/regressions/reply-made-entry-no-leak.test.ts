/**
 * Chaos regression: a pod whose pair leaves its policy never leaves its node with the pod IP, even
 * when its node's conntrack entry of the flow was made by the far end's reply.
 *
 * Found by: the explorer, seed 994173003 (8 steps; not reproduced by the shrink's re-runs: the
 * order of two packets decides it). node-1's agent was restarted; its first apply flushed its pod
 * alice/frontend-1's pairs (routed to the holder of 192.168.1.100, node-2), and the first packet of
 * the pod's long-lived stream that node-1 saw next was the far end's answer, de-NATed by node-2:
 * TCP loose pickup made node-1's entry of the stream the other way round (`src=8.8.8.8
 * dst=10.10.10.1`, in the evidence), with no NAT binding, and the pod's segments followed it in its
 * reply direction (marked and routed to node-2, which SNATed them: nothing visible yet). Then the
 * pod was relabelled out of the policy: node-1 flushed the pair's entries, but only those whose
 * original source was the pod; the reversed one stayed, NAT is never decided again for an existing
 * entry, and the stream's retransmissions reached the internet from 10.10.10.1 three times in 5 s
 * (invariant 1, no-leak). Fixed: a pair's flush deletes both orientations (agent/gateway/render.ts
 * conntrackFlushArgs).
 *
 * Deterministic here: alice/frontend-1 (node-1) opens one connection from a fixed port and sends a
 * line; the internet holds back its answer (an nft drop in the internet's own output: it is
 * retransmitted). node-1, holder of the pod's egress IP, is cut off until the IP is on node-2, then
 * healed: it releases the IP and routes its pod to node-2, flushing the pair's entries (local ->
 * routed); the pod stays quiet. The internet lets its answer go: its retransmission, to
 * 192.168.1.100, reaches node-2 (which committed the binding conntrackd replicated), is de-NATed and
 * forwarded to node-1, where it is the first packet of the flow: the entry is made the other way
 * round (checked, as the premise); the pod acknowledges the answer through node-2 (SNATed there)
 * and the connection is quiet. The pod is then relabelled out of the policy; once node-1's ruleset
 * no longer has the pod (its final plan), the client writes a line every 300 ms. Judged on the
 * internet's capture: no packet from the pod IP, ever; after the relabel, the pod's segments reached
 * the internet from node-1's own IP (the masquerade decided them: a new entry), as the witness that
 * the pod did send.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { clusterApi } from '../../harness/cluster/access.js';
import { setPodLabels } from '../../harness/cluster/pods.js';
import { stopProcess } from '../../harness/lab/process.js';
import { pollUntil } from '../../harness/util/poll.js';
import type { DecodedPacket } from '../../harness/pcap/pcap.js';
import { applySeed } from '../gateway/gateway-kit.js';
import { clientLog as kitClientLog, linesWritten, reverseEntryOfHeldConnection, seedHeldConnection } from './held-answer-kit.js';

const CONNECTION = seedHeldConnection('reply-first-client', 41236);
const { pod: POD, podIP: POD_IP, node: NODE, ip: IP, far: INTERNET, port: PORT, localPort: LOCAL_PORT, client: CLIENT, log: LOG, go: GO } = CONNECTION;
const NODE_IP = '192.168.1.1';

let lab: Lab;
let api: KubeClient;
beforeAll(async () => {
  lab = await startTestLab('default', 'replyfirst');
  api = await clusterApi(lab, { timeoutMs: 5000 });
  // the seed: 192.168.1.100-102, one per worker (node-1 first); policy egress (role=frontend) -> 192.168.1.100
  await applySeed(api);
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

const clientLog = (): Promise<string> => kitClientLog(lab, NODE, LOG);
describe('chaos regression: a pod relabelled out of its policy, its node entry made by a reply', () => {
  it("never leaves its node with the pod IP: the pair's flush removes the entry the reply made", async () => {
    // every segment to or from the far end's port: the masquerade picks a random source port (fully-random)
    const cap = await lab.capture('internet', 'eth0', { filter: `tcp and port ${PORT}` });
    let got: DecodedPacket[] = [];
    let unheldAt = 0;
    let relabelledAt = 0;
    try {
      ({ unheldAt } = await reverseEntryOfHeldConnection(lab, api, CONNECTION));

      // out of the policy: node-1 masquerades the pod's traffic to the internet from now on. The
      // connection is quiet meanwhile (the answer acknowledged, nothing owed either way): the pod's
      // next segment, once node-1's kernel no longer steers it, meets whatever entry is left
      relabelledAt = Date.now();
      await setPodLabels(api, 'alice', 'frontend-1', { role: 'relabelled' });
      await pollUntil(async () => (await lab.exec(NODE, ['nft', 'list', 'table', 'ip', 'egresslab_gw'])).stdout, {
        what: `${NODE}'s gateway ruleset without ${POD_IP} (the final plan, after the transition)`,
        timeoutMs: 15_000,
        intervalMs: 50,
        accept: (t) => t.includes('set p_egress_src') && !t.includes(POD_IP),
      });
      await lab.exec(NODE, ['touch', GO]);
      // a line every 300 ms until the connection ends (the far end does not know the masquerade's
      // source port: it answers with a reset)
      await pollUntil(clientLog, {
        what: `${POD} to write 10 lines after the relabel, or its connection to end`,
        timeoutMs: 20_000,
        intervalMs: 100,
        accept: (l) => linesWritten(l) >= 10 || /error|close/.test(l),
      });
    } finally {
      got = (await cap.stop()).packets;
      await stopProcess(lab, NODE, CLIENT).catch(() => undefined);
      await lab.exec(NODE, ['rm', '-f', GO]).catch(() => undefined);
    }

    const out = got.filter((p) => p.ip?.tcp && p.ip.dst === INTERNET);
    // the premise, on the far end's side: the pod acknowledged the answer through node-2, with the egress IP
    expect(out.filter((p) => p.t > unheldAt && p.t < relabelledAt && p.ip!.src === IP && p.ip!.tcp!.sport === LOCAL_PORT).length).toBeGreaterThan(0);
    // the verdict: never the pod IP; after the relabel, the masquerade's source (node-1's IP) as the witness
    expect(
      out.filter((p) => p.ip!.src === POD_IP).map((p) => `${Math.round(p.t - relabelledAt)} ms after the relabel: ${p.ip!.src}:${p.ip!.tcp!.sport}`),
    ).toEqual([]);
    expect(out.filter((p) => p.t > relabelledAt && p.ip!.src === NODE_IP && p.ip!.tcp!.payload.toString() === 'more\n').length).toBeGreaterThan(0);
  }, 300_000);
});
