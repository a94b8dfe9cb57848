import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../util/errors.js';
import { projectRoot } from '../util/paths.js';
import { defaultTopologyPath, loadTopology, topologyFromArg } from './load.js';

const dir = mkdtempSync(join(tmpdir(), 'egresslab-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function refusal(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('loadTopology: the default fixture', () => {
  it('lives in fixtures/topologies/default.yaml', () => {
    expect(defaultTopologyPath()).toBe(join(projectRoot(), 'fixtures/topologies/default.yaml'));
  });

  it("is the seed's cluster (issue 3)", () => {
    const t = loadTopology();
    expect(t.name).toBe('default');
    expect(t.nodeSubnet).toBe('192.168.1.0/24');
    expect(t.routerAddress).toBe('192.168.1.254');
    expect(t.snat).toBe('ip-masq-agent');
    expect(t.cluster).toBe(true);
    expect(t.nodes).toEqual([
      { name: 'node-1', role: 'worker', address: '192.168.1.1', podCIDR: '10.10.10.0/24' },
      { name: 'node-2', role: 'worker', address: '192.168.1.2', podCIDR: '10.10.11.0/24' },
      { name: 'node-3', role: 'worker', address: '192.168.1.3', podCIDR: '10.10.12.0/24' },
      { name: 'cp-1', role: 'control-plane', address: '192.168.1.10' },
    ]);
    const ns = Object.fromEntries(t.namespaces.map((n) => [n.name, n.labels]));
    expect(ns).toEqual({
      alice: { user: 'alice', 'kubernetes.io/metadata.name': 'alice' },
      paul: { user: 'paul', 'kubernetes.io/metadata.name': 'paul' },
      default: { 'kubernetes.io/metadata.name': 'default' },
      'kube-system': { 'kubernetes.io/metadata.name': 'kube-system' },
    });
    const pods = Object.fromEntries(t.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
    expect(pods['alice/frontend-1']).toMatchObject({ node: 'node-1', ip: '10.10.10.1', hostNetwork: false, labels: { role: 'frontend' } });
    expect(pods['default/client-1']).toMatchObject({ node: 'node-1', ip: '10.10.10.2', hostNetwork: false, labels: {} });
    expect(pods['paul/frontend-2']).toMatchObject({ node: 'node-2', hostNetwork: false, labels: { role: 'frontend' } });
    expect(pods['default/client-3']).toMatchObject({ node: 'node-3', hostNetwork: false });
    expect(pods['default/host-1']).toMatchObject({ node: 'node-1', hostNetwork: true });
    expect(t.pods.filter((p) => p.hostNetwork)).toHaveLength(1);
    expect(t.vpcEndpoints).toHaveLength(1);
    expect(t.vpcEndpoints[0]).toMatchObject({ name: 'vpc', address: '172.16.100.10', subnet: '172.16.100.0/24' });
    expect(t.vpcEndpoints[0]!.answers).toContain('10.0.0.0/8');
    expect(t.vpcEndpoints[0]!.answers).toContain('169.254.0.0/16');
  });

  it('topologyFromArg: absent or a fixture name gives the fixture; a path is read as a path', () => {
    const viaDefault = topologyFromArg(undefined);
    expect(topologyFromArg('default')).toEqual(viaDefault);
    expect(topologyFromArg(defaultTopologyPath())).toEqual(viaDefault);
  });
});

describe('loadTopology: files', () => {
  it('reads YAML', () => {
    const path = file(
      'ok.yaml',
      ['name: tiny', 'nodes:', '  - { name: n1, address: 192.168.1.1, podCIDR: 10.1.0.0/24 }', 'pods:', '  - { name: p, node: n1 }', ''].join('\n'),
    );
    const t = loadTopology(path);
    expect(t.name).toBe('tiny');
    expect(t.pods).toEqual([{ namespace: 'default', name: 'p', node: 'n1', ip: '10.1.0.1', hostNetwork: false, labels: {} }]);
  });

  it('reads JSON (a YAML subset)', () => {
    const path = file('ok.json', JSON.stringify({ name: 'json', nodes: [{ name: 'n1', address: '192.168.1.1' }] }));
    expect(loadTopology(path).nodes).toEqual([{ name: 'n1', role: 'worker', address: '192.168.1.1' }]);
  });

  it('a bad topology names the file, the field and the value', () => {
    const path = file('bad.yaml', 'nodes:\n  - { name: n1, address: 192.168.1.1, podCidr: 10.1.0.0/24 }\n');
    const e = refusal(() => loadTopology(path));
    expect(e.source).toBe(path);
    expect(e.issues).toEqual([expect.objectContaining({ path: 'nodes[0].podCidr', value: '10.1.0.0/24' })]);
    expect(e.message).toContain(`${path}: nodes[0].podCidr: unknown field`);
    expect(e.message).toContain('"10.1.0.0/24"');
  });

  it('invalid YAML', () => {
    const path = file('broken.yaml', 'nodes: [ { name: n1\n');
    const e = refusal(() => loadTopology(path));
    expect(e.issues[0]).toMatchObject({ path: '(file)', value: path });
    expect(e.message).toMatch(/is not valid YAML/);
  });

  it('a missing file', () => {
    const path = join(dir, 'absent.yaml');
    const e = refusal(() => loadTopology(path));
    expect(e.issues[0]).toMatchObject({ path: '--topology', value: path, message: expect.stringContaining('ENOENT') });
  });

  it('an empty file is not a map', () => {
    const e = refusal(() => loadTopology(file('empty.yaml', '')));
    expect(e.issues[0]).toMatchObject({ path: '(root)', message: 'must be a map' });
  });

  it('an unknown fixture name is a missing file', () => {
    const e = refusal(() => topologyFromArg('no-such-fixture'));
    expect(e.issues[0]!.path).toBe('--topology');
    expect(e.message).toContain('no-such-fixture.yaml');
  });
});
