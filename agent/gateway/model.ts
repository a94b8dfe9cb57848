/**
 * Egress NAT gateway: the desired datapath of ONE node, computed purely from API state (SPEC 2).
 *
 *  source side  (every node)  local pods matched by a policy, to its destinationCIDRs:
 *                 - holder is another Up node -> mark + policy-route to the holder (no masquerade)
 *                 - holder is this node       -> bypass masquerade, SNAT here
 *                 - no Up holder              -> drop (fail-closed)
 *  gateway side (holder)      own the floating IPs assigned to this node; SNAT matched sources from
 *                             every node to the policy's egressSourceIP
 *  guard        (every node)  nothing a policy matches leaves the uplink with a source other than
 *                             its egressSourceIP (holder) or un-NATed towards the current holder
 *
 * Conflicts are resolved by policy name order: the first policy (by name) that matches a
 * (source, destination) pair decides, on every node alike.
 */
import { labelSelectorMatches, type LabelSelector } from '../../lib/kube/selectors.js';
import { cidrTextContains, coveringCidrList, isIPv4, normaliseCidrList, parseCidr4 } from '../../lib/net/addresses.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { SUBNET_ANNOTATION } from '../../lib/kube/well-known.js';
import { EGRESS_GW_BYPASS_MARK, GW_MARK_SHIFT, GW_MAX_INDEX, GW_RULE_PREF, GW_TABLE_BASE } from './constants.js';
import { compileNetworkPolicies, type NetpolPlan, type NetworkPolicyInfo, networkPolicyFromObject } from './netpol.js';

export type Labels = Record<string, string>;

export interface NodeInfo {
  name: string;
  /** InternalIP */
  ip: string;
  /** the node's L2 subnet (annotation networking.egresslab.io/subnet), if known */
  subnet?: string;
  podCIDRs: string[];
}

export interface PodInfo {
  namespace: string;
  name: string;
  labels: Labels;
  ip?: string;
  nodeName?: string;
  hostNetwork: boolean;
  /** Succeeded/Failed pods hold no IP any more */
  terminated: boolean;
}

export interface NamespaceInfo {
  name: string;
  labels: Labels;
}

export interface EgressRule {
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
}

export interface PolicyInfo {
  name: string;
  rules: EgressRule[];
  destinationCIDRs: string[];
  egressSourceIP: string;
}

export interface GatewayState {
  /** spec.floatingIPs of the served gateway */
  floatingIPs: string[];
  /** status.floatingIPs: ip -> node */
  assignments: Record<string, string>;
  /** status.nodes: node -> Up|Down */
  nodes: Record<string, string>;
}

export interface ModelInput {
  self: { name: string; ip: string };
  nodes: NodeInfo[];
  /** null: no AnthosNetworkGateway served (every policy is fail-closed) */
  gateway: GatewayState | null;
  policies: PolicyInfo[];
  pods: PodInfo[];
  namespaces: NamespaceInfo[];
  networkPolicies?: NetworkPolicyInfo[];
  /**
   * Nodes this agent's own liveness probing declares dead (heartbeats missed). Treated like Down for
   * the source side only when `failClosedOnSuspect` (see docs/gateway.md for why it is off by default).
   */
  suspects?: string[];
  failClosedOnSuspect?: boolean;
  /** this node believes it is cut off (no heartbeat from any peer): it gives up its floating IPs */
  fenced?: boolean;
}

export type PolicyAction = 'route' | 'local' | 'drop';

export interface PolicyPlan {
  name: string;
  egressSourceIP: string;
  /** normalised destinationCIDRs */
  destinations: string[];
  /** matched pod IPs on this node (sorted) */
  localSources: string[];
  /** matched pod IPs on every node (sorted) */
  allSources: string[];
  /** matched pods, for status/logs ("ns/name") */
  matchedPods: string[];
  holder: string | null;
  holderIP: string | null;
  /** what this node does with its local matched traffic */
  action: PolicyAction;
  /** mark (index bits | bypass) for action "route" */
  mark: number | null;
  /** this node SNATs the policy's traffic (it holds the egressSourceIP) */
  snatHere: boolean;
  reason: string;
}

export interface GatewayRoute {
  node: string;
  ip: string;
  index: number;
  /** index << 16 (only the index bits: the ip rule matches fwmark/GW_MARK_MASK) */
  fwmark: number;
  table: number;
  pref: number;
}

export interface OwnedIP {
  ip: string;
  /** prefix used on the interface (32: no prefix route, no secondary-address coupling) */
  prefix: number;
}

