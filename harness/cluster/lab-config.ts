/**
 * Everything the harness writes into a lab's containers so that the controller (in the control-plane
 * container) and one agent per node can start, generated from a small description of the lab:
 *
 *   const pki = generateLabPki(lab);                 // optional: CA + serving cert made up front
 *   const g = generateLabConfigs(lab, { pki });
 *   for (const [container, files] of Object.entries(g.files)) for (const f of files) write f.content to f.path (chmod f.mode)
 *   exec in cp container:   g.controller.command     (node /opt/egresslab/dist/controller/main.js /etc/egresslab/controller.json)
 *   exec in every node:     g.nodes[name].command    (node /opt/egresslab/dist/agent/main.js /etc/egresslab/agent.json)
 *   host kubeconfig:        g.kubeconfig('https://127.0.0.1:<forwarded port>')
 *
 * generateLabConfigs is pure apart from the token randomness (injectable). It validates its own
 * output with the controller's and the agent's config parsers, so a file it returns is a file the
 * programs accept. Without `pki`, the controller creates its CA on first start; the harness must then
 * copy `controller.caPath` from the control-plane container to every node's `caPath` (agents wait
 * for the file) and pass that PEM to kubeconfig().
 */
import { NODE_BOOT_HOOK_DIR } from '../lab/boot.js';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { posix } from 'node:path';
import { parseAgentConfig, type AgentFlavour } from '../../agent/config.js';
import { kubeconfigYaml } from '../../lib/kube/kubeconfig.js';
import { parseConfig } from '../../controller/config.js';
import { cidrContains, isIPv4, parseCidr4 } from '../../lib/net/addresses.js';
import { DEFAULT_TIMINGS, type LivenessTimings } from '../../controller/logic/liveness.js';
import { buildCertificate } from '../../controller/tls/selfsigned.js';

export const PROJECT_ROOT_IN_CONTAINER = '/opt/egresslab';

export interface LabNodeInput {
  name: string;
  role: 'worker' | 'control-plane';
  address: string;
  /** absent for a node that runs no pods */
  podCIDR?: string;
}

export interface LabDescription {
  clusterName: string;
  nodes: LabNodeInput[];
  /** the nodes' L2 segment, e.g. 192.168.1.0/24 */
  nodeSubnet: string;
  /** the segment's router (the nodes' default gateway), e.g. 192.168.1.254: never a floating IP */
  routerAddress?: string;
  serviceCIDR: string;
  /** cluster-wide pod range(s) (Autopilot's managed policy); each node's podCIDR is added anyway */
  podCIDRs?: string[];
  flavour: AgentFlavour;
  /** lab address of the control-plane container that runs the controller, e.g. 192.168.1.10 */
  controlPlaneAddress: string;
  /** API server port (default 6443) */
  port?: number;
  lease?: Partial<LivenessTimings>;
  /** extra names for the serving certificate (the cp container's hostname is a good one) */
  altNames?: string[];
  paths?: Partial<LabPaths>;
}

/** Paths inside the containers (the writable places: /etc/egresslab, /var/lib/egresslab, /run/egresslab). */
export interface LabPaths {
  controllerConfig: string;
  controllerDataDir: string;
  tokensFile: string;
  agentConfig: string;
  agentToken: string;
  caFile: string;
  ipMasqAgentConfig: string;
  agentStatus: string;
  masqState: string;
  projectRoot: string;
}

export const DEFAULT_LAB_PATHS: LabPaths = {
  controllerConfig: '/etc/egresslab/controller.json',
  controllerDataDir: '/var/lib/egresslab/controller',
  tokensFile: '/etc/egresslab/tokens.csv',
  agentConfig: '/etc/egresslab/agent.json',
  agentToken: '/etc/egresslab/agent.token',
  caFile: '/etc/egresslab/ca.crt',
  ipMasqAgentConfig: '/etc/egresslab/ip-masq-agent/config',
  agentStatus: '/run/egresslab/agent-status.json',
  masqState: '/run/egresslab/masq-state.json',
  projectRoot: PROJECT_ROOT_IN_CONTAINER,
};

export interface LabFile {
  path: string;
  content: string;
  /** octal file mode the harness should chmod (secrets 0600) */
  mode: number;
}

