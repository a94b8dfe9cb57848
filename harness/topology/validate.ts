/**
 * Turns a topology file's content into a validated `Topology`, or throws a ValidationError listing
 * every offending field with its value. Pure: no I/O.
 */
import {
  LINK_LOCAL_CIDR,
  cidrTextContains,
  cidrRange,
  intToIPv4,
  isAligned,
  isIPv4,
  isUsableHost,
  nonUnicastOverlap,
  nthAddress,
  overlaps,
  parseCidr4,
} from '../../lib/net/addresses.js';
import { DEFAULT_NON_MASQUERADE_CIDRS } from '../../lib/kube/well-known.js';
import type { NamespaceSpec, NodeSpec, PodSpec, SnatFlavour, Topology, VpcEndpointSpec } from './types.js';
import { LAB_CONTAINER_KEYS } from './plan.js';
import { ValidationError, type FieldIssue } from '../util/errors.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const RESERVED_NAMES = new Set(LAB_CONTAINER_KEYS);
const SNAT_FLAVOURS: readonly SnatFlavour[] = ['none', 'default-snat', 'ip-masq-agent', 'autopilot'];

export const TOPOLOGY_DEFAULTS = Object.freeze({
  name: 'lab',
  nodeSubnet: '192.168.1.0/24',
  transitCIDR: '100.127.255.252/30',
  serviceCIDR: '10.96.0.0/16',
  snat: 'none' as SnatFlavour,
  vpcEndpoint: {
    name: 'vpc',
    address: '172.16.100.10',
    subnet: '172.16.100.0/24',
    answers: [...DEFAULT_NON_MASQUERADE_CIDRS, LINK_LOCAL_CIDR],
  },
});

type Obj = Record<string, unknown>;

class Collector {
  readonly issues: FieldIssue[] = [];
  add(path: string, value: unknown, message: string): void {
    this.issues.push({ path, value, message });
  }
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(c: Collector, path: string, obj: Obj, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      c.add(path ? `${path}.${key}` : key, obj[key], `unknown field (allowed: ${allowed.join(', ')})`);
    }
  }
}

function str(c: Collector, path: string, v: unknown, fallback?: string): string | undefined {
  if (v === undefined) {
    if (fallback === undefined) c.add(path, v, 'is required');
    return fallback;
  }
  if (typeof v !== 'string' || v.length === 0) {
    c.add(path, v, 'must be a non-empty string');
    return undefined;
  }
  return v;
}

function dnsName(c: Collector, path: string, v: unknown, fallback?: string): string | undefined {
  const s = str(c, path, v, fallback);
  if (s !== undefined && !DNS_LABEL.test(s)) {
    c.add(path, s, 'must be a DNS label: lower-case letters, digits and "-", at most 63 characters');
    return undefined;
  }
  return s;
}

function cidr(c: Collector, path: string, v: unknown, fallback?: string): string | undefined {
  const s = str(c, path, v, fallback);
  if (s === undefined) return undefined;
  if (!parseCidr4(s, false).ok) {
    c.add(path, s, 'must be an IPv4 CIDR such as 10.10.10.0/24 (IPv6 is not supported)');
    return undefined;
  }
  if (!isAligned(s)) {
    const { first, bits } = cidrRange(s);
    c.add(path, s, `has host bits set; did you mean ${intToIPv4(first)}/${bits}?`);
    return undefined;
  }
  return s;
}

/** A lab range (its hosts get addresses from it): a CIDR that shares no address with a non-unicast range. */
function hostRange(c: Collector, path: string, v: unknown, fallback?: string): string | undefined {
  const s = cidr(c, path, v, fallback);
  const special = s === undefined ? null : nonUnicastOverlap(s);
  if (special) {
    c.add(path, s, `overlaps ${special}: no host of the lab can have an address there`);
    return undefined;
  }
  return s;
}

function ipv4(c: Collector, path: string, v: unknown, fallback?: string): string | undefined {
  const s = str(c, path, v, fallback);
  if (s !== undefined && !isIPv4(s)) {
    c.add(path, s, 'must be an IPv4 address such as 192.168.1.1');
    return undefined;
  }
  return s;
}

function labels(c: Collector, path: string, v: unknown): Record<string, string> {
  if (v === undefined) return {};
  if (!isObj(v)) {
    c.add(path, v, 'must be a map of label key to string value');
    return {};
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!LABEL_KEY.test(k)) c.add(`${path}.${k}`, k, 'is not a valid label key');
    else if (typeof val !== 'string' || !LABEL_VALUE.test(val)) {
      c.add(`${path}.${k}`, val, 'must be a label value: a string of up to 63 letters, digits, "-", "_" or "."');
    } else out[k] = val;
  }
  return out;
}

