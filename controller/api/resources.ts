// The resources this API server serves (the subset of Kubernetes the seeds need).

export interface ResourceDef {
  /** "" for the core group */
  group: string;
  /** served versions, first = preferred unless the server overrides the preference */
  versions: readonly string[];
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames?: readonly string[];
  categories?: readonly string[];
  /** has a /status subresource: the main resource ignores status, /status only writes status */
  statusSubresource: boolean;
  /** custom resource: JSON merge patch and JSON patch only (no strategic merge patch) */
  custom: boolean;
  /** metadata.generation is maintained (bumped on spec changes) */
  generation: boolean;
  /**
   * Objects keep the version they were written in and each version's endpoints serve only the
   * objects of that version (one name space for both). Used for EgressNATPolicy v1alpha1/v1.
   */
  perVersionObjects?: boolean;
}

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] as const;

export const RESOURCES: readonly ResourceDef[] = [
  {
    group: '',
    versions: ['v1'],
    kind: 'Namespace',
    listKind: 'NamespaceList',
    plural: 'namespaces',
    singular: 'namespace',
    namespaced: false,
    shortNames: ['ns'],
    statusSubresource: true,
    custom: false,
    generation: false,
  },
  {
    group: '',
    versions: ['v1'],
    kind: 'Node',
    listKind: 'NodeList',
    plural: 'nodes',
    singular: 'node',
    namespaced: false,
    shortNames: ['no'],
    statusSubresource: true,
    custom: false,
    generation: false,
  },
  {
    group: '',
    versions: ['v1'],
    kind: 'Pod',
    listKind: 'PodList',
    plural: 'pods',
    singular: 'pod',
    namespaced: true,
    shortNames: ['po'],
    categories: ['all'],
    statusSubresource: true,
    custom: false,
    generation: true,
  },
  {
    group: '',
    versions: ['v1'],
    kind: 'ConfigMap',
    listKind: 'ConfigMapList',
    plural: 'configmaps',
    singular: 'configmap',
    namespaced: true,
    shortNames: ['cm'],
    statusSubresource: false,
    custom: false,
    generation: false,
  },
  {
    group: '',
    versions: ['v1'],
    kind: 'Event',
    listKind: 'EventList',
    plural: 'events',
    singular: 'event',
    namespaced: true,
    shortNames: ['ev'],
    statusSubresource: false,
    custom: false,
    generation: false,
  },
  {
    group: 'coordination.k8s.io',
    versions: ['v1'],
    kind: 'Lease',
    listKind: 'LeaseList',
    plural: 'leases',
    singular: 'lease',
    namespaced: true,
    statusSubresource: false,
    custom: false,
    generation: false,
  },
  {
    group: 'networking.k8s.io',
    versions: ['v1'],
    kind: 'NetworkPolicy',
    listKind: 'NetworkPolicyList',
    plural: 'networkpolicies',
    singular: 'networkpolicy',
    namespaced: true,
    shortNames: ['netpol'],
    statusSubresource: false,
    custom: false,
    generation: true,
  },
  {
    group: 'networking.gke.io',
    versions: ['v1alpha1'],
    kind: 'AnthosNetworkGateway',
    listKind: 'AnthosNetworkGatewayList',
    plural: 'anthosnetworkgateways',
    singular: 'anthosnetworkgateway',
    namespaced: true,
    categories: ['egressnat'],
    statusSubresource: true,
    custom: true,
    generation: true,
  },
  {
    group: 'networking.gke.io',
    versions: ['v1alpha1'],
    kind: 'AnthosNetworkGatewayNode',
    listKind: 'AnthosNetworkGatewayNodeList',
    plural: 'anthosnetworkgatewaynodes',
    singular: 'anthosnetworkgatewaynode',
    namespaced: true,
    categories: ['egressnat'],
    statusSubresource: true,
    custom: true,
    generation: true,
  },
  {
    group: 'networking.gke.io',
    versions: ['v1alpha1', 'v1'],
    kind: 'EgressNATPolicy',
    listKind: 'EgressNATPolicyList',
    plural: 'egressnatpolicies',
    singular: 'egressnatpolicy',
    namespaced: false,
    categories: ['egressnat'],
    statusSubresource: true,
    custom: true,
    generation: true,
    perVersionObjects: true,
  },
];

export function verbsOf(): string[] {
  return [...VERBS];
}

/** Key that identifies a resource independently of its version. */
export function resourceKey(r: Pick<ResourceDef, 'group' | 'plural'>): string {
  return `${r.group}/${r.plural}`;
}

export function apiVersionOf(group: string, version: string): string {
  return group ? `${group}/${version}` : version;
}

export class Registry {
  private readonly byGroupVersionPlural = new Map<string, ResourceDef>();
  private readonly preferred = new Map<string, string>();

  constructor(
    readonly resources: readonly ResourceDef[] = RESOURCES,
    /** group -> preferred version override (EgressNATPolicy: v1alpha1 for standard, v1 for autopilot) */
    preferredOverride: Readonly<Record<string, string>> = {},
  ) {
    for (const r of resources) {
      for (const v of r.versions) this.byGroupVersionPlural.set(`${r.group}/${v}/${r.plural}`, r);
    }
    for (const g of this.groups()) {
      const o = preferredOverride[g];
      const versions = this.versionsOf(g);
      this.preferred.set(g, o && versions.includes(o) ? o : versions[0]!);
    }
  }

  find(group: string, version: string, plural: string): ResourceDef | undefined {
    return this.byGroupVersionPlural.get(`${group}/${version}/${plural}`);
  }

  findByKind(apiVersion: string, kind: string): ResourceDef | undefined {
    const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
    return this.resources.find((r) => r.group === group && r.kind === kind && r.versions.includes(version));
  }

  groups(): string[] {
    const gs: string[] = [];
    for (const r of this.resources) if (r.group && !gs.includes(r.group)) gs.push(r.group);
    return gs;
  }

  /** versions of a group, preferred first */
  versionsOf(group: string): string[] {
    const vs: string[] = [];
    for (const r of this.resources) if (r.group === group) for (const v of r.versions) if (!vs.includes(v)) vs.push(v);
    const p = this.preferred.get(group);
    if (p) vs.sort((a, b) => (a === p ? -1 : b === p ? 1 : 0));
    return vs;
  }

  preferredVersion(group: string): string {
    return this.preferred.get(group) ?? this.versionsOf(group)[0]!;
  }

  inGroupVersion(group: string, version: string): ResourceDef[] {
    return this.resources.filter((r) => r.group === group && r.versions.includes(version));
  }
}
