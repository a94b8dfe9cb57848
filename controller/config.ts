// Controller configuration: a JSON file (path from argv[2] or EGRESSLAB_CONTROLLER_CONFIG).
import { isIPv4, isUsableHost, parseCidr4 } from '../lib/net/addresses.js';
import { GATEWAY_NAMESPACE } from '../lib/kube/well-known.js';
import { DEFAULT_TIMINGS, type LivenessTimings } from './logic/liveness.js';

export type Flavour = 'standard' | 'autopilot';

export interface NodeConfig {
  name: string;
  role: 'worker' | 'control-plane';
  /** node IP on the L2 segment */
  ip: string;
  /** the L2 segment's CIDR, e.g. 192.168.1.0/24 */
  subnet: string;
  /** the segment's router (the node's default gateway): never assigned as a floating IP */
  gateway?: string;
  podCIDR?: string;
}

export interface ControllerConfig {
  listen: { host: string; port: number };
  dataDir: string;
  tokensFile: string;
  /**
   * TLS (default: auto). kubectl only sends bearer tokens over https, so plain http (`false`) is
   * for clients that do not need kubectl. `auto` creates a CA and a serving certificate under
   * `<dataDir>/pki` (ca.crt is what kubeconfigs embed) for `altNames` plus localhost/127.0.0.1.
   */
  tls: false | { mode: 'auto'; altNames: string[] } | { mode: 'files'; certFile: string; keyFile: string };
  clusterName: string;
  flavour: Flavour;
  /** namespace of the served AnthosNetworkGateway `default` and of the AnthosNetworkGatewayNodes */
  gatewayNamespace: string;
  /** the cluster namespace (`cluster-<clusterName>`) whose AnthosNetworkGateway `default` is mirrored */
  clusterNamespace: string;
  nodes: NodeConfig[];
  podCIDRs: string[];
  serviceCIDRs: string[];
  lease: LivenessTimings;
  /** UDP port of the agents' liveness heartbeats (lib/liveness/heartbeat.ts), on listen.host; 0: none */
  heartbeatPort: number;
  /** fdatasync each write (default true) */
  fsync: boolean;
  bookmarkIntervalMs: number;
  /** the API server's limits (watches per identity, watch buffer and duration, Event size/count/TTL) */
  api: ApiLimits;
}

import { HEARTBEAT_PORT } from '../lib/liveness/heartbeat.js';
import { parseApiLimits, type ApiLimits } from './api/limits.js';

export class ConfigError extends Error {}

function req<T>(cond: T | undefined | null | false, msg: string): T {
  if (!cond) throw new ConfigError(msg);
  return cond;
}

