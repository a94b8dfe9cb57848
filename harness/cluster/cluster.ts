/**
 * The cluster's programs in a lab: the controller (API server) on the first control-plane node and
 * the agent on every node (the control-plane node included), from harness/cluster/lab-config.ts.
 *
 *   prepareCluster generate PKI + configs, write them (one exec per container), start the managed
 *                  process `controller` (needs no network: Lab.up runs it during the wiring)
 *   startCluster   then start the managed process `agent` on every node and wait until every agent
 *                  runs and every node is Up in the API
 *   restartNodePrograms  after a node was booted again (Faults.start): its agent (and the
 *                  controller, on the control-plane node) died with the container; start them again
 *
 * The per-node work runs at most startConcurrency() nodes at a time (the control-plane node first):
 * each node's first exec starts its in-lab helper and each agent's start is a Node process start,
 * both CPU-bound; a 100-node lab doing all of them at once on 2 cores (load average 121) let a
 * 15 s deadline of one node's file write expire while it waited for the CPU, not for its own work.
 * Bounded, each node's deadline runs from when its own work starts.
 *
 * What the harness needs later (admin token, CA, API port) is kept in CLUSTER_FILE on the
 * control-plane container, so any process (the CLI, a forwarder) can read it back.
 */
import { availableParallelism } from 'node:os';
import type { LabRuntime } from '../lab/runtime.js';
import type { Progress } from '../docker/image.js';
import type { NodeSpec, SnatFlavour, Topology } from '../topology/types.js';
import type { AgentFlavour } from '../../agent/config.js';
import { DEFAULT_LAB_PATHS, generateLabConfigs, generateLabPki, type LabDescription, type LabFile } from './lab-config.js';
import { processLog, processRunning, startProcess } from '../lab/process.js';
import { inLabProgram } from '../util/paths.js';
import { LabError } from '../util/errors.js';
import { forEachBounded } from '../util/bounded.js';
import { podRegistration } from './pods.js';
import { REGISTER_FAILED } from '../inlab/cluster-ready-core.js';

/** Managed process names (harness/lab/process.ts). */
export const CONTROLLER_PROCESS = 'controller';
export const AGENT_PROCESS = 'agent';
export const API_PORT = 6443;
/**
 * The seed's cluster name: its AnthosNetworkGateway manifest lives in namespace `cluster-cluster1`,
 * which the controller creates for clusterName `cluster1`; with this name the seed's manifests
 * apply unchanged. Labs are told apart by their id (kubeconfig context `egresslab-<lab id>`).
 */
export const CLUSTER_NAME = 'cluster1';
/** On the control-plane container: what the harness needs to reach the API (mode 0600). */
export const CLUSTER_FILE = '/etc/egresslab/harness.json';
/**
 * How long the cluster's programs may take to be ready in a lab of `nodes` nodes: on a 2-core
 * machine the time grows with the node count (19 workers did not fit in a flat 20 s), and it does
 * even when only a few agents start at once: every container is a cgroup of its own with an equal
 * CPU share, so a starting agent gets about 1/(busy containers) of the machine while the agents
 * started before it are still warming up (a 100-node lab: an agent had not written its first log
 * line 24 s after its start). A failure bound, not a wait: readiness is polled and ends as soon as
 * it is there. Each agent's bound runs from its own start; every node Up in the API, from the first.
 */
export function readyTimeoutMs(nodes: number): number {
  return 20_000 + 1_000 * Math.max(0, nodes - 4);
}

/**
 * How many nodes a cluster start works on at once: 4 per CPU, at least 8 (a default lab's 4 nodes
 * all at once, as before; 8 on a 2-core machine). EGRESSLAB_START_CONCURRENCY overrides it.
 */
export function startConcurrency(env: NodeJS.ProcessEnv = process.env, cpus = availableParallelism()): number {
  const raw = env.EGRESSLAB_START_CONCURRENCY;
  if (raw === undefined || raw === '') return Math.max(8, 4 * cpus);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1000)
    throw new LabError(`EGRESSLAB_START_CONCURRENCY must be a whole number from 1 to 1000, got ${JSON.stringify(raw)}`);
  return n;
}

/** The topology's nodes, the control-plane node first (its controller is what the others wait for). */
function controlPlaneFirst(topology: Topology): NodeSpec[] {
  const cp = controlPlaneNode(topology);
  return [cp, ...topology.nodes.filter((n) => n !== cp)];
}

