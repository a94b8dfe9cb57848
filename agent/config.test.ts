import { describe, expect, it } from 'vitest';
import {
  AgentConfigError,
  DEFAULT_BOOT_HOOK_DIR,
  DEFAULT_IP_MASQ_CONFIG_PATH,
  DEFAULT_MASQ_STATE_PATH,
  DEFAULT_STATUS_PATH,
  parseAgentConfig,
  parseAgentConfigText,
} from './config.js';

const base = {
  nodeName: 'worker1',
  nodeIP: '192.168.1.1',
  podCIDRs: ['10.10.10.0/24'],
  apiServer: 'https://192.168.1.10:6443',
  caFile: '/etc/egresslab/ca.crt',
  tokenFile: '/etc/egresslab/agent.token',
  flavour: 'ip-masq-agent',
};

function issues(raw: unknown): string[] {
  try {
    parseAgentConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(AgentConfigError);
    return (e as AgentConfigError).issues;
  }
  throw new Error('expected the config to be refused');
}

describe('agent config', () => {
  it('accepts a minimal config and fills the defaults', () => {
    const c = parseAgentConfig(base);
    expect(c).toMatchObject({
      nodeName: 'worker1',
      nodeIP: '192.168.1.1',
      podCIDRs: ['10.10.10.0/24'],
      flavour: 'ip-masq-agent',
      leaseRenewIntervalMs: 10_000,
      heartbeatIntervalMs: 100,
      heartbeatPort: 7472,
      ipMasqAgentConfigPath: DEFAULT_IP_MASQ_CONFIG_PATH,
      ipMasqConfigMap: { namespace: 'kube-system', name: 'ip-masq-agent', key: 'config' },
      masqStatePath: DEFAULT_MASQ_STATE_PATH,
      statusPath: DEFAULT_STATUS_PATH,
      removeRulesOnStop: false,
      gatewayConntrackSync: true,
      bootHookDir: DEFAULT_BOOT_HOOK_DIR,
      insecureSkipTLSVerify: false,
      nftPath: 'nft',
    });
  });

  it('bootHookDir: an absolute directory (default /etc/egresslab/boot.d), null for none, never the projected directory', () => {
    expect(parseAgentConfig({ ...base, bootHookDir: null }).bootHookDir).toBeNull();
    expect(parseAgentConfig({ ...base, bootHookDir: '/var/lib/boot.d' }).bootHookDir).toBe('/var/lib/boot.d');
    expect(issues({ ...base, bootHookDir: 'boot.d' })).toEqual(['bootHookDir: must be an absolute path (got "boot.d")']);
    expect(issues({ ...base, bootHookDir: '/etc/egresslab/ip-masq-agent' })).toEqual([
      'bootHookDir: must not be the projected directory (the projection owns it) (got "/etc/egresslab/ip-masq-agent")',
    ]);
  });

  it('gatewayConntrackSync: a boolean, on by default', () => {
    expect(parseAgentConfig({ ...base, gatewayConntrackSync: false }).gatewayConntrackSync).toBe(false);
    expect(issues({ ...base, gatewayConntrackSync: 'no' })).toEqual(['gatewayConntrackSync: must be true or false (got "no")']);
  });

  it('accepts every flavour and an empty pod CIDR list', () => {
    for (const flavour of ['ip-masq-agent', 'autopilot', 'default-snat', 'none']) expect(parseAgentConfig({ ...base, flavour }).flavour).toBe(flavour);
    expect(parseAgentConfig({ ...base, podCIDRs: [] }).podCIDRs).toEqual([]);
  });

  it('reports every problem with the field and the value', () => {
    const got = issues({
      ...base,
      nodeName: 'Worker_1',
      nodeIP: '192.168.1.300',
      podCIDRs: ['10.10.10.1/24', 'fd00::/64', 42],
      flavour: 'gke',
      leaseRenewIntervalMs: 5,
      tokenFile: 'agent.token',
    });
    expect(got).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^nodeName: must be a DNS-1123 subdomain.*"Worker_1"/),
        expect.stringMatching(/^nodeIP: must be an IPv4 address \(got "192\.168\.1\.300"\)/),
        expect.stringMatching(/^podCIDRs\[0\]: must be the network address.*10\.10\.10\.0\/24.*"10\.10\.10\.1\/24"/),
        expect.stringMatching(/^podCIDRs\[1\]: must be an IPv4 CIDR.*"fd00::\/64"/),
        expect.stringMatching(/^podCIDRs\[2\]: must be a string.*\(got 42\)/),
        expect.stringMatching(/^flavour: must be one of ip-masq-agent, autopilot, default-snat, none \(got "gke"\)/),
        expect.stringMatching(/^leaseRenewIntervalMs: must be an integer.*\(got 5\)/),
        expect.stringMatching(/^tokenFile: must be an absolute path \(got "agent\.token"\)/),
      ]),
    );
    expect(got).toHaveLength(8);
  });

  it('names missing required fields', () => {
    const got = issues({});
    for (const f of ['nodeName', 'nodeIP', 'podCIDRs', 'apiServer', 'tokenFile', 'flavour'])
      expect(got.some((i) => i.startsWith(`${f}: is required`))).toBe(true);
  });

  it('refuses unknown fields (typos) instead of ignoring them', () => {
    expect(issues({ ...base, podCidrs: ['10.0.0.0/8'] })).toEqual([expect.stringMatching(/^podCidrs: unknown field .*\(got \["10\.0\.0\.0\/8"\]\)/)]);
  });

  it('requires a CA for https unless verification is explicitly skipped; http needs none', () => {
    const { caFile: _omit, ...noCa } = base;
    expect(issues(noCa)).toEqual([expect.stringMatching(/^caFile: is required for an https apiServer/)]);
    expect(parseAgentConfig({ ...noCa, insecureSkipTLSVerify: true }).caFile).toBeNull();
    expect(parseAgentConfig({ ...noCa, apiServer: 'http://127.0.0.1:8080' }).caFile).toBeNull();
  });

  it('checks the API server URL', () => {
    expect(issues({ ...base, apiServer: 'tcp://192.168.1.10:6443' })).toEqual([expect.stringMatching(/^apiServer: scheme must be https/)]);
    expect(issues({ ...base, apiServer: '192.168.1.10:6443' })).toEqual([expect.stringMatching(/^apiServer: must be a URL/)]);
    expect(issues({ ...base, apiServer: 'not a url' })).toEqual([expect.stringMatching(/^apiServer: must be a URL/)]);
    expect(issues({ ...base, apiServer: 'https://192.168.1.10:6443/api' })).toEqual([expect.stringMatching(/^apiServer: must have no path/)]);
  });

  it('keeps the state files out of the projected directory and apart from each other', () => {
    expect(issues({ ...base, statusPath: '/etc/egresslab/ip-masq-agent/status.json' })).toEqual([
      expect.stringMatching(/^statusPath: must not be in the projected directory/),
    ]);
    expect(issues({ ...base, masqStatePath: '/run/x.json', statusPath: '/run/x.json' })).toEqual([
      expect.stringMatching(/^statusPath: must differ from masqStatePath/),
    ]);
    expect(issues({ ...base, ipMasqAgentConfigPath: '/config' })).toEqual([
      expect.stringMatching(/^ipMasqAgentConfigPath: must be inside a directory of its own/),
    ]);
  });

  it('validates the ConfigMap reference', () => {
    expect(parseAgentConfig({ ...base, ipMasqConfigMap: { name: 'other' } }).ipMasqConfigMap).toEqual({
      namespace: 'kube-system',
      name: 'other',
      key: 'config',
    });
    expect(issues({ ...base, ipMasqConfigMap: { name: '', nmespace: 'x' } })).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ipMasqConfigMap\.nmespace: unknown field/),
        expect.stringMatching(/^ipMasqConfigMap\.name: must be a non-empty string/),
      ]),
    );
  });

  it('parses text and reports bad JSON', () => {
    expect(parseAgentConfigText(JSON.stringify(base)).nodeName).toBe('worker1');
    expect(() => parseAgentConfigText('{"nodeName": ', '/etc/egresslab/agent.json')).toThrow(/\/etc\/egresslab\/agent\.json: not valid JSON/);
    expect(() => parseAgentConfigText('[]')).toThrow(/config must be a JSON object, got \[\]/);
  });
});
