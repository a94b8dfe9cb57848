/**
 * NetworkPolicy egress (networking.k8s.io/v1), compiled for the pods of ONE node (pure).
 *
 * Semantics (Kubernetes):
 *  - a pod is isolated for egress when a policy of its namespace selects it (spec.podSelector; {}
 *    selects every pod) and that policy's policyTypes contain Egress (policyTypes absent: Egress
 *    iff spec.egress is present);
 *  - an isolated pod may send only what at least one egress rule of at least one of its policies
 *    allows; a rule allows (any of `to`) x (any of `ports`); absent/empty `to` = every destination,
 *    absent/empty `ports` = every port and protocol;
 *  - peers: ipBlock {cidr, except}; podSelector alone = pods of the policy's namespace;
 *    namespaceSelector alone = every pod of the selected namespaces; both = pods matching both;
 *  - ports: protocol TCP (default) / UDP / SCTP, numeric port, optional endPort. Named ports cannot
 *    be resolved here (no container specs): a rule port given by name allows nothing (warning);
 *  - replies of connections the pod accepted (ct established/related) are always allowed.
 */
import type { KubeObject } from '../../lib/kube/types.js';
import { isIPv4, normaliseCidrList, parseCidr4 } from '../../lib/net/addresses.js';
import { labelSelectorMatches, type LabelSelector } from '../../lib/kube/selectors.js';
import type { NamespaceInfo, PodInfo } from './model.js';

export interface NetpolPeer {
  ipBlock?: { cidr: string; except?: string[] };
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
}

