/**
 * Floating-IP assignment by the controller in a running lab (SPEC 2, rules 1-5), with real agents
 * renewing leases: a gateway with 192.168.1.100 and .101 (the node subnet); then faults: an agent
 * stopped, a node killed and brought back, the controller restarted. Every expectation is read from
 * the API (through the forward), polled with a deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { pollUntil } from '../../harness/util/poll.js';
import { R, type KubeClient } from '../../lib/kube/client.js';
import type { KubeObject, WatchEvent } from '../../lib/kube/types.js';
import { everyNodeUp, gatewayOf, gatewayStatus, type ClusterStatus, type GatewayStatus } from '../../harness/cluster/cluster-status.js';
import { runCli } from '../../harness/testing/run.js';
import { processRunning } from '../../harness/lab/process.js';
import { AGENT_PROCESS } from '../../harness/cluster/cluster.js';

const IPS = ['192.168.1.100', '192.168.1.101'];
let lab: Lab;
let api: KubeClient;

beforeAll(async () => {
  lab = await startTestLab('default', 'fip');
  api = await lab.api();
  await api.create(R.anthosNetworkGateways, {
    apiVersion: 'networking.gke.io/v1alpha1',
    kind: 'AnthosNetworkGateway',
    metadata: { name: 'default', namespace: 'kube-system' },
    spec: { floatingIPs: IPS },
  });
});
afterAll(async () => {
  await lab?.down();
});

const gw = (): Promise<GatewayStatus> => gatewayOf(api);

/** Node liveness transitions so far (a node that flapped explains an unexpected move). */
async function transitions(): Promise<string> {
  const list = await api.list(R.events, { namespace: 'default' });
  return list.items
    .filter((e) => e.reason === 'NodeDown' || e.reason === 'NodeUp')
    .map((e) => `${String(e.lastTimestamp)} ${String(e.reason)} ${String((e.involvedObject as { name?: string }).name)} x${String(e.count)}`)
    .join('; ');
}

/** Polls the gateway status until `accept`; returns it and how long it took. */
async function until(what: string, accept: (g: GatewayStatus) => boolean, timeoutMs = 15_000): Promise<{ g: GatewayStatus; ms: number }> {
  const t0 = Date.now();
  try {
    const g = await pollUntil(gw, { what, timeoutMs, intervalMs: 10, accept });
    return { g, ms: Date.now() - t0 };
  } catch (error) {
    throw new Error(
      `${(error as Error).message}\nstatus now: ${JSON.stringify(await gw().catch((e: Error) => e.message))}\nnode transitions: ${await transitions().catch((e: Error) => e.message)}`,
      { cause: error },
    );
  }
}

const allUp = (g: GatewayStatus) => everyNodeUp(g, 4);

/**
 * node-2's gateway forward fence as its kernel has it (ip rule / ip route of table 7100, read in the
 * node, not from its agent): other nodes' pod traffic forwarded without the SNAT mark is
 * blackholed, except towards node-2's own pods.
 */
async function kernelFence(node: string): Promise<{ rules: string[]; routes: string[] }> {
  const lines = async (cmd: string[]) =>
    (await lab.exec(node, cmd)).stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  return { rules: await lines(['ip', 'rule', 'show', 'table', '7100']), routes: (await lines(['ip', 'route', 'show', 'table', '7100'])).sort() };
}
const NODE2_FENCE = {
  rules: ['990:\tfrom 10.10.10.0/24 fwmark 0/0x1000 iif eth0 lookup 7100', '990:\tfrom 10.10.12.0/24 fwmark 0/0x1000 iif eth0 lookup 7100'],
  routes: ['blackhole default', 'throw 10.10.11.0/24'],
};

async function events(reason: string): Promise<KubeObject[]> {
  const list = await api.list(R.events, { namespace: 'kube-system', fieldSelector: `reason=${reason}` });
  return list.items;
}

