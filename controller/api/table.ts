// Server-side printing (meta.k8s.io/v1 Table) so `kubectl get` shows useful columns.
import type { KubeObject } from '../../lib/kube/types.js';

interface Column {
  name: string;
  type: 'string' | 'integer' | 'date';
  format?: string;
  description: string;
  priority?: number;
  cell: (o: KubeObject, now: Date) => string | number;
}

type Any = Record<string, unknown>;
const get = (o: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((cur, k) => (cur && typeof cur === 'object' ? (cur as Any)[k] : undefined), o);
const str = (v: unknown): string => (v === undefined || v === null ? '<none>' : typeof v === 'string' ? v : JSON.stringify(v));

export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 730) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

const age = (ts: unknown, now: Date): string => (typeof ts === 'string' ? humanDuration(now.getTime() - Date.parse(ts)) : '<unknown>');

const NAME: Column = { name: 'Name', type: 'string', format: 'name', description: 'Name of the object', cell: (o) => o.metadata.name ?? '' };
const AGE: Column = { name: 'Age', type: 'string', description: 'Time since creation', cell: (o, now) => age(o.metadata.creationTimestamp, now) };

function readyCondition(o: KubeObject): string {
  const conds = get(o, 'status.conditions');
  if (!Array.isArray(conds)) return 'Unknown';
  const c = conds.find((x) => (x as Any).type === 'Ready') as Any | undefined;
  return c ? str(c.status) : 'Unknown';
}

function columnsFor(o: KubeObject): Column[] {
  switch (o.kind) {
    case 'Namespace':
      return [NAME, { name: 'Status', type: 'string', description: 'Phase', cell: (x) => str(get(x, 'status.phase') ?? 'Active') }, AGE];
    case 'Node':
      return [
        NAME,
        {
          name: 'Status',
          type: 'string',
          description: 'Ready condition',
          cell: (x) => (readyCondition(x) === 'True' ? 'Ready' : readyCondition(x) === 'Unknown' ? 'Unknown' : 'NotReady'),
        },
        {
          name: 'Roles',
          type: 'string',
          description: 'Roles',
          cell: (x) =>
            Object.keys(x.metadata.labels ?? {})
              .filter((k) => k.startsWith('node-role.kubernetes.io/'))
              .map((k) => k.slice(24))
              .join(',') || '<none>',
        },
        AGE,
        {
          name: 'Internal-IP',
          type: 'string',
          description: 'InternalIP address',
          cell: (x) => str(((get(x, 'status.addresses') as Any[] | undefined) ?? []).find((a) => a.type === 'InternalIP')?.address),
        },
      ];
    case 'Pod':
      return [
        NAME,
        { name: 'Status', type: 'string', description: 'Phase', cell: (x) => str(get(x, 'status.phase') ?? 'Pending') },
        { name: 'IP', type: 'string', description: 'Pod IP', cell: (x) => str(get(x, 'status.podIP')) },
        { name: 'Node', type: 'string', description: 'Node', cell: (x) => str(get(x, 'spec.nodeName')) },
        AGE,
      ];
    case 'ConfigMap':
      return [NAME, { name: 'Data', type: 'integer', description: 'Number of keys', cell: (x) => Object.keys((x.data as Any | undefined) ?? {}).length }, AGE];
    case 'Event':
      return [
        {
          name: 'Last Seen',
          type: 'string',
          description: 'Time since last seen',
          cell: (x, now) => age(x.lastTimestamp ?? x.eventTime ?? x.metadata.creationTimestamp, now),
        },
        { name: 'Type', type: 'string', description: 'Type', cell: (x) => str(x.type) },
        { name: 'Reason', type: 'string', description: 'Reason', cell: (x) => str(x.reason) },
        {
          name: 'Object',
          type: 'string',
          description: 'Involved object',
          cell: (x) => `${String(get(x, 'involvedObject.kind') ?? '').toLowerCase()}/${str(get(x, 'involvedObject.name'))}`,
        },
        { name: 'Message', type: 'string', description: 'Message', cell: (x) => str(x.message) },
        { ...NAME, priority: 1 },
      ];
    case 'Lease':
      return [NAME, { name: 'Holder', type: 'string', description: 'Holder identity', cell: (x) => str(get(x, 'spec.holderIdentity')) }, AGE];
    case 'NetworkPolicy':
      return [NAME, { name: 'Pod-Selector', type: 'string', description: 'Pod selector', cell: (x) => JSON.stringify(get(x, 'spec.podSelector') ?? {}) }, AGE];
    case 'AnthosNetworkGateway':
      return [
        NAME,
        {
          name: 'Floating-IPs',
          type: 'string',
          description: 'Floating IPs',
          cell: (x) => ((get(x, 'spec.floatingIPs') as string[] | undefined) ?? []).join(',') || '<none>',
        },
        {
          name: 'Assigned',
          type: 'string',
          description: 'ip=node',
          cell: (x) =>
            Object.entries((get(x, 'status.floatingIPs') as Any | undefined) ?? {})
              .map(([ip, n]) => `${ip}=${String(n)}`)
              .join(',') || '<none>',
        },
        AGE,
      ];
    case 'AnthosNetworkGatewayNode':
      return [
        NAME,
        { name: 'State', type: 'string', description: 'Up or Down', cell: (x) => str(get(x, 'status.state')) },
        {
          name: 'Floating-IPs',
          type: 'string',
          description: 'Assigned floating IPs',
          cell: (x) => ((get(x, 'status.floatingIPs') as string[] | undefined) ?? []).join(',') || '<none>',
        },
        AGE,
      ];
    case 'EgressNATPolicy':
      if (o.apiVersion === 'networking.gke.io/v1') {
        return [
          NAME,
          { name: 'Action', type: 'string', description: 'Action', cell: (x) => str(get(x, 'spec.action')) },
          {
            name: 'Destinations',
            type: 'integer',
            description: 'Number of destinations',
            cell: (x) => ((get(x, 'spec.destinations') as unknown[] | undefined) ?? []).length,
          },
          AGE,
        ];
      }
      return [
        NAME,
        { name: 'Egress-Source-IP', type: 'string', description: 'spec.egressSourceIP', cell: (x) => str(get(x, 'spec.egressSourceIP')) },
        { name: 'Ready', type: 'string', description: 'Served by a gateway node', cell: (x) => readyCondition(x) },
        { name: 'Gateway-Node', type: 'string', description: 'Node holding the egressSourceIP', cell: (x) => str(get(x, 'status.gatewayNode')) },
        AGE,
      ];
    default:
      return [NAME, AGE];
  }
}

export function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

function partial(o: KubeObject, include: string) {
  if (include === 'None') return undefined;
  if (include === 'Object') return o;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

/** `sample` decides the columns when the list is empty (per-version kinds). */
export function toTable(items: readonly KubeObject[], sample: KubeObject, resourceVersion: string, include = 'Metadata', now = new Date()) {
  const cols = columnsFor(items[0] ?? sample);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: cols.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description, priority: c.priority ?? 0 })),
    rows: items.map((o) => ({ cells: cols.map((c) => c.cell(o, now)), object: partial(o, include) })),
  };
}
