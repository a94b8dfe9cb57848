/**
 * Chaos regression: a holder that loses its floating IP and gets it back still delivers the far
 * end's segments of its own pods' quiet connections.
 *
 * Found by: the explorer, seed 1419845312 (8 steps), in a replay on 583f189: node-1 held
 * 192.168.1.100, the egress IP of its own pod alice/frontend-1. A 64 kbit/s rate limit on node-1's
 * link starved its heartbeats, the controller moved the IP to node-2, node-1 released it (its pod's
 * pairs local -> routed to node-2: their conntrack entries flushed, so the pod's next packets
 * leave un-NATed for the new holder); node-2 was then killed and the IP came back to node-1. The
 * far end still owed two of the pod's connections a reply (it had retransmitted it through the
 * rate limit); its retransmissions reached node-1 but never the pod, up to 27 s after the schedule
 * settled (invariant 4, replies-reach-pod). The bindings were gone everywhere: node-1 had flushed
 * them, and conntrackd had replicated them to node-2 only, which commits them without an event, so
 * nobody replicated them back. Fixed: a holder that releases an IP lists its own pods' bindings to
 * it before the flush and loads them (conntrack -R) when it takes the IP again, before the
 * replicated ones (agent/gateway/conntrack-sync.ts keptBindingLines, gateway-module keepReleased).
 *
 * Second finding, same scenario: chaos seed 970228019 (convergence: paul/frontend-2's stream never
 * carried traffic again, 15 s past the bound). node-1 had held 192.168.1.100 and kept its entry of
 * that stream (another node's pod: not flushed at the release); the stream carried on through
 * node-2 for seconds; when the IP came back, node-1's entry still had the TCP windows of the move
 * away, the stream's next segments were out of window (INVALID, not NATed) and node-1's guard
 * dropped every one of them. Fixed: TCP window tracking is liberal on the nodes (the gateway module
 * sets net.netfilter.nf_conntrack_tcp_be_liberal=1: only out-of-window RSTs are INVALID), as
 * conntrackd's commits and the kernel's mid-stream pickups already were.
 *
 * Deterministic here: alice/frontend-1 opens one connection from a fixed port and sends a line;
 * the internet holds back the answer (an nft drop in the internet's own output, so it is
 * retransmitted), while paul/frontend-2 (node-2) runs a stream; node-1 is cut off until the IP is
 * on node-2, healed; the stream carries on through node-2; node-2 is cut off until the IP is back
 * on node-1; the internet lets the answer go; node-2 is healed. Judged on the internet's capture: a
 * retransmission of the answer after the hold is acknowledged by the pod (an ACK from
 * 192.168.1.100:<port>, no RST), and the client in the pod received the answer; the stream's
 * segments reach the internet again after node-2's heal, from 192.168.1.100 and its one port. On
 * the agent before the fixes node-1 had no entry for alice's connection (the answer went to
 * node-1's own stack), and its stale entry of the stream dropped the stream's segments.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { clusterApi } from '../../harness/cluster/access.js';
import { startProcess, stopProcess } from '../../harness/lab/process.js';
import { pollUntil } from '../../harness/util/poll.js';
import { TCP_FLAGS, type DecodedPacket } from '../../harness/pcap/pcap.js';
import { applySeed, holderOf, waitIPOn, waitSeenFrom } from '../gateway/gateway-kit.js';
import { clientLog as kitClientLog, holdAnswers, moveIPByCutOff, releaseAnswers, waitAnswerHeld } from './held-answer-kit.js';
import type { ContinuousProbe } from '../../harness/probe/probe.js';

const POD = 'alice/frontend-1';
const HOLDER = 'node-1';
const OTHER = 'node-2';
const IP = '192.168.1.100';
const INTERNET = '8.8.8.8';
const PORT = 7007;
const LOCAL_PORT = 41234;
const STREAM_POD = 'paul/frontend-2';
const STREAM_PORT = 41235;
const CLIENT = 'held-answer-client';
const LOG = `/var/log/egresslab/${CLIENT}.log`;

/** The client in the pod: one connection from LOCAL_PORT, one line sent, every answer logged; kept open. */
const CLIENT_JS = `const s = require('net').connect({ host: '${INTERNET}', port: ${PORT}, localPort: ${LOCAL_PORT} }, () => { console.log('connected'); s.write('held\\n'); });
s.on('data', (d) => console.log('data ' + d.length));
s.on('error', (e) => console.log('error ' + e.code));
s.on('close', () => console.log('close'));
setTimeout(() => process.exit(0), 300000);`;

