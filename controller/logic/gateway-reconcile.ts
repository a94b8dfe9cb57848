// Egress NAT gateway reconciliation (pure): from the served gateway's floating IPs, the nodes and
// their liveness, the previous assignment and the v1alpha1 policies, compute the gateway status,
// each node's AnthosNetworkGatewayNode status and each policy's served/unserved state.
import { allocate, ipsByNode, type AllocNode, type Allocation, type NodeState } from './allocator.js';

export interface PolicyInput {
  name: string;
  egressSourceIP: string;
}

export interface PolicyState {
  name: string;
  served: boolean;
  /** node holding the egressSourceIP when served */
  node?: string;
  reason: 'Served' | 'UnknownEgressIP';
  message: string;
}

export interface GatewayInput {
  /** `undefined` when no AnthosNetworkGateway is served */
  gateway?: { namespace: string; name: string; floatingIPs: readonly string[] };
  nodes: readonly AllocNode[];
  previous: Readonly<Record<string, string>>;
  policies: readonly PolicyInput[];
}

export interface GatewayResult {
  allocation: Allocation;
  status: { nodes: Record<string, NodeState>; floatingIPs: Record<string, string> };
  nodeIPs: Record<string, string[]>;
  policies: PolicyState[];
}

export function reconcileGateway(input: GatewayInput): GatewayResult {
  const ips = input.gateway?.floatingIPs ?? [];
  const allocation = allocate(ips, input.nodes, input.previous);
  const names = [...input.nodes].map((n) => n.name).sort();
  const nodes: Record<string, NodeState> = {};
  for (const n of [...input.nodes].sort((a, b) => (a.name < b.name ? -1 : 1))) nodes[n.name] = n.state;
  const policies = input.policies.map((p): PolicyState => {
    const ip = p.egressSourceIP;
    if (!input.gateway) {
      return {
        name: p.name,
        served: false,
        reason: 'UnknownEgressIP',
        message: `egressSourceIP ${ip} cannot be served: no AnthosNetworkGateway "default" exists`,
      };
    }
    const gw = `${input.gateway.namespace}/${input.gateway.name}`;
    if (!ips.includes(ip)) {
      return {
        name: p.name,
        served: false,
        reason: 'UnknownEgressIP',
        message: `egressSourceIP ${ip} is not one of the floating IPs of AnthosNetworkGateway ${gw}`,
      };
    }
    const node = allocation.assignments[ip];
    if (node !== undefined) return { name: p.name, served: true, node, reason: 'Served', message: `egressSourceIP ${ip} is served by node ${node}` };
    const u = allocation.unassignable.find((x) => x.ip === ip);
    if (u?.reason === 'NoMatchingSubnet') {
      return { name: p.name, served: false, reason: 'UnknownEgressIP', message: `egressSourceIP ${ip} is not in the subnet of any gateway node` };
    }
    return {
      name: p.name,
      served: false,
      reason: 'UnknownEgressIP',
      message: `egressSourceIP ${ip} is not assigned to any node: ${u?.message ?? 'no Up node can hold it'}`,
    };
  });
  return { allocation, status: { nodes, floatingIPs: allocation.assignments }, nodeIPs: ipsByNode(allocation.assignments, names), policies };
}
