/**
 * Real clients against a lab's API server (the controller in cp-1), reached from the host only
 * through the forward on 127.0.0.1 (one docker exec carrying every connection, no host route): real kubectl
 * (KUBECTL overrides /usr/bin/kubectl), `egresslab apply -f`, `egresslab kubeconfig` with its
 * background forwarder, and @kubernetes/client-node list/watch.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { run as runProgram, type RunResult } from '../../harness/testing/run.js';
import { pollUntil } from '../../harness/util/poll.js';
import { projectRoot } from '../../harness/util/paths.js';
import { isForwarderProcess, readForwarderState, stopForwarder } from '../../harness/cluster/background-forward.js';

const KUBECTL = process.env.KUBECTL ?? '/usr/bin/kubectl';
const SEED000 = join(projectRoot(), 'fixtures/manifests/seed-000');
const CLI = join(projectRoot(), 'bin/egresslab.js');

let lab: Lab;
let dir: string;
let kubeconfigPath: string;
// the lab project's files share one worker process (vitest.config.ts, isolate: false): put it back
const stateDirBefore = process.env.EGRESSLAB_STATE_DIR;

beforeAll(async () => {
  lab = await startTestLab('default', 'kctl');
  dir = mkdtempSync(join(tmpdir(), 'egresslab-kctl-'));
  // The CLI's forwarder state goes to this test's folder (the CLI children inherit it).
  process.env.EGRESSLAB_STATE_DIR = join(dir, 'state');
  kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, await lab.kubeconfig(), { mode: 0o600 });
});
afterAll(async () => {
  try {
    if (lab) await stopForwarder(lab.id).catch(() => {});
    await lab?.down();
  } finally {
    if (stateDirBefore === undefined) delete process.env.EGRESSLAB_STATE_DIR;
    else process.env.EGRESSLAB_STATE_DIR = stateDirBefore;
    // the folder holds a kubeconfig with the lab's client key (and the forwarder's state, read above):
    // removed even when the lab's teardown failed
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

type Run = RunResult;

const run = (cmd: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<Run> =>
  runProgram(cmd, args, { env: { ...process.env, ...env }, timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) });

const kubectl = (args: string[], input?: string): Promise<Run> =>
  run(KUBECTL, [`--kubeconfig=${kubeconfigPath}`, `--cache-dir=${join(dir, 'kcache')}`, ...args], {}, input);
const egresslab = (args: string[]): Promise<Run> => run(process.execPath, [CLI, ...args]);

async function ok(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

const badPolicy = (): string =>
  readFileSync(join(SEED000, '02-egressnatpolicy.yaml'), 'utf8')
    .replace('name: egress', 'name: bad')
    .replace('8.8.8.0/24', '8.8.8.1/24')
    .replace('192.168.1.100', '192.168.1.150');

describe('kubectl against the lab API (forward on 127.0.0.1)', () => {
  it('lists the lab nodes, Ready through their agents', async () => {
    const nodes = JSON.parse(await ok(['get', 'nodes', '-o', 'json'])) as {
      items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[];
    };
    expect(nodes.items.map((n) => n.metadata.name).sort()).toEqual(['cp-1', 'node-1', 'node-2', 'node-3']);
    for (const n of nodes.items) expect(n.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it("applies the seed's policy before its gateway: describe shows UnknownEgressIP, then the gateway makes it served", async () => {
    expect(await ok(['apply', '-f', join(SEED000, '02-egressnatpolicy.yaml')])).toContain('egressnatpolicy.networking.gke.io/egress created');
    const unknown = await pollUntil(async () => ok(['describe', 'egressnatpolicy', 'egress']), {
      what: 'describe egressnatpolicy egress to show UnknownEgressIP',
      timeoutMs: 10_000,
      accept: (out) => out.includes('UnknownEgressIP'),
    });
    expect(unknown).toMatch(/Warning\s+UnknownEgressIP\s+.*egressSourceIP 192\.168\.1\.100/);

    const applied = await ok(['apply', '-f', SEED000]);
    expect(applied).toContain('anthosnetworkgateway.networking.gke.io/default created');
    expect(applied).toContain('egressnatpolicy.networking.gke.io/egress unchanged');
    // The seed's own verification command: every node Up (real agents), IPs on the workers, spread.
    const gw = await pollUntil(
      async () => parse(await ok(['-n', 'kube-system', 'get', 'anthosnetworkgateway.networking.gke.io', 'default', '-oyaml'])) as Record<string, any>,
      {
        what: 'the gateway status to assign the three floating IPs',
        timeoutMs: 10_000,
        accept: (g) => Object.keys(g.status?.floatingIPs ?? {}).length === 3,
      },
    );
    expect(gw.spec.floatingIPs).toEqual(['192.168.1.100', '192.168.1.101', '192.168.1.102']);
    // (a node whose agent was starved past the lease expiry shows in its NodeDown events)
    const flaps = (await ok(['get', 'events', '--field-selector', 'reason=NodeDown', '-o', 'name'])).trim();
    expect(gw.status.nodes, flaps).toEqual({ 'cp-1': 'Up', 'node-1': 'Up', 'node-2': 'Up', 'node-3': 'Up' });
    expect(gw.status.floatingIPs, flaps).toEqual({ '192.168.1.100': 'node-1', '192.168.1.101': 'node-2', '192.168.1.102': 'node-3' });
    const served = await pollUntil(async () => ok(['describe', 'egressnatpolicy', 'egress']), {
      what: 'the policy to become served',
      timeoutMs: 10_000,
      accept: (out) => out.includes('EgressSourceIPServed'),
    });
    expect(served).toMatch(/Normal\s+EgressSourceIPServed/);
    expect(await ok(['get', 'egressnatpolicies'])).toMatch(/egress\s+192\.168\.1\.100\s+True/);
  });

  it('get -w streams the current object first, then the change a label makes', async () => {
    const child = spawn(KUBECTL, [
      `--kubeconfig=${kubeconfigPath}`,
      `--cache-dir=${join(dir, 'kcache')}`,
      'get',
      'egressnatpolicies',
      '-w',
      '--output-watch-events',
    ]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await pollUntil(() => /ADDED\s+egress\s/.test(out), { what: 'the first watch event from kubectl get -w', timeoutMs: 15_000 });
      expect(await ok(['label', 'egressnatpolicy', 'egress', 'team=blue'])).toContain('labeled');
      await pollUntil(() => /MODIFIED\s+egress\s/.test(out), { what: 'the MODIFIED event after the label', timeoutMs: 15_000 });
    } finally {
      child.kill('SIGTERM');
    }
    expect(out.split('\n')[1]).toMatch(/^ADDED\s+egress\s/);
  });

  it('label, patch and get -o yaml round-trip; delete removes it', async () => {
    expect(await ok(['patch', 'egressnatpolicy', 'egress', '--type=merge', '-p', '{"spec":{"destinationCIDRs":["8.8.8.0/24","1.1.1.0/24"]}}'])).toContain(
      'patched',
    );
    const got = parse(await ok(['get', 'egressnatpolicy', 'egress', '-o', 'yaml'])) as Record<string, any>;
    expect(got.metadata.labels).toEqual({ team: 'blue' });
    expect(got.spec.destinationCIDRs).toEqual(['8.8.8.0/24', '1.1.1.0/24']);
    expect(got.status.conditions.find((c: { type: string }) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Served' });
    expect(await ok(['delete', 'egressnatpolicy', 'egress'])).toContain('deleted');
    const gone = await kubectl(['get', 'egressnatpolicy', 'egress']);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain('egressnatpolicies.networking.gke.io "egress" not found');
  });

  it('kubectl create configmap|namespace (protobuf bodies): the ip-masq-agent ConfigMap as GKE documents it', async () => {
    const cfg = join(dir, 'config');
    writeFileSync(cfg, 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\nmasqLinkLocal: false\nresyncInterval: 60s\n');
    expect(await ok(['create', 'configmap', 'ip-masq-agent', `--from-file=config=${cfg}`, '-n', 'kube-system'])).toContain('configmap/ip-masq-agent created');
    const cm = JSON.parse(await ok(['get', 'configmap', 'ip-masq-agent', '-n', 'kube-system', '-o', 'json'])) as { data: Record<string, string> };
    expect(cm.data).toEqual({ config: readFileSync(cfg, 'utf8') });
    expect(await ok(['create', 'namespace', 'team-a'])).toContain('namespace/team-a created');
    expect(await ok(['get', 'namespace', 'team-a', '-o', 'jsonpath={.metadata.name}'])).toBe('team-a');
    expect(await ok(['delete', 'configmap', 'ip-masq-agent', '-n', 'kube-system'])).toContain('deleted');
  });

  it("reports an invalid manifest's field and value", async () => {
    const r = await kubectl(['apply', '-f', '-'], badPolicy());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('The EgressNATPolicy "bad" is invalid');
    expect(r.stderr).toContain('spec.destinationCIDRs[0]: Invalid value: "8.8.8.1/24"');
  });
});

describe('egresslab apply -f', () => {
  it('creates what kubectl apply creates, and kubectl apply then finds nothing to change', async () => {
    await ok(['delete', '-f', SEED000, '--ignore-not-found']);
    const r = await egresslab(['apply', '--lab', lab.id, '-f', SEED000]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['anthosnetworkgateway.networking.gke.io/default created', 'egressnatpolicy.networking.gke.io/egress created']);
    // kubectl sees the same objects, with its last-applied annotation: its own apply changes nothing.
    const kapply = await ok(['apply', '-f', SEED000]);
    expect(kapply).toContain('anthosnetworkgateway.networking.gke.io/default unchanged');
    expect(kapply).toContain('egressnatpolicy.networking.gke.io/egress unchanged');
    const again = await egresslab(['apply', '--lab', lab.id, '--file', join(SEED000, '02-egressnatpolicy.yaml')]);
    expect(again.stdout.trim()).toBe('egressnatpolicy.networking.gke.io/egress unchanged');
    const pol = JSON.parse(await ok(['get', 'egressnatpolicy', 'egress', '-o', 'json'])) as Record<string, any>;
    expect(pol.spec).toEqual(parse(readFileSync(join(SEED000, '02-egressnatpolicy.yaml'), 'utf8')).spec);
  });

  it('a field removed from the manifest is removed from the object (as kubectl apply does)', async () => {
    const file = join(dir, 'gw.yaml');
    writeFileSync(file, readFileSync(join(SEED000, '01-anthosnetworkgateway.yaml'), 'utf8').replace('metadata:\n', 'metadata:\n  labels: {tier: gw}\n'));
    expect((await egresslab(['apply', '--lab', lab.id, '-f', file])).stdout).toContain('configured');
    expect(
      (JSON.parse(await ok(['-n', 'cluster-cluster1', 'get', 'anthosnetworkgateway', 'default', '-o', 'json'])) as Record<string, any>).metadata.labels,
    ).toEqual({ tier: 'gw' });
    const r = await egresslab(['apply', '--lab', lab.id, '-f', join(SEED000, '01-anthosnetworkgateway.yaml')]);
    expect(r.stdout).toContain('anthosnetworkgateway.networking.gke.io/default configured');
    expect(
      (JSON.parse(await ok(['-n', 'cluster-cluster1', 'get', 'anthosnetworkgateway', 'default', '-o', 'json'])) as Record<string, any>).metadata.labels ?? {},
    ).toEqual({});
  });

  it('an invalid manifest fails with the field the API refused', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, badPolicy());
    const r = await egresslab(['apply', '--lab', lab.id, '-f', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('egressnatpolicy.networking.gke.io/bad');
    expect(r.stderr).toContain('spec.destinationCIDRs[0]: Invalid value: "8.8.8.1/24"');
    expect((await kubectl(['get', 'egressnatpolicy', 'bad'])).code).not.toBe(0);
  });
});

describe('@kubernetes/client-node through the forward', () => {
  it('lists nodes and custom resources and watches a policy being created and deleted', async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromString(await lab.kubeconfig());
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const nodes = await core.listNode();
    expect(nodes.items.map((n) => n.metadata?.name).sort()).toEqual(['cp-1', 'node-1', 'node-2', 'node-3']);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const gwn = (await custom.listNamespacedCustomObject({
      group: 'networking.gke.io',
      version: 'v1alpha1',
      namespace: 'kube-system',
      plural: 'anthosnetworkgatewaynodes',
    })) as {
      items: { metadata: { name: string }; status: { state: string } }[];
    };
    expect(gwn.items.map((o) => [o.metadata.name, o.status.state]).sort()).toEqual([
      ['cp-1', 'Up'],
      ['node-1', 'Up'],
      ['node-2', 'Up'],
      ['node-3', 'Up'],
    ]);

    const list = (await custom.listClusterCustomObject({ group: 'networking.gke.io', version: 'v1alpha1', plural: 'egressnatpolicies' })) as {
      metadata: { resourceVersion: string };
    };
    const events: { type: string; name: string | undefined }[] = [];
    let ended: unknown = 'open';
    const ctl = await new k8s.Watch(kc).watch(
      '/apis/networking.gke.io/v1alpha1/egressnatpolicies',
      { resourceVersion: list.metadata.resourceVersion },
      (type: string, obj: { metadata?: { name?: string } }) => events.push({ type, name: obj.metadata?.name }),
      (err: unknown) => (ended = err),
    );
    try {
      const api = await lab.api();
      await api.create(
        { group: 'networking.gke.io', version: 'v1alpha1', plural: 'egressnatpolicies', namespaced: false },
        {
          metadata: { name: 'watched' },
          spec: { egress: [{ podSelector: { matchLabels: { role: 'frontend' } } }], destinationCIDRs: ['9.9.9.0/24'], egressSourceIP: '192.168.1.101' },
        },
      );
      await pollUntil(() => events.some((e) => e.type === 'ADDED' && e.name === 'watched'), { what: 'ADDED through the client-node watch', timeoutMs: 10_000 });
      expect(await ok(['delete', 'egressnatpolicy', 'watched'])).toContain('deleted');
      await pollUntil(() => events.some((e) => e.type === 'DELETED' && e.name === 'watched'), {
        what: 'DELETED through the client-node watch',
        timeoutMs: 10_000,
      });
      expect(ended).toBe('open');
    } finally {
      ctl.abort();
    }
  });
});

describe('egresslab kubeconfig and down', () => {
  it('kubeconfig starts one background forward that kubectl uses; down stops it with the lab', async () => {
    const out = join(dir, 'cli.kubeconfig');
    const r = await egresslab(['kubeconfig', '--lab', lab.id, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(out);
    const state = readForwarderState(lab.id)!;
    expect(state).toMatchObject({ lab: lab.id });
    expect(isForwarderProcess(state.pid)).toBe(true);
    const cfg = parse(readFileSync(out, 'utf8')) as { clusters: { cluster: { server: string } }[] };
    expect(cfg.clusters[0]!.cluster.server).toBe(`https://127.0.0.1:${state.port}`);
    const nodes = await run(KUBECTL, [`--kubeconfig=${out}`, 'get', 'nodes', '-o', 'name']);
    expect(nodes.stdout.trim().split('\n').sort()).toEqual(['node/cp-1', 'node/node-1', 'node/node-2', 'node/node-3']);
    // A second call reuses the running forward.
    const again = await egresslab(['kubeconfig', '--lab', lab.id, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ lab: lab.id, forwarderPid: state.pid, server: `https://127.0.0.1:${state.port}` });

    const down = await egresslab(['down', '--lab', lab.id]);
    expect(down.stdout).toContain('kubeconfig forward stopped');
    expect(isForwarderProcess(state.pid)).toBe(false);
    expect(await lab.exists('cp-1')).toBe(false);
  });
});
