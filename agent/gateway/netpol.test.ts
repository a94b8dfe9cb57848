import { describe, expect, it } from 'vitest';
import type { NamespaceInfo, PodInfo } from './model.js';
import { compileNetworkPolicies, isEgressPolicy, networkPolicyFromObject, type NetworkPolicyInfo } from './netpol.js';

const pod = (namespace: string, name: string, ip: string, nodeName: string, labels: Record<string, string> = {}): PodInfo => ({
  namespace,
  name,
  labels,
  ip,
  nodeName,
  hostNetwork: false,
  terminated: false,
});
const pods = [
  pod('alice', 'fe', '10.10.10.1', 'node-1', { role: 'frontend' }),
  pod('alice', 'db', '10.10.11.5', 'node-2', { role: 'db' }),
  pod('default', 'c1', '10.10.10.2', 'node-1'),
  pod('paul', 'fe', '10.10.11.1', 'node-2', { role: 'frontend' }),
];
const namespaces: NamespaceInfo[] = [
  { name: 'alice', labels: { user: 'alice' } },
  { name: 'paul', labels: { user: 'paul' } },
  { name: 'default', labels: {} },
];
const compile = (policies: NetworkPolicyInfo[], self = 'node-1') => compileNetworkPolicies({ self, pods, namespaces, policies });

describe('NetworkPolicy egress compilation', () => {
  it('policyTypes: explicit Egress, or implied by an egress section', () => {
    expect(isEgressPolicy({ namespace: 'a', name: 'x', podSelector: {}, policyTypes: ['Ingress'] })).toBe(false);
    expect(isEgressPolicy({ namespace: 'a', name: 'x', podSelector: {}, policyTypes: ['Ingress', 'Egress'] })).toBe(true);
    expect(isEgressPolicy({ namespace: 'a', name: 'x', podSelector: {} })).toBe(false);
    expect(isEgressPolicy({ namespace: 'a', name: 'x', podSelector: {}, egress: [] })).toBe(true);
  });

  it('deny-all egress isolates the selected local pods with no allow', () => {
    const plan = compile([{ namespace: 'alice', name: 'deny', podSelector: {}, policyTypes: ['Egress'] }]);
    expect(plan.pods).toEqual([{ ip: '10.10.10.1', pod: 'alice/fe', policies: ['alice/deny'], allows: [] }]);
  });

  it('pods not selected, other namespaces and other nodes are not isolated here', () => {
    expect(compile([{ namespace: 'alice', name: 'x', podSelector: { matchLabels: { role: 'db' } }, policyTypes: ['Egress'] }]).pods).toEqual([]);
    expect(compile([{ namespace: 'alice', name: 'x', podSelector: {}, policyTypes: ['Egress'] }], 'node-2').pods.map((p) => p.pod)).toEqual(['alice/db']);
  });

  it('peers: ipBlock with except, podSelector (same namespace), namespaceSelector, both; ports with endPort', () => {
    const plan = compile([
      {
        namespace: 'alice',
        name: 'p',
        podSelector: { matchLabels: { role: 'frontend' } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }],
            ports: [
              { protocol: 'TCP', port: 443 },
              { port: 80 },
              { protocol: 'UDP', port: 53 },
              { protocol: 'TCP', port: 8000, endPort: 8080 },
              { protocol: 'TCP', port: 8080, endPort: 8090 },
            ],
          },
          { to: [{ podSelector: { matchLabels: { role: 'db' } } }] },
          { to: [{ namespaceSelector: { matchLabels: { user: 'paul' } } }] },
          { to: [{ namespaceSelector: { matchLabels: { user: 'paul' } }, podSelector: { matchLabels: { role: 'nope' } } }] },
        ],
      },
    ]);
    expect(plan.pods).toHaveLength(1);
    expect(plan.pods[0]!.allows).toEqual([
      {
        dests: [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }],
        ports: [
          { protocol: 'tcp', from: 80, to: 80 },
          { protocol: 'tcp', from: 443, to: 443 },
          { protocol: 'tcp', from: 8000, to: 8090 },
          { protocol: 'udp', from: 53, to: 53 },
        ],
      },
      { dests: [{ cidr: '10.10.11.5/32', except: [] }], ports: null },
      { dests: [{ cidr: '10.10.11.1/32', except: [] }], ports: null },
      // the 4th rule selects no pod: it allows nothing (and is omitted)
    ]);
  });

  it('empty to / empty ports allow everything; named ports allow nothing (with a warning)', () => {
    const plan = compile([
      { namespace: 'alice', name: 'a', podSelector: {}, policyTypes: ['Egress'], egress: [{}] },
      { namespace: 'alice', name: 'b', podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] },
    ]);
    expect(plan.pods[0]!.allows).toEqual([{ dests: null, ports: null }]);
    expect(plan.pods[0]!.policies).toEqual(['alice/a', 'alice/b']);
    expect(plan.warnings.join('\n')).toMatch(/named ports are not supported/);
  });

  it('reads the API object', () => {
    expect(
      networkPolicyFromObject({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'x', namespace: 'alice' },
        spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '1.2.3.0/24' } }] }] },
      }),
    ).toEqual({ namespace: 'alice', name: 'x', podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '1.2.3.0/24' } }] }] });
  });
});
