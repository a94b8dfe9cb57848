/**
 * Address and link planning: from a validated Topology to the exact containers, veth pairs,
 * addresses, routes and sysctls of a lab. Pure (no I/O), so the whole lab layout is unit-tested.
 */
import { createHash } from 'node:crypto';
import { cidrRange, intToIPv4, nthAddress, prefixLength, withPrefix } from '../../lib/net/addresses.js';
import type { NodeSpec, PodSpec, Topology, VpcEndpointSpec } from './types.js';

export type ContainerRole = 'switch' | 'router' | 'internet' | 'vpc' | 'node' | 'wirer';

/** One container of the plan: its key, image role and hostname. */
export interface ContainerPlan {
  /** Key inside the lab: node name, endpoint name, or router/internet/switch/wirer. */
  key: string;
  role: ContainerRole;
  hostname: string;
}

/** One end of a veth pair: where it lives and its name and address. */
export interface VethEnd {
  container: string;
  ifname: string;
}

/** A veth pair of the plan, both ends. */
export interface VethPlan {
  a: VethEnd;
  b: VethEnd;
  /** When set, `b` is a port of this bridge (in b's container). */
  bridge?: string;
}

/** A pod network namespace: addresses and routes. */
export interface NetnsConfig {
  container: string;
  /** `ip -batch` lines run in the container's network namespace after the links exist. */
  ip: string[];
  /** sysctl name (dotted, under /proc/sys) -> value. */
  sysctls: Record<string, string>;
}

/** A pod of the plan: its node, netns and addresses. */
export interface PodPlan {
  key: string; // ns/name
  namespace: string;
  name: string;
  node: string;
  hostNetwork: boolean;
  ip?: string;
  /** Network namespace name inside the node container (absent for hostNetwork pods). */
  netns?: string;
  /** Host-side veth name in the node (absent for hostNetwork pods). */
  hostVeth?: string;
  labels: Record<string, string>;
  /** ip -batch lines run inside the pod's netns. */
  ip_: string[];
}

/** Everything needed to build a lab from a topology: containers, veths, pods. */
export interface LabPlan {
  topology: Topology;
  containers: ContainerPlan[];
  veths: VethPlan[];
  bridges: { container: string; name: string }[];
  netns: NetnsConfig[];
  pods: PodPlan[];
  /** Switch port (in the switch container) of each container attached to the node segment. */
  switchPorts: Record<string, string>;
  /** The address each container has on its uplink (nodes, router on the node segment, endpoints). */
  addresses: Record<string, string>;
  transit: { router: string; internet: string };
  /** Gateway of pods: an address nobody owns, answered by proxy ARP on the host veth (as Calico). */
  podGateway: string;
}

export const SWITCH = 'switch';
export const ROUTER = 'router';
export const INTERNET = 'internet';
export const WIRER = 'wirer';
/** The short-lived container that fills a lab's payload volume (harness/lab/payload.ts). */
export const PAYLOAD_LOADER = 'payload-loader';
/** Container keys the lab uses for itself (each container is egl-<lab>-<key>): no node or endpoint may take one. */
export const LAB_CONTAINER_KEYS: readonly string[] = [SWITCH, ROUTER, INTERNET, WIRER, PAYLOAD_LOADER];
export const POD_GATEWAY = '169.254.1.1';
/** A rule that only repeats the main lookup; it keeps the kernel from merging local and main. */
export const UNMERGE_RULE_PREF = 32000;

const FORWARDING_SYSCTLS: Record<string, string> = {
  'net.ipv4.ip_forward': '1',
  'net.ipv4.conf.all.rp_filter': '0',
  'net.ipv4.conf.default.rp_filter': '0',
  'net.ipv4.conf.all.send_redirects': '0',
  'net.ipv4.conf.default.send_redirects': '0',
};

const HOST_SYSCTLS: Record<string, string> = {
  'net.ipv4.conf.all.rp_filter': '0',
  'net.ipv4.conf.default.rp_filter': '0',
};

/** A pod's key, `namespace/name`. */
export function podKey(pod: Pick<PodSpec, 'namespace' | 'name'>): string {
  return `${pod.namespace}/${pod.name}`;
}

