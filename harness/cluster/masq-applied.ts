/**
 * Waiting for the ip-masq-agent ConfigMap to be in force. Every node agent writes its state to
 * /run/egresslab/agent-status.json; its `masq.configHash` is the hash of the config it applied
 * (masqConfigHash of the ConfigMap's `config` key; of the defaults when there is no ConfigMap). A
 * config is in force when every node that runs pods reports the hash of the config the API holds.
 */
import type { LabRuntime } from '../lab/runtime.js';
import type { Topology } from '../topology/types.js';
import { R, type KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { IP_MASQ_NAME, IP_MASQ_NAMESPACE } from '../../lib/kube/well-known.js';
import { DEFAULT_LAB_PATHS } from './lab-config.js';
import { masqConfigHash, parseMasqConfig } from '../../agent/masq/config.js';
import { pollUntil, type Clock } from '../util/poll.js';
import { ValidationError } from '../util/errors.js';

/** Where the ip-masq-agent ConfigMap lives (its config is the `config` key). */
export const MASQ_CONFIGMAP = { namespace: IP_MASQ_NAMESPACE, name: IP_MASQ_NAME } as const;

/** The masquerade part of an agent's status file. */
export interface AgentMasqStatus {
  mode: string;
  /** e.g. "applied", "error" */
  status: string;
  /** "configmap", "defaults", ... */
  configSource: string | null;
  /** Hash of the config in force (masqConfigHash); compare with the ConfigMap's. */
  configHash: string | null;
  appliedAt: string | null;
  /** Number of non-masquerade CIDRs in force (11 with the defaults). */
  setElements: number;
  /** whether link-local traffic is masqueraded (the config's masqLinkLocal) */
  masqLinkLocal?: boolean;
  /** number of rule applies so far */
  applies?: number;
  lastError: { at: string; reason: string; message: string } | null;
}

/** A policy as an agent last programmed it (agent/node/gateway-module.ts status()). */
export interface AgentGatewayPolicy {
  name: string;
  egressSourceIP: string;
  /** the node holding the policy's egress IP, as this agent's plan has it (null: none) */
  holder: string | null;
  /**
   * local: this node holds the IP and SNATs to it; route: towards the holder; drop: fail-closed
   * (no holder, the holder Down or suspect, this node fenced, the IP not holdable here, ...: the
   * holder may be set)
   */
  action: 'local' | 'route' | 'drop';
}

/** The gateway part of an agent's status file. */
export interface AgentGatewayStatus {
  /** whether the module's caches have synced (its first plan may not be programmed yet: `policies` can still be empty) */
  synced?: boolean;
  /** whether the node gave up its floating IPs: no peer heartbeat and the API unreachable (it thinks it is cut off) */
  fenced?: boolean;
  /** the floating IPs this node answers for */
  ownedIPs?: string[];
  policies?: AgentGatewayPolicy[];
  /** conntrackd's sync of the holders' bindings (agent/gateway/conntrack-sync.ts ConntrackSyncStatus, when enabled) */
  conntrackSync?: {
    enabled: boolean;
    running?: boolean;
    /** the running conntrackd was left by the previous agent and adopted */
    adopted?: boolean;
    commits?: number;
    /** how long the last commit (taking over the bindings) took, and how many entries it created */
    lastCommitMs?: number | null;
    lastCommitEntries?: number | null;
    /** why it does not run yet (e.g. no floating IP held), or why it could not start */
    waiting?: string;
    error?: string;
  };
}

/** An agent's status file (/run/egresslab/agent-status.json), the fields scenarios read. */
export interface AgentStatusFile {
  /** the agent's process id (changes when it restarts) */
  pid: number;
  node: string;
  phase: string;
  flavour: string;
  startedAt: string;
  /** the agent's projection of the ip-masq-agent ConfigMap into its config file */
  projection?: { present: boolean; contentSha256: string | null; changes: number };
  masq?: AgentMasqStatus;
  gateway?: AgentGatewayStatus;
  /** node liveness (agent/node/lease-module.ts): with heartbeats, the beacon's counters (beacon.ts status()) */
  lease?: { heartbeat?: { acknowledged: number; downsSeen: number; sent: number; running: boolean } };
}

/** Reads a node agent's status file. */
export async function readAgentStatus(lab: Pick<LabRuntime, 'exec'>, node: string): Promise<AgentStatusFile> {
  const r = await lab.exec(node, ['cat', DEFAULT_LAB_PATHS.agentStatus]);
  return JSON.parse(r.stdout) as AgentStatusFile;
}

/**
 * A node agent's status file, or undefined when there is none yet or it does not parse (no agent
 * yet, a file being rewritten). A read that gets no answer within 5 s (a paused node) throws a
 * TimeoutError, as any exec does (pollUntil tries again). For readiness gates that poll.
 */
export async function readAgentStatusIfAny(lab: Pick<LabRuntime, 'exec'>, node: string): Promise<AgentStatusFile | undefined> {
  const r = await lab.exec(node, ['cat', DEFAULT_LAB_PATHS.agentStatus], { check: false, timeoutMs: 5_000 });
  try {
    return JSON.parse(r.stdout) as AgentStatusFile;
  } catch {
    return undefined;
  }
}

/** The nodes that run pods (a node without a pod CIDR has nothing to masquerade). */
export function podNodes(topology: Pick<Topology, 'nodes'>): string[] {
  return topology.nodes.filter((n) => n.podCIDR).map((n) => n.name);
}

/** The `config` key of an ip-masq-agent ConfigMap object, or null when there is none (the defaults apply). */
export function masqConfigText(configMap: KubeObject | undefined): string | null {
  return (configMap?.data as Record<string, string> | undefined)?.config ?? null;
}

/**
 * The hash every agent reports once it applied `config` (null: no ConfigMap, the defaults). Throws
 * a ValidationError naming each bad field when the config does not parse: no agent will ever apply it.
 */
export function expectedMasqHash(config: string | null): string {
  const hash = masqConfigHash(config);
  if (hash !== null) return hash;
  const parsed = parseMasqConfig(config);
  const issues = parsed.ok ? [] : parsed.errors.map((e) => ({ path: `config: ${e.field}`, value: e.value, message: e.message }));
  throw new ValidationError(
    `ConfigMap ${MASQ_CONFIGMAP.namespace}/${MASQ_CONFIGMAP.name}`,
    issues.length ? issues : [{ path: 'config', value: config, message: 'does not parse' }],
  );
}

/** The nodes of `nodes` whose agent has not (yet) reported config `hash`, each with what it reports. */
export function agentsNotOn(statuses: readonly (AgentStatusFile | undefined)[], nodes: readonly string[], hash: string): string[] {
  return nodes.flatMap((node, i) => {
    const m = statuses[i]?.masq;
    if (m?.configHash === hash) return [];
    return [
      `${node} (${m ? `config ${String(m.configHash)}, status ${m.status}${m.lastError ? `, last error: ${m.lastError.message}` : ''}` : 'no masquerade status'})`,
    ];
  });
}

/** Options of untilMasqConfigApplied. */
export interface MasqWaitOptions {
  /**
   * The config text to wait for (null: the defaults, no ConfigMap). Default: what the API holds now
   * in kube-system/ip-masq-agent, read once at the start.
   */
  config?: string | null;
  /** Deadline (default 10 000 ms). */
  timeoutMs?: number;
  /** Injectable clock (tests). */
  clock?: Clock;
}

/**
 * Waits until every agent on a node with pods has applied the ip-masq-agent ConfigMap (by default
 * the one the API holds now; the defaults when there is none) and returns their status files. On
 * timeout the error names each node still on another config, with its status and last error.
 *
 * @example
 * ```ts
 * await lab.apply({
 *   apiVersion: 'v1',
 *   kind: 'ConfigMap',
 *   metadata: { namespace: 'kube-system', name: 'ip-masq-agent' },
 *   data: { config: 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\nmasqLinkLocal: false\nresyncInterval: 60s\n' },
 * });
 * await untilMasqConfigApplied(lab, await lab.api());
 * ```
 */
export async function untilMasqConfigApplied(
  lab: Pick<LabRuntime, 'topology' | 'exec'>,
  api: Pick<KubeClient, 'tryGet'>,
  options: MasqWaitOptions = {},
): Promise<AgentStatusFile[]> {
  const text = options.config !== undefined ? options.config : masqConfigText(await api.tryGet(R.configmaps, MASQ_CONFIGMAP.name, MASQ_CONFIGMAP.namespace));
  const hash = expectedMasqHash(text);
  const nodes = podNodes(lab.topology);
  let pending: string[] = [];
  const statuses = await pollUntil(() => Promise.all(nodes.map((n) => readAgentStatus(lab, n).catch(() => undefined))), {
    what: `every agent (${nodes.join(', ')}) to apply config ${hash}`,
    timeoutMs: options.timeoutMs ?? 10_000,
    intervalMs: 50,
    ...(options.clock ? { clock: options.clock } : {}),
    accept: (all) => (pending = agentsNotOn(all, nodes, hash)).length === 0,
  }).catch((error: unknown) => {
    if (error instanceof Error) error.message += `; not applied on: ${pending.join('; ')}`;
    throw error;
  });
  return statuses as AgentStatusFile[];
}

// The config's writer lives with its reader (agent/masq/config.ts); scenarios import it from here.
export { masqConfigYaml, type MasqConfigInput } from '../../agent/masq/config.js';
