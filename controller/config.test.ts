// The controller's configuration file: bad values are refused naming the field and the value
// (issue 12), before anything starts.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './config.js';

const node = { name: 'worker1', role: 'worker', ip: '192.168.1.1', subnet: '192.168.1.0/24' };
const base = { dataDir: '/tmp/x', tokensFile: '/tmp/t', nodes: [node] };

function refusal(raw: Record<string, unknown>): string {
  try {
    parseConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(raw)} to be refused`);
}

describe("a node's gateway (the router of its subnet: never a floating IP)", () => {
  it('is optional and kept when it is a usable address of the subnet other than the node', () => {
    expect(parseConfig(base).nodes[0]!.gateway).toBeUndefined();
    expect(parseConfig({ ...base, nodes: [{ ...node, gateway: '192.168.1.254' }] }).nodes[0]!.gateway).toBe('192.168.1.254');
  });

  it('is refused outside the subnet, as its network or broadcast address, as the node itself, or when not an address', () => {
    const bad = (gateway: unknown) => refusal({ ...base, nodes: [{ ...node, gateway }] });
    expect(bad('10.0.0.1')).toBe('nodes[0].gateway: 10.0.0.1 is not a usable address of subnet 192.168.1.0/24');
    expect(bad('192.168.1.0')).toBe('nodes[0].gateway: 192.168.1.0 is not a usable address of subnet 192.168.1.0/24');
    expect(bad('192.168.1.255')).toBe('nodes[0].gateway: 192.168.1.255 is not a usable address of subnet 192.168.1.0/24');
    expect(bad('192.168.1.1')).toBe("nodes[0].gateway: 192.168.1.1 is the node's own address");
    expect(bad('router')).toBe('nodes[0].gateway: invalid IPv4 address "router"');
  });
});

describe('timer settings a timer can hold (setTimeout waits at most 2^31-1 ms; NaN, 0 or more fires at once)', () => {
  it('bookmarkIntervalMs: a whole number of milliseconds from 1000 to 2147483647', () => {
    expect(parseConfig(base).bookmarkIntervalMs).toBe(60_000);
    expect(parseConfig({ ...base, bookmarkIntervalMs: 5000 }).bookmarkIntervalMs).toBe(5000);
    for (const v of ['soon', 0, -1, 2 ** 31, 1.5]) {
      expect(refusal({ ...base, bookmarkIntervalMs: v })).toBe(
        `bookmarkIntervalMs: must be a whole number of milliseconds from 1000 to 2147483647, got ${JSON.stringify(v)}`,
      );
    }
  });

  it('lease timings above 2^31-1 ms are refused, naming the field and the value', () => {
    expect(refusal({ ...base, lease: { expiryMs: 2 ** 31 } })).toBe(
      `lease.expiryMs: must be a whole number of milliseconds from 1 to 2147483647, got ${2 ** 31}`,
    );
    expect(refusal({ ...base, lease: { renewIntervalMs: 'fast' } })).toBe(
      'lease.renewIntervalMs: must be a whole number of milliseconds from 1 to 2147483647, got "fast"',
    );
    expect(refusal({ ...base, lease: { startupGraceMs: 1e12 } })).toBe(
      'lease.startupGraceMs: must be a whole number of milliseconds from 1 to 2147483647, got 1000000000000',
    );
  });
});

describe('unknown fields (a typo is not silently ignored)', () => {
  it('are refused at the top level, in a node, in lease and in listen, naming the field and what is allowed', () => {
    expect(refusal({ ...base, bookmarkInterval: 5000 })).toBe(
      'bookmarkInterval: unknown field (allowed: listen, dataDir, tokensFile, tls, clusterName, flavour, gatewayNamespace, clusterNamespace, nodes, podCIDRs, serviceCIDRs, serviceCIDR, lease, heartbeatPort, fsync, bookmarkIntervalMs, api)',
    );
    // before: a misspelt gateway left the router unprotected, silently
    expect(refusal({ ...base, nodes: [{ ...node, gatway: '192.168.1.254' }] })).toBe(
      'nodes[0].gatway: unknown field (allowed: name, role, ip, subnet, gateway, podCIDR)',
    );
    expect(refusal({ ...base, lease: { expiry: 300 } })).toBe('lease.expiry: unknown field (allowed: renewIntervalMs, expiryMs, startupGraceMs)');
    expect(refusal({ ...base, listen: { address: '0.0.0.0' } })).toBe('listen.address: unknown field (allowed: host, port)');
    expect(refusal({ ...base, tls: { cert: '/c.pem' } })).toBe('tls.cert: unknown field (allowed: certFile, keyFile, altNames)');
  });
});