/** How to reach a lab's API server (written to the control-plane node at start). */
export interface ClusterInfo {
  schema: 1;
  clusterName: string;
  /** the node (container key) that runs the controller */
  controlPlane: string;
  controlPlaneAddress: string;
  port: number;
  /** URL the agents use (inside the lab) */
  serverUrl: string;
  adminToken: string;
  caCert: string;
}

/** The topology's control-plane node (it runs the controller); throws when it has none. */
export function controlPlaneNode(topology: Topology): NodeSpec {
  const cp = topology.nodes.find((n) => n.role === 'control-plane');
  if (!cp) throw new LabError(`topology ${topology.name} has no control-plane node to run the controller`);
  return cp;
}

/** Topology SNAT flavour -> the agent's flavour (the same four names). */
export function agentFlavour(snat: SnatFlavour): AgentFlavour {
  return snat;
}

/** What the controller and agents are told about the lab: nodes, subnets, SNAT flavour, lease timing. */
export function labDescription(topology: Topology): LabDescription {
  const cp = controlPlaneNode(topology);
  return {
    clusterName: CLUSTER_NAME,
    nodes: topology.nodes.map((n) => ({ name: n.name, role: n.role, address: n.address, ...(n.podCIDR ? { podCIDR: n.podCIDR } : {}) })),
    nodeSubnet: topology.nodeSubnet,
    routerAddress: topology.routerAddress,
    serviceCIDR: topology.serviceCIDR,
    flavour: agentFlavour(topology.snat),
    controlPlaneAddress: cp.address,
    port: API_PORT,
    ...(topology.lease ? { lease: { renewIntervalMs: topology.lease.renewIntervalMs, expiryMs: topology.lease.expiryMs } } : {}),
  };
}