/** Interface names are limited to 15 bytes: pod veths are named by a hash of the pod key. */
export function podVethName(key: string): string {
  return `vp${createHash('sha1').update(key).digest('hex').slice(0, 10)}`;
}

/** The network namespace name of a pod. */
export function podNetnsName(pod: Pick<PodSpec, 'namespace' | 'name'>): string {
  return `${pod.namespace}.${pod.name}`;
}

function transitAddresses(transitCIDR: string): { router: string; internet: string } {
  const { first, bits } = cidrRange(transitCIDR);
  return bits === 31 ? { router: intToIPv4(first), internet: intToIPv4(first + 1) } : { router: intToIPv4(first + 1), internet: intToIPv4(first + 2) };
}

function vpcRouterAddress(ep: VpcEndpointSpec): string {
  return nthAddress(ep.subnet, 1);
}

function nodePlan(t: Topology, node: NodeSpec, pods: PodPlan[]): NetnsConfig {
  const ip = [
    'link set lo up',
    `addr add ${withPrefix(node.address, t.nodeSubnet)} dev eth0`,
    'link set eth0 up',
    `route add default via ${t.routerAddress} dev eth0`,
  ];
  // Routed CNI: other nodes' pod CIDRs via their node IPs (never NATed).
  for (const other of t.nodes) {
    if (other.name !== node.name && other.podCIDR) ip.push(`route add ${other.podCIDR} via ${other.address} dev eth0`);
  }
  const sysctls: Record<string, string> = { ...FORWARDING_SYSCTLS };
  for (const pod of pods) {
    if (pod.node !== node.name || pod.hostNetwork) continue;
    ip.push(`link set ${pod.hostVeth} up`, `route add ${pod.ip}/32 dev ${pod.hostVeth} scope link`);
    sysctls[`net.ipv4.conf.${pod.hostVeth}.proxy_arp`] = '1';
    sysctls[`net.ipv4.conf.${pod.hostVeth}.rp_filter`] = '0';
    // Proxy ARP answers after a random delay of up to 0.8 s by default: answer at once (as Calico does).
    sysctls[`net.ipv4.neigh.${pod.hostVeth}.proxy_delay`] = '0';
  }
  return { container: node.name, ip, sysctls };
}

