/**
 * SPEC 1, Standard cluster, ip-masq-agent running with a custom `nonMasqueradeCIDRs` in ConfigMap
 * kube-system/ip-masq-agent: the pod IP is kept for the listed destinations (the VPC's subnet, a
 * public /24 whose replies then never come back, the pod ranges), the node IP is used for the rest
 * (the default ranges the list no longer names included). The ConfigMap is written through the API
 * and with real kubectl (apply, delete, and the `create configmap --from-file` of the GKE docs); each
 * change takes effect without restarting anything, within 5 s; deleting the ConfigMap restores the
 * defaults. hostNetwork pods always leave with the node IP. TCP, UDP and ICMP for every flow.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { KubeClient } from '../../lib/kube/client.js';
import { applyAll, loadManifests } from '../../harness/cluster/apply.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure } from '../../harness/testing/artifacts.js';
import { run } from '../../harness/testing/run.js';
import { projectRoot } from '../../harness/util/paths.js';
import { processRunning } from '../../harness/lab/process.js';
import {
  METADATA,
  VPC,
  agentStatus,
  configYaml,
  expectFlows,
  keep,
  masq,
  nodeIP,
  podIP,
  podNodes,
  untilDefaults,
  untilSameConfig,
  untilSeenFrom,
} from './masq-kit.js';

const KUBECTL = process.env.KUBECTL ?? '/usr/bin/kubectl';
const MANIFESTS = join(projectRoot(), 'fixtures/manifests/masquerade');
const POD = 'alice/frontend-1'; // 10.10.10.1 on node-1 (192.168.1.1)
const OTHER = 'paul/frontend-2'; // 10.10.11.1 on node-2 (192.168.1.2)

let lab: Lab;
let api: KubeClient;
let dir: string;
let kubeconfig: string;

beforeAll(async () => {
  lab = await startTestLab('standard-agent', 'mcc');
  api = await lab.api();
  dir = mkdtempSync(join(tmpdir(), 'egresslab-mcc-'));
  kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, await lab.kubeconfig(), { mode: 0o600 });
});
afterAll(async () => {
  await lab?.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
recordArtifactsOnFailure(() => lab);

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await run(KUBECTL, [`--kubeconfig=${kubeconfig}`, `--cache-dir=${join(dir, 'kcache')}`, ...args], {
    timeoutMs: 60_000,
    ...(input !== undefined ? { input } : {}),
  });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr || `exit ${r.code}`}`);
  return r.stdout;
}

/** The agents' process ids and the controller's liveness, to show that nothing restarted. */
async function pids(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of podNodes(lab)) out[n] = (await agentStatus(lab, n)).pid;
  return out;
}

/** Waits until node-1 shows the config through a probe, then until every node runs the same config. */
async function converge(from: string, to: string, source: string): Promise<number> {
  const ms = await untilSeenFrom(lab, from, to, source, 5_000);
  await untilSameConfig(lab, api);
  return ms;
}

