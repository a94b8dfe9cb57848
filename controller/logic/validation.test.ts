import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { formatProblem, validateAnthosNetworkGateway, validateEgressNATPolicyV1, validateEgressNATPolicyV1alpha1, validateObjectMeta } from './validation.js';

const seedPolicy = parse(readFileSync(new URL('../../fixtures/manifests/seed-000/02-egressnatpolicy.yaml', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>;
const seedGateway = parse(readFileSync(new URL('../../fixtures/manifests/seed-000/01-anthosnetworkgateway.yaml', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>;

function withSpec(patch: Record<string, unknown>): Record<string, unknown> {
  return { ...seedPolicy, spec: { ...(seedPolicy.spec as object), ...patch } };
}

const fields = (ps: { field: string; value: unknown }[]) => ps.map((p) => [p.field, p.value]);

describe('EgressNATPolicy v1alpha1 admission', () => {
  it("accepts the seed's policy unchanged", () => {
    expect(validateEgressNATPolicyV1alpha1(seedPolicy)).toEqual([]);
  });

  it('requires egress (at least one rule), destinationCIDRs and egressSourceIP', () => {
    const p = validateEgressNATPolicyV1alpha1({ metadata: { name: 'x' }, spec: { egress: [] } });
    expect(p.map((x) => [x.field, x.type])).toEqual([
      ['spec.egress', 'FieldValueRequired'],
      ['spec.destinationCIDRs', 'FieldValueRequired'],
      ['spec.egressSourceIP', 'FieldValueRequired'],
    ]);
    expect(validateEgressNATPolicyV1alpha1({ metadata: { name: 'x' } })[0]).toMatchObject({ field: 'spec', type: 'FieldValueRequired' });
  });

  it('names the field and value of malformed CIDRs', () => {
    const p = validateEgressNATPolicyV1alpha1(withSpec({ destinationCIDRs: ['8.8.8.0/24', '8.8.8.1/24', '8.8.8.0/33', 'fd00::/8', 'nonsense', '8.8.8.0/24'] }));
    expect(fields(p)).toEqual([
      ['spec.destinationCIDRs[1]', '8.8.8.1/24'],
      ['spec.destinationCIDRs[2]', '8.8.8.0/33'],
      ['spec.destinationCIDRs[3]', 'fd00::/8'],
      ['spec.destinationCIDRs[4]', 'nonsense'],
      ['spec.destinationCIDRs[5]', '8.8.8.0/24'],
    ]);
    expect(formatProblem(p[0]!)).toBe(
      'spec.destinationCIDRs[1]: Invalid value: "8.8.8.1/24": must be the network address of the block (did you mean 8.8.8.0/24?)',
    );
    expect(formatProblem(p[2]!)).toContain('IPv6 is not supported');
    expect(p[4]!.type).toBe('FieldValueDuplicate');
  });

  it('names the field and value of a malformed egressSourceIP', () => {
    for (const bad of ['192.168.1.300', '192.168.1', 'fd00::1', '192.168.01.1']) {
      const p = validateEgressNATPolicyV1alpha1(withSpec({ egressSourceIP: bad }));
      expect(fields(p)).toEqual([['spec.egressSourceIP', bad]]);
    }
  });

  it('names the field and value of malformed selectors and unknown fields', () => {
    const p = validateEgressNATPolicyV1alpha1(
      withSpec({ egress: [{ podSelector: { matchLabels: { role: 'front end' } } }, {}, { namespaceSelector: { matchLabel: { a: 'b' } } }], extra: 1 }),
    );
    expect(fields(p)).toEqual([
      ['spec.extra', 'extra'],
      ['spec.egress[0].podSelector.matchLabels[role]', 'front end'],
      ['spec.egress[1]', {}],
      ['spec.egress[2].namespaceSelector.matchLabel', 'matchLabel'],
    ]);
  });

  it('refuses a second policy with the same egressSourceIP, naming the other policy', () => {
    const p = validateEgressNATPolicyV1alpha1({ ...seedPolicy, metadata: { name: 'second' } }, [{ name: 'egress', egressSourceIP: '192.168.1.100' }]);
    expect(fields(p)).toEqual([['spec.egressSourceIP', '192.168.1.100']]);
    expect(formatProblem(p[0]!)).toBe(
      'spec.egressSourceIP: Duplicate value: "192.168.1.100": already used by EgressNATPolicy "egress"; two policies may not share an egressSourceIP',
    );
    // updating the same policy is not a clash with itself
    expect(validateEgressNATPolicyV1alpha1(seedPolicy, [{ name: 'egress', egressSourceIP: '192.168.1.100' }])).toEqual([]);
  });
});

describe('EgressNATPolicy v1 (Autopilot) and AnthosNetworkGateway admission', () => {
  it('v1: action must be NoSNAT and every destination a CIDR', () => {
    expect(validateEgressNATPolicyV1({ spec: { action: 'NoSNAT', destinations: [{ cidr: '10.0.0.0/8' }] } })).toEqual([]);
    const p = validateEgressNATPolicyV1({ spec: { action: 'SNAT', destinations: [{ cidr: '10.0.0.1/8' }, {}] } });
    expect(fields(p)).toEqual([
      ['spec.action', 'SNAT'],
      ['spec.destinations[0].cidr', '10.0.0.1/8'],
      ['spec.destinations[1].cidr', ''],
    ]);
    expect(formatProblem(p[0]!)).toBe('spec.action: Unsupported value: "SNAT": supported values: "NoSNAT"');
  });

  it("gateway: the seed's gateway is valid; bad and duplicate floating IPs are named", () => {
    expect(validateAnthosNetworkGateway(seedGateway)).toEqual([]);
    const p = validateAnthosNetworkGateway({ spec: { floatingIPs: ['192.168.1.100', '192.168.1.999', '192.168.1.100'] } });
    expect(fields(p)).toEqual([
      ['spec.floatingIPs[1]', '192.168.1.999'],
      ['spec.floatingIPs[2]', '192.168.1.100'],
    ]);
  });

  it('metadata: name and labels are checked', () => {
    const p = validateObjectMeta({ metadata: { name: 'Bad_Name', labels: { ok: 'no spaces please' } } }, { namespaced: false });
    expect(fields(p)).toEqual([
      ['metadata.name', 'Bad_Name'],
      ['metadata.labels[ok]', 'no spaces please'],
    ]);
  });
});

describe('non-unicast addresses are refused as floating IPs and as egressSourceIP (issue 12)', () => {
  const BAD = ['0.0.0.0', '0.1.2.3', '255.255.255.255', '127.0.0.1', '224.0.0.5', '239.1.1.1', '169.254.1.1', '240.0.0.1'];

  it('AnthosNetworkGateway: each refused with the field, the value and why; good ones beside them pass', () => {
    const p = validateAnthosNetworkGateway({ spec: { floatingIPs: ['192.168.1.100', ...BAD, '8.8.4.4'] } });
    expect(fields(p)).toEqual(BAD.map((ip, i) => [`spec.floatingIPs[${i + 1}]`, ip]));
    expect(p.map((x) => x.detail)).toEqual([
      'must be a unicast address, not an unspecified address (0.0.0.0/8)',
      'must be a unicast address, not an unspecified address (0.0.0.0/8)',
      'must be a unicast address, not the limited broadcast address',
      'must be a unicast address, not a loopback address (127.0.0.0/8)',
      'must be a unicast address, not a multicast address (224.0.0.0/4)',
      'must be a unicast address, not a multicast address (224.0.0.0/4)',
      'must be a unicast address, not a link-local address (169.254.0.0/16)',
      'must be a unicast address, not a reserved address (240.0.0.0/4)',
    ]);
  });

  it('unicast addresses that ipaddr.js files under "reserved" (documentation, benchmarking: a lab may use them) are accepted', () => {
    const GOOD = ['192.0.2.7', '198.18.0.5', '198.19.255.1', '198.51.100.1', '203.0.113.9', '192.0.0.9', '192.88.99.1'];
    expect(validateAnthosNetworkGateway({ spec: { floatingIPs: GOOD } })).toEqual([]);
    for (const ip of GOOD) expect(validateEgressNATPolicyV1alpha1(withSpec({ egressSourceIP: ip }))).toEqual([]);
  });

  it('EgressNATPolicy v1alpha1: egressSourceIP', () => {
    for (const ip of BAD) {
      expect(fields(validateEgressNATPolicyV1alpha1(withSpec({ egressSourceIP: ip })))).toEqual([['spec.egressSourceIP', ip]]);
    }
    expect(validateEgressNATPolicyV1alpha1(withSpec({ egressSourceIP: '192.168.1.101' }))).toEqual([]);
  });
});
