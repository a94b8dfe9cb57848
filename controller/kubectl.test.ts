// Real kubectl (/usr/bin/kubectl) against the API server started in-process on 127.0.0.1 (random
// port, https with the controller's own CA, bearer token kubeconfig). Loopback only; no Docker.
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startTestController, waitFor, type TestController } from './testing.js';

const SEED000 = new URL('../fixtures/manifests/seed-000/', import.meta.url).pathname;
const SEED001 = new URL('../fixtures/manifests/seed-001/', import.meta.url).pathname;
const KUBECTL = process.env.KUBECTL ?? 'kubectl';

let t: TestController | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kubectl(args: string[], env: Record<string, string> = {}, input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      KUBECTL,
      [`--kubeconfig=${t!.kubeconfigPath}`, `--cache-dir=${join(t!.dir, 'kcache')}`, ...args],
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function ok(args: string[], env: Record<string, string> = {}, input?: string): Promise<string> {
  const r = await kubectl(args, env, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

// Each test runs the real kubectl 3-15 times, and every kubectl start costs 300-500 ms of CPU on a
// 2-core VM (Go binary, discovery cache): with the unit project's other files in parallel, the first
// test took 5.07 s once, over vitest's default 5 s. The budget fits the work; nothing here is timed.
describe('kubectl against the API server', { timeout: 30_000 }, () => {
  it("applies the seed's manifests unchanged and supports get -o yaml, describe, label, patch, edit, delete", async () => {
    t = await startTestController();
    const applied = await ok(['apply', '-f', SEED000]);
    expect(applied).toContain('anthosnetworkgateway.networking.gke.io/default created');
    expect(applied).toContain('egressnatpolicy.networking.gke.io/egress created');
    // re-applying is a no-op
    expect(await ok(['apply', '-f', SEED000])).toContain('egressnatpolicy.networking.gke.io/egress unchanged');

    // the seed's own verification command
    const gw = parse(await ok(['-n', 'kube-system', 'get', 'anthosnetworkgateway.networking.gke.io', 'default', '-oyaml'])) as Record<string, any>;
    expect(gw.kind).toBe('AnthosNetworkGateway');
    expect(gw.spec.floatingIPs).toEqual(['192.168.1.100', '192.168.1.101', '192.168.1.102']);
    expect(gw.status.nodes).toEqual({ 'cp-1': 'Down', worker1: 'Down', worker2: 'Down' });
    const gwn = parse(await ok(['-n', 'kube-system', 'get', 'anthosnetworkgatewaynode.networking.gke.io', 'worker1', '-oyaml'])) as Record<string, any>;
    expect(gwn.status).toEqual({ state: 'Down', floatingIPs: [] });

    expect(await ok(['get', 'egressnatpolicies'])).toMatch(/egress\s+192\.168\.1\.100\s+False/);

    // describe shows the UnknownEgressIP event (no node is Up, so the IP is not assigned)
    const described = await waitFor(async () => {
      const out = await ok(['describe', 'egressnatpolicy', 'egress']);
      return out.includes('UnknownEgressIP') && out;
    }, 'describe shows UnknownEgressIP');
    expect(described).toMatch(/Warning\s+UnknownEgressIP\s+.*egress-nat-controller\s+egressSourceIP 192\.168\.1\.100 is not assigned/);

    expect(await ok(['label', 'egressnatpolicy', 'egress', 'team=blue'])).toContain('labeled');
    expect(await ok(['patch', 'egressnatpolicy', 'egress', '--type=merge', '-p', '{"spec":{"destinationCIDRs":["8.8.8.0/24","1.1.1.0/24"]}}'])).toContain(
      'patched',
    );
    expect(
      await ok(['edit', 'egressnatpolicy', 'egress'], { KUBE_EDITOR: 'sed -i s#1.1.1.0/24#9.9.9.0/24#', EDITOR: 'sed -i s#1.1.1.0/24#9.9.9.0/24#' }),
    ).toContain('edited');
    const edited = JSON.parse(await ok(['get', 'egressnatpolicy', 'egress', '-o', 'json'])) as Record<string, any>;
    expect(edited.metadata.labels).toEqual({ team: 'blue' });
    expect(edited.spec.destinationCIDRs).toEqual(['8.8.8.0/24', '9.9.9.0/24']);
    expect(edited.metadata.generation).toBe(3);
    // core types: strategic merge patch from kubectl apply/patch
    expect(await ok(['apply', '-f', join(SEED001, 'standard-ip-masq-agent-configmap.yaml')])).toContain('configmap/ip-masq-agent created');
    expect(await ok(['-n', 'kube-system', 'patch', 'configmap', 'ip-masq-agent', '-p', '{"data":{"extra":"1"}}'])).toContain('patched');
    expect(Object.keys((JSON.parse(await ok(['-n', 'kube-system', 'get', 'cm', 'ip-masq-agent', '-o', 'json'])) as { data: object }).data).sort()).toEqual([
      'config',
      'extra',
    ]);

    expect(await ok(['delete', 'egressnatpolicy', 'egress'])).toContain('deleted');
    const gone = await kubectl(['get', 'egressnatpolicy', 'egress']);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain('egressnatpolicies.networking.gke.io "egress" not found');
  });

  it("reports an invalid manifest's field and value", async () => {
    t = await startTestController();
    const bad = join(t.dir, 'bad.yaml');
    writeFileSync(
      bad,
      readFileSync(join(SEED000, '02-egressnatpolicy.yaml'), 'utf8')
        .replace('egressSourceIP: 192.168.1.100', 'egressSourceIP: 192.168.1.300')
        .replace('8.8.8.0/24', '8.8.8.1/24'),
    );
    const r = await kubectl(['apply', '-f', bad]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('The EgressNATPolicy "egress" is invalid');
    expect(r.stderr).toContain('spec.destinationCIDRs[0]: Invalid value: "8.8.8.1/24"');
    expect(r.stderr).toContain('spec.egressSourceIP: Invalid value: "192.168.1.300": must be a valid IPv4 address');
    // a second policy with the same egressSourceIP
    await ok(['apply', '-f', join(SEED000, '02-egressnatpolicy.yaml')]);
    const dup = await kubectl(
      ['apply', '-f', '-'],
      {},
      readFileSync(join(SEED000, '02-egressnatpolicy.yaml'), 'utf8').replace('name: egress', 'name: egress2'),
    );
    expect(dup.code).not.toBe(0);
    expect(dup.stderr).toContain('spec.egressSourceIP: Duplicate value: "192.168.1.100": already used by EgressNATPolicy "egress"');
  });

  it('get -w streams the first event', async () => {
    t = await startTestController();
    const child = spawn(KUBECTL, [`--kubeconfig=${t.kubeconfigPath}`, `--cache-dir=${join(t.dir, 'kcache')}`, 'get', 'egressnatpolicies', '-w', '-o', 'name']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await ok(['apply', '-f', join(SEED000, '02-egressnatpolicy.yaml')]);
      await waitFor(() => out.includes('egressnatpolicy.networking.gke.io/egress'), 'first watch event from kubectl get -w', 10_000);
    } finally {
      child.kill('SIGTERM');
    }
    expect(out.split('\n')[0]).toBe('egressnatpolicy.networking.gke.io/egress');
  });

  it('autopilot: the seed-001 policies apply, kubectl get egressnatpolicies lists v1 and describe works', async () => {
    t = await startTestController({ flavour: 'autopilot' });
    await waitFor(async () => (await ok(['get', 'egressnatpolicies', '-o', 'name'])).includes('/default'), 'default policy');
    const applied = await ok(['apply', '-f', join(SEED001, '01-egressnatpolicy-default.yaml'), '-f', join(SEED001, '02-egressnatpolicy-nosnat.yaml')]);
    expect(applied).toContain('egressnatpolicy.networking.gke.io/onprem created');
    const names = (await ok(['get', 'egressnatpolicies', '-o', 'name'])).trim().split('\n').sort();
    expect(names).toEqual([
      'egressnatpolicy.networking.gke.io/default',
      `egressnatpolicy.networking.gke.io/${t.running.controller.managedPolicyName}`,
      'egressnatpolicy.networking.gke.io/onprem',
    ]);
    const d = await ok(['describe', 'egressnatpolicy', 'default']);
    expect(d).toContain('API Version:  networking.gke.io/v1');
    expect(d).toMatch(/Action:\s+NoSNAT/);
    const refused = await kubectl(['delete', 'egressnatpolicy', t.running.controller.managedPolicyName]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('managed by GKE');
    const cm = await waitFor(async () => {
      const out = await ok(['-n', 'kube-system', 'get', 'configmap', 'ip-masq-agent', '-o', 'jsonpath={.data.config}']);
      return out.includes('8.8.8.0/24') ? out : undefined;
    }, 'ConfigMap has the custom destination');
    expect((parse(cm) as { nonMasqueradeCIDRs: string[] }).nonMasqueradeCIDRs).toContain('10.0.0.0/8');
  });
});