export interface GatewayPlan {
  node: string;
  nodeIP: string;
  /** this node's pod CIDRs (the prerouting chain only looks at traffic sourced there) */
  podCIDRs: string[];
  /** the other nodes' pod CIDRs (the forward fence: their traffic forwarded here must be SNATed) */
  peerPodCIDRs: string[];
  policies: PolicyPlan[];
  /** one routing table per other node, whether it holds an IP now or not (stable, see render) */
  routes: GatewayRoute[];
  /** floating IPs this node must hold on its uplink */
  ownedIPs: OwnedIP[];
  /** every floating IP of the gateway (spec and status) but the nodes' own addresses (for the ARP fence, the purge after a commit and leftover clean-up) */
  floatingIPs: string[];
  /** every node's address (InternalIP), this node's included: never a floating IP, never purged; a peer's on this node's uplink is a leftover */
  nodeAddresses: string[];
  netpol: NetpolPlan;
  fenced: boolean;
  warnings: string[];
}

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function ipSort(list: Iterable<string>): string[] {
  const toInt = (s: string): number => s.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
  return [...new Set(list)].sort((a, b) => toInt(a) - toInt(b));
}

/** Namespace labels with the implicit `kubernetes.io/metadata.name` label (as kube-apiserver sets it). */
export function namespaceLabels(ns: NamespaceInfo | undefined, name: string): Labels {
  return { ...(ns?.labels ?? {}), 'kubernetes.io/metadata.name': name };
}

/** Pods that can be policy sources: scheduled, running with a pod IP, not hostNetwork. */
export function eligiblePod(p: PodInfo): boolean {
  return !p.hostNetwork && !p.terminated && !!p.ip && isIPv4(p.ip) && !!p.nodeName;
}

export function podMatchesPolicy(p: PodInfo, policy: PolicyInfo, nsLabels: Labels): boolean {
  return policy.rules.some((r) => labelSelectorMatches(r.namespaceSelector, nsLabels) && labelSelectorMatches(r.podSelector, p.labels));
}

/** Stable gateway index per other node: position in the name-sorted node list (self excluded) + 1. */
export function gatewayRoutes(self: string, nodes: readonly NodeInfo[]): { routes: GatewayRoute[]; warnings: string[] } {
  const others = [...nodes].filter((n) => n.name !== self && isIPv4(n.ip)).sort(byName);
  const warnings: string[] = [];
  if (others.length > GW_MAX_INDEX) warnings.push(`${others.length} nodes: only the first ${GW_MAX_INDEX} (by name) can serve as this node's gateway`);
  const routes = others.slice(0, GW_MAX_INDEX).map((n, i) => {
    const index = i + 1;
    return { node: n.name, ip: n.ip, index, fwmark: (index << GW_MARK_SHIFT) >>> 0, table: GW_TABLE_BASE + index, pref: GW_RULE_PREF };
  });
  return { routes, warnings };
}