export interface LabPki {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface GeneratedNode {
  name: string;
  token: string;
  /** the agent's config object (agent/config.ts) and its JSON text */
  config: Record<string, unknown>;
  configJson: string;
  configPath: string;
  tokenPath: string;
  caPath: string;
  statusPath: string;
  /** argv to exec in the node's container */
  command: string[];
  files: LabFile[];
}

export interface GeneratedLab {
  /** URL the agents use (the cp container's lab address) */
  serverUrl: string;
  adminToken: string;
  controller: {
    /** container (node name) that runs the controller, if one node has the cp address */
    container: string | undefined;
    config: Record<string, unknown>;
    configJson: string;
    configPath: string;
    tokensCsv: string;
    tokensPath: string;
    /** where the controller keeps (or creates) its CA certificate */
    caPath: string;
    command: string[];
    files: LabFile[];
  };
  nodes: Record<string, GeneratedNode>;
  /** files to write per container name (the controller's files are under its node's name) */
  files: Record<string, LabFile[]>;
  /** the CA certificate clients must trust, when the PKI was generated up front */
  caCert: string | undefined;
  /** admin kubeconfig for a server URL (e.g. a forward on the host); caCert defaults to the generated CA */
  kubeconfig(server: string, caCert?: string, contextName?: string): string;
}

export class LabConfigError extends Error {}

const DEFAULT_PORT = 6443;

/** Names the serving certificate must cover (the controller adds localhost and 127.0.0.1 itself). */
export function labAltNames(lab: LabDescription): string[] {
  const cp = lab.nodes.find((n) => n.address === lab.controlPlaneAddress);
  return [...new Set([lab.controlPlaneAddress, ...(cp ? [cp.name] : []), ...(lab.altNames ?? [])])];
}

/**
 * CA + serving certificate (ECDSA P-256) for the lab's API server, made up front so that every file
 * can be written before anything starts. The names match what the controller asks for, so it uses
 * these files instead of making its own.
 */
export function generateLabPki(lab: LabDescription): LabPki {
  const names = [...new Set(['localhost', '127.0.0.1', ...labAltNames(lab)])];
  const ca = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const caCert = buildCertificate({ commonName: 'egresslab-ca', organization: 'egresslab', isCA: true }, ca.publicKey, ca.privateKey);
  const kp = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const cert = buildCertificate({ commonName: 'egresslab-apiserver', isCA: false, altNames: names }, kp.publicKey, ca.privateKey, {
    commonName: 'egresslab-ca',
    organization: 'egresslab',
    pub: new X509Certificate(caCert).publicKey,
  });
  return {
    caCert,
    caKey: ca.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    cert,
    key: kp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

function fail(msg: string): never {
  throw new LabConfigError(`lab config: ${msg}`);
}

export interface GenerateOptions {
  /** randomness for tokens (default crypto.randomBytes) */
  random?: (bytes: number) => Buffer;
  pki?: LabPki;
}

export function generateLabConfigs(lab: LabDescription, opts: GenerateOptions = {}): GeneratedLab {
  const random = opts.random ?? randomBytes;
  const paths: LabPaths = { ...DEFAULT_LAB_PATHS, ...(lab.paths ?? {}) };
  const port = lab.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`port: must be 1-65535, got ${JSON.stringify(lab.port)}`);
  if (!isIPv4(lab.controlPlaneAddress)) fail(`controlPlaneAddress: not an IPv4 address: ${JSON.stringify(lab.controlPlaneAddress)}`);
  const subnet = parseCidr4(lab.nodeSubnet);
  if (!subnet.ok) fail(`nodeSubnet ${JSON.stringify(lab.nodeSubnet)}: ${subnet.reason}`);
  if (lab.nodes.length === 0) fail('nodes: at least one node is required');
  lab.nodes.forEach((n, i) => {
    if (!isIPv4(n.address)) fail(`nodes[${i}] (${n.name}).address: not an IPv4 address: ${JSON.stringify(n.address)}`);
    if (!cidrContains(subnet.value, n.address)) fail(`nodes[${i}] (${n.name}).address ${n.address} is outside nodeSubnet ${lab.nodeSubnet}`);
  });
  const serverUrl = `https://${lab.controlPlaneAddress}:${port}`;
  const lease: LivenessTimings = { ...DEFAULT_TIMINGS, ...(lab.lease ?? {}) };

  // tokens: admin + one per node, random and distinct
  const seen = new Set<string>();
  const token = (): string => {
    for (let i = 0; i < 10; i++) {
      const t = random(24).toString('hex');
      if (t.length >= 32 && !seen.has(t)) {
        seen.add(t);
        return t;
      }
    }
    return fail('token generator returned duplicate or short tokens');
  };
  const adminToken = token();
  const nodeTokens = new Map(lab.nodes.map((n) => [n.name, token()]));
  const tokensCsv = `${[
    '# egresslab tokens: token,user,uid,"groups"',
    `${adminToken},admin,admin,"system:masters"`,
    ...lab.nodes.map((n) => `${nodeTokens.get(n.name)!},system:node:${n.name},node-${n.name},"system:nodes"`),
  ].join('\n')}\n`;

  const controllerConfig: Record<string, unknown> = {
    listen: { host: '0.0.0.0', port },
    dataDir: paths.controllerDataDir,
    tokensFile: paths.tokensFile,
    tls: { altNames: labAltNames(lab) },
    clusterName: lab.clusterName,
    flavour: lab.flavour === 'autopilot' ? 'autopilot' : 'standard',
    nodes: lab.nodes.map((n) => ({
      name: n.name,
      role: n.role,
      ip: n.address,
      subnet: subnet.value.text,
      ...(lab.routerAddress ? { gateway: lab.routerAddress } : {}),
      ...(n.podCIDR ? { podCIDR: n.podCIDR } : {}),
    })),
    podCIDRs: lab.podCIDRs ?? [],
    serviceCIDRs: [lab.serviceCIDR],
    lease,
    fsync: true,
  };
  try {
    parseConfig(controllerConfig);
  } catch (e) {
    fail(`controller config: ${(e as Error).message}`);
  }
  const controllerConfigJson = `${JSON.stringify(controllerConfig, null, 2)}\n`;
  const caPath = posix.join(paths.controllerDataDir, 'pki', 'ca.crt');
  const controllerFiles: LabFile[] = [
    { path: paths.controllerConfig, content: controllerConfigJson, mode: 0o644 },
    { path: paths.tokensFile, content: tokensCsv, mode: 0o600 },
  ];
  if (opts.pki) {
    const pkiDir = posix.join(paths.controllerDataDir, 'pki');
    controllerFiles.push(
      { path: caPath, content: opts.pki.caCert, mode: 0o644 },
      { path: posix.join(pkiDir, 'ca.key'), content: opts.pki.caKey, mode: 0o600 },
      { path: posix.join(pkiDir, 'apiserver.crt'), content: opts.pki.cert, mode: 0o644 },
      { path: posix.join(pkiDir, 'apiserver.key'), content: opts.pki.key, mode: 0o600 },
    );
  }

  const nodes: Record<string, GeneratedNode> = {};
  for (const n of lab.nodes) {
    const config: Record<string, unknown> = {
      nodeName: n.name,
      nodeIP: n.address,
      podCIDRs: n.podCIDR ? [n.podCIDR] : [],
      apiServer: serverUrl,
      caFile: paths.caFile,
      tokenFile: paths.agentToken,
      flavour: lab.flavour,
      // the failure detector's heartbeat; the Lease object itself is renewed at kubelet's pace
      heartbeatIntervalMs: lease.renewIntervalMs,
      leaseRenewIntervalMs: 10_000,
      ipMasqAgentConfigPath: paths.ipMasqAgentConfig,
      masqStatePath: paths.masqState,
      statusPath: paths.agentStatus,
      // the node's init runs these at boot, before the agent (harness/lab/boot.ts)
      bootHookDir: NODE_BOOT_HOOK_DIR,
    };
    try {
      parseAgentConfig(config);
    } catch (e) {
      fail(`agent config for node ${n.name}: ${(e as Error).message}`);
    }
    const configJson = `${JSON.stringify(config, null, 2)}\n`;
    const tok = nodeTokens.get(n.name)!;
    const files: LabFile[] = [
      { path: paths.agentConfig, content: configJson, mode: 0o644 },
      { path: paths.agentToken, content: `${tok}\n`, mode: 0o600 },
    ];
    if (opts.pki) files.push({ path: paths.caFile, content: opts.pki.caCert, mode: 0o644 });
    nodes[n.name] = {
      name: n.name,
      token: tok,
      config,
      configJson,
      configPath: paths.agentConfig,
      tokenPath: paths.agentToken,
      caPath: paths.caFile,
      statusPath: paths.agentStatus,
      command: ['node', posix.join(paths.projectRoot, 'dist/agent/main.js'), paths.agentConfig],
      files,
    };
  }

  const cpNode = lab.nodes.find((n) => n.address === lab.controlPlaneAddress);
  const files: Record<string, LabFile[]> = {};
  for (const n of lab.nodes) files[n.name] = [...nodes[n.name]!.files];
  if (cpNode) {
    const mine = files[cpNode.name]!;
    for (const f of controllerFiles) {
      if (mine.some((x) => x.path === f.path)) fail(`path clash in ${cpNode.name}: ${f.path} is both a controller and an agent file`);
      mine.push(f);
    }
  }

  return {
    serverUrl,
    adminToken,
    controller: {
      container: cpNode?.name,
      config: controllerConfig,
      configJson: controllerConfigJson,
      configPath: paths.controllerConfig,
      tokensCsv,
      tokensPath: paths.tokensFile,
      caPath,
      command: ['node', posix.join(paths.projectRoot, 'dist/controller/main.js'), paths.controllerConfig],
      files: controllerFiles,
    },
    nodes,
    files,
    caCert: opts.pki?.caCert,
    kubeconfig(server: string, caCert?: string, contextName?: string): string {
      const ca = caCert ?? opts.pki?.caCert;
      if (server.startsWith('https:') && !ca) fail('kubeconfig: no CA certificate (pass the controller CA, or generate the PKI up front)');
      return kubeconfigYaml({
        server,
        ...(ca ? { caCert: ca } : {}),
        token: adminToken,
        clusterName: contextName ?? `egresslab-${lab.clusterName}`,
        userName: 'admin',
      });
    },
  };
}
