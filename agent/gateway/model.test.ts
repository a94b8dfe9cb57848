import { describe, expect, it } from 'vitest';
import { EGRESS_GW_BYPASS_MARK } from '../masq/constants.js';
import { renderGateway } from './render.js';
import type { KubeObject } from '../../lib/kube/types.js';
import {
  computeGatewayPlan,
  gatewayFromObject,
  nodeFromObject,
  podFromObject,
  policyFromObject,
  samePlanInput,
  SUBNET_ANNOTATION,
  type ModelInput,
  type PodInfo,
  type PolicyInfo,
} from './model.js';

const pod = (namespace: string, name: string, ip: string, nodeName: string, labels: Record<string, string> = {}, extra: Partial<PodInfo> = {}): PodInfo => ({
  namespace,
  name,
  labels,
  ip,
  nodeName,
  hostNetwork: false,
  terminated: false,
  ...extra,
});

const seedPolicy: PolicyInfo = {
  name: 'egress',
  rules: [
    { namespaceSelector: { matchLabels: { user: 'alice' } }, podSelector: { matchLabels: { role: 'frontend' } } },
    { namespaceSelector: { matchLabels: { user: 'paul' } }, podSelector: { matchLabels: { role: 'frontend' } } },
  ],
  destinationCIDRs: ['8.8.8.0/24'],
  egressSourceIP: '192.168.1.100',
};

/** The seed's cluster: pod 10.10.10.1 on node-1 (192.168.1.1), egress IP 192.168.1.100. */
function seed(self = 'node-1', over: Partial<ModelInput> = {}): ModelInput {
  const ips: Record<string, string> = { 'node-1': '192.168.1.1', 'node-2': '192.168.1.2', 'node-3': '192.168.1.3', 'cp-1': '192.168.1.10' };
  return {
    self: { name: self, ip: ips[self]! },
    nodes: [
      { name: 'node-1', ip: '192.168.1.1', subnet: '192.168.1.0/24', podCIDRs: ['10.10.10.0/24'] },
      { name: 'node-2', ip: '192.168.1.2', subnet: '192.168.1.0/24', podCIDRs: ['10.10.11.0/24'] },
      { name: 'node-3', ip: '192.168.1.3', subnet: '192.168.1.0/24', podCIDRs: ['10.10.12.0/24'] },
      { name: 'cp-1', ip: '192.168.1.10', subnet: '192.168.1.0/24', podCIDRs: [] },
    ],
    gateway: {
      floatingIPs: ['192.168.1.100', '192.168.1.101', '192.168.1.102'],
      assignments: { '192.168.1.100': 'node-2', '192.168.1.101': 'node-3', '192.168.1.102': 'node-1' },
      nodes: { 'node-1': 'Up', 'node-2': 'Up', 'node-3': 'Up', 'cp-1': 'Up' },
    },
    policies: [seedPolicy],
    pods: [
      pod('alice', 'frontend-1', '10.10.10.1', 'node-1', { role: 'frontend' }),
      pod('default', 'client-1', '10.10.10.2', 'node-1'),
      pod('paul', 'frontend-2', '10.10.11.1', 'node-2', { role: 'frontend' }),
      pod('default', 'client-3', '10.10.12.1', 'node-3'),
      pod('default', 'host-1', '192.168.1.1', 'node-1', { role: 'frontend' }, { hostNetwork: true }),
    ],
    namespaces: [
      { name: 'alice', labels: { user: 'alice' } },
      { name: 'paul', labels: { user: 'paul' } },
      { name: 'default', labels: {} },
    ],
    ...over,
  };
}