export function computeGatewayPlan(input: ModelInput): GatewayPlan {
  const warnings: string[] = [];
  const self = input.self.name;
  const nodesByName = new Map(input.nodes.map((n) => [n.name, n]));
  const selfNode = nodesByName.get(self);
  const podCIDRs = selfNode?.podCIDRs ?? [];
  const nsByName = new Map(input.namespaces.map((n) => [n.name, n]));
  const pods = input.pods.filter(eligiblePod).sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  const { routes, warnings: rw } = gatewayRoutes(self, input.nodes);
  warnings.push(...rw);
  const routeByNode = new Map(routes.map((r) => [r.node, r]));
  const suspects = new Set(input.failClosedOnSuspect ? (input.suspects ?? []) : []);
  const fenced = !!input.fenced;
  const gw = input.gateway;

  const isUp = (node: string): boolean => gw?.nodes[node] === 'Up';

  const seenSourceIP = new Map<string, string>();
  const policies: PolicyPlan[] = [];
  for (const pol of [...input.policies].sort(byName)) {
    // no two overlapping: p_<name>_dst is an nft interval set, which refuses overlapping elements (a
    // policy listing 172.16.100.0/24 and 0.0.0.0/0 made every node's apply fail: chaos seed 2)
    const usable = pol.destinationCIDRs.filter((c) => parseCidr4(c, false).ok);
    const destinations = coveringCidrList(usable);
    if (usable.length !== pol.destinationCIDRs.length) warnings.push(`policy ${pol.name}: unusable destinationCIDRs entries ignored`);
    const matched = pods.filter((p) => podMatchesPolicy(p, pol, namespaceLabels(nsByName.get(p.namespace), p.namespace)));
    const allSources = ipSort(matched.map((p) => p.ip!));
    const localSources = ipSort(matched.filter((p) => p.nodeName === self).map((p) => p.ip!));
    const holder = gw?.assignments[pol.egressSourceIP] ?? null;
    const holderNode = holder ? nodesByName.get(holder) : undefined;
    let action: PolicyAction = 'drop';
    let mark: number | null = null;
    let snatHere = false;
    let reason: string;
    const dup = seenSourceIP.get(pol.egressSourceIP);
    seenSourceIP.set(pol.egressSourceIP, pol.name);
    if (dup) reason = `egressSourceIP ${pol.egressSourceIP} is already used by policy ${dup}`;
    else if (!isIPv4(pol.egressSourceIP)) reason = `egressSourceIP ${JSON.stringify(pol.egressSourceIP)} is not an IPv4 address`;
    else if (destinations.length === 0) reason = 'no usable destinationCIDRs';
    else if (!gw) reason = 'no AnthosNetworkGateway is served';
    else if (!holder) reason = `egressSourceIP ${pol.egressSourceIP} is not assigned to any node`;
    else if (!isUp(holder)) reason = `holder ${holder} of ${pol.egressSourceIP} is ${gw.nodes[holder] ?? 'unknown'}`;
    else if (holder === self) {
      if (fenced) reason = `this node holds ${pol.egressSourceIP} but is fenced (no peer heard): not serving`;
      else {
        action = 'local';
        snatHere = true;
        mark = EGRESS_GW_BYPASS_MARK;
        reason = `served here (${self})`;
      }
    } else if (!holderNode || !isIPv4(holderNode.ip)) reason = `holder ${holder} has no known InternalIP`;
    else if (suspects.has(holder)) reason = `holder ${holder} missed its heartbeats (fail-closed until the controller reassigns)`;
    else {
      const r = routeByNode.get(holder);
      if (!r) reason = `holder ${holder} has no gateway route (too many nodes)`;
      else {
        action = 'route';
        mark = (r.fwmark | EGRESS_GW_BYPASS_MARK) >>> 0;
        reason = `routed to ${holder} (${holderNode.ip})`;
      }
    }
    policies.push({
      name: pol.name,
      egressSourceIP: pol.egressSourceIP,
      destinations,
      localSources,
      allSources,
      matchedPods: matched.map((p) => `${p.namespace}/${p.name}`),
      holder,
      holderIP: holderNode?.ip ?? null,
      action,
      mark,
      snatHere,
      reason,
    });
  }

  // A node's own address listed as a floating IP (a typo in the spec: the controller never assigns
  // it, ReservedAddress; or a hand-written status that does): never a floating IP here. Fenced, it would silence
  // that node's ARP (its own requests and replies: off the segment); purged after a commit, it would
  // delete that node's connections (conntrack -D --reply-dst); held, a second owner of the address.
  const nodeAddress = new Map<string, string>();
  for (const n of [...input.nodes, input.self]) if (isIPv4(n.ip) && !nodeAddress.has(n.ip)) nodeAddress.set(n.ip, n.name);
  const listed = ipSort([...(gw?.floatingIPs ?? []), ...Object.keys(gw?.assignments ?? {})].filter(isIPv4));
  for (const ip of listed.filter((x) => nodeAddress.has(x)))
    warnings.push(`floating IP ${ip} is the address of node ${nodeAddress.get(ip)}: ignored (never held, ARP-fenced or purged here)`);

  const ownedIPs: OwnedIP[] = [];
  if (gw && !fenced) {
    for (const ip of ipSort(Object.keys(gw.assignments))) {
      if (gw.assignments[ip] !== self || !isIPv4(ip) || nodeAddress.has(ip)) continue;
      if (selfNode?.subnet && !cidrTextContains(selfNode.subnet, ip)) {
        warnings.push(`floating IP ${ip} assigned here is outside this node's subnet ${selfNode.subnet}: not taken`);
        continue;
      }
      ownedIPs.push({ ip, prefix: 32 });
    }
  }
  // a policy served here whose IP is not owned (outside subnet) cannot be served: fail closed
  for (const p of policies) {
    if (p.snatHere && !ownedIPs.some((o) => o.ip === p.egressSourceIP)) {
      p.snatHere = false;
      p.action = 'drop';
      p.mark = null;
      p.reason = `egressSourceIP ${p.egressSourceIP} cannot be held here`;
    }
  }

  const netpol = compileNetworkPolicies({
    self,
    pods,
    namespaces: input.namespaces,
    policies: input.networkPolicies ?? [],
  });
  warnings.push(...netpol.warnings);

  const floatingIPs = listed.filter((ip) => !nodeAddress.has(ip));
  const peerPodCIDRs = normaliseCidrList(input.nodes.filter((n) => n.name !== self).flatMap((n) => n.podCIDRs.filter((c) => parseCidr4(c, false).ok)));
  const nodeAddresses = ipSort(nodeAddress.keys());
  return { node: self, nodeIP: input.self.ip, podCIDRs, peerPodCIDRs, policies, routes, ownedIPs, floatingIPs, nodeAddresses, netpol, fenced, warnings };
}