let lab: Lab;
let api: KubeClient;
beforeAll(async () => {
  lab = await startTestLab('default', 'keepbind');
  api = await clusterApi(lab, { timeoutMs: 5000 });
  // the seed: 192.168.1.100-102, one per worker (node-1 first); policy egress -> 192.168.1.100
  await applySeed(api);
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

const clientLog = (): Promise<string> => kitClientLog(lab, HOLDER, LOG);

describe('chaos regression: a holder that releases its IP and takes it back', () => {
  it("delivers the far end's answer on its own pod's quiet connection (its binding was kept across the release)", async () => {
    expect(lab.pod(POD).node).toBe(HOLDER);
    // the premise: node-1 holds the egress IP of its own pod's policy and serves it
    expect(await holderOf(api, IP)).toBe(HOLDER);
    await waitIPOn(lab, HOLDER, IP);
    await waitSeenFrom(lab, POD, INTERNET, IP, { proto: 'udp' });

    // the internet holds back its answers to the pod's connection (data segments only: the handshake passes)
    await holdAnswers(lab, PORT, LOCAL_PORT);
    const cap = await lab.capture('internet', 'eth0', { filter: `tcp and (port ${LOCAL_PORT} or port ${STREAM_PORT})` });
    let got: DecodedPacket[] = [];
    let releasedAt = 0;
    const streamHeld = { from: 0, to: 0 };
    let healedAt = 0;
    let stream: ContinuousProbe | undefined;
    try {
      stream = await lab.continuousProbe(STREAM_POD, INTERNET, { proto: 'tcp', stream: true, localPort: STREAM_PORT, intervalMs: 100, timeoutMs: 500 });
      await pollUntil(() => stream!.answeredAfter(0), { what: `${STREAM_POD}'s stream answered`, timeoutMs: 10_000, intervalMs: 100, accept: (n) => n >= 5 });
      await startProcess(lab, lab.place(POD), CLIENT, ['node', '-e', CLIENT_JS]);
      await waitAnswerHeld(lab);
      expect(await clientLog()).toMatch(/^connected\n$/);

      // node-1 cut off until the IP is on node-2; healed, it releases the IP and routes its pod to node-2
      await moveIPByCutOff(lab, api, HOLDER, OTHER, IP);
      // the stream carries on through node-2 (its windows move on; node-1's entry of it stays behind)
      streamHeld.from = Date.now();
      const through = await stream.answeredAfter(streamHeld.from);
      await pollUntil(() => stream!.answeredAfter(streamHeld.from), {
        what: `${STREAM_POD}'s stream through ${OTHER}`,
        timeoutMs: 10_000,
        intervalMs: 100,
        accept: (n) => n >= through + 10,
      });
      streamHeld.to = Date.now();
      // node-2 cut off: the IP comes back to node-1 (the Up worker holding the fewest IPs)
      await lab.faults.partition(OTHER, 'both');
      await waitIPOn(lab, HOLDER, IP, 20_000);
      expect(await clientLog(), 'the premise: the connection stayed quiet and open through the moves').toMatch(/^connected\n$/);

      // the internet lets its answer go: its next retransmission must reach the pod
      releasedAt = Date.now();
      await releaseAnswers(lab);
      await pollUntil(clientLog, {
        // its retransmissions back off (0.2 s doubling): the next one comes at most about as long
        // after the hold ends as the hold lasted (here seconds)
        what: `the far end's held answer to reach ${POD}`,
        timeoutMs: 120_000,
        intervalMs: 200,
        accept: (l) => /\ndata \d+\n/.test(l) || /error|close/.test(l),
      });
      // node-2 back: it routes its pod to node-1, whose entry of the stream must pass its segments
      await lab.faults.heal(OTHER);
      healedAt = Date.now();
      await pollUntil(() => stream!.answeredAfter(healedAt), {
        what: `${STREAM_POD}'s stream answered again after ${OTHER}'s heal (TCP backs off: a retransmission within about the cut's length)`,
        timeoutMs: 60_000,
        intervalMs: 200,
        accept: (n) => n >= 5,
      });
    } finally {
      await stream?.stop().catch(() => undefined);
      got = (await cap.stop()).packets;
      await stopProcess(lab, HOLDER, CLIENT).catch(() => undefined);
      if (await lab.faults.partitioned(OTHER).catch(() => false)) await lab.faults.heal(OTHER);
    }

    expect(await clientLog()).toMatch(/^connected\ndata \d+\n/);
    const tcp = got.filter((p) => p.ip?.tcp);
    const answers = tcp.filter((p) => p.ip!.src === INTERNET && p.ip!.tcp!.sport === PORT && p.ip!.tcp!.payload.length > 0 && p.t >= releasedAt);
    const fromPod = tcp.filter((p) => p.ip!.src === IP && p.ip!.tcp!.sport === LOCAL_PORT);
    expect(answers.length, 'the witness: the far end retransmitted its answer after the hold').toBeGreaterThan(0);
    // the pod acknowledged it through node-1 (SNATed to the egress IP, same port); nothing reset the connection
    expect(fromPod.filter((p) => p.t > answers[0]!.t && (p.ip!.tcp!.flags & TCP_FLAGS.ACK) !== 0).length).toBeGreaterThan(0);
    expect(fromPod.filter((p) => (p.ip!.tcp!.flags & TCP_FLAGS.RST) !== 0).map((p) => p.t)).toEqual([]);

    // the stream: through node-2 while it held the IP (the premise), and again after the heal, always
    // from the egress IP and the one port it opened with
    const streamOut = tcp.filter((p) => p.ip!.dst === INTERNET && p.ip!.tcp!.sport === STREAM_PORT);
    expect(streamOut.filter((p) => p.t >= streamHeld.from && p.t <= streamHeld.to && p.ip!.tcp!.payload.length > 0).length).toBeGreaterThan(5);
    expect(streamOut.filter((p) => p.t > healedAt && p.ip!.tcp!.payload.length > 0).length).toBeGreaterThan(0);
    expect([...new Set(streamOut.map((p) => p.ip!.src))]).toEqual([IP]);
    expect(
      tcp.filter(
        (p) => p.ip!.dst === INTERNET && p.ip!.tcp!.dport === PORT && p.ip!.src === IP && p.ip!.tcp!.sport !== LOCAL_PORT && p.ip!.tcp!.sport !== STREAM_PORT,
      ),
    ).toEqual([]);
  }, 300_000);
});