function list(c: Collector, path: string, v: unknown, required: boolean): unknown[] {
  if (v === undefined) {
    if (required) c.add(path, v, 'is required (a list)');
    return [];
  }
  if (!Array.isArray(v)) {
    c.add(path, v, 'must be a list');
    return [];
  }
  return v;
}

/**
 * VPC answers become routes on the router (`route replace ANSWER via ENDPOINT`) and local routes on
 * the endpoint, with `throw` routes for the lab's own ranges. An answer containing a lab range is
 * fine (the longer prefix wins; the defaults contain the node subnet and the pod CIDRs), but one equal
 * to a lab range replaces that range's route, one inside a lab range takes part of it, 0.0.0.0/0
 * takes the internet's place, and the same range on two endpoints goes to the last one only.
 */
function checkAnswers(
  c: Collector,
  answers: readonly { path: string; cidr: string; endpoint: string; name: string }[],
  labRanges: readonly { path: string; cidr: string }[],
): void {
  const answeredBy = new Map<string, { endpoint: string; name: string }>();
  for (const a of answers) {
    const bits = cidrRange(a.cidr).bits;
    if (bits === 0) {
      c.add(
        a.path,
        a.cidr,
        `is every address: ${a.name} would answer for the whole internet and the internet endpoint would never be reached; list the ranges ${a.name} serves`,
      );
      continue;
    }
    const hit = labRanges.find((r) => overlaps(r.cidr, a.cidr) && bits >= cidrRange(r.cidr).bits);
    if (hit) {
      const how = bits === cidrRange(hit.cidr).bits ? 'is' : 'lies inside';
      c.add(
        a.path,
        a.cidr,
        `${how} ${hit.path} ${hit.cidr}: the router would send the lab's own traffic there to ${a.name} (an answer may contain the lab's ranges, not equal one or lie inside one)`,
      );
      continue;
    }
    const first = answeredBy.get(a.cidr);
    if (first && first.endpoint !== a.endpoint)
      c.add(a.path, a.cidr, `is already answered by ${first.endpoint} (${first.name}): the router has one route per range`);
    else if (!first) answeredBy.set(a.cidr, a);
  }
}