describe('computeGatewayPlan: source side', () => {
  it('seed: the matched pod on node-1 is policy-routed to the holder node-2 with its mark (bypass bit set)', () => {
    const plan = computeGatewayPlan(seed('node-1'));
    const [p] = plan.policies;
    expect(p).toMatchObject({
      name: 'egress',
      action: 'route',
      holder: 'node-2',
      holderIP: '192.168.1.2',
      localSources: ['10.10.10.1'],
      allSources: ['10.10.10.1', '10.10.11.1'],
      destinations: ['8.8.8.0/24'],
      snatHere: false,
      matchedPods: ['alice/frontend-1', 'paul/frontend-2'],
    });
    const route = plan.routes.find((r) => r.node === 'node-2')!;
    expect(p!.mark).toBe((route.fwmark | EGRESS_GW_BYPASS_MARK) >>> 0);
    expect(p!.mark! & EGRESS_GW_BYPASS_MARK).toBe(EGRESS_GW_BYPASS_MARK);
  });

  it('overlapping destinationCIDRs become the entries no other one contains (an nft interval set refuses overlaps); no warning for them', () => {
    const plan = computeGatewayPlan(
      seed('node-1', { policies: [{ ...seedPolicy, destinationCIDRs: ['172.16.100.0/24', '0.0.0.0/0', '8.8.8.8/32', '8.8.8.0/24'] }] }),
    );
    expect(plan.policies[0]!.destinations).toEqual(['0.0.0.0/0']);
    const nested = computeGatewayPlan(
      seed('node-1', { policies: [{ ...seedPolicy, destinationCIDRs: ['8.8.8.8/32', '8.8.4.0/24', '8.8.8.0/24', '8.8.8.0/24'] }] }),
    );
    expect(nested.policies[0]!.destinations).toEqual(['8.8.4.0/24', '8.8.8.0/24']);
    expect(nested.warnings).toEqual([]);
    expect(renderGateway(nested).ruleset).toMatch(/set p_egress_dst \{ type ipv4_addr; flags interval; elements = \{ 8\.8\.4\.0\/24, 8\.8\.8\.0\/24 \} \}/);
  });

  it('one routing table per other node, stable by name, self excluded', () => {
    const plan = computeGatewayPlan(seed('node-1'));
    expect(plan.routes.map((r) => [r.node, r.ip, r.index, r.table, r.fwmark])).toEqual([
      ['cp-1', '192.168.1.10', 1, 7101, 0x10000],
      ['node-2', '192.168.1.2', 2, 7102, 0x20000],
      ['node-3', '192.168.1.3', 3, 7103, 0x30000],
    ]);
  });

  it('hostNetwork pods, terminated pods and pods without IP never match', () => {
    const plan = computeGatewayPlan(
      seed('node-1', {
        pods: [
          pod('alice', 'a', '10.10.10.5', 'node-1', { role: 'frontend' }, { hostNetwork: true }),
          pod('alice', 'b', '10.10.10.6', 'node-1', { role: 'frontend' }, { terminated: true }),
          { namespace: 'alice', name: 'c', labels: { role: 'frontend' }, nodeName: 'node-1', hostNetwork: false, terminated: false },
          pod('alice', 'd', '10.10.10.7', 'node-1', { role: 'frontend' }),
        ],
      }),
    );
    expect(plan.policies[0]!.allSources).toEqual(['10.10.10.7']);
  });

  it('selectors: namespace-only, pod-only, both (AND), several rules (OR); namespace name label is implicit', () => {
    const pods = [
      pod('alice', 'fe', '10.10.10.1', 'node-1', { role: 'frontend' }),
      pod('alice', 'be', '10.10.10.2', 'node-1', { role: 'backend' }),
      pod('bob', 'fe', '10.10.10.3', 'node-1', { role: 'frontend' }),
    ];
    const mk = (rules: PolicyInfo['rules']) =>
      computeGatewayPlan(
        seed('node-1', {
          pods,
          namespaces: [
            { name: 'alice', labels: { user: 'alice' } },
            { name: 'bob', labels: {} },
          ],
          policies: [{ ...seedPolicy, rules }],
        }),
      ).policies[0]!.localSources;
    expect(mk([{ namespaceSelector: { matchLabels: { user: 'alice' } } }])).toEqual(['10.10.10.1', '10.10.10.2']);
    expect(mk([{ podSelector: { matchLabels: { role: 'frontend' } } }])).toEqual(['10.10.10.1', '10.10.10.3']);
    expect(mk([{ namespaceSelector: { matchLabels: { user: 'alice' } }, podSelector: { matchLabels: { role: 'frontend' } } }])).toEqual(['10.10.10.1']);
    expect(
      mk([{ podSelector: { matchLabels: { role: 'backend' } } }, { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'bob' } } }]),
    ).toEqual(['10.10.10.2', '10.10.10.3']);
    expect(mk([{ podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['backend', 'frontend'] }] } }])).toEqual([
      '10.10.10.1',
      '10.10.10.2',
      '10.10.10.3',
    ]);
    expect(mk([])).toEqual([]);
  });

  it('a relabelled pod moves in and out of the policy', () => {
    const base = seed('node-1');
    const out = computeGatewayPlan({ ...base, pods: base.pods.map((p) => (p.name === 'frontend-1' ? { ...p, labels: { role: 'x' } } : p)) });
    expect(out.policies[0]!.localSources).toEqual([]);
    const inn = computeGatewayPlan({
      ...base,
      pods: base.pods.map((p) => (p.name === 'client-1' ? { ...p, namespace: 'alice', labels: { role: 'frontend' } } : p)),
    });
    expect(inn.policies[0]!.localSources).toEqual(['10.10.10.1', '10.10.10.2']);
  });

  it.each([
    ['the egress IP is unassigned', { assignments: {} }, /not assigned to any node/],
    ['the holder is Down', { nodes: { 'node-1': 'Up', 'node-2': 'Down', 'node-3': 'Up' } }, /holder node-2 .* is Down/],
    ['the holder is not in status.nodes', { nodes: { 'node-1': 'Up' } }, /is unknown/],
  ])('fail-closed when %s', (_what, gw, reason) => {
    const base = seed('node-1');
    const plan = computeGatewayPlan({ ...base, gateway: { ...base.gateway!, ...gw } });
    expect(plan.policies[0]).toMatchObject({ action: 'drop', mark: null, snatHere: false, localSources: ['10.10.10.1'] });
    expect(plan.policies[0]!.reason).toMatch(reason);
  });

  it('fail-closed without a served gateway, with an unknown holder node, and for a duplicate egressSourceIP', () => {
    expect(computeGatewayPlan(seed('node-1', { gateway: null })).policies[0]!.action).toBe('drop');
    const base = seed('node-1');
    const ghost = computeGatewayPlan({ ...base, gateway: { ...base.gateway!, assignments: { '192.168.1.100': 'ghost' }, nodes: { ghost: 'Up' } } });
    expect(ghost.policies[0]).toMatchObject({ action: 'drop' });
    const dup = computeGatewayPlan(seed('node-1', { policies: [seedPolicy, { ...seedPolicy, name: 'zz-dup' }] }));
    expect(dup.policies.map((p) => p.action)).toEqual(['route', 'drop']);
    expect(dup.policies[1]!.reason).toMatch(/already used by policy egress/);
  });

  it('heartbeat suspects only matter with failClosedOnSuspect', () => {
    expect(computeGatewayPlan(seed('node-1', { suspects: ['node-2'] })).policies[0]!.action).toBe('route');
    const p = computeGatewayPlan(seed('node-1', { suspects: ['node-2'], failClosedOnSuspect: true })).policies[0]!;
    expect(p.action).toBe('drop');
    expect(p.reason).toMatch(/missed its heartbeats/);
  });

  it('policies are ordered by name (first match wins on every node)', () => {
    const plan = computeGatewayPlan(
      seed('node-1', {
        policies: [
          { ...seedPolicy, name: 'b', egressSourceIP: '192.168.1.101' },
          { ...seedPolicy, name: 'a' },
        ],
      }),
    );
    expect(plan.policies.map((p) => p.name)).toEqual(['a', 'b']);
  });
});