describe('floating IPs in a running lab', () => {
  it('are assigned per the rules: workers only while workers are free, spread, in name order', async () => {
    const { g } = await until('both floating IPs assigned with every node Up', (s) => allUp(s) && Object.keys(s.assignments).length === 2);
    expect(g.assignments, await transitions()).toEqual({ '192.168.1.100': 'node-1', '192.168.1.101': 'node-2' });
    // one AnthosNetworkGatewayNode per node carries its own IPs
    const node1 = await api.get(R.anthosNetworkGatewayNodes, 'node-1', 'kube-system');
    expect(node1.status).toMatchObject({ state: 'Up', floatingIPs: ['192.168.1.100'] });
    const cp = await api.get(R.anthosNetworkGatewayNodes, 'cp-1', 'kube-system');
    expect(cp.status).toMatchObject({ state: 'Up', floatingIPs: [] });
  });

  it("every agent installs its node's forward fence (the lab's boot config has none)", async () => {
    const fence = await pollUntil(() => kernelFence('node-2'), {
      what: "node-2's forward fence in its kernel",
      timeoutMs: 10_000,
      intervalMs: 50,
      accept: (f) => f.routes.length > 0,
    });
    expect(fence).toEqual(NODE2_FENCE);
  });

  it('egresslab status --json shows the gateway and every agent', async () => {
    const r = await runCli(['status', '--lab', lab.id, '--json'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as { cluster: ClusterStatus };
    expect(s.cluster.api.reachable).toBe(true);
    expect(s.cluster.controller).toEqual({ node: 'cp-1', processRunning: true });
    expect(s.cluster.gateway).toMatchObject({
      namespace: 'kube-system',
      floatingIPs: IPS,
      assignments: { '192.168.1.100': 'node-1', '192.168.1.101': 'node-2' },
    });
    expect(s.cluster.agents.map((a) => [a.node, a.processRunning, a.phase])).toEqual([
      ['node-1', true, 'running'],
      ['node-2', true, 'running'],
      ['node-3', true, 'running'],
      ['cp-1', true, 'running'],
    ]);
    const n1 = s.cluster.agents[0]!;
    expect(n1.masq).toMatchObject({ mode: 'ip-masq-agent', configSource: 'defaults', setElements: 11, lastError: null });
    expect(n1.masq?.configHash).toMatch(/^[0-9a-f]{16}$/);
  });

  it("a stopped agent makes its node Down and its IP moves to the free worker; the agent's return moves nothing", async () => {
    await lab.faults.stopProcess('node-1', 'agent');
    const { g, ms } = await until('node-1 Down and .100 on node-3', (s) => s.nodes['node-1'] === 'Down' && s.assignments['192.168.1.100'] === 'node-3');
    console.log(`agent stopped -> reassignment in status: ${ms} ms`);
    expect(g.assignments, await transitions()).toEqual({ '192.168.1.100': 'node-3', '192.168.1.101': 'node-2' });
    expect(ms).toBeLessThan(3_000);

    await lab.faults.restartProcess('node-1', 'agent');
    const back = await until('node-1 Up again', allUp);
    expect(back.g.assignments, await transitions()).toEqual({ '192.168.1.100': 'node-3', '192.168.1.101': 'node-2' });
    expect((await api.get(R.anthosNetworkGatewayNodes, 'node-1', 'kube-system')).status).toMatchObject({ state: 'Up', floatingIPs: [] });
  });

  it('a killed node is Down and its IP moves; started again (agent restarted by the fault) it is Up and nothing moves', async () => {
    await lab.faults.kill('node-2');
    const { g, ms } = await until('node-2 Down and .101 on node-1', (s) => s.nodes['node-2'] === 'Down' && s.assignments['192.168.1.101'] === 'node-1');
    console.log(`node killed -> reassignment in status: ${ms} ms`);
    expect(g.assignments, await transitions()).toEqual({ '192.168.1.100': 'node-3', '192.168.1.101': 'node-1' });

    // Booted by its init, the agent not started yet: the forward fence is already in node-2's
    // kernel. The lab installs no such rule (harness/topology/plan.ts); only the boot hook that
    // node-2's agent wrote before it died can have put it there.
    await lab.faults.boot('node-2');
    let booted: { agentRunning: boolean; fence: Awaited<ReturnType<typeof kernelFence>> };
    try {
      booted = { agentRunning: await processRunning(lab, 'node-2', AGENT_PROCESS), fence: await kernelFence('node-2') };
    } finally {
      await lab.faults.start('node-2'); // even when reading failed: the next cases need node-2
    }
    expect(booted).toEqual({ agentRunning: false, fence: NODE2_FENCE });
    const back = await until('node-2 Up again', allUp);
    expect(back.g.assignments, await transitions()).toEqual({ '192.168.1.100': 'node-3', '192.168.1.101': 'node-1' });
    const moved = (await events('FloatingIPMoved')).map((e) => e.message as string);
    expect(moved).toEqual(
      expect.arrayContaining([
        'floating IP 192.168.1.100 moved from node node-1 to node node-3',
        'floating IP 192.168.1.101 moved from node node-2 to node node-1',
      ]),
    );
    expect(moved).toHaveLength(2);
  });

  it('a controller restart keeps the state and the assignments: no IP moves', async () => {
    const before = await api.get(R.anthosNetworkGateways, 'default', 'kube-system');
    const assignments = gatewayStatus(before).assignments;
    const movesBefore = (await events('FloatingIPMoved')).length + (await events('FloatingIPAssigned')).length;
    await lab.faults.restartProcess('cp-1', 'controller');
    // A renewal stamped after this was accepted by the new controller process.
    const restartedAt = Date.now();

    // Every agent has renewed its lease with the new controller (so no node can expire because of
    // the restart) and every node is Up.
    await pollUntil(
      async () => {
        const leases = await api.list(R.leases, { namespace: 'kube-node-lease' });
        const renewed = leases.items.filter((l) => Date.parse(String((l.spec as { renewTime?: string }).renewTime)) > restartedAt).length;
        return renewed === 4 && allUp(await gw());
      },
      { what: 'every lease renewed after the controller restart, every node Up', timeoutMs: 20_000, intervalMs: 50 },
    ).catch(async (error: Error) => {
      throw new Error(
        `${error.message}\nstatus now: ${JSON.stringify(await gw().catch((e: Error) => e.message))}\nnode transitions: ${await transitions().catch((e: Error) => e.message)}`,
        { cause: error },
      );
    });
    const after = await api.get(R.anthosNetworkGateways, 'default', 'kube-system');
    expect(after.metadata.uid).toBe(before.metadata.uid);
    expect(gatewayStatus(after).assignments, await transitions()).toEqual(assignments);
    expect((await events('FloatingIPMoved')).length + (await events('FloatingIPAssigned')).length).toBe(movesBefore);

    // The persisted watch history resumes across the restart: no change of the assignment since.
    const seen: WatchEvent[] = [];
    const w = api.watch(
      R.anthosNetworkGateways,
      { namespace: 'kube-system', resourceVersion: before.metadata.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 1 },
      (e) => seen.push(e),
    );
    await w.done;
    expect(seen.some((e) => e.type === 'ERROR')).toBe(false);
    for (const e of seen.filter((x) => x.type === 'MODIFIED')) expect(gatewayStatus(e.object).assignments).toEqual(assignments);
  });
});
