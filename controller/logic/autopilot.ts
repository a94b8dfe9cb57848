// Autopilot flavour (pure): the editable `default` EgressNATPolicy v1, the managed `gke-<hash>`
// policy (pod, service and node ranges; not editable) and the projection of every NoSNAT policy into
// the ip-masq-agent ConfigMap's nonMasqueradeCIDRs.
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import { normaliseCidrList, parseCidr4 } from '../../lib/net/addresses.js';
import { DEFAULT_NON_MASQUERADE_CIDRS } from '../../lib/kube/well-known.js';

/** SPEC 1's default non-masquerade destinations (ip-masq-agent defaults), in SPEC order. */
export { DEFAULT_NON_MASQUERADE_CIDRS };

/** The order in which the seed's `default` policy lists them. */
const DEFAULT_POLICY_ORDER: readonly string[] = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '240.0.0.0/4',
  '192.0.2.0/24',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '100.64.0.0/10',
  '198.18.0.0/15',
  '192.0.0.0/24',
  '192.88.99.0/24',
];

export const DEFAULT_POLICY_NAME = 'default';
export const MANAGED_BY_LABEL = 'networking.gke.io/managed-by';
export const MANAGER = 'egress-nat-controller';

export interface PolicyV1 {
  apiVersion: 'networking.gke.io/v1';
  kind: 'EgressNATPolicy';
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { action: 'NoSNAT'; destinations: { cidr: string }[] };
}

export function defaultPolicy(): PolicyV1 {
  return {
    apiVersion: 'networking.gke.io/v1',
    kind: 'EgressNATPolicy',
    metadata: { name: DEFAULT_POLICY_NAME },
    spec: { action: 'NoSNAT', destinations: DEFAULT_POLICY_ORDER.map((cidr) => ({ cidr })) },
  };
}

/** `gke-<8 hex>-1`, derived from the cluster name (stable across restarts). */
export function managedPolicyName(clusterName: string): string {
  return `gke-${createHash('sha256').update(clusterName).digest('hex').slice(0, 8)}-1`;
}

export interface ClusterRanges {
  podCIDRs: readonly string[];
  serviceCIDRs: readonly string[];
  nodeCIDRs: readonly string[];
}

export function managedPolicy(clusterName: string, ranges: ClusterRanges): PolicyV1 {
  const cidrs = normaliseCidrList([...ranges.podCIDRs, ...ranges.serviceCIDRs, ...ranges.nodeCIDRs]);
  return {
    apiVersion: 'networking.gke.io/v1',
    kind: 'EgressNATPolicy',
    metadata: { name: managedPolicyName(clusterName), labels: { [MANAGED_BY_LABEL]: MANAGER } },
    spec: { action: 'NoSNAT', destinations: cidrs.map((cidr) => ({ cidr })) },
  };
}

/** Union of the destinations of every NoSNAT policy, de-duplicated and sorted; invalid entries skipped. */
export function noSnatDestinations(policies: readonly { spec?: unknown }[]): string[] {
  const all: string[] = [];
  for (const p of policies) {
    const spec = p.spec as { action?: unknown; destinations?: unknown } | undefined;
    if (spec?.action !== 'NoSNAT' || !Array.isArray(spec.destinations)) continue;
    for (const d of spec.destinations) {
      const cidr = (d as { cidr?: unknown } | null)?.cidr;
      if (typeof cidr === 'string' && parseCidr4(cidr).ok) all.push(cidr);
    }
  }
  return normaliseCidrList(all);
}

/** The ip-masq-agent `config` key for the given destinations (Autopilot never masquerades link-local). */
export function ipMasqAgentConfig(nonMasqueradeCIDRs: readonly string[]): string {
  return stringify({ nonMasqueradeCIDRs: [...nonMasqueradeCIDRs], masqLinkLocal: false, resyncInterval: '60s' });
}
