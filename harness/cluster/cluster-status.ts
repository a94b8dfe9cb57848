/**
 * What `egresslab status` shows about a lab's cluster: the served gateway's status (nodes Up/Down,
 * floating IPs), every AnthosNetworkGatewayNode, and each node's agent status file
 * (/run/egresslab/agent-status.json: phase, lease, masquerade config hash, last error).
 */
import type { ContainerRuntime } from '../lab/runtime.js';
import { R, type KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { GATEWAY_NAME, GATEWAY_NAMESPACE } from '../../lib/kube/well-known.js';
import { DEFAULT_LAB_PATHS } from './lab-config.js';
import { AGENT_PROCESS, CONTROLLER_PROCESS, controlPlaneNode } from './cluster.js';
import { processRunning } from '../lab/process.js';

/** The gateway object in short: its floating IPs, node states, assignments and why IPs are unassigned. */
export interface GatewayStatus {
  namespace: string;
  floatingIPs: string[];
  nodes: Record<string, string>;
  assignments: Record<string, string>;
  unassigned: Record<string, string>;
}

/** One node agent's state, from its status file (/run/egresslab/agent-status.json). */
export interface AgentStatusSummary {
  node: string;
  /** container running and agent process alive */
  containerRunning: boolean;
  processRunning: boolean;
  phase: string | null;
  flavour: string | null;
  /** age of the status file's writtenAt (a stale file means a dead agent) */
  statusAgeMs: number | null;
  leaseRenewals: number | null;
  leaseLastError: string | null;
  masq: {
    mode: string | null;
    status: string | null;
    configSource: string | null;
    configHash: string | null;
    appliedAt: string | null;
    setElements: number | null;
    /** The last apply in one phrase, e.g. "delta +1 -0, 112 ms" or "full (rules changed), 433 ms". */
    lastApply: string | null;
    lastError: { at?: string; reason?: string; message?: string } | null;
  } | null;
}

/**
 * The masquerade agent's `lastApply` record (agent/masq/agent.ts MasqApplyRecord) in one phrase:
 * how the rules went in (a set update with the elements added and removed, or the whole table and
 * why) and how long the sync took; null when there is none or it is not a record.
 */
export function summarizeLastApply(v: unknown): string | null {
  const r = obj(v);
  const total = num(r.totalMs);
  const took = total === null ? '' : `, ${total} ms`;
  if (r.kind === 'delta') return `delta +${num(r.added) ?? '?'} -${num(r.removed) ?? '?'}${took}`;
  if (r.kind === 'full') return `full${str(r.reason) ? ` (${str(r.reason)})` : ''}${took}`;
  return null;
}

/** Controller, API, gateway and agents at a glance (`egresslab status`). */
export interface ClusterStatus {
  controller: { node: string; processRunning: boolean };
  api: { reachable: boolean; error?: string };
  gateway: GatewayStatus | null;
  gatewayNodes: { name: string; state: string; floatingIPs: string[] }[];
  agents: AgentStatusSummary[];
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);

async function agentStatus(lab: ContainerRuntime, node: string): Promise<AgentStatusSummary> {
  const base: AgentStatusSummary = {
    node,
    containerRunning: false,
    processRunning: false,
    phase: null,
    flavour: null,
    statusAgeMs: null,
    leaseRenewals: null,
    leaseLastError: null,
    masq: null,
  };
  try {
    const info = await lab.container(node).inspect();
    base.containerRunning = info.State.Running && !info.State.Paused;
    if (!base.containerRunning) return base;
  } catch {
    return base;
  }
  const [running, file] = await Promise.all([
    processRunning(lab, node, AGENT_PROCESS).catch(() => false),
    lab.exec(node, ['cat', DEFAULT_LAB_PATHS.agentStatus], { check: false, timeoutMs: 5_000 }).catch(() => undefined),
  ]);
  base.processRunning = running;
  if (file?.exitCode !== 0) return base;
  let s: Obj;
  try {
    s = obj(JSON.parse(file.stdout));
  } catch {
    return base;
  }
  const lease = obj(s.lease);
  const masq = s.masq === undefined ? undefined : obj(s.masq);
  const written = str(s.writtenAt);
  return {
    ...base,
    phase: str(s.phase),
    flavour: str(s.flavour),
    statusAgeMs: written ? Date.now() - Date.parse(written) : null,
    leaseRenewals: num(lease.renewals),
    // The last error only while renewals are failing (a recovered failure is history).
    leaseLastError: num(lease.consecutiveFailures) ? (str(obj(lease.lastError).message) ?? str(lease.lastError)) : null,
    masq: masq
      ? {
          mode: str(masq.mode),
          status: str(masq.status),
          configSource: str(masq.configSource),
          configHash: str(masq.configHash),
          appliedAt: str(masq.appliedAt),
          setElements: num(masq.setElements),
          lastApply: summarizeLastApply(masq.lastApply),
          lastError: masq.lastError ? (obj(masq.lastError) as { at?: string; reason?: string; message?: string }) : null,
        }
      : null,
  };
}

/** The served gateway: `default` in the cluster namespace if present, else kube-system/default (docs/controller.md). */
export async function servedGateway(client: KubeClient, clusterNamespace: string): Promise<KubeObject | undefined> {
  return (
    (await client.tryGet(R.anthosNetworkGateways, GATEWAY_NAME, clusterNamespace)) ??
    (await client.tryGet(R.anthosNetworkGateways, GATEWAY_NAME, GATEWAY_NAMESPACE))
  );
}

/** Every one of `nodeCount` nodes is in the gateway status, Up. */
export function everyNodeUp(g: GatewayStatus, nodeCount: number): boolean {
  return Object.keys(g.nodes).length === nodeCount && Object.values(g.nodes).every((s) => s === 'Up');
}

/** The gateway status the agents follow: kube-system/default (the controller mirrors the cluster namespace's there). */
export async function gatewayOf(api: KubeClient, namespace = GATEWAY_NAMESPACE): Promise<GatewayStatus> {
  return gatewayStatus(await api.get(R.anthosNetworkGateways, GATEWAY_NAME, namespace));
}

/** A GatewayStatus from the gateway object. */
export function gatewayStatus(gw: KubeObject): GatewayStatus {
  const spec = obj(gw.spec);
  const status = obj(gw.status);
  return {
    namespace: gw.metadata.namespace ?? '',
    floatingIPs: Array.isArray(spec.floatingIPs) ? (spec.floatingIPs as string[]) : [],
    nodes: obj(status.nodes) as Record<string, string>,
    assignments: obj(status.floatingIPs) as Record<string, string>,
    unassigned: obj(status.unassigned) as Record<string, string>,
  };
}

/** Reads the whole ClusterStatus of a lab (`client` undefined: the API part is reported unreachable). */
export async function clusterStatus(lab: ContainerRuntime, client: KubeClient | undefined, clusterNamespace: string): Promise<ClusterStatus> {
  const cp = controlPlaneNode(lab.topology).name;
  const [agents, controllerRunning] = await Promise.all([
    Promise.all(lab.topology.nodes.map((n) => agentStatus(lab, n.name))),
    processRunning(lab, cp, CONTROLLER_PROCESS).catch(() => false),
  ]);
  const out: ClusterStatus = {
    controller: { node: cp, processRunning: controllerRunning },
    api: { reachable: false },
    gateway: null,
    gatewayNodes: [],
    agents,
  };
  if (!client) {
    out.api.error = 'no access to the API';
    return out;
  }
  try {
    const [gw, gwNodes] = await Promise.all([
      servedGateway(client, clusterNamespace),
      client.list(R.anthosNetworkGatewayNodes, { namespace: GATEWAY_NAMESPACE }),
    ]);
    out.api.reachable = true;
    out.gateway = gw ? gatewayStatus(gw) : null;
    out.gatewayNodes = gwNodes.items
      .map((o) => {
        const s = obj(o.status);
        return { name: o.metadata.name ?? '?', state: str(s.state) ?? '?', floatingIPs: Array.isArray(s.floatingIPs) ? (s.floatingIPs as string[]) : [] };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  } catch (error) {
    out.api.error = (error as Error).message;
  }
  return out;
}
