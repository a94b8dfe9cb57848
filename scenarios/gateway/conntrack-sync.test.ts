/**
 * "Beyond every peer" (issue 6): conntrack state sync between gateway candidates, so that TCP
 * connections opened through the failed gateway continue on the new one. N = 20 long-lived TCP
 * connections (stream probes) from the matched pods of the surviving workers to 8.8.8.8 through
 * 192.168.1.100, then the holder is killed (SIGKILL), with the agents' conntrack sync ON (the
 * default) and OFF (agent config gatewayConntrackSync: false: the new holder picks flows up
 * loosely). Half the connections use a kernel-chosen source port; the other half share source
 * ports across pods (port P from two pods: the old holder kept P for the first and remapped the
 * second), the case loose pickup cannot get right: the new holder binds whichever segment it sees
 * first to P. Reported: "survived X/N" for both; asserted: N/N with sync on, and in both: the
 * capture at the internet's link saw segments of every connection, and zero leaks (every
 * client-to-server segment there came from 192.168.1.100, and every segment the responder logged
 * for a connection's lines too). A third run restarts every agent (SIGTERM, started again) while
 * the connections run, then kills the holder: N/N asserted, which needs each node's conntrackd to
 * outlive its agent with its caches (chaos seed 848038224). With conntrackd restarted with its
 * agent (before the fix), no node had the bindings of the established connections any more and the
 * kill was a loose pickup: the shared-port half broke, as with sync off.
 *
 * Fixture: fixtures/manifests/gateway/failover.yaml. docs/gateway.md has the design and figures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { recordArtifactsOnFailure, recordTimeline } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import { workerHolder } from '../../harness/cluster/holder.js';
import { AGENT_PROCESS } from '../../harness/cluster/cluster.js';
import { readAgentStatusIfAny, type AgentStatusFile } from '../../harness/cluster/masq-applied.js';
import type { ContinuousProbe } from '../../harness/probe/probe.js';
import type { Timeline } from '../../harness/probe/timeline.js';
import {
  describeSegment,
  endpointsNotCaptured,
  resets,
  segmentLeaks,
  startStreams,
  stopAndSegments,
  streamOutcome,
  survivalReport,
  type Segment,
  type StreamSpec,
} from '../../harness/probe/stream.js';
import { allUp, gw, ipsOnEth0, startFailoverLab, waitMovedOff, waitSeenFrom } from './gateway-kit.js';

const IP_A = '192.168.1.100';
const IP_B = '192.168.1.101';
const DST = '8.8.8.8';
const PORT = 7007;
const N = 20;
const MATCHED = ['alice/frontend-1', 'default/client-1', 'paul/frontend-2', 'default/client-3'];
const AGENT_CONFIG = '/etc/egresslab/agent.json';

let lab: Lab;
let api: KubeClient;
const figures: string[] = [];

beforeAll(async () => {
  // the shipped defaults (lease, heartbeats, sync on); failover speed is long-lived-tcp.test.ts's subject
  ({ lab, api } = await startFailoverLab('gwct'));
});
afterAll(async () => {
  if (figures.length) console.log(`conntrack sync, ${N} long-lived TCP connections, holder SIGKILLed:\n${figures.join('\n')}`);
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

const nodes = () => lab.topology.nodes.map((n) => n.name);

/**
 * Rewrites the config of every agent whose conntrack sync is not `on` with gatewayConntrackSync and
 * restarts it (one node at a time); an agent already so is left alone (no restart).
 */
async function setSync(on: boolean): Promise<void> {
  const settled = (s: AgentStatusFile | undefined) => s?.gateway?.conntrackSync?.enabled === on && (!on || s.gateway.conntrackSync.running === true);
  for (const node of nodes()) {
    if (settled(await readAgentStatusIfAny(lab, node))) continue;
    const cfg = JSON.parse((await lab.exec(node, ['cat', AGENT_CONFIG])).stdout) as Record<string, unknown>;
    cfg.gatewayConntrackSync = on;
    await lab.exec(node, ['sh', '-c', `cat > ${AGENT_CONFIG}.new && mv ${AGENT_CONFIG}.new ${AGENT_CONFIG}`], { stdin: `${JSON.stringify(cfg, null, 2)}\n` });
    await lab.faults.restartProcess(node, AGENT_PROCESS);
    await pollUntil(() => readAgentStatusIfAny(lab, node), {
      what: `the agent on ${node} running with conntrack sync ${on ? 'on' : 'off'}`,
      timeoutMs: 20_000,
      intervalMs: 100,
      accept: settled,
    });
  }
}

/** 20 specs: half on kernel-chosen ports, half on source ports shared by two pods (clash at the gateway). */
function specs(pods: string[], base: number): StreamSpec[] {
  const out: StreamSpec[] = [];
  for (let k = 0; k < N / 2; k++) {
    const from = pods[k % pods.length]!;
    out.push({ from, to: DST, port: PORT, label: `own port ${from} #${k}` });
  }
  const pair = [pods[0]!, pods[pods.length - 1]!]; // two pods on two different nodes
  for (let g = 0; g < N / 4; g++)
    for (const from of pair) out.push({ from, to: DST, port: PORT, localPort: base + g, label: `shared port ${base + g} ${from}` });
  return out;
}