describe('computeGatewayPlan: gateway side', () => {
  it('seed: node-2 holds 192.168.1.100 and SNATs the matched sources of every node', () => {
    const plan = computeGatewayPlan(seed('node-2'));
    expect(plan.ownedIPs).toEqual([{ ip: '192.168.1.100', prefix: 32 }]);
    expect(plan.policies[0]).toMatchObject({
      snatHere: true,
      action: 'local',
      localSources: ['10.10.11.1'],
      allSources: ['10.10.10.1', '10.10.11.1'],
      mark: EGRESS_GW_BYPASS_MARK,
    });
  });

  it('a node owns every floating IP assigned to it, policy or not', () => {
    expect(computeGatewayPlan(seed('node-1')).ownedIPs.map((o) => o.ip)).toEqual(['192.168.1.102']);
    expect(computeGatewayPlan(seed('cp-1')).ownedIPs).toEqual([]);
  });

  it('pod on the gateway node itself: SNAT locally, no re-routing', () => {
    const base = seed('node-1');
    const plan = computeGatewayPlan({ ...base, gateway: { ...base.gateway!, assignments: { '192.168.1.100': 'node-1' } } });
    expect(plan.policies[0]).toMatchObject({ action: 'local', snatHere: true, localSources: ['10.10.10.1'] });
    expect(plan.ownedIPs.map((o) => o.ip)).toEqual(['192.168.1.100']);
  });

  it('fenced (cut off): no floating IP, and its own policies fail closed', () => {
    const plan = computeGatewayPlan(seed('node-2', { fenced: true }));
    expect(plan.ownedIPs).toEqual([]);
    expect(plan.policies[0]).toMatchObject({ action: 'drop', snatHere: false });
    expect(plan.fenced).toBe(true);
  });

  it('an IP outside the node subnet is not taken, and its policy fails closed', () => {
    const base = seed('node-2');
    const plan = computeGatewayPlan({ ...base, nodes: base.nodes.map((n) => (n.name === 'node-2' ? { ...n, subnet: '10.0.0.0/24' } : n)) });
    expect(plan.ownedIPs).toEqual([]);
    expect(plan.policies[0]).toMatchObject({ action: 'drop', snatHere: false });
    expect(plan.warnings.join('\n')).toMatch(/outside this node's subnet/);
  });

  it('floatingIPs lists every gateway IP (ARP fence, leftover clean-up)', () => {
    expect(computeGatewayPlan(seed('node-3')).floatingIPs).toEqual(['192.168.1.100', '192.168.1.101', '192.168.1.102']);
  });

  it("a node's own address listed as a floating IP is never one here: not ARP-fenced (the node would go silent on the segment), not purged, not held", () => {
    const base = seed('node-2');
    // node-2's address in the spec, and (written by hand into the status) assigned to node-2 and to node-3's address
    const gateway = {
      ...base.gateway!,
      floatingIPs: [...base.gateway!.floatingIPs, '192.168.1.2', '192.168.1.3'],
      assignments: { ...base.gateway!.assignments, '192.168.1.2': 'node-2', '192.168.1.3': 'node-2' },
    };
    for (const self of ['node-1', 'node-2', 'node-3']) {
      const plan = computeGatewayPlan({ ...seed(self), gateway });
      expect(plan.floatingIPs).toEqual(['192.168.1.100', '192.168.1.101', '192.168.1.102']);
      expect(plan.ownedIPs.map((o) => o.ip)).not.toContain('192.168.1.2');
      expect(plan.ownedIPs.map((o) => o.ip)).not.toContain('192.168.1.3');
      expect(plan.warnings).toEqual(
        expect.arrayContaining([
          'floating IP 192.168.1.2 is the address of node node-2: ignored (never held, ARP-fenced or purged here)',
          'floating IP 192.168.1.3 is the address of node node-3: ignored (never held, ARP-fenced or purged here)',
        ]),
      );
      // the ARP fence's set: only the floating IPs
      const fence = /set floating \{ type ipv4_addr;([^}]*)\}/.exec(renderGateway(plan).ruleset)?.[1] ?? '';
      expect(fence).toContain('192.168.1.100');
      expect(fence).not.toMatch(/192\.168\.1\.[23]\b/);
    }
    expect(computeGatewayPlan({ ...base, gateway }).nodeAddresses).toEqual(['192.168.1.1', '192.168.1.2', '192.168.1.3', '192.168.1.10']);
    // node-2 still holds what the controller gave it
    expect(computeGatewayPlan({ ...base, gateway }).ownedIPs).toEqual([{ ip: '192.168.1.100', prefix: 32 }]);
  });
});

