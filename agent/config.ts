/**
 * The node agent's configuration: one JSON file per node (path from argv[2] or
 * EGRESSLAB_AGENT_CONFIG), written by the harness (see harness/cluster/lab-config.ts, which generates it).
 *
 *   {
 *     "nodeName": "worker1",
 *     "nodeIP": "192.168.1.1",
 *     "podCIDRs": ["10.10.10.0/24"],
 *     "apiServer": "https://192.168.1.10:6443",
 *     "caFile": "/etc/egresslab/ca.crt",
 *     "tokenFile": "/etc/egresslab/agent.token",
 *     "flavour": "ip-masq-agent",
 *     "leaseRenewIntervalMs": 10000,
 *     "heartbeatIntervalMs": 100,
 *     "idleHeartbeatIntervalMs": 1000,
 *     "ipMasqAgentConfigPath": "/etc/egresslab/ip-masq-agent/config",
 *     "masqStatePath": "/run/egresslab/masq-state.json",
 *     "statusPath": "/run/egresslab/agent-status.json"
 *   }
 *
 * Validation is pure and strict: every problem is reported (field + value + what is wrong), and
 * unknown fields are refused so that a typo in a generated config fails loudly instead of silently
 * falling back to a default.
 */
import { isAbsolute, dirname } from 'node:path';
import { isIPv4, parseCidr4 } from '../lib/net/addresses.js';
import { IP_MASQ_KEY, IP_MASQ_NAME, IP_MASQ_NAMESPACE } from '../lib/kube/well-known.js';

export type AgentFlavour = 'ip-masq-agent' | 'autopilot' | 'default-snat' | 'none';
export const AGENT_FLAVOURS: readonly AgentFlavour[] = ['ip-masq-agent', 'autopilot', 'default-snat', 'none'];

export const DEFAULT_AGENT_CONFIG_PATH = '/etc/egresslab/agent.json';
export const DEFAULT_STATUS_PATH = '/run/egresslab/agent-status.json';
/** Where a node keeps the scripts its init runs at boot, before the agent (AgentConfig.bootHookDir). */
export const DEFAULT_BOOT_HOOK_DIR = '/etc/egresslab/boot.d';
export const DEFAULT_MASQ_STATE_PATH = '/run/egresslab/masq-state.json';
/** Projection of ConfigMap kube-system/ip-masq-agent key `config` (kubelet-style volume dir). */
export const DEFAULT_IP_MASQ_CONFIG_PATH = '/etc/egresslab/ip-masq-agent/config';

