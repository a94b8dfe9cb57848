import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../agent/config.js';
import { parseTokensFile } from '../../controller/api/auth.js';
import { startController, type RunningController } from '../../controller/app.js';
import { KubeClient, R } from '../../lib/kube/client.js';
import { parseConfig } from '../../controller/config.js';
import { generateLabConfigs, generateLabPki, LabConfigError, type LabDescription } from './lab-config.js';

const lab: LabDescription = {
  clusterName: 'cluster1',
  nodeSubnet: '192.168.1.0/24',
  serviceCIDR: '10.96.0.0/12',
  flavour: 'ip-masq-agent',
  controlPlaneAddress: '192.168.1.10',
  nodes: [
    { name: 'cp-1', role: 'control-plane', address: '192.168.1.10', podCIDR: '10.10.0.0/24' },
    { name: 'worker1', role: 'worker', address: '192.168.1.1', podCIDR: '10.10.10.0/24' },
    { name: 'worker2', role: 'worker', address: '192.168.1.2', podCIDR: '10.10.11.0/24' },
    { name: 'infra', role: 'worker', address: '192.168.1.3' },
  ],
};

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('lab config generation', () => {
  it('gives the admin and every node a distinct random token, in the tokens file with the right identity', () => {
    const g = generateLabConfigs(lab);
    const tokens = [g.adminToken, ...Object.values(g.nodes).map((n) => n.token)];
    expect(new Set(tokens).size).toBe(tokens.length);
    for (const t of tokens) expect(t).toMatch(/^[0-9a-f]{48}$/);
    const users = parseTokensFile(g.controller.tokensCsv);
    expect(users.get(g.adminToken)).toMatchObject({ name: 'admin', groups: ['system:masters'] });
    for (const n of lab.nodes) expect(users.get(g.nodes[n.name]!.token)).toMatchObject({ name: `system:node:${n.name}`, groups: ['system:nodes'] });
    // a second lab gets other tokens
    expect(generateLabConfigs(lab).adminToken).not.toBe(g.adminToken);
  });

  it('refuses a token source that repeats itself', () => {
    expect(() => generateLabConfigs(lab, { random: (n) => Buffer.alloc(n, 7) })).toThrow(/duplicate or short tokens/);
  });

  it('writes a controller config the controller accepts, with the lab topology', () => {
    const g = generateLabConfigs({ ...lab, flavour: 'autopilot', podCIDRs: ['10.10.0.0/16'], port: 7443, lease: { expiryMs: 900 } });
    const c = parseConfig(JSON.parse(g.controller.configJson));
    expect(c.flavour).toBe('autopilot');
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 7443 });
    expect(c.nodes).toEqual([
      { name: 'cp-1', role: 'control-plane', ip: '192.168.1.10', subnet: '192.168.1.0/24', podCIDR: '10.10.0.0/24' },
      { name: 'worker1', role: 'worker', ip: '192.168.1.1', subnet: '192.168.1.0/24', podCIDR: '10.10.10.0/24' },
      { name: 'worker2', role: 'worker', ip: '192.168.1.2', subnet: '192.168.1.0/24', podCIDR: '10.10.11.0/24' },
      { name: 'infra', role: 'worker', ip: '192.168.1.3', subnet: '192.168.1.0/24' },
    ]);
    expect(c.podCIDRs).toEqual(['10.10.0.0/16']);
    expect(c.serviceCIDRs).toEqual(['10.96.0.0/12']);
    expect(c.lease).toEqual({ renewIntervalMs: 100, expiryMs: 900, startupGraceMs: 3000 });
    expect(c.heartbeatPort).toBe(7472);
    expect(c.tls).toEqual({ mode: 'auto', altNames: ['192.168.1.10', 'cp-1'] });
    expect(g.serverUrl).toBe('https://192.168.1.10:7443');
    expect(g.controller.command).toEqual(['node', '/opt/egresslab/dist/controller/main.js', '/etc/egresslab/controller.json']);
    expect(generateLabConfigs({ ...lab, flavour: 'none' }).controller.config.flavour).toBe('standard');
  });

  it('gives each node an agent config that names that node, its address, pod CIDR, token and the API server', () => {
    const g = generateLabConfigs({ ...lab, flavour: 'default-snat', lease: { renewIntervalMs: 100, expiryMs: 300 } });
    for (const n of lab.nodes) {
      const gen = g.nodes[n.name]!;
      const a = parseAgentConfig(JSON.parse(gen.configJson));
      expect(a).toMatchObject({
        nodeName: n.name,
        nodeIP: n.address,
        podCIDRs: n.podCIDR ? [n.podCIDR] : [],
        apiServer: 'https://192.168.1.10:6443',
        flavour: 'default-snat',
        heartbeatIntervalMs: 100,
        leaseRenewIntervalMs: 10_000,
        tokenFile: '/etc/egresslab/agent.token',
        caFile: '/etc/egresslab/ca.crt',
        statusPath: '/run/egresslab/agent-status.json',
      });
      const tokenFile = g.files[n.name]!.find((f) => f.path === a.tokenFile)!;
      expect(tokenFile).toMatchObject({ content: `${gen.token}\n`, mode: 0o600 });
      expect(g.files[n.name]!.find((f) => f.path === '/etc/egresslab/agent.json')!.content).toBe(gen.configJson);
      expect(gen.command).toEqual(['node', '/opt/egresslab/dist/agent/main.js', '/etc/egresslab/agent.json']);
    }
    // the controller's files go to the container with the control-plane address, next to its agent's
    expect(g.controller.container).toBe('cp-1');
    const cpPaths = g.files['cp-1']!.map((f) => f.path);
    expect(cpPaths).toEqual(expect.arrayContaining(['/etc/egresslab/controller.json', '/etc/egresslab/tokens.csv', '/etc/egresslab/agent.json']));
    expect(g.files.worker1!.map((f) => f.path)).not.toContain('/etc/egresslab/tokens.csv');
  });

  it('produces a kubeconfig that parses and carries the server, the admin token and the CA', () => {
    const pki = generateLabPki(lab);
    const g = generateLabConfigs(lab, { pki });
    const kc = parse(g.kubeconfig('https://127.0.0.1:40123')) as {
      clusters: { name: string; cluster: Record<string, string> }[];
      users: { user: { token: string } }[];
      contexts: { name: string; context: { cluster: string; user: string } }[];
      'current-context': string;
    };
    expect(kc['current-context']).toBe('egresslab-cluster1');
    expect(kc.clusters[0]!.cluster.server).toBe('https://127.0.0.1:40123');
    expect(Buffer.from(kc.clusters[0]!.cluster['certificate-authority-data']!, 'base64').toString()).toBe(pki.caCert);
    expect(kc.users[0]!.user.token).toBe(g.adminToken);
    expect(kc.contexts[0]!.context).toEqual({ cluster: 'egresslab-cluster1', user: 'admin' });
    // without an up-front PKI the caller must pass the controller's CA for https
    expect(() => generateLabConfigs(lab).kubeconfig('https://127.0.0.1:1')).toThrow(/no CA certificate/);
    expect(generateLabConfigs(lab).kubeconfig('https://127.0.0.1:1', pki.caCert)).toContain('certificate-authority-data');
  });

  it('makes a serving certificate for the cp address and name, issued by the CA, and ships the CA to every node', () => {
    const pki = generateLabPki({ ...lab, altNames: ['egresslab-cp'] });
    const ca = new X509Certificate(pki.caCert);
    const cert = new X509Certificate(pki.cert);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    for (const n of ['IP Address:192.168.1.10', 'IP Address:127.0.0.1', 'DNS:localhost', 'DNS:cp-1', 'DNS:egresslab-cp'])
      expect(cert.subjectAltName).toContain(n);
    const g = generateLabConfigs(lab, { pki });
    for (const n of lab.nodes) expect(g.files[n.name]!.find((f) => f.path === '/etc/egresslab/ca.crt')?.content).toBe(pki.caCert);
    expect(g.files['cp-1']!.find((f) => f.path === '/var/lib/egresslab/controller/pki/apiserver.key')?.mode).toBe(0o600);
  });

  it('refuses a lab that cannot work, naming the problem', () => {
    expect(() => generateLabConfigs({ ...lab, nodes: [{ name: 'w', role: 'worker', address: '10.0.0.1' }] })).toThrow(
      /w\)\.address 10\.0\.0\.1 is outside nodeSubnet 192\.168\.1\.0\/24/,
    );
    expect(() => generateLabConfigs({ ...lab, controlPlaneAddress: 'cp-1' })).toThrow(LabConfigError);
    expect(() => generateLabConfigs({ ...lab, nodes: [{ name: 'Bad_Name', role: 'worker', address: '192.168.1.5' }] })).toThrow(
      /agent config for node Bad_Name: [\s\S]*nodeName: must be a DNS-1123/,
    );
    expect(() => generateLabConfigs({ ...lab, nodes: [...lab.nodes, { name: 'x', role: 'worker', address: '192.168.1.9', podCIDR: '10.1.2.3/24' }] })).toThrow(
      /podCIDR/,
    );
  });

  it('the generated files start a controller that uses the up-front PKI and knows every node token', async () => {
    const root = mkdtempSync(join(tmpdir(), 'egresslab-labcfg-'));
    cleanup.push(() => rmSync(root, { recursive: true, force: true }));
    const paths = {
      controllerConfig: join(root, 'etc/controller.json'),
      controllerDataDir: join(root, 'var/controller'),
      tokensFile: join(root, 'etc/tokens.csv'),
      agentConfig: join(root, 'etc/agent.json'),
      agentToken: join(root, 'etc/agent.token'),
      caFile: join(root, 'etc/ca.crt'),
      ipMasqAgentConfig: join(root, 'etc/ip-masq-agent/config'),
      agentStatus: join(root, 'run/agent-status.json'),
      masqState: join(root, 'run/masq-state.json'),
    };
    const pki = generateLabPki(lab);
    const g = generateLabConfigs({ ...lab, paths }, { pki });
    for (const f of g.controller.files) {
      mkdirSync(dirname(f.path), { recursive: true });
      writeFileSync(f.path, f.content);
      chmodSync(f.path, f.mode);
    }
    const cfg = parseConfig({ ...JSON.parse(g.controller.configJson), listen: { host: '127.0.0.1', port: 0 }, heartbeatPort: 0 });
    const running: RunningController = await startController(cfg, { log: () => {} });
    cleanup.push(() => running.stop());
    expect(running.caCert).toBe(pki.caCert);
    const worker = new KubeClient({ server: running.url, token: g.nodes.worker1!.token, ca: pki.caCert });
    cleanup.push(() => worker.close());
    // the node identity may write its own Lease, and is refused another node's
    await worker.create(R.leases, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'worker1', namespace: 'kube-node-lease' },
      spec: { holderIdentity: 'worker1' },
    });
    await expect(
      worker.create(R.leases, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'worker2', namespace: 'kube-node-lease' }, spec: {} }),
    ).rejects.toMatchObject({ code: 403 });
    const admin = new KubeClient({ server: running.url, token: g.adminToken, ca: pki.caCert });
    cleanup.push(() => admin.close());
    expect((await admin.list(R.nodes)).items.map((n) => n.metadata.name).sort()).toEqual(['cp-1', 'infra', 'worker1', 'worker2']);
  });
});