describe('API objects -> model', () => {
  it('reads nodes, pods, policies and the gateway like the controller writes them', () => {
    expect(
      nodeFromObject({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'node-1', annotations: { 'networking.egresslab.io/subnet': '192.168.1.0/24' } },
        spec: { podCIDR: '10.10.10.0/24', podCIDRs: ['10.10.10.0/24'] },
        status: {
          addresses: [
            { type: 'InternalIP', address: '192.168.1.1' },
            { type: 'Hostname', address: 'node-1' },
          ],
        },
      }),
    ).toEqual({ name: 'node-1', ip: '192.168.1.1', subnet: '192.168.1.0/24', podCIDRs: ['10.10.10.0/24'] });
    expect(
      podFromObject({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p', namespace: 'alice', labels: { role: 'frontend' } },
        spec: { nodeName: 'node-1' },
        status: { podIPs: [{ ip: '10.10.10.1' }], phase: 'Running' },
      }),
    ).toEqual({ namespace: 'alice', name: 'p', labels: { role: 'frontend' }, ip: '10.10.10.1', nodeName: 'node-1', hostNetwork: false, terminated: false });
    expect(
      podFromObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'a' }, spec: { hostNetwork: true }, status: { phase: 'Succeeded' } }),
    ).toMatchObject({ hostNetwork: true, terminated: true });
    expect(
      policyFromObject({
        apiVersion: 'networking.gke.io/v1alpha1',
        kind: 'EgressNATPolicy',
        metadata: { name: 'egress' },
        spec: { egress: seedPolicy.rules, destinationCIDRs: ['8.8.8.0/24'], egressSourceIP: '192.168.1.100' },
      }),
    ).toEqual(seedPolicy);
    expect(
      policyFromObject({
        apiVersion: 'networking.gke.io/v1',
        kind: 'EgressNATPolicy',
        metadata: { name: 'default' },
        spec: { action: 'NoSNAT', destinations: [] },
      }),
    ).toBeNull();
    expect(
      gatewayFromObject({
        apiVersion: 'x',
        kind: 'AnthosNetworkGateway',
        metadata: { name: 'default' },
        spec: { floatingIPs: ['192.168.1.100'] },
        status: { floatingIPs: { '192.168.1.100': 'node-2' }, nodes: { 'node-2': 'Up' } },
      }),
    ).toEqual({
      floatingIPs: ['192.168.1.100'],
      assignments: { '192.168.1.100': 'node-2' },
      nodes: { 'node-2': 'Up' },
    });
    expect(gatewayFromObject(undefined)).toBeNull();
  });
});

