// The controller loops end to end over the API (in-process server, real lease renewals on loopback).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import type { KubeObject } from '../../lib/kube/types.js';
import { KubeApiError, R } from '../../lib/kube/client.js';
import { startLeaseRenewer, type LeaseRenewer } from '../../lib/kube/lease.js';
import { DEFAULT_NON_MASQUERADE_CIDRS } from '../logic/autopilot.js';
import { DEFAULT_TEST_NODES, startTestController, waitFor, type TestController } from '../testing.js';

let t: TestController | undefined;
const renewers = new Map<string, LeaseRenewer>();
afterEach(async () => {
  for (const r of renewers.values()) await r.stop();
  renewers.clear();
  await t?.close();
  t = undefined;
});

function renew(node: string): void {
  renewers.set(node, startLeaseRenewer(t!.node(node), node, 100));
}
async function halt(node: string): Promise<void> {
  await renewers.get(node)?.stop();
  renewers.delete(node);
}

type GwStatus = { nodes?: Record<string, string>; floatingIPs?: Record<string, string> };
const gwStatus = async (ns = 'kube-system'): Promise<GwStatus> => ((await t!.admin.get(R.anthosNetworkGateways, 'default', ns)).status ?? {}) as GwStatus;
const ready = (p: KubeObject) =>
  ((p.status as { conditions?: { type: string; status: string; reason: string; message?: string }[] } | undefined)?.conditions ?? []).find(
    (c) => c.type === 'Ready',
  );

async function allUp(): Promise<void> {
  for (const n of ['cp-1', 'worker1', 'worker2']) renew(n);
  await waitFor(async () => {
    const nodes = await t!.admin.list(R.anthosNetworkGatewayNodes, { namespace: 'kube-system' });
    return nodes.items.length === 3 && nodes.items.every((o) => (o.status as { state?: string }).state === 'Up');
  }, 'all nodes Up');
}

const gateway = (ips: string[], ns = 'kube-system') => ({
  apiVersion: 'networking.gke.io/v1alpha1',
  kind: 'AnthosNetworkGateway',
  metadata: { name: 'default', namespace: ns },
  spec: { floatingIPs: ips },
});
const policy = (name: string, ip: string) => ({
  apiVersion: 'networking.gke.io/v1alpha1',
  kind: 'EgressNATPolicy',
  metadata: { name },
  spec: {
    egress: [{ namespaceSelector: { matchLabels: { user: 'alice' } }, podSelector: { matchLabels: { role: 'frontend' } } }],
    destinationCIDRs: ['8.8.8.0/24'],
    egressSourceIP: ip,
  },
});