function apiLimits(raw: unknown): ApiLimits {
  try {
    return parseApiLimits(raw);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

/** The longest wait a Node.js timer can hold: a longer (or NaN, or non-positive) delay fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A whole number of milliseconds a timer can wait, from `min` (the default when absent). */
function timerMs(v: unknown, fallback: number, field: string, min: number): number {
  if (v === undefined) return fallback;
  req(
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= MAX_TIMER_MS,
    `${field}: must be a whole number of milliseconds from ${min} to ${MAX_TIMER_MS}, got ${JSON.stringify(v)}`,
  );
  return v as number;
}

/** Refuses a key of `obj` that is not one of `allowed` (a typo must not be silently ignored). */
function knownKeys(obj: unknown, path: string, allowed: readonly string[]): void {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return;
  for (const k of Object.keys(obj)) req(allowed.includes(k), `${path}${k}: unknown field (allowed: ${allowed.join(', ')})`);
}

const TOP_LEVEL_KEYS = [
  'listen',
  'dataDir',
  'tokensFile',
  'tls',
  'clusterName',
  'flavour',
  'gatewayNamespace',
  'clusterNamespace',
  'nodes',
  'podCIDRs',
  'serviceCIDRs',
  'serviceCIDR',
  'lease',
  'heartbeatPort',
  'fsync',
  'bookmarkIntervalMs',
  'api',
];

/** Validates and fills defaults (pure). */
export function parseConfig(raw: unknown): ControllerConfig {
  req(typeof raw === 'object' && raw !== null && !Array.isArray(raw), 'config must be a JSON object');
  const c = raw as Record<string, unknown>;
  knownKeys(c, '', TOP_LEVEL_KEYS);
  knownKeys(c.listen, 'listen.', ['host', 'port']);
  knownKeys(c.lease, 'lease.', ['renewIntervalMs', 'expiryMs', 'startupGraceMs']);
  knownKeys(c.tls, 'tls.', ['certFile', 'keyFile', 'altNames']);
  const listen = (c.listen ?? {}) as Record<string, unknown>;
  const host = typeof listen.host === 'string' ? listen.host : '127.0.0.1';
  const port = listen.port === undefined ? 6443 : Number(listen.port);
  req(Number.isInteger(port) && port >= 0 && port < 65536, `listen.port: invalid port ${JSON.stringify(listen.port)}`);
  const dataDir = req(typeof c.dataDir === 'string' && c.dataDir, 'dataDir is required') as string;
  const tokensFile = req(typeof c.tokensFile === 'string' && c.tokensFile, 'tokensFile is required') as string;
  const flavour = (c.flavour ?? 'standard') as Flavour;
  req(flavour === 'standard' || flavour === 'autopilot', `flavour: must be "standard" or "autopilot", got ${JSON.stringify(c.flavour)}`);
  const clusterName = typeof c.clusterName === 'string' && c.clusterName ? c.clusterName : 'cluster1';
  const nodesRaw = (c.nodes ?? []) as unknown[];
  req(Array.isArray(nodesRaw), 'nodes must be a list');
  const names = new Set<string>();
  const nodes = nodesRaw.map((n, i): NodeConfig => {
    const o = (n ?? {}) as Record<string, unknown>;
    knownKeys(o, `nodes[${i}].`, ['name', 'role', 'ip', 'subnet', 'gateway', 'podCIDR']);
    const name = req(typeof o.name === 'string' && o.name, `nodes[${i}].name is required`) as string;
    req(!names.has(name), `nodes[${i}].name: duplicate node ${name}`);
    names.add(name);
    const role = (o.role ?? 'worker') as NodeConfig['role'];
    req(role === 'worker' || role === 'control-plane', `nodes[${i}].role: must be "worker" or "control-plane"`);
    const ip = o.ip as string;
    req(isIPv4(ip), `nodes[${i}].ip: invalid IPv4 address ${JSON.stringify(o.ip)}`);
    const subnet = o.subnet as string;
    const sp = parseCidr4(subnet, false);
    req(sp.ok, `nodes[${i}].subnet: invalid CIDR ${JSON.stringify(o.subnet)}`);
    const gateway = o.gateway as string | undefined;
    if (gateway !== undefined) {
      req(isIPv4(gateway), `nodes[${i}].gateway: invalid IPv4 address ${JSON.stringify(o.gateway)}`);
      req(isUsableHost(subnet, gateway), `nodes[${i}].gateway: ${gateway} is not a usable address of subnet ${subnet}`);
      req(gateway !== ip, `nodes[${i}].gateway: ${gateway} is the node's own address`);
    }
    const podCIDR = o.podCIDR as string | undefined;
    if (podCIDR !== undefined) req(parseCidr4(podCIDR, false).ok, `nodes[${i}].podCIDR: invalid CIDR ${JSON.stringify(podCIDR)}`);
    return { name, role, ip, subnet: sp.ok ? sp.value.text : subnet, ...(gateway ? { gateway } : {}), ...(podCIDR ? { podCIDR } : {}) };
  });
  const cidrList = (v: unknown, field: string): string[] => {
    const list = v === undefined ? [] : typeof v === 'string' ? [v] : v;
    req(Array.isArray(list), `${field} must be a list of CIDRs`);
    return (list as unknown[]).map((x, i) => {
      req(parseCidr4(x, false).ok, `${field}[${i}]: invalid CIDR ${JSON.stringify(x)}`);
      return x as string;
    });
  };
  const lease = (c.lease ?? {}) as Record<string, unknown>;
  const timings: LivenessTimings = {
    renewIntervalMs: timerMs(lease.renewIntervalMs, DEFAULT_TIMINGS.renewIntervalMs, 'lease.renewIntervalMs', 1),
    expiryMs: timerMs(lease.expiryMs, DEFAULT_TIMINGS.expiryMs, 'lease.expiryMs', 1),
    startupGraceMs: timerMs(lease.startupGraceMs, DEFAULT_TIMINGS.startupGraceMs, 'lease.startupGraceMs', 1),
  };
  req(timings.expiryMs > timings.renewIntervalMs, 'lease.expiryMs must be greater than lease.renewIntervalMs');
  const heartbeatPort = c.heartbeatPort === undefined ? HEARTBEAT_PORT : Number(c.heartbeatPort);
  req(Number.isInteger(heartbeatPort) && heartbeatPort >= 0 && heartbeatPort < 65536, `heartbeatPort: invalid port ${JSON.stringify(c.heartbeatPort)}`);
  let tls: ControllerConfig['tls'];
  const t = c.tls as { certFile?: unknown; keyFile?: unknown; altNames?: unknown } | boolean | undefined;
  if (t === false) tls = false;
  else if (t === undefined || t === true || (typeof t === 'object' && t.certFile === undefined)) {
    const alt = typeof t === 'object' && Array.isArray(t.altNames) ? t.altNames.map(String) : [];
    tls = { mode: 'auto', altNames: [...new Set([...(host !== '0.0.0.0' && host !== '::' ? [host] : []), ...alt])] };
  } else {
    req(
      typeof t === 'object' && typeof t.certFile === 'string' && typeof t.keyFile === 'string',
      'tls needs certFile and keyFile (or altNames for an automatic certificate, or false)',
    );
    tls = { mode: 'files', certFile: (t as { certFile: string }).certFile, keyFile: (t as { keyFile: string }).keyFile };
  }
  return {
    listen: { host, port },
    dataDir,
    tokensFile,
    tls,
    clusterName,
    flavour,
    gatewayNamespace: typeof c.gatewayNamespace === 'string' && c.gatewayNamespace ? c.gatewayNamespace : GATEWAY_NAMESPACE,
    clusterNamespace: typeof c.clusterNamespace === 'string' && c.clusterNamespace ? c.clusterNamespace : `cluster-${clusterName}`,
    nodes,
    podCIDRs: cidrList(c.podCIDRs, 'podCIDRs'),
    serviceCIDRs: cidrList(c.serviceCIDRs ?? c.serviceCIDR, 'serviceCIDRs'),
    lease: timings,
    heartbeatPort,
    fsync: c.fsync === undefined ? true : c.fsync === true,
    bookmarkIntervalMs: timerMs(c.bookmarkIntervalMs, 60_000, 'bookmarkIntervalMs', 1000),
    api: apiLimits(c.api),
  };
}