// ---------------------------------------------------------------------------------------------
// API objects -> model inputs (pure, tolerant: malformed objects are skipped, never thrown on)

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const strMap = (v: unknown): Labels => {
  const out: Labels = {};
  if (isObj(v)) for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
};
const strList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export { SUBNET_ANNOTATION };

export function nodeFromObject(o: KubeObject): NodeInfo | null {
  const name = o.metadata.name;
  if (!name) return null;
  const status = isObj(o.status) ? o.status : {};
  const addrs = Array.isArray(status.addresses) ? status.addresses : [];
  const internal = addrs.find((a): a is Obj => isObj(a) && a.type === 'InternalIP' && typeof a.address === 'string');
  const spec = isObj(o.spec) ? o.spec : {};
  const podCIDRs = strList(spec.podCIDRs);
  if (podCIDRs.length === 0 && typeof spec.podCIDR === 'string') podCIDRs.push(spec.podCIDR);
  const subnet = o.metadata.annotations?.[SUBNET_ANNOTATION];
  return { name, ip: internal ? String(internal.address) : '', ...(subnet ? { subnet } : {}), podCIDRs };
}

export function podFromObject(o: KubeObject): PodInfo | null {
  const name = o.metadata.name;
  const namespace = o.metadata.namespace;
  if (!name || !namespace) return null;
  const spec = isObj(o.spec) ? o.spec : {};
  const status = isObj(o.status) ? o.status : {};
  let ip = typeof status.podIP === 'string' ? status.podIP : undefined;
  if (!ip && Array.isArray(status.podIPs)) {
    const first = status.podIPs.find((x): x is Obj => isObj(x) && typeof x.ip === 'string' && isIPv4(x.ip));
    if (first) ip = String(first.ip);
  }
  const phase = typeof status.phase === 'string' ? status.phase : '';
  return {
    namespace,
    name,
    labels: strMap(o.metadata.labels),
    ...(ip ? { ip } : {}),
    ...(typeof spec.nodeName === 'string' ? { nodeName: spec.nodeName } : {}),
    hostNetwork: spec.hostNetwork === true,
    terminated: phase === 'Succeeded' || phase === 'Failed' || !!o.metadata.deletionTimestamp,
  };
}

export function namespaceFromObject(o: KubeObject): NamespaceInfo | null {
  return o.metadata.name ? { name: o.metadata.name, labels: strMap(o.metadata.labels) } : null;
}

/** EgressNATPolicy v1alpha1 (v1 objects have no egressSourceIP and are ignored). */
export function policyFromObject(o: KubeObject): PolicyInfo | null {
  const name = o.metadata.name;
  const spec = isObj(o.spec) ? o.spec : null;
  if (!name || !spec || typeof spec.egressSourceIP !== 'string') return null;
  if (o.apiVersion && !o.apiVersion.endsWith('/v1alpha1')) return null;
  const rules: EgressRule[] = [];
  for (const r of Array.isArray(spec.egress) ? spec.egress : []) {
    if (!isObj(r)) continue;
    rules.push({
      ...(isObj(r.namespaceSelector) ? { namespaceSelector: r.namespaceSelector as LabelSelector } : {}),
      ...(isObj(r.podSelector) ? { podSelector: r.podSelector as LabelSelector } : {}),
    });
  }
  return { name, rules, destinationCIDRs: strList(spec.destinationCIDRs), egressSourceIP: spec.egressSourceIP };
}

export function gatewayFromObject(o: KubeObject | undefined): GatewayState | null {
  if (!o) return null;
  const spec = isObj(o.spec) ? o.spec : {};
  const status = isObj(o.status) ? o.status : {};
  return { floatingIPs: strList(spec.floatingIPs), assignments: strMap(status.floatingIPs), nodes: strMap(status.nodes) };
}

export { networkPolicyFromObject };

/** What computeGatewayPlan reads of one watched object, by the kind of object (the agent's informers). */
const PLAN_PROJECTIONS = {
  gateway: gatewayFromObject,
  policies: policyFromObject,
  pods: podFromObject,
  namespaces: namespaceFromObject,
  nodes: nodeFromObject,
  networkpolicies: networkPolicyFromObject,
} as const satisfies Record<string, (o: KubeObject) => unknown>;

export type PlanInputKind = keyof typeof PLAN_PROJECTIONS;

/**
 * Whether two versions of an object give the plan the same input: an update that changes only what
 * the plan never reads (a Node's conditions or annotations, a Pod's conditions, a policy's status)
 * needs no new plan.
 */
export function samePlanInput(kind: PlanInputKind, a: KubeObject, b: KubeObject): boolean {
  const project: (o: KubeObject) => unknown = PLAN_PROJECTIONS[kind];
  return JSON.stringify(project(a)) === JSON.stringify(project(b));
}
