// endpointFor is pure: importing lab.ts starts nothing (no Docker connection is made at import).
import { describe, expect, it } from 'vitest';
import { loadTopology } from '../topology/load.js';
import { planLab } from '../topology/plan.js';
import { parseTopology } from '../topology/validate.js';
import { endpointFor } from './lab.js';

const plan = planLab(loadTopology());
const who = (p: ReturnType<typeof planLab>, ip: string) => endpointFor(p, ip)?.container;

describe('endpointFor on the default lab', () => {
  it('public addresses are answered by the internet', () => {
    for (const ip of ['8.8.8.8', '1.1.1.1', '93.184.216.34', '223.255.255.254', '11.0.0.1']) {
      expect(endpointFor(plan, ip), ip).toEqual({ container: 'internet', label: 'internet', key: 'internet|' });
    }
  });

  it("the VPC endpoint's own address and its answer ranges are answered by the VPC", () => {
    expect(endpointFor(plan, '172.16.100.10')).toEqual({ container: 'vpc', label: 'vpc', key: 'vpc|' });
    for (const ip of ['10.20.30.40', '172.20.0.1', '192.168.7.7', '100.64.0.1', '169.254.169.254', '203.0.113.5', '240.1.2.3']) {
      expect(who(plan, ip), ip).toBe('vpc');
    }
  });

  it('lab ranges answer nothing here: the node segment and the pod CIDRs (pods and nodes are resolved elsewhere)', () => {
    for (const ip of ['192.168.1.1', '192.168.1.77', '192.168.1.254', '10.10.10.2', '10.10.10.200', '10.10.11.9', '10.10.12.255']) {
      expect(endpointFor(plan, ip), ip).toBeUndefined();
    }
  });
});

describe('endpointFor between several VPC endpoints', () => {
  const two = (order: 'ab' | 'ba') => {
    const a = { name: 'vpc-a', address: '172.16.100.10', subnet: '172.16.100.0/24', answers: ['10.0.0.0/8', '172.16.0.0/12'] };
    const b = { name: 'vpc-b', address: '172.16.101.10', subnet: '172.16.101.0/24', answers: ['10.20.0.0/16', '10.20.30.0/24'] };
    return planLab(
      parseTopology({
        nodes: [{ name: 'node-1', address: '192.168.1.1', podCIDR: '10.10.10.0/24' }],
        vpcEndpoints: order === 'ab' ? [a, b] : [b, a],
      }),
    );
  };

  it('picks the longest matching prefix, whatever the order of the endpoints', () => {
    for (const order of ['ab', 'ba'] as const) {
      const p = two(order);
      expect(who(p, '10.20.30.1'), order).toBe('vpc-b');
      expect(who(p, '10.20.99.1'), order).toBe('vpc-b');
      expect(who(p, '10.21.0.1'), order).toBe('vpc-a');
      expect(who(p, '172.16.101.10'), order).toBe('vpc-b'); // its own address beats vpc-a's 172.16.0.0/12
      expect(who(p, '10.10.10.5'), order).toBeUndefined(); // a pod CIDR
      expect(who(p, '192.168.5.5'), order).toBe('internet'); // no endpoint answers 192.168/16 here
    }
  });

  it('with no VPC endpoint everything outside the lab is the internet', () => {
    const p = planLab(parseTopology({ nodes: [{ name: 'node-1', address: '192.168.1.1', podCIDR: '10.10.10.0/24' }], vpcEndpoints: [] }));
    expect(who(p, '10.20.30.1')).toBe('internet');
    expect(who(p, '172.16.100.10')).toBe('internet');
    expect(who(p, '10.10.10.1')).toBeUndefined();
    expect(who(p, '192.168.1.200')).toBeUndefined();
  });

  it('transit: the internet answers on its own transit address; the router side answers nothing (answers not covering it)', () => {
    const p = planLab(
      parseTopology({
        nodes: [{ name: 'node-1', address: '192.168.1.1' }],
        vpcEndpoints: [{ name: 'vpc', address: '172.16.100.10', subnet: '172.16.100.0/24', answers: ['10.0.0.0/8'] }],
      }),
    );
    expect(who(p, p.transit.internet)).toBe('internet');
    expect(who(p, p.transit.router)).toBeUndefined();
  });
});