interface Result {
  sync: boolean;
  restartedAgents: boolean;
  holder: string;
  newHolder: string;
  labels: string[];
  timelines: Timeline[];
  segments: Segment[];
  commit: string;
}

async function killHolderUnderStreams(sync: boolean, base: number, opts: { restartAgents?: boolean } = {}): Promise<Result> {
  // an assignment is not yet a holder: after setSync's agent restarts the controller may have just
  // moved an IP, and streams opened through the old holder's leftover rules would be picked up
  // mid-stream by the new one (run 105: half the shared-port pairs reset before the fault). So: every
  // node Up, both IPs assigned, IP_A to a worker, and each IP on its assigned node's interface only.
  await workerHolder(lab, api, IP_A); // moves IP_A off cp-1 if it is there
  const settled = await pollUntil(
    async () => {
      const g = await gw(api);
      if (!allUp(g) || !g.assignments[IP_A] || !g.assignments[IP_B] || g.assignments[IP_A] === 'cp-1') return null;
      // each IP on its assigned node's interface and on no other node's (an old holder lets go)
      const held = await Promise.all(nodes().map(async (n) => [n, await ipsOnEth0(lab, n)] as const));
      const exactly = [IP_A, IP_B].every((ip) => held.every(([n, ips]) => ips.includes(ip) === (n === g.assignments[ip])));
      return exactly ? g : null;
    },
    { what: `every node Up, both IPs assigned and on their holders' interfaces, ${IP_A} on a worker`, timeoutMs: 60_000, intervalMs: 100 },
  );
  const holder = settled!.assignments[IP_A]!;
  // matched pods on the surviving nodes, at most one per node first (spread over the nodes)
  const survivors = MATCHED.filter((p) => lab.pod(p).node !== holder);
  const byNode = [...new Map(survivors.map((p) => [lab.pod(p).node, p])).values()];
  const pods = [...byNode, ...survivors.filter((p) => !byNode.includes(p))];
  await waitSeenFrom(lab, pods[0]!, DST, IP_A);
  const list = specs(pods, base);
  const labels = list.map((s) => `${sync ? 'sync on' : 'sync off'}${opts.restartAgents ? ', agents restarted' : ''}: ${s.label}`);
  const cap = await lab.capture('internet', 'eth0', { filter: `tcp and dst host ${DST} and dst port ${PORT}` });
  let streams: ContinuousProbe[] = [];
  let newHolder = '';
  let timelines: Timeline[] = [];
  let segments: Segment[] = [];
  let movedDuringRestarts = '';
  try {
    streams = await startStreams(lab, list, { intervalMs: 100, timeoutMs: 500 });
    await pollUntil(async () => Math.min(...(await Promise.all(streams.map((p) => p.answeredAfter())))), {
      what: `5 answered lines on each of the ${N} connections before the fault`,
      timeoutMs: 30_000,
      intervalMs: 200,
      accept: (n) => n >= 5,
    }).catch(async (e: unknown) => {
      const last = await Promise.all(streams.map(async (p, i) => `${labels[i]}: ${JSON.stringify((await p.records()).slice(-1)[0] ?? null)}`));
      throw new Error(`${(e as Error).message}\n${last.join('\n')}`);
    });
    if (opts.restartAgents) {
      // every agent restarted (SIGTERM, started again) while the connections run, the holder's too:
      // their conntrackd must keep its caches (chaos seed 848038224), or no node has the bindings of
      // these established connections any more (they make no new conntrack event) and the kill below
      // is a loose pickup
      for (const node of nodes()) await lab.faults.restartProcess(node, AGENT_PROCESS);
      // each new agent adopted the conntrackd its predecessor left (a fresh one would start empty)
      await pollUntil(() => Promise.all(nodes().map((n) => readAgentStatusIfAny(lab, n))), {
        what: 'every restarted agent running with the conntrackd it adopted',
        timeoutMs: 20_000,
        intervalMs: 100,
        accept: (all) => all.every((st) => st?.gateway?.conntrackSync?.running === true && st.gateway.conntrackSync.adopted === true),
      });
      const tRestarted = Date.now();
      await pollUntil(() => Promise.all(streams.map(async (p) => (await p.records()).filter((r) => r.t > tRestarted && r.replied).length)), {
        what: `5 answered lines on each of the ${N} connections after the agents' restarts`,
        timeoutMs: 30_000,
        intervalMs: 200,
        accept: (ns) => ns.every((n) => n >= 5),
      });
      // a holder's restart slower than the controller's grace moves its IPs: the connections then
      // went through that failover too; the kill below is of the node that held IP_A first
      const now = (await gw(api)).assignments[IP_A];
      if (now !== holder) movedDuringRestarts = `${IP_A} moved ${holder} -> ${now} during the restarts; `;
    }
    const tFault = Date.now();
    await lab.faults.kill(holder);
    try {
      newHolder = await waitMovedOff(api, IP_A, holder);
      // each connection carries traffic again or reports its break. A connection whose segments the
      // new holder binds to another connection's port may hang without an error: the deadline ends
      // the wait, and the timeline then shows it did not survive.
      await pollUntil(
        async () =>
          Promise.all(
            streams.map(async (p) => {
              const rs = await p.records();
              return rs.some((r) => r.connectionError !== undefined) || rs.filter((r) => r.t > tFault + 100 && r.replied).length >= 10;
            }),
          ),
        {
          what: `every connection answered again after the kill of ${holder}, or broken`,
          timeoutMs: 15_000,
          intervalMs: 250,
          accept: (xs) => xs.every(Boolean),
        },
      ).catch((e: unknown) => console.log(`(${sync ? 'sync on' : 'sync off'}) ${(e as Error).message.split('\n')[0]}`));
    } finally {
      await lab.faults.start(holder);
    }
    timelines = await Promise.all(streams.map((p) => p.stop()));
    segments = await stopAndSegments(cap, DST, PORT);
  } finally {
    await Promise.all(streams.map((p) => p.stop().catch(() => undefined)));
    await cap.stop().catch(() => undefined);
  }
  const st = (await readAgentStatusIfAny(lab, newHolder))?.gateway?.conntrackSync;
  const commit = st?.enabled
    ? `${movedDuringRestarts}new holder ${newHolder} committed ${st.lastCommitEntries ?? '?'} binding(s) in ${st.lastCommitMs ?? '?'} ms`
    : `sync off on ${newHolder}`;
  await pollUntil(() => gw(api), { what: `every node Up again after the kill of ${holder}`, timeoutMs: 30_000, intervalMs: 50, accept: (s) => allUp(s) });
  return { sync, restartedAgents: !!opts.restartAgents, holder, newHolder, labels, timelines, segments, commit };
}

