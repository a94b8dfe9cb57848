/**
 * Shared steps of the regression scenarios that hold back the far end's answer to one pod
 * connection (released-holder-keeps-bindings, reply-made-entry-no-leak, retaken-ip-reply-made-entry):
 * an nft drop in the internet's own output, so the answer is retransmitted once the hold is lifted,
 * and a move of a floating IP away from its holder by cutting the holder off until the IP is elsewhere.
 */
import { expect } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startProcess } from '../../harness/lab/process.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { gatewayOf } from '../../harness/cluster/cluster-status.js';
import { pollUntil } from '../../harness/util/poll.js';
import { readAgentStatusIfAny } from '../../harness/cluster/masq-applied.js';
import { holderOf, waitIPOff, waitIPOn, waitSeenFrom } from '../gateway/gateway-kit.js';

const HOLD = 'egresslab_test_hold';

/** The internet drops its data segments (the handshake passes) that match `match` (an nft match) until `releaseAnswers`. */
async function hold(lab: Lab, match: string): Promise<void> {
  await lab.exec('internet', ['nft', '-f', '-'], {
    stdin: `table ip ${HOLD} {\n  chain output {\n    type filter hook output priority 0; policy accept;\n    ${match} ip length > 100 counter drop\n  }\n}\n`,
  });
}

/** The internet drops its data segments (the handshake passes) from `port` to the pod's `localPort` until `releaseAnswers`. */
export async function holdAnswers(lab: Lab, port: number, localPort: number): Promise<void> {
  await hold(lab, `tcp sport ${port} tcp dport ${localPort}`);
}

/** The internet drops its data segments (the handshake passes) from `port` to the address `ip` until `releaseAnswers`. */
export async function holdAnswersTo(lab: Lab, port: number, ip: string): Promise<void> {
  await hold(lab, `ip daddr ${ip} tcp sport ${port}`);
}

/** How many answers the internet has held back so far. */
export async function answersHeld(lab: Lab): Promise<number> {
  return Number(/counter packets (\d+)/.exec((await lab.exec('internet', ['nft', 'list', 'table', 'ip', HOLD])).stdout)?.[1] ?? 0);
}

/** Waits until the internet has held back at least one answer. */
export async function waitAnswerHeld(lab: Lab): Promise<void> {
  await pollUntil(() => answersHeld(lab), { what: 'the answer to be held back at the internet', timeoutMs: 10_000, intervalMs: 50, accept: (n) => n > 0 });
}

/** Lifts the hold: the far end's next retransmission goes out. */
export async function releaseAnswers(lab: Lab): Promise<void> {
  await lab.exec('internet', ['nft', 'delete', 'table', 'ip', HOLD]);
}

/** What a pod's client wrote to its log in `node`'s container (empty if none yet). */
export async function clientLog(lab: Lab, node: string, log: string): Promise<string> {
  return (await lab.exec(node, ['cat', log], { check: false })).stdout;
}

/**
 * Moves `ip` from `holder` to `other`: `holder` is cut off until the IP is on `other`, then healed;
 * returns once `holder` released it and the controller has `holder` Up again with the IP on `other`.
 */
export async function moveIPByCutOff(lab: Lab, api: KubeClient, holder: string, other: string, ip: string): Promise<void> {
  await lab.faults.partition(holder, 'both');
  try {
    await waitIPOn(lab, other, ip, 20_000);
  } finally {
    await lab.faults.heal(holder);
  }
  await waitIPOff(lab, holder, ip, 20_000);
  await pollUntil(() => gatewayOf(api), {
    what: `${holder} Up again with ${ip} on ${other}`,
    timeoutMs: 20_000,
    intervalMs: 100,
    accept: (g) => g.nodes[holder] === 'Up' && g.assignments[ip] === other,
  });
  // A readiness gate (what the datapath does is judged at the far end): the old holder has
  // programmed the move, its pairs' conntrack flush included. The API saying so comes first: in run
  // 172 of session 27 node-1 re-programmed its pod's pair (route to node-2, flushing its entries)
  // 10 ms after a held answer had been let go, and the flush removed the entry that answer had made.
  await pollUntil(async () => (await readAgentStatusIfAny(lab, holder))?.gateway?.policies ?? [], {
    what: `${holder}'s agent to have programmed ${ip}'s policies as held by ${other}`,
    timeoutMs: 20_000,
    intervalMs: 100,
    accept: (ps) => ps.some((x) => x.egressSourceIP === ip) && ps.filter((x) => x.egressSourceIP === ip).every((x) => x.holder === other),
  });
}

/**
 * A client for a pod: one connection from `localPort` to `host`:`port`, one line sent, every answer
 * logged (`data N`); once the file `go` exists, a line every 300 ms, each logged (`wrote`) when the
 * pod's TCP stack took it; `error CODE` / `close` when the connection ends.
 */
