/**
 * CLI commands for a lab's cluster: kubeconfig (with a background API forward), apply, and the
 * cluster part of status.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Lab } from '../lab/lab.js';
import { parseCommand, type CommandSpec } from '../util/args.js';
import { LabError } from '../util/errors.js';
import { readClusterInfo } from '../cluster/cluster.js';
import { closeClusterAccess, kubeconfigText } from '../cluster/access.js';
import { ensureForwarder, kubeconfigPath, runningForwarder } from '../cluster/background-forward.js';
import { applyAll, loadManifests } from '../cluster/apply.js';
import { clusterStatus, type ClusterStatus } from '../cluster/cluster-status.js';

const out = (s: string) => process.stdout.write(`${s}\n`);

/** The cluster commands' flags and help (the parsers and `egresslab help` read this table). */
export const CLUSTER_SPECS: Record<string, CommandSpec> = {
  kubeconfig: {
    flags: { lab: { value: true, arg: 'NAME' }, out: { value: true, arg: 'FILE|-' }, json: {} },
    about: `  Writes an admin kubeconfig for the lab's API server (default <project>/.egresslab/<lab>.kubeconfig;
  "-" prints it) pointing at https://127.0.0.1:PORT, and makes sure a background forward to the lab's
  control-plane container listens there (one per lab; it exits with the lab, "egresslab down" stops it).
  Example: export KUBECONFIG=$(npx egresslab kubeconfig --lab demo) && kubectl get nodes`,
  },
  apply: {
    flags: { lab: { value: true, arg: 'NAME' }, file: { value: true, required: true, short: 'f', arg: 'FILE|DIR' } },
    about: `  Applies manifests (YAML multi-document or JSON; a directory in file-name order) like "kubectl apply":
  creates each object or patches it from the manifest. Errors name the field the API refused.
  Example: npx egresslab apply -f fixtures/manifests/seed-000/`,
  },
};

function requireCluster(lab: Lab): void {
  if (!lab.topology.cluster) throw new LabError(`lab ${lab.id} runs no cluster (its topology ${lab.topology.name} has cluster: false)`);
}

export async function kubeconfigCmd(argv: string[]): Promise<number> {
  const { flags } = parseCommand('kubeconfig', CLUSTER_SPECS.kubeconfig!, argv);
  const lab = await Lab.attach(flags.lab as string | undefined);
  requireCluster(lab);
  const [info, fwd] = await Promise.all([readClusterInfo(lab), ensureForwarder(lab.id)]);
  const server = `https://127.0.0.1:${fwd.port}`;
  const text = kubeconfigText(lab.id, info, server);
  if (flags.out === '-') {
    process.stdout.write(text);
    return 0;
  }
  const file = resolve((flags.out as string | undefined) ?? kubeconfigPath(lab.id));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
  if (flags.json) out(JSON.stringify({ lab: lab.id, kubeconfig: file, server, forwarderPid: fwd.pid }));
  else {
    out(file);
    process.stderr.write(`kubeconfig for lab ${lab.id} (server ${server}, forwarder pid ${fwd.pid}): KUBECONFIG=${file} kubectl get nodes\n`);
  }
  return 0;
}

export async function applyCmd(argv: string[]): Promise<number> {
  const { flags } = parseCommand('apply', CLUSTER_SPECS.apply!, argv);
  const manifests = loadManifests(flags.file as string);
  const lab = await Lab.attach(flags.lab as string | undefined);
  requireCluster(lab);
  try {
    const client = await lab.api();
    const results = await applyAll(client, manifests);
    let failed = 0;
    for (const r of results) {
      if (r.error) {
        failed++;
        process.stderr.write(`error: ${r.name} (${r.source}): ${r.error}\n`);
      } else out(`${r.name} ${r.action}`);
    }
    return failed ? 1 : 0;
  } finally {
    await closeClusterAccess(lab);
  }
}

/** The cluster part of `egresslab status` (JSON object, and lines for humans). */
export async function clusterStatusOf(lab: Lab): Promise<ClusterStatus & { forwarder: { pid: number; port: number } | null }> {
  try {
    const info = await readClusterInfo(lab).catch(() => undefined);
    const client = info ? await lab.api({ timeoutMs: 4_000 }).catch(() => undefined) : undefined;
    const s = await clusterStatus(lab, client, `cluster-${info?.clusterName ?? 'cluster1'}`);
    const f = runningForwarder(lab.id);
    return { ...s, forwarder: f ? { pid: f.pid, port: f.port } : null };
  } finally {
    await closeClusterAccess(lab);
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function printClusterStatus(s: ClusterStatus & { forwarder: { pid: number; port: number } | null }): void {
  out(
    `\ncluster: controller on ${s.controller.node} ${s.controller.processRunning ? 'running' : 'NOT running'}; API ${s.api.reachable ? 'reachable' : `unreachable (${s.api.error ?? '?'})`}${s.forwarder ? `; kubeconfig forward on 127.0.0.1:${s.forwarder.port} (pid ${s.forwarder.pid})` : ''}`,
  );
  if (s.api.reachable) {
    if (s.gateway) {
      const g = s.gateway;
      out(`gateway ${g.namespace}/default: floatingIPs ${g.floatingIPs.join(', ') || '(none)'}`);
      const rows = [
        ['FLOATING IP', 'NODE'],
        ...g.floatingIPs.map((ip) => [ip, g.assignments[ip] ?? `unassigned${g.unassigned[ip] ? ` (${g.unassigned[ip]})` : ''}`]),
      ];
      if (g.floatingIPs.length) out(table(rows));
    } else out('gateway: none (no AnthosNetworkGateway "default")');
  }
  out('');
  const gwn = new Map(s.gatewayNodes.map((n) => [n.name, n]));
  const rows = [['NODE', 'API STATE', 'FLOATING IPS', 'AGENT', 'LEASE RENEWALS', 'MASQ CONFIG', 'APPLIED', 'LAST APPLY', 'LAST ERROR']];
  for (const a of s.agents) {
    const n = gwn.get(a.node);
    const agent = !a.containerRunning ? 'node down' : !a.processRunning ? `stopped${a.phase ? ` (was ${a.phase})` : ''}` : (a.phase ?? '?');
    const err = a.masq?.lastError?.message ? `${a.masq.lastError.reason ?? ''}: ${a.masq.lastError.message}` : (a.leaseLastError ?? '-');
    rows.push([
      a.node,
      n?.state ?? '?',
      n?.floatingIPs.join(',') || '-',
      agent,
      a.leaseRenewals === null ? '-' : String(a.leaseRenewals),
      a.masq ? `${a.masq.mode ?? '?'} ${a.masq.configHash ?? '-'}` : '-',
      a.masq?.appliedAt ?? '-',
      a.masq?.lastApply ?? '-',
      err.length > 80 ? `${err.slice(0, 77)}...` : err,
    ]);
  }
  out(table(rows));
}