export interface AgentConfig {
  nodeName: string;
  nodeIP: string;
  /** the node's pod CIDR(s); empty for a node that runs no pods (nothing to masquerade) */
  podCIDRs: string[];
  /** https://<cp-ip>:<port> (http:// only for tests) */
  apiServer: string;
  /** PEM of the CA that signed the API server's certificate; required for https */
  caFile: string | null;
  insecureSkipTLSVerify: boolean;
  /** file holding this node's bearer token (system:node:<nodeName>) */
  tokenFile: string;
  flavour: AgentFlavour;
  /** renewal of the Lease object kube-node-lease/<node> (kubelet's default: 10 s); not the failure detector */
  leaseRenewIntervalMs: number;
  /**
   * The failure detector's signal: an authenticated UDP heartbeat to the controller every this many
   * ms, sent from a thread of its own (agent/node/beacon.ts). 0 turns it off (then only Lease
   * renewals prove liveness, and leaseRenewIntervalMs must be short).
   */
  heartbeatIntervalMs: number;
  /**
   * The heartbeat interval while this node holds no floating IP (default 1000 ms; at least
   * heartbeatIntervalMs): only a holder's death is on a failover's critical path, so a node holding
   * nothing beats slowly and an idle cluster costs next to nothing. The heartbeat announces the
   * interval it is sent at, and the controller's grace period follows it.
   */
  idleHeartbeatIntervalMs: number;
  /** the controller's heartbeat port (on the apiServer's host) */
  heartbeatPort: number;
  /** the projected file (its directory is owned by the projection: `..data` symlink swaps) */
  ipMasqAgentConfigPath: string;
  /** where the ConfigMap lives */
  ipMasqConfigMap: { namespace: string; name: string; key: string };
  masqStatePath: string;
  statusPath: string;
  /** refresh of the status file even when nothing changed (lease freshness), ms */
  statusIntervalMs: number;
  /** how long to wait for the first ConfigMap sync before starting the masquerade agent anyway */
  startupSyncTimeoutMs: number;
  nftPath: string;
  /**
   * What a clean stop (SIGTERM) does to the datapath. false (default): leaves it as programmed, as
   * upstream ip-masq-agent and a crash do, so an agent restart (upgrade, rollout, chaos) never
   * leaves the node without its masquerade or gateway rules while the next agent syncs with the
   * API (docs/agent.md "Stop and restart"). true: decommission — the masquerade table is removed
   * and the gateway left fail-closed (no floating IP, every policy dropping).
   */
  removeRulesOnStop: boolean;
  /**
   * Egress gateway: replicate the SNAT bindings of floating IPs between nodes with conntrackd and
   * commit them on taking an IP, so established connections survive a failover (default true;
   * docs/gateway.md). false: the new holder picks flows up loosely.
   */
  gatewayConntrackSync: boolean;
  /**
   * The node's boot-hook directory: scripts there run when the node boots, before its pods are
   * wired and this agent starts (the node's init runs them, like a systemd unit ordered before the
   * kubelet). The gateway module keeps its forward fence and pod guard there
   * (agent/gateway/render.ts renderBootFence), so a node that boots again never forwards other
   * nodes' pod traffic un-NATed, and its own pods reach nothing beyond the cluster's pods, while its
   * agent has not programmed the node yet. null: no boot hook is written.
   */
  bootHookDir: string | null;
}