/** Validates and defaults a topology. `source` names the file in messages. */
export function parseTopology(input: unknown, source = 'topology'): Topology {
  const c = new Collector();
  if (!isObj(input)) throw new ValidationError(source, [{ path: '(root)', value: input, message: 'must be a map' }]);
  checkKeys(c, '', input, [
    'apiVersion',
    'kind',
    'name',
    'nodeSubnet',
    'routerAddress',
    'transitCIDR',
    'serviceCIDR',
    'snat',
    'cluster',
    'lease',
    'nodes',
    'namespaces',
    'pods',
    'vpcEndpoints',
  ]);
  if (input.apiVersion !== undefined && input.apiVersion !== 'egresslab/v1') {
    c.add('apiVersion', input.apiVersion, 'must be egresslab/v1');
  }
  if (input.kind !== undefined && input.kind !== 'Topology') c.add('kind', input.kind, 'must be Topology');

  const name = dnsName(c, 'name', input.name, TOPOLOGY_DEFAULTS.name) ?? 'lab';
  const nodeSubnet = hostRange(c, 'nodeSubnet', input.nodeSubnet, TOPOLOGY_DEFAULTS.nodeSubnet);
  if (nodeSubnet && cidrRange(nodeSubnet).bits > 29) {
    c.add('nodeSubnet', nodeSubnet, 'is too small for a lab: use a /29 or larger');
  }
  const transitCIDR = hostRange(c, 'transitCIDR', input.transitCIDR, TOPOLOGY_DEFAULTS.transitCIDR);
  if (transitCIDR && cidrRange(transitCIDR).bits < 30) {
    c.add('transitCIDR', transitCIDR, 'must be a /30 or /31 (router <-> internet point-to-point link)');
  }
  const serviceCIDR = hostRange(c, 'serviceCIDR', input.serviceCIDR, TOPOLOGY_DEFAULTS.serviceCIDR);
  let routerAddress: string | undefined;
  if (nodeSubnet && cidrRange(nodeSubnet).bits <= 29) {
    const { last } = cidrRange(nodeSubnet);
    routerAddress = ipv4(c, 'routerAddress', input.routerAddress, intToIPv4(last - 1));
    if (routerAddress && !isUsableHost(nodeSubnet, routerAddress)) {
      c.add('routerAddress', routerAddress, `must be a usable address inside nodeSubnet ${nodeSubnet}`);
    }
  }
  let snat: SnatFlavour = TOPOLOGY_DEFAULTS.snat;
  if (input.snat !== undefined) {
    if (typeof input.snat !== 'string' || !SNAT_FLAVOURS.includes(input.snat as SnatFlavour)) {
      c.add('snat', input.snat, `must be one of ${SNAT_FLAVOURS.join(', ')}`);
    } else snat = input.snat as SnatFlavour;
  }

  let cluster = true;
  const clusterExplicit = input.cluster !== undefined;
  if (input.cluster !== undefined) {
    if (typeof input.cluster !== 'boolean') c.add('cluster', input.cluster, 'must be true or false');
    else cluster = input.cluster;
  }

  let lease: Topology['lease'];
  if (input.lease !== undefined) {
    if (!isObj(input.lease)) c.add('lease', input.lease, 'must be a map with renewIntervalMs and expiryMs');
    else {
      checkKeys(c, 'lease', input.lease, ['renewIntervalMs', 'expiryMs']);
      const ms = (k: 'renewIntervalMs' | 'expiryMs', lo: number, hi: number) => {
        const v = (input.lease as Obj)[k];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
          c.add(`lease.${k}`, v, `must be a whole number of milliseconds from ${lo} to ${hi}`);
          return undefined;
        }
        return v;
      };
      const renew = ms('renewIntervalMs', 20, 60_000);
      const expiry = ms('expiryMs', 50, 300_000);
      if (renew !== undefined && expiry !== undefined) {
        if (expiry < 2 * renew) c.add('lease.expiryMs', expiry, `must be at least twice renewIntervalMs (${renew}), or one late renewal marks a node Down`);
        else lease = { renewIntervalMs: renew, expiryMs: expiry };
      }
    }
  }

  // Nodes.
  const nodes: NodeSpec[] = [];
  /** Input index of each entry of `nodes` (invalid entries are left out of `nodes`). */
  const nodeInputIndex: number[] = [];
  const nodeNames = new Set<string>();
  const nodeAddrs = new Map<string, string>();
  list(c, 'nodes', input.nodes, true).forEach((raw, i) => {
    const p = `nodes[${i}]`;
    if (!isObj(raw)) return c.add(p, raw, 'must be a map with name, address and (for pods) podCIDR');
    checkKeys(c, p, raw, ['name', 'role', 'address', 'podCIDR']);
    const n = dnsName(c, `${p}.name`, raw.name);
    if (n && RESERVED_NAMES.has(n))
      c.add(`${p}.name`, n, `is reserved for the lab's own containers (${LAB_CONTAINER_KEYS.join(', ')}; container egl-<lab>-${n}): pick another name`);
    if (n && nodeNames.has(n)) c.add(`${p}.name`, n, 'duplicates another node name');
    if (n) nodeNames.add(n);
    const role = raw.role ?? 'worker';
    if (role !== 'worker' && role !== 'control-plane') c.add(`${p}.role`, role, 'must be worker or control-plane');
    const address = ipv4(c, `${p}.address`, raw.address);
    if (address && nodeSubnet) {
      if (!isUsableHost(nodeSubnet, address)) {
        c.add(`${p}.address`, address, `must be a usable address inside nodeSubnet ${nodeSubnet}`);
      } else if (address === routerAddress) {
        c.add(`${p}.address`, address, 'is the router address');
      } else if (nodeAddrs.has(address)) {
        c.add(`${p}.address`, address, `is already the address of node ${nodeAddrs.get(address)}`);
      }
    }
    if (address && n) nodeAddrs.set(address, n);
    const podCIDR = raw.podCIDR === undefined ? undefined : hostRange(c, `${p}.podCIDR`, raw.podCIDR);
    if (n && address) {
      nodes.push({ name: n, role: role as NodeSpec['role'], address, ...(podCIDR ? { podCIDR } : {}) });
      nodeInputIndex.push(i);
    }
  });
  if (Array.isArray(input.nodes) && input.nodes.length === 0) c.add('nodes', input.nodes, 'must list at least one node');
  // The cluster's programs run by default when there is a control-plane node to host the controller.
  if (!nodes.some((n) => n.role === 'control-plane')) {
    if (cluster && clusterExplicit) c.add('cluster', true, 'needs a control-plane node (role: control-plane) to run the controller');
    cluster = false;
  }
  // SNAT other than none is programmed by the node agent: without the cluster nothing would do it.
  if (!cluster && snat !== 'none') {
    c.add('snat', snat, `needs the cluster's agents (cluster: true and a control-plane node); without them nothing SNATs, which is snat: none`);
  }
  if (!cluster && lease) c.add('lease', lease, 'only applies when the cluster runs (cluster: true)');

  // Ranges that must not overlap.
  const ranges: { path: string; cidr: string }[] = [];
  if (nodeSubnet) ranges.push({ path: 'nodeSubnet', cidr: nodeSubnet });
  if (transitCIDR) ranges.push({ path: 'transitCIDR', cidr: transitCIDR });
  if (serviceCIDR) ranges.push({ path: 'serviceCIDR', cidr: serviceCIDR });
  nodes.forEach((n, k) => {
    if (n.podCIDR) ranges.push({ path: `nodes[${nodeInputIndex[k]}].podCIDR (${n.name})`, cidr: n.podCIDR });
  });

  // VPC endpoints.
  const vpcEndpoints: VpcEndpointSpec[] = [];
  const vpcRaw = input.vpcEndpoints === undefined ? [TOPOLOGY_DEFAULTS.vpcEndpoint] : list(c, 'vpcEndpoints', input.vpcEndpoints, false);
  const endpointNames = new Set<string>();
  const answerPaths: { path: string; cidr: string; endpoint: string; name: string }[] = [];
  vpcRaw.forEach((raw, i) => {
    const p = `vpcEndpoints[${i}]`;
    if (!isObj(raw)) return c.add(p, raw, 'must be a map with name, address, subnet and answers');
    checkKeys(c, p, raw, ['name', 'address', 'subnet', 'answers']);
    const n = dnsName(c, `${p}.name`, raw.name);
    if (n && (nodeNames.has(n) || RESERVED_NAMES.has(n) || endpointNames.has(n))) {
      c.add(`${p}.name`, n, 'is already used by a node, another endpoint or the lab itself');
    }
    if (n) endpointNames.add(n);
    const subnet = hostRange(c, `${p}.subnet`, raw.subnet);
    if (subnet && cidrRange(subnet).bits > 30) c.add(`${p}.subnet`, subnet, 'must be a /30 or larger');
    const address = ipv4(c, `${p}.address`, raw.address);
    if (address && subnet && cidrRange(subnet).bits <= 30) {
      if (!isUsableHost(subnet, address)) c.add(`${p}.address`, address, `must be a usable address inside ${subnet}`);
      else if (address === nthAddress(subnet, 1)) {
        c.add(`${p}.address`, address, `is the router's address on ${subnet} (the first usable one)`);
      }
    }
    const answers: string[] = [];
    list(c, `${p}.answers`, raw.answers ?? TOPOLOGY_DEFAULTS.vpcEndpoint.answers, false).forEach((a, j) => {
      const v = cidr(c, `${p}.answers[${j}]`, a);
      if (v) answers.push(v);
      if (v) answerPaths.push({ path: `${p}.answers[${j}]`, cidr: v, endpoint: p, name: n ?? p });
    });
    if (subnet) ranges.push({ path: `${p}.subnet`, cidr: subnet });
    if (n && subnet && address) vpcEndpoints.push({ name: n, address, subnet, answers });
  });
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const a = ranges[i]!;
      const b = ranges[j]!;
      if (overlaps(a.cidr, b.cidr)) c.add(b.path, b.cidr, `overlaps ${a.path} ${a.cidr}`);
    }
  }
  checkAnswers(
    c,
    answerPaths,
    ranges.filter((r) => r.path !== 'serviceCIDR'),
  );

  // Namespaces: `default` and `kube-system` always exist, as in a cluster.
  const namespaces: NamespaceSpec[] = [];
  const nsIndex = new Map<string, NamespaceSpec>();
  const addNs = (nsName: string, nsLabels: Record<string, string>) => {
    const spec = { name: nsName, labels: { ...nsLabels, 'kubernetes.io/metadata.name': nsName } };
    nsIndex.set(nsName, spec);
    namespaces.push(spec);
  };
  const userNs = list(c, 'namespaces', input.namespaces, false);
  const declared = new Set<string>();
  userNs.forEach((raw, i) => {
    const p = `namespaces[${i}]`;
    if (!isObj(raw)) return c.add(p, raw, 'must be a map with name and labels');
    checkKeys(c, p, raw, ['name', 'labels']);
    const n = dnsName(c, `${p}.name`, raw.name);
    if (n && declared.has(n)) c.add(`${p}.name`, n, 'duplicates another namespace');
    const l = labels(c, `${p}.labels`, raw.labels);
    if (n && !declared.has(n)) {
      declared.add(n);
      addNs(n, l);
    }
  });
  for (const builtin of ['default', 'kube-system']) if (!nsIndex.has(builtin)) addNs(builtin, {});

  // Pods.
  const pods: PodSpec[] = [];
  const podKeys = new Set<string>();
  const podIps = new Map<string, string>();
  const pending: { index: number; inputIndex: number; spec: Omit<PodSpec, 'ip'> }[] = [];
  list(c, 'pods', input.pods, false).forEach((raw, i) => {
    const p = `pods[${i}]`;
    if (!isObj(raw)) return c.add(p, raw, 'must be a map with namespace, name and node');
    checkKeys(c, p, raw, ['namespace', 'name', 'node', 'ip', 'hostNetwork', 'labels']);
    let nsRaw = raw.namespace;
    let nameRaw = raw.name;
    if (typeof nameRaw === 'string' && nameRaw.includes('/') && nsRaw === undefined) {
      [nsRaw, nameRaw] = nameRaw.split('/', 2);
    }
    const ns = dnsName(c, `${p}.namespace`, nsRaw, 'default');
    if (ns && !nsIndex.has(ns)) c.add(`${p}.namespace`, ns, 'names no namespace of this topology (add it under namespaces)');
    const n = dnsName(c, `${p}.name`, nameRaw);
    const key = `${ns}/${n}`;
    if (ns && n && podKeys.has(key)) c.add(`${p}.name`, key, 'duplicates another pod');
    podKeys.add(key);
    const nodeName = str(c, `${p}.node`, raw.node);
    const node = nodes.find((x) => x.name === nodeName);
    if (nodeName && !node) c.add(`${p}.node`, nodeName, 'names no node of this topology');
    const hostNetwork = raw.hostNetwork ?? false;
    if (typeof hostNetwork !== 'boolean') c.add(`${p}.hostNetwork`, hostNetwork, 'must be true or false');
    const podLabels = labels(c, `${p}.labels`, raw.labels);
    if (hostNetwork === true) {
      if (raw.ip !== undefined) c.add(`${p}.ip`, raw.ip, 'a hostNetwork pod has its node IP; remove ip');
      if (ns && n && node) pods.push({ namespace: ns, name: n, node: node.name, hostNetwork: true, labels: podLabels });
      return;
    }
    if (node && !node.podCIDR) c.add(`${p}.node`, node.name, 'runs pods but has no podCIDR');
    if (raw.ip !== undefined) {
      const ip = ipv4(c, `${p}.ip`, raw.ip);
      if (ip && node?.podCIDR) {
        const { first, last, bits } = cidrRange(node.podCIDR);
        const which = ip === intToIPv4(first) ? 'network' : ip === intToIPv4(last) && bits <= 30 ? 'broadcast' : undefined;
        if (!cidrTextContains(node.podCIDR, ip) || which) {
          c.add(`${p}.ip`, ip, `must be a host address inside ${node.name}'s podCIDR ${node.podCIDR}${which ? `, not its ${which} address` : ''}`);
        } else if (podIps.has(ip)) c.add(`${p}.ip`, ip, `is already the IP of pod ${podIps.get(ip)}`);
        else {
          podIps.set(ip, key);
          if (ns && n) pods.push({ namespace: ns, name: n, node: node.name, ip, hostNetwork: false, labels: podLabels });
        }
      }
    } else if (ns && n && node?.podCIDR) {
      pending.push({ index: pods.length, inputIndex: i, spec: { namespace: ns, name: n, node: node.name, hostNetwork: false, labels: podLabels } });
      pods.push({ namespace: ns, name: n, node: node.name, hostNetwork: false, labels: podLabels });
    }
  });
  // Pods without an explicit IP get the lowest free host address of their node's podCIDR.
  for (const { index, inputIndex, spec } of pending) {
    const node = nodes.find((x) => x.name === spec.node)!;
    const { first, last } = cidrRange(node.podCIDR!);
    let ip: string | undefined;
    for (let a = first + 1; a < last; a++) {
      if (!podIps.has(intToIPv4(a))) {
        ip = intToIPv4(a);
        break;
      }
    }
    if (!ip) c.add(`pods[${inputIndex}]`, `${spec.namespace}/${spec.name}`, `no free address left in ${node.podCIDR}`);
    else {
      podIps.set(ip, `${spec.namespace}/${spec.name}`);
      pods[index] = { ...spec, ip };
    }
  }

  if (c.issues.length > 0) throw new ValidationError(source, c.issues);
  return {
    name,
    nodeSubnet: nodeSubnet!,
    routerAddress: routerAddress!,
    transitCIDR: transitCIDR!,
    serviceCIDR: serviceCIDR!,
    snat,
    cluster,
    ...(lease ? { lease } : {}),
    nodes,
    namespaces,
    pods,
    vpcEndpoints,
  };
}