export function heldClient(host: string, port: number, localPort: number, go: string): string {
  return `const fs = require('fs');
const s = require('net').connect({ host: '${host}', port: ${port}, localPort: ${localPort} }, () => { console.log('connected'); s.write('held\\n'); });
s.on('data', (d) => console.log('data ' + d.length));
s.on('error', (e) => console.log('error ' + e.code));
s.on('close', () => console.log('close'));
const go = setInterval(() => { if (fs.existsSync('${go}')) { clearInterval(go); setInterval(() => { if (!s.destroyed) s.write('more\\n', () => console.log('wrote')); }, 300); } }, 50);
setTimeout(() => process.exit(0), 300000);`;
}

/** Lines a heldClient wrote after its go file appeared. */
export function linesWritten(log: string): number {
  return (log.match(/^wrote$/gm) ?? []).length;
}

/** `node`'s conntrack entries whose original direction runs from `far` to `podIP`:`podPort` (made by a reply). */
export async function reversedEntries(lab: Lab, node: string, far: string, podIP: string, podPort: number): Promise<string> {
  return (await lab.exec(node, ['conntrack', '-L', '-p', 'tcp', '-s', far, '-d', podIP, '--dport', String(podPort)], { check: false })).stdout.trim();
}

/** What reverseEntryOfHeldConnection works on: a pod, its node (the holder of `ip` at the start), another worker. */
export interface HeldConnection {
  pod: string;
  podIP: string;
  node: string;
  other: string;
  /** the floating IP of the pod's policy */
  ip: string;
  /** the far end and its port */
  far: string;
  port: number;
  /** the pod's fixed source port */
  localPort: number;
  /** the client process's name, its log and its go file (heldClient) */
  client: string;
  log: string;
  go: string;
}

/**
 * The seed's held connection: alice/frontend-1 (10.10.10.1 on node-1, the first holder of
 * 192.168.1.100; node-2 the other worker) to 8.8.8.8:7007 from `localPort`, its client's log and go
 * file named after `client`.
 */
export function seedHeldConnection(client: string, localPort: number): HeldConnection {
  return {
    pod: 'alice/frontend-1',
    podIP: '10.10.10.1',
    node: 'node-1',
    other: 'node-2',
    ip: '192.168.1.100',
    far: '8.8.8.8',
    port: 7007,
    localPort,
    client,
    log: `/var/log/egresslab/${client}.log`,
    go: `/tmp/${client}.go`,
  };
}

/**
 * Makes `node`'s conntrack entry of a fresh connection of its pod the other way round, as a reply
 * does when it is the first packet of the flow the node sees after a flush: the pod's node holds
 * `ip` (checked, with the far end seeing the pod's traffic from it); the internet holds back its
 * answer; the pod connects and sends a line; `node` is cut off until `ip` is on `other` (it
 * releases the IP and flushes its pod's pair, the connection staying quiet); the internet lets the
 * answer go, which comes back de-NATed through `other`. Checked as premises: the answer reached the
 * pod, and `node`'s entry reads far end -> pod. Returns when the answer was let go.
 */
export async function reverseEntryOfHeldConnection(lab: Lab, api: KubeClient, c: HeldConnection): Promise<{ unheldAt: number }> {
  expect(lab.pod(c.pod).node).toBe(c.node);
  expect(await holderOf(api, c.ip)).toBe(c.node);
  await waitIPOn(lab, c.node, c.ip);
  await waitSeenFrom(lab, c.pod, c.far, c.ip, { proto: 'udp' });
  // data segments only: the handshake passes
  await holdAnswers(lab, c.port, c.localPort);
  await startProcess(lab, lab.place(c.pod), c.client, ['node', '-e', heldClient(c.far, c.port, c.localPort, c.go)]);
  await waitAnswerHeld(lab);
  await moveIPByCutOff(lab, api, c.node, c.other, c.ip);
  expect(await clientLog(lab, c.node, c.log), 'the premise: the connection stayed quiet and open through the move').toMatch(/^connected\n$/);
  const unheldAt = Date.now();
  await releaseAnswers(lab);
  await pollUntil(() => clientLog(lab, c.node, c.log), {
    what: `the far end's held answer to reach ${c.pod} through ${c.other}`,
    timeoutMs: 60_000,
    intervalMs: 100,
    accept: (l) => /\ndata \d+\n/.test(l) || /error|close/.test(l),
  });
  expect(await clientLog(lab, c.node, c.log)).toMatch(/^connected\n(data \d+\n)+$/);
  expect(
    await reversedEntries(lab, c.node, c.far, c.podIP, c.localPort),
    `the premise: ${c.node}'s entry of the connection was made by the far end's reply`,
  ).toContain(`src=${c.far} dst=${c.podIP}`);
  return { unheldAt };
}