export class AgentConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid agent config:\n  - ${issues.join('\n  - ')}`);
    this.name = 'AgentConfigError';
  }
}

const KNOWN = new Set([
  'nodeName',
  'nodeIP',
  'podCIDRs',
  'apiServer',
  'caFile',
  'insecureSkipTLSVerify',
  'tokenFile',
  'flavour',
  'leaseRenewIntervalMs',
  'heartbeatIntervalMs',
  'idleHeartbeatIntervalMs',
  'heartbeatPort',
  'ipMasqAgentConfigPath',
  'ipMasqConfigMap',
  'masqStatePath',
  'statusPath',
  'statusIntervalMs',
  'startupSyncTimeoutMs',
  'nftPath',
  'removeRulesOnStop',
  'gatewayConntrackSync',
  'bootHookDir',
]);

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function show(v: unknown): string {
  if (v === undefined) return '(absent)';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/** Validates a parsed JSON value and fills defaults. Throws AgentConfigError listing every issue. */
export function parseAgentConfig(raw: unknown): AgentConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new AgentConfigError([`config must be a JSON object, got ${show(raw)}`]);
  const c = raw as Record<string, unknown>;
  const issues: string[] = [];
  const bad = (field: string, value: unknown, what: string): void => void issues.push(`${field}: ${what} (got ${show(value)})`);

  for (const k of Object.keys(c)) if (!KNOWN.has(k)) bad(k, c[k], `unknown field (known: ${[...KNOWN].join(', ')})`);

  const str = (field: string, required: boolean, dflt = ''): string => {
    const v = c[field];
    if (v === undefined) {
      if (required) bad(field, v, 'is required');
      return dflt;
    }
    if (typeof v !== 'string' || v === '') {
      bad(field, v, 'must be a non-empty string');
      return dflt;
    }
    return v;
  };
  const absPath = (field: string, dflt: string | undefined): string => {
    const v = str(field, dflt === undefined, dflt ?? '');
    if (v && !isAbsolute(v)) bad(field, v, 'must be an absolute path');
    return v;
  };
  const int = (field: string, dflt: number, min: number, max: number): number => {
    const v = c[field];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      bad(field, v, `must be an integer number of milliseconds between ${min} and ${max}`);
      return dflt;
    }
    return v;
  };
  const bool = (field: string, dflt: boolean): boolean => {
    const v = c[field];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') {
      bad(field, v, 'must be true or false');
      return dflt;
    }
    return v;
  };

  const nodeName = str('nodeName', true);
  if (nodeName && (!DNS1123_SUBDOMAIN.test(nodeName) || nodeName.length > 253))
    bad('nodeName', nodeName, 'must be a DNS-1123 subdomain (lower case letters, digits, "-" and ".")');

  const nodeIP = str('nodeIP', true);
  if (nodeIP && !isIPv4(nodeIP)) bad('nodeIP', nodeIP, 'must be an IPv4 address');

  const podCIDRs: string[] = [];
  const pc = c.podCIDRs;
  if (pc === undefined) bad('podCIDRs', pc, 'is required (use [] for a node that runs no pods)');
  else if (!Array.isArray(pc)) bad('podCIDRs', pc, 'must be a list of IPv4 CIDRs');
  else
    pc.forEach((x, i) => {
      const p = parseCidr4(x);
      if (!p.ok) bad(`podCIDRs[${i}]`, x, p.reason);
      else if (podCIDRs.includes(p.value.text)) bad(`podCIDRs[${i}]`, x, 'duplicate CIDR');
      else podCIDRs.push(p.value.text);
    });

  const apiServer = str('apiServer', true);
  let https = true;
  if (apiServer) {
    let u: URL | undefined;
    try {
      u = new URL(apiServer);
    } catch {
      bad('apiServer', apiServer, 'must be a URL like https://192.168.1.10:6443');
    }
    if (u) {
      if (u.protocol !== 'https:' && u.protocol !== 'http:') bad('apiServer', apiServer, 'scheme must be https (or http for tests)');
      if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) bad('apiServer', apiServer, 'must have no path, query or fragment');
      https = u.protocol === 'https:';
    }
  }
  const insecureSkipTLSVerify = bool('insecureSkipTLSVerify', false);
  const caRaw = c.caFile;
  let caFile: string | null = null;
  if (caRaw !== undefined && caRaw !== null) caFile = absPath('caFile', undefined);
  else if (https && !insecureSkipTLSVerify) bad('caFile', caRaw, 'is required for an https apiServer (or set insecureSkipTLSVerify: true)');

  const tokenFile = absPath('tokenFile', undefined);

  const flavourRaw = c.flavour;
  let flavour: AgentFlavour = 'ip-masq-agent';
  if (flavourRaw === undefined) bad('flavour', flavourRaw, `is required: one of ${AGENT_FLAVOURS.join(', ')}`);
  else if (!AGENT_FLAVOURS.includes(flavourRaw as AgentFlavour)) bad('flavour', flavourRaw, `must be one of ${AGENT_FLAVOURS.join(', ')}`);
  else flavour = flavourRaw as AgentFlavour;

  const leaseRenewIntervalMs = int('leaseRenewIntervalMs', 10_000, 10, 60_000);
  const heartbeatIntervalMs = int('heartbeatIntervalMs', 100, 0, 60_000);
  const idleHeartbeatIntervalMs = int('idleHeartbeatIntervalMs', Math.max(1000, heartbeatIntervalMs), 10, 60_000);
  if (heartbeatIntervalMs > 0 && idleHeartbeatIntervalMs < heartbeatIntervalMs) {
    bad('idleHeartbeatIntervalMs', idleHeartbeatIntervalMs, `must be at least heartbeatIntervalMs (${heartbeatIntervalMs})`);
  }
  const heartbeatPort = int('heartbeatPort', 7472, 1, 65_535);
  const ipMasqAgentConfigPath = absPath('ipMasqAgentConfigPath', DEFAULT_IP_MASQ_CONFIG_PATH);
  if (ipMasqAgentConfigPath && isAbsolute(ipMasqAgentConfigPath) && dirname(ipMasqAgentConfigPath) === '/') {
    bad('ipMasqAgentConfigPath', ipMasqAgentConfigPath, 'must be inside a directory of its own (the projection owns that directory)');
  }

  let ipMasqConfigMap = { namespace: IP_MASQ_NAMESPACE, name: IP_MASQ_NAME, key: IP_MASQ_KEY };
  const cm = c.ipMasqConfigMap;
  if (cm !== undefined) {
    if (typeof cm !== 'object' || cm === null || Array.isArray(cm)) bad('ipMasqConfigMap', cm, 'must be an object {namespace, name, key}');
    else {
      const o = cm as Record<string, unknown>;
      for (const k of Object.keys(o)) if (!['namespace', 'name', 'key'].includes(k)) bad(`ipMasqConfigMap.${k}`, o[k], 'unknown field');
      for (const k of ['namespace', 'name', 'key'] as const) {
        if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === '')) bad(`ipMasqConfigMap.${k}`, o[k], 'must be a non-empty string');
      }
      ipMasqConfigMap = {
        namespace: typeof o.namespace === 'string' && o.namespace ? o.namespace : ipMasqConfigMap.namespace,
        name: typeof o.name === 'string' && o.name ? o.name : ipMasqConfigMap.name,
        key: typeof o.key === 'string' && o.key ? o.key : ipMasqConfigMap.key,
      };
    }
  }

  const masqStatePath = absPath('masqStatePath', DEFAULT_MASQ_STATE_PATH);
  const statusPath = absPath('statusPath', DEFAULT_STATUS_PATH);
  const statusIntervalMs = int('statusIntervalMs', 5000, 50, 600_000);
  const startupSyncTimeoutMs = int('startupSyncTimeoutMs', 5000, 0, 600_000);
  const nftPath = str('nftPath', false, 'nft');
  const removeRulesOnStop = bool('removeRulesOnStop', false);
  const gatewayConntrackSync = bool('gatewayConntrackSync', true);
  const bootHookDir = c.bootHookDir === null ? null : absPath('bootHookDir', DEFAULT_BOOT_HOOK_DIR);

  const paths: [string, string][] = [
    ['ipMasqAgentConfigPath', ipMasqAgentConfigPath],
    ['masqStatePath', masqStatePath],
    ['statusPath', statusPath],
    ...(bootHookDir ? ([['bootHookDir', bootHookDir]] as [string, string][]) : []),
  ];
  for (let i = 0; i < paths.length; i++)
    for (let j = i + 1; j < paths.length; j++) {
      const [fa, pa] = paths[i]!;
      const [fb, pb] = paths[j]!;
      if (pa && pa === pb) bad(fb, pb, `must differ from ${fa}`);
    }
  for (const [f, p] of paths.slice(1)) {
    if (p && ipMasqAgentConfigPath && dirname(p) === dirname(ipMasqAgentConfigPath))
      bad(f, p, `must not be in the projected directory ${dirname(ipMasqAgentConfigPath)} (the projection owns it)`);
  }

  if (bootHookDir && ipMasqAgentConfigPath && bootHookDir === dirname(ipMasqAgentConfigPath))
    bad('bootHookDir', bootHookDir, 'must not be the projected directory (the projection owns it)');

  if (issues.length) throw new AgentConfigError(issues);
  return {
    nodeName,
    nodeIP,
    podCIDRs,
    apiServer,
    caFile,
    insecureSkipTLSVerify,
    tokenFile,
    flavour,
    leaseRenewIntervalMs,
    heartbeatIntervalMs,
    idleHeartbeatIntervalMs,
    heartbeatPort,
    ipMasqAgentConfigPath,
    ipMasqConfigMap,
    masqStatePath,
    statusPath,
    statusIntervalMs,
    startupSyncTimeoutMs,
    nftPath,
    removeRulesOnStop,
    gatewayConntrackSync,
    bootHookDir,
  };
}

/** Parses the text of a config file (JSON). */
export function parseAgentConfigText(text: string, source = 'agent config'): AgentConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new AgentConfigError([`${source}: not valid JSON: ${(e as Error).message}`]);
  }
  return parseAgentConfig(raw);
}