export interface NetpolPortSpec {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyInfo {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  /** as written; undefined = default */
  policyTypes?: string[];
  /** undefined = no egress section */
  egress?: { to?: NetpolPeer[]; ports?: NetpolPortSpec[] }[];
}

export type L4 = 'tcp' | 'udp' | 'sctp';

export interface NetpolDest {
  cidr: string;
  except: string[];
}

export interface NetpolPortRange {
  protocol: L4;
  from: number;
  to: number;
}

export interface NetpolAllow {
  /** null = any destination; [] never happens (such a rule is dropped: it allows nothing) */
  dests: NetpolDest[] | null;
  /** null = any protocol/port; else per protocol sorted, overlapping and adjacent ranges merged (mergeRanges) */
  ports: NetpolPortRange[] | null;
}

export interface NetpolPod {
  ip: string;
  pod: string;
  policies: string[];
  /** empty = deny all egress */
  allows: NetpolAllow[];
}

export interface NetpolPlan {
  pods: NetpolPod[];
  warnings: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function networkPolicyFromObject(o: KubeObject): NetworkPolicyInfo | null {
  const name = o.metadata.name;
  const namespace = o.metadata.namespace;
  if (!name || !namespace || !isObj(o.spec)) return null;
  const spec = o.spec;
  const out: NetworkPolicyInfo = { namespace, name, podSelector: isObj(spec.podSelector) ? (spec.podSelector as LabelSelector) : {} };
  if (Array.isArray(spec.policyTypes)) out.policyTypes = spec.policyTypes.filter((x): x is string => typeof x === 'string');
  if (Array.isArray(spec.egress)) out.egress = spec.egress.filter(isObj) as NetworkPolicyInfo['egress'];
  else if (spec.egress === null) out.egress = [];
  return out;
}

export function isEgressPolicy(p: NetworkPolicyInfo): boolean {
  if (p.policyTypes && p.policyTypes.length > 0) return p.policyTypes.includes('Egress');
  return p.egress !== undefined;
}

function nsLabels(namespaces: Map<string, NamespaceInfo>, name: string): Record<string, string> {
  return { ...(namespaces.get(name)?.labels ?? {}), 'kubernetes.io/metadata.name': name };
}

function mergeRanges(list: NetpolPortRange[]): NetpolPortRange[] {
  const out: NetpolPortRange[] = [];
  for (const proto of ['tcp', 'udp', 'sctp'] as const) {
    const rs = list.filter((r) => r.protocol === proto).sort((a, b) => a.from - b.from || a.to - b.to);
    let cur: NetpolPortRange | null = null;
    for (const r of rs) {
      if (cur && r.from <= cur.to + 1) cur.to = Math.max(cur.to, r.to);
      else {
        if (cur) out.push(cur);
        cur = { ...r };
      }
    }
    if (cur) out.push(cur);
  }
  return out;
}

export function compileNetworkPolicies(input: {
  self: string;
  /** eligible pods (scheduled, pod IP, not hostNetwork), every node */
  pods: readonly PodInfo[];
  namespaces: readonly NamespaceInfo[];
  policies: readonly NetworkPolicyInfo[];
}): NetpolPlan {
  const warnings: string[] = [];
  const namespaces = new Map(input.namespaces.map((n) => [n.name, n]));
  const policies = input.policies.filter(isEgressPolicy).sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  const byIP = new Map<string, NetpolPod>();

  // resolve each policy's rules once
  const compiled = policies.map((p) => {
    const allows: NetpolAllow[] = [];
    (p.egress ?? []).forEach((rule, ri) => {
      const where = `networkpolicy ${p.namespace}/${p.name} egress[${ri}]`;
      let dests: NetpolDest[] | null = null;
      if (rule.to && rule.to.length > 0) {
        const plain: string[] = [];
        const withExcept: NetpolDest[] = [];
        for (const peer of rule.to) {
          if (peer.ipBlock) {
            const c = parseCidr4(peer.ipBlock.cidr, false);
            if (!c.ok) {
              warnings.push(`${where}: ipBlock.cidr ${JSON.stringify(peer.ipBlock.cidr)} ignored (${c.reason})`);
              continue;
            }
            const except = normaliseCidrList((peer.ipBlock.except ?? []).filter((e) => parseCidr4(e, false).ok));
            if (except.length) withExcept.push({ cidr: c.value.text, except });
            else plain.push(c.value.text);
            continue;
          }
          if (!peer.podSelector && !peer.namespaceSelector) continue;
          for (const pod of input.pods) {
            const nsOk = peer.namespaceSelector
              ? labelSelectorMatches(peer.namespaceSelector, nsLabels(namespaces, pod.namespace))
              : pod.namespace === p.namespace;
            if (nsOk && labelSelectorMatches(peer.podSelector, pod.labels)) plain.push(`${pod.ip}/32`);
          }
        }
        dests = [...normaliseCidrList(plain).map((cidr) => ({ cidr, except: [] })), ...withExcept];
        if (dests.length === 0) return; // selects nothing: allows nothing
      }
      let ports: NetpolPortRange[] | null = null;
      if (rule.ports && rule.ports.length > 0) {
        const rs: NetpolPortRange[] = [];
        for (const port of rule.ports) {
          const proto = (port.protocol ?? 'TCP').toLowerCase();
          if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') {
            warnings.push(`${where}: protocol ${port.protocol} ignored`);
            continue;
          }
          if (port.port === undefined) rs.push({ protocol: proto, from: 0, to: 65535 });
          else if (typeof port.port === 'number' && Number.isInteger(port.port) && port.port >= 1 && port.port <= 65535) {
            const end = typeof port.endPort === 'number' && port.endPort >= port.port && port.endPort <= 65535 ? port.endPort : port.port;
            rs.push({ protocol: proto, from: port.port, to: end });
          } else warnings.push(`${where}: port ${JSON.stringify(port.port)} cannot be resolved (named ports are not supported): allows nothing`);
        }
        if (rs.length === 0) return;
        ports = mergeRanges(rs);
      }
      allows.push({ dests, ports });
    });
    return { p, allows };
  });

  for (const pod of input.pods) {
    if (pod.nodeName !== input.self || !pod.ip || !isIPv4(pod.ip)) continue;
    for (const { p, allows } of compiled) {
      if (p.namespace !== pod.namespace || !labelSelectorMatches(p.podSelector, pod.labels)) continue;
      let e = byIP.get(pod.ip);
      if (!e) byIP.set(pod.ip, (e = { ip: pod.ip, pod: `${pod.namespace}/${pod.name}`, policies: [], allows: [] }));
      e.policies.push(`${p.namespace}/${p.name}`);
      e.allows.push(...allows);
    }
  }
  const toInt = (s: string): number => s.split('.').reduce((acc, x) => acc * 256 + Number(x), 0);
  const pods = [...byIP.values()].sort((a, b) => toInt(a.ip) - toInt(b.ip));
  return { pods, warnings };
}