describe('egress NAT gateway controller', () => {
  it('assigns per the rules, fails over when a lease expires, and does not reshuffle when the node returns', async () => {
    t = await startTestController();
    await allUp();
    await t.admin.create(R.anthosNetworkGateways, gateway(['192.168.1.100', '192.168.1.101']));
    await waitFor(async () => Object.keys((await gwStatus()).floatingIPs ?? {}).length === 2, 'two IPs assigned');
    expect(await gwStatus()).toEqual({
      nodes: { 'cp-1': 'Up', worker1: 'Up', worker2: 'Up' },
      floatingIPs: { '192.168.1.100': 'worker1', '192.168.1.101': 'worker2' },
    });
    expect((await t.admin.get(R.anthosNetworkGatewayNodes, 'worker1', 'kube-system')).status).toEqual({ state: 'Up', floatingIPs: ['192.168.1.100'] });
    await t.admin.create(R.egressNATPolicies, policy('egress', '192.168.1.100'));
    await waitFor(async () => ready(await t!.admin.get(R.egressNATPolicies, 'egress'))?.status === 'True', 'policy served');

    await halt('worker1');
    await waitFor(async () => (await gwStatus()).floatingIPs?.['192.168.1.100'] === 'worker2', 'failover to worker2', 3000);
    expect((await gwStatus()).nodes?.worker1).toBe('Down');
    const p = await t.admin.get(R.egressNATPolicies, 'egress');
    expect((p.status as { gatewayNode?: string }).gatewayNode).toBe('worker2');
    const evs = await t.admin.list(R.events, { fieldSelector: 'involvedObject.kind=Node,involvedObject.name=worker1,reason=NodeDown' });
    expect(evs.items).toHaveLength(1);

    renew('worker1');
    await waitFor(async () => (await gwStatus()).nodes?.worker1 === 'Up', 'worker1 back Up');
    expect((await gwStatus()).floatingIPs).toEqual({ '192.168.1.100': 'worker2', '192.168.1.101': 'worker2' });
  });

  it('a node whose heartbeats turn fast (it took an IP) is Down when its new, shorter grace runs out, not when the timer armed for its idle grace fires', async () => {
    let now = 1_000_000;
    t = await startTestController({}, { clock: () => now });
    const c = t.running.controller;
    const store = t.running.service.store;
    const state = (n: string) =>
      (store.get('networking.gke.io/anthosnetworkgatewaynodes', t!.config.gatewayNamespace, n)?.status as { state?: string } | undefined)?.state;
    // what start-up scheduled has run; the controller's timers from here on run on the test's time, which the clock follows
    await new Promise((r) => setImmediate(r));
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate'] });
    try {
      const advance = (ms: number) => {
        now += ms;
        vi.advanceTimersByTime(ms);
      };
      // every node beats at the idle interval (1 s): Up, each for 2.4 s; the expiry timer is armed for then
      for (const n of ['cp-1', 'worker1', 'worker2']) c.observeHeartbeat(n, 1, 1, 1000);
      advance(1);
      expect(['cp-1', 'worker1', 'worker2'].map(state)).toEqual(['Up', 'Up', 'Up']);
      // worker1 takes an IP: it beats at the fast interval (grace 600 ms), once, then dies
      advance(100);
      c.observeHeartbeat('worker1', 1, 2, 100);
      advance(700);
      expect(state('worker1'), '700 ms after its last fast heartbeat').toBe('Down');
      expect([state('cp-1'), state('worker2')]).toEqual(['Up', 'Up']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps state and assignments across a controller restart without moving any IP', async () => {
    t = await startTestController();
    await allUp();
    await t.admin.create(R.anthosNetworkGateways, gateway(['192.168.1.100', '192.168.1.101', '192.168.1.102']));
    await waitFor(async () => Object.keys((await gwStatus()).floatingIPs ?? {}).length === 3, 'three IPs assigned');
    const before = await gwStatus();
    await t.restart();
    expect(await gwStatus()).toEqual(before);
    // the agents reconnect and keep renewing: still nothing moves
    const rv = Number((await t.admin.get(R.leases, 'worker1', 'kube-node-lease')).metadata.resourceVersion);
    await waitFor(async () => Number((await t!.admin.get(R.leases, 'worker1', 'kube-node-lease')).metadata.resourceVersion) > rv, 'renewals after restart');
    expect(await gwStatus()).toEqual(before);
    const moves = t.logs.filter((l) => l.includes('moved from'));
    expect(moves).toEqual([]);
  });

  it('records UnknownEgressIP until the IP is a floating IP assigned to an Up node, then serves', async () => {
    t = await startTestController();
    await allUp();
    await t.admin.create(R.egressNATPolicies, policy('late', '192.168.1.105'));
    const unknown = await waitFor(async () => {
      const l = await t!.admin.list(R.events, { fieldSelector: 'involvedObject.kind=EgressNATPolicy,involvedObject.name=late,reason=UnknownEgressIP' });
      return l.items[0];
    }, 'UnknownEgressIP event');
    expect(unknown.message).toContain('no AnthosNetworkGateway');
    expect(ready(await t.admin.get(R.egressNATPolicies, 'late'))).toMatchObject({ status: 'False', reason: 'UnknownEgressIP' });
    await t.admin.create(R.anthosNetworkGateways, gateway(['192.168.1.100']));
    await waitFor(async () => ready(await t!.admin.get(R.egressNATPolicies, 'late'))?.message?.includes('not one of the floating IPs'), 'not a floating IP');
    await t.admin.patch(R.anthosNetworkGateways, 'default', { spec: { floatingIPs: ['192.168.1.100', '192.168.1.105'] } }, { namespace: 'kube-system' });
    await waitFor(async () => ready(await t!.admin.get(R.egressNATPolicies, 'late'))?.status === 'True', 'served once assigned');
  });

  it("never assigns the router's, a node's, the network or the broadcast address: status.unassigned and one Event each say why (issue 12)", async () => {
    t = await startTestController({ nodes: DEFAULT_TEST_NODES.map((n) => ({ ...n, gateway: '192.168.1.254' })) });
    await allUp();
    const bad = ['192.168.1.254', '192.168.1.2', '192.168.1.0', '192.168.1.255'];
    await t.admin.create(R.anthosNetworkGateways, gateway([...bad, '192.168.1.100']));
    await waitFor(async () => Object.keys((await gwStatus()).floatingIPs ?? {}).length === 1, 'the good IP assigned');
    const status = (await gwStatus()) as GwStatus & { unassigned?: Record<string, string> };
    expect(status.floatingIPs).toEqual({ '192.168.1.100': 'worker1' });
    expect(status.unassigned).toEqual({
      '192.168.1.254': '192.168.1.254 is the router (default gateway) of 192.168.1.0/24',
      '192.168.1.2': "192.168.1.2 is node worker2's own address",
      '192.168.1.0': '192.168.1.0 is the network address of 192.168.1.0/24',
      '192.168.1.255': '192.168.1.255 is the broadcast address of 192.168.1.0/24',
    });
    const events = await waitFor(async () => {
      const l = await t!.admin.list(R.events, {
        namespace: 'kube-system',
        fieldSelector: 'involvedObject.kind=AnthosNetworkGateway,reason=FloatingIPUnassignable',
      });
      return l.items.length === bad.length ? l.items : undefined;
    }, 'one FloatingIPUnassignable event per bad IP');
    expect(events.map((e) => [e.type, e.message]).sort()).toEqual(
      bad.map((ip) => ['Warning', `floating IP ${ip} is not assigned: ${status.unassigned![ip]}`]).sort(),
    );
    // each is reported once, not again at every reconcile (the renewals keep reconciling)
    const rv = Number((await t.admin.get(R.leases, 'worker1', 'kube-node-lease')).metadata.resourceVersion);
    await waitFor(async () => Number((await t!.admin.get(R.leases, 'worker1', 'kube-node-lease')).metadata.resourceVersion) > rv + 2, 'renewals');
    const again = (await t.admin.list(R.events, { namespace: 'kube-system', fieldSelector: 'reason=FloatingIPUnassignable' })).items;
    expect(again.map((e) => e.count)).toEqual(bad.map(() => 1));
  });

  it("serves the cluster namespace's gateway (the seed's manifest) and mirrors it into kube-system", async () => {
    t = await startTestController();
    await allUp();
    await t.admin.create(R.anthosNetworkGateways, gateway(['192.168.1.100', '192.168.1.101', '192.168.1.102'], 'cluster-cluster1'));
    await waitFor(async () => Object.keys((await gwStatus()).floatingIPs ?? {}).length === 3, 'mirror has status');
    const sys = await t.admin.get(R.anthosNetworkGateways, 'default', 'kube-system');
    expect(sys.spec).toEqual({ floatingIPs: ['192.168.1.100', '192.168.1.101', '192.168.1.102'] });
    expect(await gwStatus('cluster-cluster1')).toEqual(await gwStatus('kube-system'));
    expect((await gwStatus()).floatingIPs).toEqual({ '192.168.1.100': 'worker1', '192.168.1.101': 'worker2', '192.168.1.102': 'worker1' });
  });
});

describe('autopilot flavour', () => {
  const config = async (): Promise<string[]> => {
    const cm = await t!.admin.get(R.configmaps, 'ip-masq-agent', 'kube-system');
    return (parse((cm as KubeObject & { data: { config: string } }).data.config) as { nonMasqueradeCIDRs: string[] }).nonMasqueradeCIDRs;
  };

  it('creates default + managed policies, projects their union into ip-masq-agent, protects the managed policy', async () => {
    t = await startTestController({ flavour: 'autopilot', podCIDRs: ['10.10.0.0/16'] });
    const managedName = t.running.controller.managedPolicyName;
    const list = await waitFor(async () => {
      const l = await t!.admin.list(R.egressNATPoliciesV1);
      return l.items.length === 2 ? l : undefined;
    }, 'default and managed policies');
    expect(list.items.map((o) => o.metadata.name).sort()).toEqual([managedName, 'default'].sort());
    const managed = await t.admin.get(R.egressNATPoliciesV1, managedName);
    expect((managed.spec as { destinations: { cidr: string }[] }).destinations.map((d) => d.cidr)).toEqual(
      expect.arrayContaining(['10.10.0.0/16', '10.96.0.0/12', '192.168.1.0/24']),
    );
    const initial = await waitFor(async () => (await config()).length > 0 && (await config()), 'configmap');
    expect(initial).toEqual(expect.arrayContaining([...DEFAULT_NON_MASQUERADE_CIDRS, '10.96.0.0/12']));

    // the managed policy refuses writes with a clear message, and comes back if deleted internally
    const e = await t.admin.patch(R.egressNATPoliciesV1, managedName, { spec: { destinations: [] } }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KubeApiError);
    expect((e as KubeApiError).code).toBe(403);
    expect((e as KubeApiError).message).toContain('managed by GKE');
    const d = await t.admin.delete(R.egressNATPoliciesV1, managedName).catch((x: unknown) => x);
    expect((d as KubeApiError).code).toBe(403);
    const svc = t.running.service;
    svc.delete(svc.def('networking.gke.io', 'egressnatpolicies'), 'v1', undefined, managedName, {
      user: { name: 'x', uid: 'x', groups: ['system:masters'] },
      internal: true,
    });
    await waitFor(async () => (await t!.admin.tryGet(R.egressNATPoliciesV1, managedName)) !== undefined, 'managed policy re-created');

    // a custom NoSNAT policy and an edit of `default` change the ConfigMap
    await t.admin.create(R.egressNATPoliciesV1, { metadata: { name: 'onprem' }, spec: { action: 'NoSNAT', destinations: [{ cidr: '8.8.8.0/24' }] } });
    await waitFor(async () => (await config()).includes('8.8.8.0/24'), 'custom destination projected');
    await t.admin.patch(R.egressNATPoliciesV1, 'default', { spec: { destinations: [{ cidr: '172.16.0.0/12' }] } });
    await waitFor(async () => !(await config()).includes('240.0.0.0/4'), 'default edit projected');
    // node pod CIDRs of the topology are part of the managed policy too
    expect(await config()).toEqual([
      '8.8.8.0/24',
      '10.10.0.0/16',
      '10.10.0.0/24',
      '10.10.10.0/24',
      '10.10.11.0/24',
      '10.96.0.0/12',
      '172.16.0.0/12',
      '192.168.1.0/24',
    ]);
    // the generated ConfigMap is not user-editable
    const cmErr = await t.admin.patch(R.configmaps, 'ip-masq-agent', { data: { config: 'x' } }, { namespace: 'kube-system' }).catch((x: unknown) => x);
    expect((cmErr as KubeApiError).code).toBe(403);
  });
});
