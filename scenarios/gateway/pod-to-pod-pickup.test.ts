/**
 * A pod-to-pod connection across nodes survives the loss of its conntrack entries on the server
 * pod's node: the peer's next segment is picked up again (TCP loose pickup), although a node drops
 * mid-stream segments from the uplink to its pods that conntrack has no entry for when they come
 * from outside the cluster's pods (agent/gateway/render.ts, the "no NAT would judge its answers"
 * drop; docs/gateway.md). Entries of a pod towards every source are lost when a pair of a
 * `0.0.0.0/0` policy is flushed (conntrackFlushArgs), or by hand here.
 *
 * alice/frontend-1 (node-1) connects to a server in default/client-3 (node-3) and sends a line;
 * node-3's entries of the connection are deleted; the client then writes a line every 300 ms. Judged
 * by the server's log (what its socket received after the deletion) and by node-3's conntrack,
 * which has the connection again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { startProcess, stopProcess } from '../../harness/lab/process.js';
import { pollUntil } from '../../harness/util/poll.js';
import { heldClient } from '../regressions/held-answer-kit.js';

const CLIENT = { pod: 'alice/frontend-1', node: 'node-1', ip: '10.10.10.1', port: 41301 };
const SERVER = { pod: 'default/client-3', node: 'node-3', ip: '10.10.12.1', port: 7301 };
const GO = '/tmp/p2p-pickup.go';
const SERVER_LOG = '/var/log/egresslab/p2p-server.log';

const server = `require('net').createServer((s) => { s.on('data', (d) => console.log('got ' + d.length)); s.on('error', (e) => console.log('error ' + e.code)); })
  .listen(${SERVER.port}, '${SERVER.ip}', () => console.log('listening'));
setTimeout(() => process.exit(0), 300000);`;

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('default', 'p2ppickup');
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

const serverLog = async (): Promise<string> => (await lab.exec(SERVER.node, ['cat', SERVER_LOG], { check: false })).stdout;
const received = (log: string): number => (log.match(/^got \d+$/gm) ?? []).length;
const entries = async (): Promise<string> =>
  (
    await lab.exec(SERVER.node, ['conntrack', '-L', '-p', 'tcp', '-s', CLIENT.ip, '-d', SERVER.ip, '--dport', String(SERVER.port)], { check: false })
  ).stdout.trim();

describe("a pod-to-pod connection whose entries the server's node lost", () => {
  it('is picked up again from the peer pod (the drop of mid-stream pickups spares the cluster pods)', async () => {
    expect(lab.pod(CLIENT.pod).node).toBe(CLIENT.node);
    expect(lab.pod(SERVER.pod).node).toBe(SERVER.node);
    // the premise: node-3's agent has the drop in force
    await pollUntil(async () => (await lab.exec(SERVER.node, ['nft', 'list', 'chain', 'ip', 'egresslab_gw', 'prerouting'], { check: false })).stdout, {
      what: `${SERVER.node}'s mid-stream pickup drop`,
      timeoutMs: 15_000,
      accept: (t) => t.includes('no NAT would judge its answers'),
    });
    await startProcess(lab, lab.place(SERVER.pod), 'p2p-server', ['node', '-e', server]);
    await pollUntil(serverLog, { what: 'the server to listen', timeoutMs: 10_000, accept: (l) => l.includes('listening') });
    try {
      // one line, then a line every 300 ms once GO exists
      await startProcess(lab, lab.place(CLIENT.pod), 'p2p-client', ['node', '-e', heldClient(SERVER.ip, SERVER.port, CLIENT.port, GO)]);
      await pollUntil(serverLog, { what: "the client's first line at the server", timeoutMs: 10_000, accept: (l) => received(l) >= 1 });
      expect(await entries()).toContain(`src=${CLIENT.ip} dst=${SERVER.ip}`);

      // the connection quiet, its entries on the server's node gone
      await lab.exec(SERVER.node, ['conntrack', '-D', '-p', 'tcp', '-s', CLIENT.ip, '-d', SERVER.ip, '--dport', String(SERVER.port)]);
      expect(await entries()).toBe('');
      const before = received(await serverLog());
      await lab.exec(CLIENT.node, ['touch', GO]);
      await pollUntil(serverLog, {
        what: "the client's lines at the server after the entries were deleted",
        timeoutMs: 10_000,
        accept: (l) => received(l) >= before + 3 || /error/.test(l),
      });
      expect(await serverLog()).not.toMatch(/error/);
      expect(await entries()).toContain(`src=${CLIENT.ip} dst=${SERVER.ip}`);
    } finally {
      await stopProcess(lab, CLIENT.node, 'p2p-client');
      await stopProcess(lab, SERVER.node, 'p2p-server');
    }
  }, 120_000);
});