/** The commands the generated configs are run with (stable: restarts rebuild them from here). */
export function controllerCommand(): string[] {
  return ['node', inLabProgram('controller/main.js'), DEFAULT_LAB_PATHS.controllerConfig];
}
/** The agent's command line inside a node (see controllerCommand). */
export function agentCommand(): string[] {
  return ['node', inLabProgram('agent/main.js'), DEFAULT_LAB_PATHS.agentConfig];
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** One shell script that writes every file exactly (base64, so any byte survives) with its mode. */
export function renderWriteScript(files: LabFile[]): string {
  const dirs = [...new Set(files.map((f) => f.path.slice(0, f.path.lastIndexOf('/')) || '/'))];
  const lines = ['set -e', 'umask 077', `mkdir -p ${dirs.map(shQuote).join(' ')}`];
  for (const f of files) {
    const tmp = `${f.path}.tmp.$$`;
    lines.push(
      `printf '%s' ${shQuote(Buffer.from(f.content).toString('base64'))} | base64 -d > ${shQuote(tmp)}`,
      `chmod ${f.mode.toString(8)} ${shQuote(tmp)}`,
      `mv -f ${shQuote(tmp)} ${shQuote(f.path)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function writeFiles(lab: LabRuntime, container: string, files: LabFile[]): Promise<void> {
  await lab.exec(container, ['sh'], { stdin: renderWriteScript(files), timeoutMs: 15_000 });
}

/** Reads the lab's ClusterInfo from its control-plane node; throws for labs without a cluster. */
export async function readClusterInfo(lab: LabRuntime): Promise<ClusterInfo> {
  if (!lab.topology.cluster) throw new LabError(`lab ${lab.id} runs no cluster (topology ${lab.topology.name} has cluster: false)`);
  const cp = controlPlaneNode(lab.topology).name;
  const r = await lab.exec(cp, ['cat', CLUSTER_FILE], { check: false });
  if (r.exitCode !== 0) throw new LabError(`lab ${lab.id}: ${CLUSTER_FILE} is missing on ${cp} (is ${cp} running? ${r.stderr.trim()})`);
  return JSON.parse(r.stdout) as ClusterInfo;
}

async function logTail(lab: LabRuntime, container: string, name: string, lines = 15): Promise<string> {
  const log = await processLog(lab, container, name).catch(() => '');
  return log.trim().split('\n').slice(-lines).join('\n');
}

/** Waits (inside the node: its helper polls the file, no process per poll) until the agent's status file says running. */
async function waitAgentRunning(lab: LabRuntime, node: string, timeoutMs: number): Promise<void> {
  const status = DEFAULT_LAB_PATHS.agentStatus;
  const ch = await lab.helper(node);
  let ok: boolean;
  if (ch?.alive) ok = await ch.waitMatch(status, '"phase": *"running"', timeoutMs);
  else {
    const tries = Math.ceil(timeoutMs / 20);
    const script = [
      `i=0; while [ $i -lt ${tries} ]; do`,
      `  grep -Eq '"phase": *"running"' ${status} 2>/dev/null && exit 0`,
      `  i=$((i+1)); sleep 0.02`,
      'done; exit 1',
    ].join('\n');
    ok = (await lab.exec(node, ['sh', '-c', script], { check: false, timeoutMs: timeoutMs + 5_000 })).exitCode === 0;
  }
  if (ok) return;
  const running = await processRunning(lab, node, AGENT_PROCESS).catch(() => false);
  throw new LabError(
    `lab ${lab.id}: the agent on ${node} is not running after ${timeoutMs} ms (${running ? 'process alive' : 'process exited'}); its log ends with:\n${await logTail(lab, node, AGENT_PROCESS)}`,
  );
}

/**
 * Inside the control-plane container, one exec and one process (harness/inlab/cluster-ready.ts):
 * registers the topology's namespaces and pods in the API (the agents find pods only through it),
 * retrying until the API answers, then watches until every node is Up in the API.
 */
async function registerPodsAndWaitNodesUp(lab: LabRuntime, info: ClusterInfo, nodes: string[], timeoutMs: number): Promise<void> {
  const argv = [
    'node',
    inLabProgram('harness/inlab/cluster-ready.js'),
    '--info',
    CLUSTER_FILE,
    '--nodes',
    nodes.join(','),
    '--register',
    '--timeout-ms',
    String(timeoutMs),
  ];
  // two steps, each with the whole budget
  const r = await lab.exec(info.controlPlane, argv, { check: false, stdin: JSON.stringify(podRegistration(lab.plan)), timeoutMs: 2 * timeoutMs + 10_000 });
  if (r.exitCode === 0) return;
  if (r.exitCode === REGISTER_FAILED) throw new LabError(`lab ${lab.id}: registering the pods in the API failed: ${(r.stderr || r.stdout).trim()}`);
  const running = await processRunning(lab, info.controlPlane, CONTROLLER_PROCESS).catch(() => false);
  throw new LabError(
    `lab ${lab.id}: nodes not Up in the API within ${timeoutMs} ms: ${(r.stderr || r.stdout).trim()}\n` +
      `controller ${running ? 'running' : 'NOT running'}; its log ends with:\n${await logTail(lab, info.controlPlane, CONTROLLER_PROCESS)}`,
  );
}

/** How long each phase of a cluster start took. */
export interface ClusterStartTimings {
  /** configs generated, files written, controller started (overlaps the wiring when prepared early) */
  prepareMs: number;
  /** until the last agent was started (in a lab of more than startConcurrency() nodes, the first agents were running by then) */
  startMs: number;
  /** from then until every agent runs and every node is Up */
  readyMs: number;
  /** from the start of startCluster (after the wiring) to ready */
  totalMs: number;
}

/** The result of the first half of a cluster start (controller started, agents not yet). */
export interface PreparedCluster {
  info: ClusterInfo;
  prepareMs: number;
}

/**
 * First half, which needs no network: generate PKI and configs, write every file (one exec per
 * container), start the controller. Lab.up runs it while it wires the lab, so the controller boots
 * meanwhile.
 */
export async function prepareCluster(lab: LabRuntime): Promise<PreparedCluster> {
  const t0 = Date.now();
  const desc = labDescription(lab.topology);
  const cp = controlPlaneNode(lab.topology);
  const pki = generateLabPki(desc);
  const g = generateLabConfigs(desc, { pki });
  const info: ClusterInfo = {
    schema: 1,
    clusterName: desc.clusterName,
    controlPlane: cp.name,
    controlPlaneAddress: cp.address,
    port: API_PORT,
    serverUrl: g.serverUrl,
    adminToken: g.adminToken,
    caCert: pki.caCert,
  };
  const files: Record<string, LabFile[]> = { ...g.files };
  files[cp.name] = [
    ...(files[cp.name] ?? []),
    { path: CLUSTER_FILE, content: `${JSON.stringify(info, null, 2)}\n`, mode: 0o600 },
    // For tools inside the lab (server: the control-plane's lab address).
    { path: '/etc/egresslab/admin.kubeconfig', content: g.kubeconfig(g.serverUrl, pki.caCert, `egresslab-${lab.id}`), mode: 0o600 },
  ];
  await forEachBounded(controlPlaneFirst(lab.topology), startConcurrency(), async (n) => {
    await writeFiles(lab, n.name, files[n.name] ?? []);
    if (n.name === cp.name) await startProcess(lab, { container: n.name, label: n.name }, CONTROLLER_PROCESS, controllerCommand());
  });
  return { info, prepareMs: Date.now() - t0 };
}

/**
 * Starts the cluster's programs once the lab is wired: (prepareCluster unless `prepared` is given)
 * then the agent on every node, and waits until every agent runs and every node is Up in the API.
 */
export async function startCluster(lab: LabRuntime, progress: Progress, prepared?: PreparedCluster | Promise<PreparedCluster>): Promise<ClusterStartTimings> {
  const t0 = Date.now();
  const { info, prepareMs } = await (prepared ?? prepareCluster(lab));
  const t1 = Date.now();
  const nodes = lab.topology.nodes.map((n) => n.name);
  const concurrency = startConcurrency();
  const timeoutMs = readyTimeoutMs(nodes.length);
  // Pods are registered in parallel with the agents' start (the agents pick them up by watch). The
  // last agents start after ceil(nodes / concurrency) - 1 rounds, each within one agent's bound.
  const api = registerPodsAndWaitNodesUp(lab, info, nodes, timeoutMs * Math.ceil(nodes.length / concurrency));
  api.catch(() => {});
  const marks: string[] = [];
  const mark =
    (what: string) =>
    <T>(p: Promise<T>) =>
      p.then((v) => (marks.push(`${what} +${Date.now() - t1}`), v));
  // Each node in turn, the control-plane node first: start its agent, wait until it runs (its
  // deadline from its own start).
  let t2 = t1;
  const agents = forEachBounded(
    controlPlaneFirst(lab.topology).map((n) => n.name),
    concurrency,
    async (n) => {
      await startProcess(lab, { container: n, label: n }, AGENT_PROCESS, agentCommand());
      t2 = Math.max(t2, Date.now());
      await mark(n)(waitAgentRunning(lab, n, timeoutMs));
    },
  );
  await Promise.all([agents, mark('api')(api)]);
  if (process.env.EGRESSLAB_DEBUG_CLUSTER) progress(`ready marks: ${marks.join(', ')}`);
  const t3 = Date.now();
  const timings = { prepareMs, startMs: t2 - t1, readyMs: t3 - t2, totalMs: t3 - t0 };
  progress(
    `cluster up ${timings.totalMs} ms after wiring (controller on ${info.controlPlane}, ${nodes.length} agents, flavour ${agentFlavour(lab.topology.snat)}; ` +
      `prepare ${timings.prepareMs} ms${prepared ? ' during wiring' : ''}, agents start ${timings.startMs} ms, ready ${timings.readyMs} ms)`,
  );
  return timings;
}

/**
 * A node booted again (its processes died with the container, /run is empty): start its agent,
 * and the controller first when it is the control-plane node; wait until the agent runs.
 */
export async function restartNodePrograms(lab: LabRuntime, node: string): Promise<void> {
  if (!lab.topology.cluster) return;
  const place = { container: node, label: node };
  if (node === controlPlaneNode(lab.topology).name && !(await processRunning(lab, node, CONTROLLER_PROCESS))) {
    await startProcess(lab, place, CONTROLLER_PROCESS, controllerCommand());
  }
  if (!(await processRunning(lab, node, AGENT_PROCESS))) {
    // A status file of the previous run cannot survive (/run is a tmpfs), but be explicit.
    await lab.exec(node, ['rm', '-f', DEFAULT_LAB_PATHS.agentStatus]);
    await startProcess(lab, place, AGENT_PROCESS, agentCommand());
  }
  await waitAgentRunning(lab, node, readyTimeoutMs(4));
}