describe('samePlanInput: which updates re-plan', () => {
  const node = (extra: Record<string, unknown> = {}, ip = '192.168.0.7') =>
    ({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'node-7', resourceVersion: '1', annotations: { 'egresslab.io/note': 'a' } },
      spec: { podCIDRs: ['10.20.7.0/24'] },
      status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2026-12-05T00:00:00Z' }] },
      ...extra,
    }) as KubeObject;
  it("a Node's Ready condition, an annotation and its resourceVersion do not; its InternalIP and pod CIDRs do", () => {
    const base = node();
    const ready = node({ status: { addresses: [{ type: 'InternalIP', address: '192.168.0.7' }], conditions: [{ type: 'Ready', status: 'Unknown' }] } });
    const annotated = node({ metadata: { name: 'node-7', resourceVersion: '2', annotations: { 'egresslab.io/note': 'b' } } });
    expect(samePlanInput('nodes', base, ready)).toBe(true);
    expect(samePlanInput('nodes', base, annotated)).toBe(true);
    expect(samePlanInput('nodes', base, node({}, '192.168.0.8'))).toBe(false);
    expect(samePlanInput('nodes', base, node({ spec: { podCIDRs: ['10.20.8.0/24'] } }))).toBe(false);
    // the subnet annotation is read (which floating IPs the node may hold)
    expect(samePlanInput('nodes', base, node({ metadata: { name: 'node-7', annotations: { [SUBNET_ANNOTATION]: '192.168.0.0/24' } } }))).toBe(false);
  });
  it("a Pod's conditions do not; its labels, IP and phase do; a policy's status does not, its spec does", () => {
    const pod = (labels: Record<string, string>, status: Record<string, unknown>) =>
      ({ metadata: { name: 'p', namespace: 'default', labels }, spec: { nodeName: 'node-1' }, status }) as KubeObject;
    const running = { phase: 'Running', podIP: '10.20.1.5' };
    expect(samePlanInput('pods', pod({ app: 'a' }, running), pod({ app: 'a' }, { ...running, conditions: [{ type: 'Ready', status: 'False' }] }))).toBe(true);
    expect(samePlanInput('pods', pod({ app: 'a' }, running), pod({ app: 'b' }, running))).toBe(false);
    expect(samePlanInput('pods', pod({ app: 'a' }, running), pod({ app: 'a' }, { ...running, podIP: '10.20.1.6' }))).toBe(false);
    expect(samePlanInput('pods', pod({ app: 'a' }, running), pod({ app: 'a' }, { ...running, phase: 'Succeeded' }))).toBe(false);
    const policy = (cidrs: string[], status: unknown) =>
      ({
        apiVersion: 'networking.gke.io/v1alpha1',
        kind: 'EgressNATPolicy',
        metadata: { name: 'alice' },
        spec: { egressSourceIP: '192.168.1.100', destinationCIDRs: cidrs, egress: [{ podSelector: { matchLabels: { app: 'a' } } }] },
        status,
      }) as KubeObject;
    expect(samePlanInput('policies', policy(['8.8.8.0/24'], {}), policy(['8.8.8.0/24'], { conditions: [{ type: 'Ready', status: 'True' }] }))).toBe(true);
    expect(samePlanInput('policies', policy(['8.8.8.0/24'], {}), policy(['8.8.4.0/24'], {}))).toBe(false);
  });
  it("the gateway's assignments and node states do", () => {
    const gw = (status: unknown) =>
      ({ metadata: { name: 'default', namespace: 'kube-system' }, spec: { floatingIPs: ['192.168.1.100'] }, status }) as KubeObject;
    expect(samePlanInput('gateway', gw({ floatingIPs: { '192.168.1.100': 'node-1' } }), gw({ floatingIPs: { '192.168.1.100': 'node-2' } }))).toBe(false);
    expect(samePlanInput('gateway', gw({ nodes: { 'node-1': 'Up' } }), gw({ nodes: { 'node-1': 'Down' } }))).toBe(false);
    expect(
      samePlanInput('gateway', gw({ nodes: { 'node-1': 'Up' } }), {
        ...gw({ nodes: { 'node-1': 'Up' } }),
        metadata: { name: 'default', namespace: 'kube-system', resourceVersion: '9' },
      }),
    ).toBe(true);
  });
});