/** Lays out the whole lab. Deterministic for a given topology. */
export function planLab(t: Topology): LabPlan {
  const containers: ContainerPlan[] = [
    { key: SWITCH, role: 'switch', hostname: 'switch' },
    { key: ROUTER, role: 'router', hostname: 'router' },
    { key: INTERNET, role: 'internet', hostname: 'internet' },
    ...t.vpcEndpoints.map((e): ContainerPlan => ({ key: e.name, role: 'vpc', hostname: e.name })),
    ...t.nodes.map((n): ContainerPlan => ({ key: n.name, role: 'node', hostname: n.name })),
  ];
  const transit = transitAddresses(t.transitCIDR);
  const veths: VethPlan[] = [];
  const switchPorts: Record<string, string> = {};
  const addresses: Record<string, string> = { [ROUTER]: t.routerAddress, [INTERNET]: transit.internet };

  // The node segment: one bridge in the switch container, one port per member.
  const members = [ROUTER, ...t.nodes.map((n) => n.name)];
  members.forEach((member, i) => {
    const port = `p${i}`;
    switchPorts[member] = port;
    veths.push({ a: { container: member, ifname: member === ROUTER ? 'eth-nodes' : 'eth0' }, b: { container: SWITCH, ifname: port }, bridge: 'br0' });
  });
  veths.push({ a: { container: ROUTER, ifname: 'eth-inet' }, b: { container: INTERNET, ifname: 'eth0' } });
  t.vpcEndpoints.forEach((e, i) => {
    veths.push({ a: { container: ROUTER, ifname: `eth-vpc${i}` }, b: { container: e.name, ifname: 'eth0' } });
    addresses[e.name] = e.address;
  });
  for (const n of t.nodes) addresses[n.name] = n.address;

  const pods: PodPlan[] = t.pods.map((p) => {
    const key = podKey(p);
    if (p.hostNetwork) {
      return { key, namespace: p.namespace, name: p.name, node: p.node, hostNetwork: true, labels: p.labels, ip_: [] };
    }
    return {
      key,
      namespace: p.namespace,
      name: p.name,
      node: p.node,
      hostNetwork: false,
      ip: p.ip!,
      netns: podNetnsName(p),
      hostVeth: podVethName(key),
      labels: p.labels,
      ip_: [
        'link set lo up',
        `addr add ${p.ip}/32 dev eth0`,
        'link set eth0 up',
        `route add ${POD_GATEWAY} dev eth0 scope link`,
        `route add default via ${POD_GATEWAY} dev eth0`,
      ],
    };
  });

  const netns: NetnsConfig[] = [];
  netns.push({ container: SWITCH, ip: ['link set lo up'], sysctls: {} });
  // Router: forwards, never NATs.
  const routerIp = [
    'link set lo up',
    `addr add ${withPrefix(t.routerAddress, t.nodeSubnet)} dev eth-nodes`,
    'link set eth-nodes up',
    `addr add ${transit.router}/${prefixLength(t.transitCIDR)} dev eth-inet`,
    'link set eth-inet up',
  ];
  t.vpcEndpoints.forEach((e, i) => {
    routerIp.push(`addr add ${withPrefix(vpcRouterAddress(e), e.subnet)} dev eth-vpc${i}`, `link set eth-vpc${i} up`);
  });
  for (const n of t.nodes) if (n.podCIDR) routerIp.push(`route add ${n.podCIDR} via ${n.address} dev eth-nodes`);
  t.vpcEndpoints.forEach((e, i) => {
    for (const a of e.answers) routerIp.push(`route replace ${a} via ${e.address} dev eth-vpc${i}`);
  });
  routerIp.push(`route add default via ${transit.internet} dev eth-inet`);
  netns.push({ container: ROUTER, ip: routerIp, sysctls: { ...FORWARDING_SYSCTLS } });

  // Internet: AnyIP for every address it has no route for; routes back only to the node segment.
  // AnyIP routes live in the local table (the kernel only answers ICMP from addresses it finds
  // there); `throw` routes hand the lab's own ranges over to the main table. A throw only falls
  // through when the local and main tables are not merged, which any custom rule ensures.
  netns.push({
    container: INTERNET,
    ip: [
      'link set lo up',
      `addr add ${transit.internet}/${prefixLength(t.transitCIDR)} dev eth0`,
      'link set eth0 up',
      `route add ${t.nodeSubnet} via ${transit.router} dev eth0`,
      `rule add pref ${UNMERGE_RULE_PREF} lookup main`,
      `route add throw ${t.nodeSubnet} table local`,
      `route add throw ${t.transitCIDR} table local`,
      'route add local 0.0.0.0/0 dev lo table local',
    ],
    sysctls: { ...HOST_SYSCTLS },
  });
  // VPC endpoints: AnyIP for their answer ranges, except the lab's own ranges; routes back to
  // nodes and pods through the router.
  for (const e of t.vpcEndpoints) {
    const gw = vpcRouterAddress(e);
    const ip = ['link set lo up', `addr add ${withPrefix(e.address, e.subnet)} dev eth0`, 'link set eth0 up'];
    ip.push(`route add default via ${gw} dev eth0`, `rule add pref ${UNMERGE_RULE_PREF} lookup main`);
    for (const a of e.answers) ip.push(`route replace local ${a} dev lo table local`);
    const own = [t.nodeSubnet, e.subnet, ...t.nodes.flatMap((n) => (n.podCIDR ? [n.podCIDR] : []))];
    for (const r of own) ip.push(`route replace throw ${r} table local`);
    netns.push({ container: e.name, ip, sysctls: { ...HOST_SYSCTLS } });
  }
  for (const n of t.nodes) netns.push(nodePlan(t, n, pods));

  return {
    topology: t,
    containers,
    veths,
    bridges: [{ container: SWITCH, name: 'br0' }],
    netns,
    pods,
    switchPorts,
    addresses,
    transit,
    podGateway: POD_GATEWAY,
  };
}
