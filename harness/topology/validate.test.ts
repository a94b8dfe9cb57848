import { describe, expect, it } from 'vitest';
import { ValidationError, type FieldIssue } from '../util/errors.js';
import { TOPOLOGY_DEFAULTS, parseTopology } from './validate.js';

type Input = Record<string, any>;

/** A small valid topology; each test breaks one thing in a fresh copy. */
function base(): Input {
  return {
    name: 't',
    nodeSubnet: '192.168.1.0/24',
    nodes: [
      { name: 'node-1', address: '192.168.1.1', podCIDR: '10.10.10.0/24' },
      { name: 'node-2', address: '192.168.1.2', podCIDR: '10.10.11.0/24' },
      { name: 'cp-1', role: 'control-plane', address: '192.168.1.10' },
    ],
    namespaces: [{ name: 'alice', labels: { user: 'alice' } }],
    pods: [{ namespace: 'alice', name: 'frontend-1', node: 'node-1', ip: '10.10.10.1', labels: { role: 'frontend' } }],
  };
}

function issuesOf(input: unknown): FieldIssue[] {
  try {
    parseTopology(input, 'test.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    const v = error as ValidationError;
    expect(v.source).toBe('test.yaml');
    // Every issue is rendered into the message with its path and value.
    for (const i of v.issues) {
      expect(v.message).toContain(`test.yaml: ${i.path}: `);
      if (i.value !== undefined) expect(v.message).toContain(JSON.stringify(i.value).slice(0, 40));
    }
    return v.issues;
  }
  throw new Error('expected parseTopology to refuse the input');
}

/** The input is refused with (at least) this issue, and the message names the path and value. */
function expectIssue(input: unknown, path: string, value: unknown, message: RegExp): FieldIssue {
  const issues = issuesOf(input);
  const hit = issues.find((i) => i.path === path && JSON.stringify(i.value) === JSON.stringify(value));
  expect(hit, `no issue at ${path} = ${JSON.stringify(value)}; got ${JSON.stringify(issues)}`).toBeDefined();
  expect(hit!.message).toMatch(message);
  return hit!;
}

describe('parseTopology: a valid topology', () => {
  it('parses the base topology and fills in defaults', () => {
    const t = parseTopology(base());
    expect(t.name).toBe('t');
    expect(t.nodeSubnet).toBe('192.168.1.0/24');
    expect(t.routerAddress).toBe('192.168.1.254'); // last usable address by default
    expect(t.transitCIDR).toBe(TOPOLOGY_DEFAULTS.transitCIDR);
    expect(t.serviceCIDR).toBe(TOPOLOGY_DEFAULTS.serviceCIDR);
    expect(t.snat).toBe('none');
    expect(t.nodes).toEqual([
      { name: 'node-1', role: 'worker', address: '192.168.1.1', podCIDR: '10.10.10.0/24' },
      { name: 'node-2', role: 'worker', address: '192.168.1.2', podCIDR: '10.10.11.0/24' },
      { name: 'cp-1', role: 'control-plane', address: '192.168.1.10' },
    ]);
    expect(t.vpcEndpoints).toEqual([{ name: 'vpc', address: '172.16.100.10', subnet: '172.16.100.0/24', answers: [...TOPOLOGY_DEFAULTS.vpcEndpoint.answers] }]);
    expect(t.pods).toEqual([{ namespace: 'alice', name: 'frontend-1', node: 'node-1', ip: '10.10.10.1', hostNetwork: false, labels: { role: 'frontend' } }]);
  });

  it('uses all defaults for name and nodeSubnet when absent', () => {
    const input = base();
    delete input.name;
    delete input.nodeSubnet;
    const t = parseTopology(input);
    expect(t.name).toBe('lab');
    expect(t.nodeSubnet).toBe('192.168.1.0/24');
  });

  it('always has default and kube-system namespaces, labelled kubernetes.io/metadata.name', () => {
    const t = parseTopology(base());
    expect(t.namespaces.map((n) => n.name)).toEqual(['alice', 'default', 'kube-system']);
    expect(t.namespaces).toContainEqual({ name: 'alice', labels: { user: 'alice', 'kubernetes.io/metadata.name': 'alice' } });
    expect(t.namespaces).toContainEqual({ name: 'default', labels: { 'kubernetes.io/metadata.name': 'default' } });
    expect(t.namespaces).toContainEqual({ name: 'kube-system', labels: { 'kubernetes.io/metadata.name': 'kube-system' } });
  });

  it('keeps a declared default namespace (with its labels) instead of adding a second one', () => {
    const input = base();
    input.namespaces.push({ name: 'default', labels: { team: 'core' } });
    const t = parseTopology(input);
    expect(t.namespaces.filter((n) => n.name === 'default')).toEqual([{ name: 'default', labels: { team: 'core', 'kubernetes.io/metadata.name': 'default' } }]);
  });

  it('the metadata.name label cannot be overridden by the user', () => {
    const input = base();
    input.namespaces[0].labels['kubernetes.io/metadata.name'] = 'mallory';
    const t = parseTopology(input);
    expect(t.namespaces[0]!.labels['kubernetes.io/metadata.name']).toBe('alice');
  });

  it('a pod without namespace is in default; "ns/name" in name is split', () => {
    const input = base();
    input.pods = [
      { name: 'client-1', node: 'node-1' },
      { name: 'alice/frontend-9', node: 'node-2' },
    ];
    const t = parseTopology(input);
    expect(t.pods.map((p) => `${p.namespace}/${p.name}`)).toEqual(['default/client-1', 'alice/frontend-9']);
  });

  it('allocates the lowest free pod IP of the node, after explicit IPs wherever they are listed', () => {
    const input = base();
    input.pods = [
      { name: 'auto-a', node: 'node-1' },
      { name: 'fixed-1', node: 'node-1', ip: '10.10.10.1' },
      { name: 'auto-b', node: 'node-1' },
      { name: 'fixed-3', node: 'node-1', ip: '10.10.10.3' },
      { name: 'auto-c', node: 'node-1' },
      { name: 'auto-d', node: 'node-2' },
    ];
    const t = parseTopology(input);
    const ipOf = Object.fromEntries(t.pods.map((p) => [p.name, p.ip]));
    expect(ipOf).toEqual({
      'auto-a': '10.10.10.2',
      'fixed-1': '10.10.10.1',
      'auto-b': '10.10.10.4',
      'fixed-3': '10.10.10.3',
      'auto-c': '10.10.10.5',
      'auto-d': '10.10.11.1',
    });
    // Order of the input is kept.
    expect(t.pods.map((p) => p.name)).toEqual(['auto-a', 'fixed-1', 'auto-b', 'fixed-3', 'auto-c', 'auto-d']);
  });

  it('a hostNetwork pod has no IP and may run on a node without podCIDR', () => {
    const input = base();
    input.pods = [{ name: 'host-1', node: 'cp-1', hostNetwork: true, labels: { app: 'x' } }];
    const t = parseTopology(input);
    expect(t.pods).toEqual([{ namespace: 'default', name: 'host-1', node: 'cp-1', hostNetwork: true, labels: { app: 'x' } }]);
    expect(t.pods[0]).not.toHaveProperty('ip');
  });

  it('accepts apiVersion/kind, a /31 transit, explicit routerAddress and several VPC endpoints', () => {
    const input = {
      ...base(),
      apiVersion: 'egresslab/v1',
      kind: 'Topology',
      transitCIDR: '100.127.255.254/31',
      routerAddress: '192.168.1.100',
      snat: 'ip-masq-agent',
      vpcEndpoints: [
        { name: 'vpc-a', address: '172.16.100.10', subnet: '172.16.100.0/24', answers: ['8.8.8.0/24'] },
        { name: 'vpc-b', address: '172.16.101.2', subnet: '172.16.101.0/30' },
      ],
    };
    const t = parseTopology(input);
    expect(t.routerAddress).toBe('192.168.1.100');
    expect(t.transitCIDR).toBe('100.127.255.254/31');
    expect(t.snat).toBe('ip-masq-agent');
    expect(t.vpcEndpoints.map((e) => e.name)).toEqual(['vpc-a', 'vpc-b']);
    expect(t.vpcEndpoints[1]!.answers).toEqual([...TOPOLOGY_DEFAULTS.vpcEndpoint.answers]);
  });

  it('an explicit empty vpcEndpoints list means no VPC endpoint', () => {
    expect(parseTopology({ ...base(), vpcEndpoints: [] }).vpcEndpoints).toEqual([]);
  });

  it('is pure: the input is not modified', () => {
    const input = base();
    const before = JSON.stringify(input);
    parseTopology(input);
    expect(JSON.stringify(input)).toBe(before);
  });
});

describe('parseTopology: bad inputs name the field and the value', () => {
  it('refuses a non-map document', () => {
    for (const bad of [null, 'text', [1, 2], 42]) expectIssue(bad, '(root)', bad, /must be a map/);
  });

  it('unknown keys, at every level (a typo like podCidr)', () => {
    const input = base();
    input.nodes[0].podCidr = '10.10.20.0/24';
    input.nodeSubnett = '1';
    input.namespaces[0].label = {};
    input.pods[0].IP = '10.10.10.9';
    input.vpcEndpoints = [{ name: 'vpc', address: '172.16.100.10', subnet: '172.16.100.0/24', answer: [] }];
    const issues = issuesOf(input);
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i]));
    expect(byPath['nodes[0].podCidr']).toMatchObject({ value: '10.10.20.0/24', message: expect.stringMatching(/unknown field \(allowed: .*podCIDR/) });
    expect(byPath.nodeSubnett?.message).toMatch(/unknown field .*nodeSubnet/);
    expect(byPath['namespaces[0].label']?.message).toMatch(/unknown field .*labels/);
    expect(byPath['pods[0].IP']?.message).toMatch(/unknown field .*ip/);
    expect(byPath['vpcEndpoints[0].answer']?.message).toMatch(/unknown field .*answers/);
  });

  it('bad apiVersion, kind, snat, role and name', () => {
    expectIssue({ ...base(), apiVersion: 'v2' }, 'apiVersion', 'v2', /egresslab\/v1/);
    expectIssue({ ...base(), kind: 'Pod' }, 'kind', 'Pod', /Topology/);
    expectIssue({ ...base(), snat: 'masq' }, 'snat', 'masq', /one of none, default-snat, ip-masq-agent, autopilot/);
    expectIssue({ ...base(), name: 'My_Lab' }, 'name', 'My_Lab', /DNS label/);
    const input = base();
    input.nodes[0].role = 'master';
    expectIssue(input, 'nodes[0].role', 'master', /worker or control-plane/);
  });

  it('bad CIDRs', () => {
    expectIssue({ ...base(), nodeSubnet: '192.168.1.0' }, 'nodeSubnet', '192.168.1.0', /IPv4 CIDR/);
    expectIssue({ ...base(), nodeSubnet: '192.168.1.0/33' }, 'nodeSubnet', '192.168.1.0/33', /IPv4 CIDR/);
    expectIssue({ ...base(), serviceCIDR: 'ten/8' }, 'serviceCIDR', 'ten/8', /IPv4 CIDR/);
    expectIssue({ ...base(), transitCIDR: 7 }, 'transitCIDR', 7, /non-empty string/);
    const input = base();
    input.nodes[1].podCIDR = '10.10.300.0/24';
    expectIssue(input, 'nodes[1].podCIDR', '10.10.300.0/24', /IPv4 CIDR/);
  });

  it('misaligned CIDRs, suggesting the aligned one', () => {
    expectIssue({ ...base(), nodeSubnet: '192.168.1.1/24' }, 'nodeSubnet', '192.168.1.1/24', /host bits set; did you mean 192\.168\.1\.0\/24\?/);
    const input = base();
    input.nodes[0].podCIDR = '10.10.10.5/24';
    expectIssue(input, 'nodes[0].podCIDR', '10.10.10.5/24', /did you mean 10\.10\.10\.0\/24\?/);
    const vpc = { ...base(), vpcEndpoints: [{ name: 'vpc', address: '172.16.100.10', subnet: '172.16.100.0/24', answers: ['10.0.0.0/8', '172.16.0.1/12'] }] };
    expectIssue(vpc, 'vpcEndpoints[0].answers[1]', '172.16.0.1/12', /did you mean 172\.16\.0\.0\/12\?/);
  });

  it('sizes: nodeSubnet at least /29, transit /30 or /31, VPC subnet at least /30', () => {
    expectIssue({ ...base(), nodeSubnet: '192.168.1.0/30' }, 'nodeSubnet', '192.168.1.0/30', /\/29 or larger/);
    expectIssue({ ...base(), transitCIDR: '100.127.255.248/29' }, 'transitCIDR', '100.127.255.248/29', /\/30 or \/31/);
    const vpc = { ...base(), vpcEndpoints: [{ name: 'vpc', address: '172.16.100.1', subnet: '172.16.100.0/31' }] };
    expectIssue(vpc, 'vpcEndpoints[0].subnet', '172.16.100.0/31', /\/30 or larger/);
  });

  it('refuses IPv6 everywhere', () => {
    expectIssue({ ...base(), nodeSubnet: 'fd00::/64' }, 'nodeSubnet', 'fd00::/64', /IPv6 is not supported/);
    const input = base();
    input.nodes[0].podCIDR = 'fd00:10::/64';
    input.nodes[1].address = 'fd00::2';
    input.pods[0].ip = 'fd00:10::1';
    const issues = issuesOf(input);
    expect(issues.find((i) => i.path === 'nodes[0].podCIDR')?.message).toMatch(/IPv6 is not supported/);
    expect(issues.find((i) => i.path === 'nodes[1].address')).toMatchObject({ value: 'fd00::2', message: expect.stringMatching(/IPv4 address/) });
  });

  it('node address outside nodeSubnet, or its network/broadcast address', () => {
    for (const addr of ['192.168.2.1', '192.168.1.0', '192.168.1.255']) {
      const input = base();
      input.nodes[1].address = addr;
      expectIssue(input, 'nodes[1].address', addr, /usable address inside nodeSubnet 192\.168\.1\.0\/24/);
    }
    const input = base();
    input.nodes[1].address = '192.168.1';
    expectIssue(input, 'nodes[1].address', '192.168.1', /must be an IPv4 address/);
    const missing = base();
    delete missing.nodes[1].address;
    expectIssue(missing, 'nodes[1].address', undefined, /is required/);
  });

  it('duplicate node name and duplicate node address', () => {
    const dupName = base();
    dupName.nodes[1].name = 'node-1';
    expectIssue(dupName, 'nodes[1].name', 'node-1', /duplicates another node name/);
    const dupAddr = base();
    dupAddr.nodes[2].address = '192.168.1.1';
    expectIssue(dupAddr, 'nodes[2].address', '192.168.1.1', /already the address of node node-1/);
  });

  it('node address equal to the router address (default or explicit)', () => {
    const input = base();
    input.nodes[2].address = '192.168.1.254';
    expectIssue(input, 'nodes[2].address', '192.168.1.254', /is the router address/);
    const explicit = { ...base(), routerAddress: '192.168.1.2' };
    expectIssue(explicit, 'nodes[1].address', '192.168.1.2', /is the router address/);
  });

  it('router address outside nodeSubnet or not an address', () => {
    expectIssue({ ...base(), routerAddress: '10.0.0.1' }, 'routerAddress', '10.0.0.1', /usable address inside nodeSubnet 192\.168\.1\.0\/24/);
    expectIssue({ ...base(), routerAddress: '192.168.1.255' }, 'routerAddress', '192.168.1.255', /usable address inside nodeSubnet/);
    expectIssue({ ...base(), routerAddress: 'gw' }, 'routerAddress', 'gw', /IPv4 address/);
  });

  it('overlapping podCIDRs name both fields, at the right index', () => {
    const input = base();
    input.nodes[1].podCIDR = '10.10.10.0/23';
    expectIssue(input, 'nodes[1].podCIDR (node-2)', '10.10.10.0/23', /overlaps nodes\[0\]\.podCIDR \(node-1\) 10\.10\.10\.0\/24/);
  });

  it('the overlap path points at the input entry even when an earlier node is invalid', () => {
    const input = base();
    input.nodes[0].address = 'bad';
    input.nodes[2].podCIDR = '10.10.11.0/25';
    const issues = issuesOf(input);
    expect(issues.find((i) => i.path.startsWith('nodes[2].podCIDR'))).toMatchObject({
      path: 'nodes[2].podCIDR (cp-1)',
      value: '10.10.11.0/25',
      message: expect.stringMatching(/overlaps nodes\[1\]\.podCIDR \(node-2\)/),
    });
  });

  it('podCIDR overlapping the nodeSubnet, serviceCIDR or transit', () => {
    const a = base();
    a.nodes[0].podCIDR = '192.168.0.0/16';
    expectIssue(a, 'nodes[0].podCIDR (node-1)', '192.168.0.0/16', /overlaps nodeSubnet 192\.168\.1\.0\/24/);
    const b = base();
    b.nodes[0].podCIDR = '10.96.1.0/24';
    expectIssue(b, 'nodes[0].podCIDR (node-1)', '10.96.1.0/24', /overlaps serviceCIDR 10\.96\.0\.0\/16/);
    const c = base();
    c.nodes[0].podCIDR = '100.127.255.0/24';
    expectIssue(c, 'nodes[0].podCIDR (node-1)', '100.127.255.0/24', /overlaps transitCIDR 100\.127\.255\.252\/30/);
  });

  it('transit overlapping the nodeSubnet', () => {
    expectIssue({ ...base(), transitCIDR: '192.168.1.252/30' }, 'transitCIDR', '192.168.1.252/30', /overlaps nodeSubnet 192\.168\.1\.0\/24/);
  });

  it('VPC subnet overlapping the nodeSubnet or a podCIDR', () => {
    const a = { ...base(), vpcEndpoints: [{ name: 'vpc', address: '192.168.1.200', subnet: '192.168.1.192/26' }] };
    expectIssue(a, 'vpcEndpoints[0].subnet', '192.168.1.192/26', /overlaps nodeSubnet/);
    const b = { ...base(), vpcEndpoints: [{ name: 'vpc', address: '10.10.11.10', subnet: '10.10.11.0/28' }] };
    expectIssue(b, 'vpcEndpoints[0].subnet', '10.10.11.0/28', /overlaps nodes\[1\]\.podCIDR \(node-2\) 10\.10\.11\.0\/24/);
  });

  it('VPC endpoint address: outside its subnet, or the router side (first usable)', () => {
    const a = { ...base(), vpcEndpoints: [{ name: 'vpc', address: '172.16.200.10', subnet: '172.16.100.0/24' }] };
    expectIssue(a, 'vpcEndpoints[0].address', '172.16.200.10', /usable address inside 172\.16\.100\.0\/24/);
    const b = { ...base(), vpcEndpoints: [{ name: 'vpc', address: '172.16.100.1', subnet: '172.16.100.0/24' }] };
    expectIssue(b, 'vpcEndpoints[0].address', '172.16.100.1', /router's address/);
  });

  it('VPC answers equal to or inside the node subnet, a pod CIDR, the transit link or an endpoint subnet, or 0.0.0.0/0 (issue 12)', () => {
    const withAnswers = (answers: string[]) => ({
      ...base(),
      vpcEndpoints: [{ name: 'vpc', address: '172.16.100.10', subnet: '172.16.100.0/24', answers: ['8.8.8.0/24', ...answers] }],
    });
    expectIssue(
      withAnswers(['192.168.1.0/24']),
      'vpcEndpoints[0].answers[1]',
      '192.168.1.0/24',
      /^is nodeSubnet 192\.168\.1\.0\/24: the router would send the lab's own traffic there to vpc \(an answer may contain the lab's ranges, not equal one or lie inside one\)$/,
    );
    expectIssue(
      withAnswers(['192.168.1.128/25']),
      'vpcEndpoints[0].answers[1]',
      '192.168.1.128/25',
      /^lies inside nodeSubnet 192\.168\.1\.0\/24: the router would send the lab's own traffic there to vpc/,
    );
    expectIssue(withAnswers(['10.10.11.0/24']), 'vpcEndpoints[0].answers[1]', '10.10.11.0/24', /^is nodes\[1\]\.podCIDR \(node-2\) 10\.10\.11\.0\/24: /);
    expectIssue(
      withAnswers(['10.10.10.64/26']),
      'vpcEndpoints[0].answers[1]',
      '10.10.10.64/26',
      /^lies inside nodes\[0\]\.podCIDR \(node-1\) 10\.10\.10\.0\/24: /,
    );
    expectIssue(withAnswers(['172.16.100.0/24']), 'vpcEndpoints[0].answers[1]', '172.16.100.0/24', /^is vpcEndpoints\[0\]\.subnet 172\.16\.100\.0\/24: /);
    expectIssue(withAnswers(['100.127.255.252/30']), 'vpcEndpoints[0].answers[1]', '100.127.255.252/30', /^is transitCIDR 100\.127\.255\.252\/30: /);
    expectIssue(
      withAnswers(['0.0.0.0/0']),
      'vpcEndpoints[0].answers[1]',
      '0.0.0.0/0',
      /^is every address: vpc would answer for the whole internet and the internet endpoint would never be reached; list the ranges vpc serves$/,
    );
    // an answer containing the lab's ranges is how the defaults work (10.0.0.0/8, 192.168.0.0/16): longest prefix wins
    expect(parseTopology(withAnswers(['10.0.0.0/8', '192.168.0.0/16'])).vpcEndpoints[0]!.answers).toEqual(['8.8.8.0/24', '10.0.0.0/8', '192.168.0.0/16']);
  });

  it('the same answer on two VPC endpoints: the second would silently take it from the first', () => {
    const ep = (name: string, n: number, answers: string[]) => ({ name, address: `172.16.${n}.10`, subnet: `172.16.${n}.0/24`, answers });
    const input = { ...base(), vpcEndpoints: [ep('vpc-a', 100, ['8.8.8.0/24']), ep('vpc-b', 101, ['1.1.1.0/24', '8.8.8.0/24'])] };
    expectIssue(input, 'vpcEndpoints[1].answers[1]', '8.8.8.0/24', /^is already answered by vpcEndpoints\[0\] \(vpc-a\): the router has one route per range$/);
    // nested ranges on two endpoints are fine (the longer prefix wins)
    expect(() => parseTopology({ ...base(), vpcEndpoints: [ep('vpc-a', 100, ['8.0.0.0/8']), ep('vpc-b', 101, ['8.8.8.0/24'])] })).not.toThrow();
  });

  it('duplicate VPC endpoint names, and endpoint names clashing with nodes', () => {
    const ep = (name: string, n: number) => ({ name, address: `172.16.${n}.10`, subnet: `172.16.${n}.0/24` });
    expectIssue({ ...base(), vpcEndpoints: [ep('vpc', 100), ep('vpc', 101)] }, 'vpcEndpoints[1].name', 'vpc', /already used/);
    expectIssue({ ...base(), vpcEndpoints: [ep('node-1', 100)] }, 'vpcEndpoints[0].name', 'node-1', /already used by a node/);
  });

  it('reserved names for nodes and endpoints: every container key the lab uses for itself', () => {
    for (const reserved of ['router', 'internet', 'switch', 'wirer', 'payload-loader']) {
      const input = base();
      input.nodes[0].name = reserved;
      input.pods = [];
      expectIssue(input, 'nodes[0].name', reserved, /reserved for the lab's own containers/);
      const ep = { ...base(), vpcEndpoints: [{ name: reserved, address: '172.16.100.10', subnet: '172.16.100.0/24' }] };
      expectIssue(ep, 'vpcEndpoints[0].name', reserved, /the lab itself/);
    }
  });

  it('a node named like a lab container says which container and what it would clash with', () => {
    const input = base();
    input.nodes[2].name = 'payload-loader';
    expectIssue(
      input,
      'nodes[2].name',
      'payload-loader',
      /^is reserved for the lab's own containers \(switch, router, internet, wirer, payload-loader; container egl-<lab>-payload-loader\): pick another name$/,
    );
  });

  it('node names must be DNS labels', () => {
    for (const bad of ['Node-1', 'node_1', '-node', 'a'.repeat(64)]) {
      const input = base();
      input.nodes[2].name = bad;
      expectIssue(input, 'nodes[2].name', bad, /DNS label/);
    }
  });

  it('nodes: required, non-empty, entries are maps', () => {
    const none = base();
    delete none.nodes;
    expectIssue(none, 'nodes', undefined, /is required/);
    expectIssue({ ...base(), nodes: [], pods: [] }, 'nodes', [], /at least one node/);
    expectIssue({ ...base(), nodes: 'node-1' }, 'nodes', 'node-1', /must be a list/);
    const input = base();
    input.nodes.push('node-9');
    expectIssue(input, 'nodes[3]', 'node-9', /must be a map/);
  });

  it('pod on an unknown node', () => {
    const input = base();
    input.pods[0].node = 'node-9';
    expectIssue(input, 'pods[0].node', 'node-9', /names no node of this topology/);
    const missing = base();
    delete missing.pods[0].node;
    expectIssue(missing, 'pods[0].node', undefined, /is required/);
  });

  it('pod in an unknown namespace', () => {
    const input = base();
    input.pods[0].namespace = 'bob';
    expectIssue(input, 'pods[0].namespace', 'bob', /names no namespace of this topology/);
  });

  it("pod IP equal to its podCIDR's broadcast address (issue 12), and its network address, say which", () => {
    const bcast = base();
    bcast.pods[0].ip = '10.10.10.255';
    expectIssue(bcast, 'pods[0].ip', '10.10.10.255', /^must be a host address inside node-1's podCIDR 10\.10\.10\.0\/24, not its broadcast address$/);
    const net = base();
    net.pods[0].ip = '10.10.10.0';
    expectIssue(net, 'pods[0].ip', '10.10.10.0', /^must be a host address inside node-1's podCIDR 10\.10\.10\.0\/24, not its network address$/);
    // the last host address is fine
    const last = base();
    last.pods[0].ip = '10.10.10.254';
    expect(parseTopology(last).pods[0]!.ip).toBe('10.10.10.254');
  });

  it('pod CIDRs (and the other lab ranges) in a range no host can use: link-local, loopback, multicast, 0.0.0.0/8, 240.0.0.0/4 (issue 12)', () => {
    const cases: [string, RegExp][] = [
      ['169.254.10.0/24', /^overlaps 169\.254\.0\.0\/16 \(link-local addresses\): no host of the lab can have an address there$/],
      ['127.0.10.0/24', /^overlaps 127\.0\.0\.0\/8 \(loopback addresses\)/],
      ['224.1.0.0/24', /^overlaps 224\.0\.0\.0\/4 \(multicast addresses\)/],
      ['0.0.10.0/24', /^overlaps 0\.0\.0\.0\/8 \(unspecified addresses\)/],
      ['240.0.10.0/24', /^overlaps 240\.0\.0\.0\/4 \(reserved addresses\)/],
      ['255.255.255.0/24', /^overlaps 255\.255\.255\.255\/32 \(the limited broadcast address\)/],
    ];
    for (const [cidr, message] of cases) {
      const input = base();
      input.nodes[0].podCIDR = cidr;
      input.pods = [];
      expectIssue(input, 'nodes[0].podCIDR', cidr, message);
    }
    // a range containing one of them is refused too
    const wide = base();
    wide.nodes[0].podCIDR = '160.0.0.0/3';
    wide.pods = [];
    expectIssue(wide, 'nodes[0].podCIDR', '160.0.0.0/3', /^overlaps 169\.254\.0\.0\/16 \(link-local/);
    // the same for the node subnet, the transit link, the service range and a VPC endpoint's subnet
    expectIssue(
      { ...base(), nodeSubnet: '127.1.1.0/24', nodes: [{ name: 'n', address: '127.1.1.1' }], pods: [] },
      'nodeSubnet',
      '127.1.1.0/24',
      /^overlaps 127\.0\.0\.0\/8 \(loopback/,
    );
    expectIssue({ ...base(), transitCIDR: '169.254.255.252/30' }, 'transitCIDR', '169.254.255.252/30', /link-local/);
    expectIssue({ ...base(), serviceCIDR: '224.0.0.0/16' }, 'serviceCIDR', '224.0.0.0/16', /multicast/);
    expectIssue(
      { ...base(), vpcEndpoints: [{ name: 'vpc', address: '240.1.1.10', subnet: '240.1.1.0/24' }] },
      'vpcEndpoints[0].subnet',
      '240.1.1.0/24',
      /reserved/,
    );
    // ordinary unicast ranges that ipaddr.js calls "reserved" (documentation, benchmarking) are fine
    const doc = base();
    doc.nodes[0].podCIDR = '198.18.0.0/24';
    doc.pods = [];
    expect(parseTopology(doc).nodes[0]!.podCIDR).toBe('198.18.0.0/24');
  });

  it("pod IP outside its node's podCIDR, or the podCIDR's network address", () => {
    for (const ip of ['10.10.11.5', '10.10.10.0', '192.168.1.50']) {
      const input = base();
      input.pods[0].ip = ip;
      expectIssue(input, 'pods[0].ip', ip, /host address inside node-1's podCIDR 10\.10\.10\.0\/24/);
    }
    const notIp = base();
    notIp.pods[0].ip = '10.10.10';
    expectIssue(notIp, 'pods[0].ip', '10.10.10', /IPv4 address/);
  });

  it('duplicate pod IP names the pod that has it', () => {
    const input = base();
    input.pods.push({ name: 'client-1', node: 'node-1', ip: '10.10.10.1' });
    expectIssue(input, 'pods[1].ip', '10.10.10.1', /already the IP of pod alice\/frontend-1/);
  });

  it('duplicate pod (namespace/name)', () => {
    const input = base();
    input.pods.push({ namespace: 'alice', name: 'frontend-1', node: 'node-2' });
    expectIssue(input, 'pods[1].name', 'alice/frontend-1', /duplicates another pod/);
  });

  it('hostNetwork pod with an ip, and a non-boolean hostNetwork', () => {
    const input = base();
    input.pods.push({ name: 'host-1', node: 'node-1', hostNetwork: true, ip: '10.10.10.9' });
    expectIssue(input, 'pods[1].ip', '10.10.10.9', /hostNetwork pod has its node IP; remove ip/);
    const b = base();
    b.pods[0].hostNetwork = 'yes';
    expectIssue(b, 'pods[0].hostNetwork', 'yes', /true or false/);
  });

  it('a (non-hostNetwork) pod on a node with no podCIDR', () => {
    const input = base();
    input.pods = [{ name: 'client-9', node: 'cp-1' }];
    expectIssue(input, 'pods[0].node', 'cp-1', /runs pods but has no podCIDR/);
  });

  it('a full podCIDR names the pod that found no address, at its input index', () => {
    const input = base();
    input.nodes[0].podCIDR = '10.10.10.0/30'; // two usable: .1 (frontend-1) and .2
    input.pods.unshift({ name: 'ghost', node: 'node-9' }); // refused, so output and input indexes differ
    input.pods.push({ name: 'a', node: 'node-1' });
    input.pods.push({ name: 'b', node: 'node-1' });
    expectIssue(input, 'pods[3]', 'default/b', /no free address left in 10\.10\.10\.0\/30/);
  });

  it('bad labels: keys, values, non-map', () => {
    const input = base();
    input.namespaces[0].labels = { 'bad key': 'x', ok: 'has space', n: 3, '-lead': 'v' };
    const issues = issuesOf(input);
    expect(issues.find((i) => i.path === 'namespaces[0].labels.bad key')).toMatchObject({
      value: 'bad key',
      message: expect.stringMatching(/not a valid label key/),
    });
    expect(issues.find((i) => i.path === 'namespaces[0].labels.ok')).toMatchObject({ value: 'has space', message: expect.stringMatching(/label value/) });
    expect(issues.find((i) => i.path === 'namespaces[0].labels.n')).toMatchObject({ value: 3 });
    expect(issues.find((i) => i.path === 'namespaces[0].labels.-lead')).toBeDefined();
    const pod = base();
    pod.pods[0].labels = ['role=frontend'];
    expectIssue(pod, 'pods[0].labels', ['role=frontend'], /map of label key to string value/);
    const long = base();
    long.pods[0].labels = { role: 'x'.repeat(64) };
    expectIssue(long, 'pods[0].labels.role', 'x'.repeat(64), /up to 63/);
  });

  it('accepts prefixed label keys and empty values', () => {
    const input = base();
    input.pods[0].labels = { 'app.kubernetes.io/name': 'web', empty: '' };
    expect(parseTopology(input).pods[0]!.labels).toEqual({ 'app.kubernetes.io/name': 'web', empty: '' });
  });

  it('duplicate namespace', () => {
    const input = base();
    input.namespaces.push({ name: 'alice' });
    expectIssue(input, 'namespaces[1].name', 'alice', /duplicates another namespace/);
  });

  it('reports every problem at once', () => {
    const input = base();
    input.nodes[0].podCidr = 'x';
    input.nodes[1].address = '10.0.0.1';
    input.pods[0].namespace = 'nobody';
    const paths = issuesOf(input).map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['nodes[0].podCidr', 'nodes[1].address', 'pods[0].namespace']));
  });
});

describe('lease timings', () => {
  const base = { nodes: [{ name: 'cp-1', role: 'control-plane', address: '192.168.1.10' }] };
  it('are optional and passed through when valid', () => {
    expect(parseTopology(base).lease).toBeUndefined();
    expect(parseTopology({ ...base, lease: { renewIntervalMs: 250, expiryMs: 1500 } }).lease).toEqual({ renewIntervalMs: 250, expiryMs: 1500 });
  });
  it('refuse bad values, naming the field and value', () => {
    expect(() => parseTopology({ ...base, lease: { renewIntervalMs: 500, expiryMs: 600 } })).toThrow(
      /lease\.expiryMs: must be at least twice renewIntervalMs \(500\).*\(value: 600\)/,
    );
    expect(() => parseTopology({ ...base, lease: { renewIntervalMs: '1s', expiryMs: 600 } })).toThrow(
      /lease\.renewIntervalMs: must be a whole number of milliseconds.*\(value: "1s"\)/,
    );
    expect(() => parseTopology({ ...base, lease: { renew: 1 } })).toThrow(/lease\.renew: unknown field/);
  });
});