describe('Standard, ip-masq-agent, custom nonMasqueradeCIDRs', () => {
  let before: Record<string, number>;

  it('written through the API: pod IP for the listed destinations, node IP for the rest', async () => {
    before = await pids();
    const results = await applyAll(api, loadManifests(join(MANIFESTS, 'custom-cidrs.yaml')));
    expect(results.map((r) => r.action)).toEqual(['created']);
    const ms = await converge(POD, '8.8.8.8', podIP(lab, POD));
    console.log(`custom list through the API -> 8.8.8.8 sees the pod IP after ${ms} ms`);
    const s = await agentStatus(lab, 'node-1');
    expect(s.masq).toMatchObject({ configSource: 'file', setElements: 3, lastError: null });
    await expectFlows(lab, [
      // listed: the VPC subnet and the pod ranges (answered), a public /24 (pod IPs get no reply)
      ...keep(lab, POD, [VPC, '10.200.0.1', podIP(lab, OTHER)], true),
      ...keep(lab, POD, ['8.8.8.8'], false),
      // not listed: public addresses, and default ranges that the custom list replaced
      ...masq(lab, POD, ['1.1.1.1', '192.168.50.1', '172.20.0.1']),
      // link-local stays exempt (masqLinkLocal: false)
      ...keep(lab, POD, [METADATA], true),
      ...keep(lab, OTHER, ['8.8.8.8'], false),
      ...masq(lab, OTHER, ['100.64.5.1']),
    ]);
  });

  it('changed with real kubectl apply: takes effect within 5 s, nothing restarted', async () => {
    const out = await kubectl(['apply', '-f', join(MANIFESTS, 'custom-cidrs-changed.yaml')]);
    expect(out).toContain('configmap/ip-masq-agent configured');
    const t0 = Date.now();
    await untilSeenFrom(lab, POD, '1.1.1.1', podIP(lab, POD), 5_000);
    await untilSeenFrom(lab, POD, '8.8.8.8', nodeIP(lab, POD), Math.max(1, 5_000 - (Date.now() - t0)));
    console.log(`kubectl apply -> both changes seen by probes after ${Date.now() - t0} ms`);
    await untilSameConfig(lab, api);
    expect(await pids()).toEqual(before);
    expect(await processRunning(lab, 'cp-1', 'controller')).toBe(true);
    await expectFlows(lab, [
      ...keep(lab, POD, ['1.1.1.1'], false),
      ...masq(lab, POD, ['8.8.8.8', '1.0.0.1']),
      ...keep(lab, POD, [VPC], true),
      ...keep(lab, OTHER, ['1.1.1.1'], false),
    ]);
    // kubectl reads back what it wrote
    expect(await kubectl(['-n', 'kube-system', 'get', 'configmap', 'ip-masq-agent', '-o', 'jsonpath={.data.config}'])).toContain('1.1.1.0/24');
  });

  it('hostNetwork pods appear as the node IP, listed destinations included', async () => {
    const host = 'default/host-1';
    await expectFlows(
      lab,
      ['1.1.1.1', VPC, '10.200.0.1'].map((to) => ({ from: host, to, source: nodeIP(lab, host), reply: true })),
    );
  });

  it('deleting the ConfigMap (kubectl delete) restores the default list', async () => {
    expect(await kubectl(['-n', 'kube-system', 'delete', 'configmap', 'ip-masq-agent'])).toContain('deleted');
    const t0 = Date.now();
    await untilSeenFrom(lab, POD, '192.168.50.1', podIP(lab, POD), 5_000);
    await untilSeenFrom(lab, POD, '1.1.1.1', nodeIP(lab, POD), Math.max(1, 5_000 - (Date.now() - t0)));
    await untilDefaults(lab);
    expect(await pids()).toEqual(before);
    await expectFlows(lab, [...keep(lab, POD, ['192.168.50.1', '172.20.0.1', VPC], true), ...masq(lab, POD, ['1.1.1.1', '8.8.8.8'])]);
  });

  it('created from a file the way the GKE docs do (kubectl create configmap --from-file=config=...)', async () => {
    const file = join(dir, 'config');
    writeFileSync(file, configYaml({ nonMasqueradeCIDRs: ['8.8.4.0/24'], masqLinkLocal: true, resyncInterval: '1m' }));
    // `kubectl create configmap` itself posts protobuf, which the lab's API server does not accept
    // (415): the same object goes through `--dry-run=client -o yaml | kubectl apply -f -`.
    const manifest = await kubectl([
      'create',
      'configmap',
      'ip-masq-agent',
      '--namespace=kube-system',
      `--from-file=config=${file}`,
      '--dry-run=client',
      '-o',
      'yaml',
    ]);
    expect(await kubectl(['apply', '-f', '-'], manifest)).toContain('configmap/ip-masq-agent created');
    await converge(POD, '8.8.4.4', podIP(lab, POD));
    await expectFlows(lab, [...keep(lab, POD, ['8.8.4.4'], false), ...masq(lab, POD, [VPC, METADATA])]);
    expect(await pids()).toEqual(before);
    await kubectl(['-n', 'kube-system', 'delete', 'configmap', 'ip-masq-agent']);
    await untilDefaults(lab);
  });
});
