/**
 * The topology's namespaces and pods as API objects. The agents find pods only through the API
 * (informers on Pods and Namespaces), so a cluster lab registers every pod of its plan:
 *
 *   Namespace  metadata.labels = the topology's labels + kubernetes.io/metadata.name
 *   Pod        metadata namespace/name/labels, spec.nodeName, spec.hostNetwork (host pods);
 *              then status through the /status subresource: phase Running, podIP/podIPs (the node
 *              IP for hostNetwork pods), hostIP
 *
 * Idempotent (create or update), so it may run again after a restart. Used in the lab by
 * harness/inlab/cluster-ready.ts --register (started by startCluster in parallel with the agents) and from the
 * host by Lab.labelPod through the forward.
 */
import type { KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import type { LabPlan } from '../topology/plan.js';

/** What cluster-ready --register needs (plain JSON: it is passed to the in-lab program on stdin). */
export interface PodRegistration {
  namespaces: { name: string; labels: Record<string, string> }[];
  pods: { namespace: string; name: string; node: string; hostNetwork: boolean; ip: string; hostIP: string; labels: Record<string, string> }[];
}

const NAME_LABEL = 'kubernetes.io/metadata.name';

/** The namespaces and pods of a plan, as the API objects the lab registers. */
export function podRegistration(plan: LabPlan): PodRegistration {
  const t = plan.topology;
  const nsLabels = new Map<string, Record<string, string>>();
  for (const ns of t.namespaces) nsLabels.set(ns.name, { ...(ns.labels ?? {}) });
  for (const p of plan.pods) if (!nsLabels.has(p.namespace)) nsLabels.set(p.namespace, {});
  const nodeIP = new Map(t.nodes.map((n) => [n.name, n.address]));
  return {
    namespaces: [...nsLabels].map(([name, labels]) => ({ name, labels: { ...labels, [NAME_LABEL]: name } })),
    pods: plan.pods.map((p) => {
      const hostIP = nodeIP.get(p.node) ?? '';
      return {
        namespace: p.namespace,
        name: p.name,
        node: p.node,
        hostNetwork: p.hostNetwork,
        ip: p.hostNetwork ? hostIP : (p.ip ?? ''),
        hostIP,
        labels: { ...p.labels },
      };
    }),
  };
}

type Client = Pick<KubeClient, 'tryGet' | 'create' | 'patch'>;
// Structural refs (same as R.namespaces / R.pods) so that this module loads nothing at runtime.
const NAMESPACES = { group: '', version: 'v1', plural: 'namespaces', namespaced: false } as const;
const PODS = { group: '', version: 'v1', plural: 'pods', namespaced: true } as const;

/** A merge patch that makes `current` exactly `want` (removed keys -> null). */
export function labelsPatch(current: Record<string, string> | undefined, want: Record<string, string>): Record<string, string | null> {
  const patch: Record<string, string | null> = { ...want };
  for (const k of Object.keys(current ?? {})) if (!(k in want)) patch[k] = null;
  return patch;
}

async function ensureNamespace(c: Client, ns: PodRegistration['namespaces'][number]): Promise<void> {
  const cur = await c.tryGet(NAMESPACES, ns.name);
  if (!cur) {
    await c.create(NAMESPACES, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.name, labels: ns.labels } });
    return;
  }
  const missing = Object.entries(ns.labels).filter(([k, v]) => cur.metadata.labels?.[k] !== v);
  if (missing.length > 0) await c.patch(NAMESPACES, ns.name, { metadata: { labels: Object.fromEntries(missing) } });
}

async function ensurePod(c: Client, p: PodRegistration['pods'][number]): Promise<void> {
  const spec = { nodeName: p.node, ...(p.hostNetwork ? { hostNetwork: true } : {}), containers: [{ name: 'main', image: 'egresslab/lab-pod' }] };
  const cur = await c.tryGet<KubeObject>(PODS, p.name, p.namespace);
  if (!cur) {
    await c.create(PODS, { apiVersion: 'v1', kind: 'Pod', metadata: { name: p.name, namespace: p.namespace, labels: p.labels }, spec }, p.namespace);
  } else {
    await c.patch(PODS, p.name, { metadata: { labels: labelsPatch(cur.metadata.labels, p.labels) }, spec }, { namespace: p.namespace });
  }
  const status = {
    phase: 'Running',
    podIP: p.ip,
    podIPs: [{ ip: p.ip }],
    hostIP: p.hostIP,
    hostIPs: [{ ip: p.hostIP }],
    conditions: [{ type: 'Ready', status: 'True' }],
  };
  await c.patch(PODS, p.name, { status }, { namespace: p.namespace, subresource: 'status' });
}

/** Creates/updates every namespace, then every pod (spec, then status). */
export async function registerPods(c: Client, reg: PodRegistration): Promise<void> {
  await Promise.all(reg.namespaces.map((ns) => ensureNamespace(c, ns)));
  await Promise.all(reg.pods.map((p) => ensurePod(c, p)));
}

/** Sets a pod's labels to exactly `labels` in the API (the agents re-read them through their informers). */
export async function setPodLabels(c: Client, namespace: string, name: string, labels: Record<string, string>): Promise<void> {
  const cur = await c.tryGet<KubeObject>(PODS, name, namespace);
  if (!cur) throw new Error(`pod ${namespace}/${name} is not in the API`);
  await c.patch(PODS, name, { metadata: { labels: labelsPatch(cur.metadata.labels, labels) } }, { namespace });
}