function report(r: Result): { all: number; own: number; shared: number } {
  const outcomes = r.timelines.map((t, i) => streamOutcome(r.labels[i]!, t));
  r.timelines.forEach((t, i) => recordTimeline(r.labels[i]!, t, [IP_A]));
  const all = survivalReport(outcomes);
  const own = outcomes.filter((o) => o.label.includes('own port')).filter((o) => o.survived).length;
  const shared = outcomes.filter((o) => o.label.includes('shared port')).filter((o) => o.survived).length;
  const leaks = segmentLeaks(r.segments, [IP_A]);
  const line = `  sync ${r.sync ? 'ON ' : 'OFF'}${r.restartedAgents ? ' (every agent restarted first)' : ''}: survived ${all.survived}/${all.total} (kernel-chosen ports ${own}/${N / 2}, shared ports ${shared}/${N / 2}); ${IP_A} ${r.holder} -> ${r.newHolder}; ${r.commit}; RSTs sent by the clients: ${resets(r.segments).length}`;
  figures.push(line);
  console.log(`${line}\n${all.text}\n  segments at the internet by source: ${JSON.stringify(leaks.sources)}`);
  // the capture is the witness of the leak check below only for the flows it saw: every connection
  // (as the far end's replies name it) must have segments in it
  const notCaptured = r.timelines.flatMap((t, i) => endpointsNotCaptured(t, r.segments).map((e) => `${r.labels[i]}: ${e}`));
  expect(notCaptured, 'connections of which the capture at the internet saw no segment').toEqual([]);
  // zero leaks either way: every segment that reached the internet left with the egress IP
  expect(leaks.leaked.map(describeSegment), 'segments that reached the internet with another source').toEqual([]);
  for (const t of r.timelines) expect(t).toHaveNoLeaks([IP_A]);
  return { all: all.survived, own, shared };
}

describe(`conntrack state sync: ${N} long-lived TCP connections across a SIGKILL of the holder`, () => {
  it('sync ON (default): every connection survives on the new holder, same source IP and port', async () => {
    // the shipped default: a no-op unless a test before this one turned it off
    await setSync(true);
    const s = report(await killHolderUnderStreams(true, 42000 + Math.floor(Math.random() * 500) * 10));
    expect(s.all, 'connections that survived with conntrack sync on').toBe(N);
  });

  it('sync ON, every agent restarted while the connections run (an IP may move then), then the first holder killed: every connection survives (conntrackd outlives its agent)', async () => {
    await setSync(true);
    const r = await killHolderUnderStreams(true, 44000 + Math.floor(Math.random() * 500) * 10, { restartAgents: true });
    const s = report(r);
    expect(s.all, "connections that survived the agents' restarts and the kill of the holder").toBe(N);
  });

  it('sync OFF (loose pickup): measured for comparison; still zero leaks', async () => {
    // left off afterwards: the lab goes down after this test (a lab kept for a look, EGRESSLAB_KEEP,
    // keeps sync off), and the sync ON test turns it on itself (restoring it here cost four agent
    // restarts, about 5 s, on a lab about to go)
    await setSync(false);
    // what loose pickup can and cannot do is in the log and docs/gateway.md: the survival figure is
    // measured, not asserted; report() asserts the capture saw every connection and no leak
    report(await killHolderUnderStreams(false, 47000 + Math.floor(Math.random() * 500) * 10));
  });
});
