import { describe, expect, it } from 'vitest';
import { ipMasqAgentConfig, managedPolicy, managedPolicyName, noSnatDestinations, defaultPolicy, DEFAULT_NON_MASQUERADE_CIDRS } from './autopilot.js';
import { reconcileGateway } from './gateway-reconcile.js';
import { LivenessTracker } from './liveness.js';
import { parse } from 'yaml';

const T = { renewIntervalMs: 200, expiryMs: 600, startupGraceMs: 3000 };

describe('liveness from leases (injected clock)', () => {
  it('a node is Up while renewals arrive and Down expiryMs after the last one', () => {
    const l = new LivenessTracker(T);
    expect(l.state('w1', 0)).toBe('Down');
    expect(l.observe('w1', 'rv1', 1000)).toBe(true);
    expect(l.state('w1', 1599)).toBe('Up');
    expect(l.observe('w1', 'rv2', 1200)).toBe(false); // already Up: no state change
    expect(l.state('w1', 1799)).toBe('Up');
    expect(l.state('w1', 1800)).toBe('Down');
    expect(l.nextExpiry(1500)).toBe(1800);
  });

  it('the same renewal seen twice does not extend the lease', () => {
    const l = new LivenessTracker(T);
    l.observe('w1', 'rv1', 0);
    l.observe('w1', 'rv1', 500);
    expect(l.state('w1', 600)).toBe('Down');
  });

  it('after a restart, nodes previously Up get the start-up grace; previously Down stay Down', () => {
    const l = new LivenessTracker(T);
    l.seed('up', 'Up', 'rv1', 10_000);
    l.seed('down', 'Down', 'rv2', 10_000);
    expect(l.state('up', 12_999)).toBe('Up');
    expect(l.state('up', 13_000)).toBe('Down');
    expect(l.state('down', 10_001)).toBe('Down');
    expect(l.observe('down', 'rv3', 10_100)).toBe(true);
    expect(l.state('down', 10_200)).toBe('Up');
  });

  it('a heartbeat grants the grace of the interval it announces; the freshest heartbeat sets it, a Lease renewal never shortens it', () => {
    const l = new LivenessTracker(T);
    expect(l.graceFor(200)).toBe(600); // fast (a holder): six beats
    expect(l.graceFor(1000)).toBe(600 + 2 * 800); // idle: two missed slow beats more
    expect(l.heartbeat('w1', 'hb 1 1', 1000, 0)).toBe(true);
    expect(l.state('w1', 2199)).toBe('Up');
    // a Lease renewal in between does not cut the idle grace short
    l.observe('w1', 'rv1', 100);
    expect(l.state('w1', 2199)).toBe('Up');
    expect(l.state('w1', 2200)).toBe('Down');
    // the node starts holding an IP: a fast heartbeat shortens the grace at once
    expect(l.heartbeat('w1', 'hb 1 2', 200, 500)).toBe(false);
    expect(l.state('w1', 1099)).toBe('Up');
    expect(l.state('w1', 1100)).toBe('Down');
    expect(l.nextExpiry(600)).toBe(1100);
    // the same heartbeat twice does not extend it
    expect(l.heartbeat('w1', 'hb 1 2', 200, 900)).toBe(false);
    expect(l.state('w1', 1100)).toBe('Down');
  });

  it('a Lease renewal does not bring back a Down node whose Lease says it beats: its next heartbeat does (a healed partition)', () => {
    const held: string[] = [];
    const l = new LivenessTracker(T, (n) => held.push(n));
    // a node holding nothing beats every second: Up for 600 + 2 * 800 ms after each heartbeat
    expect(l.heartbeat('w3', 'hb 1 1', 1000, 0)).toBe(true);
    expect(l.lastSignal('w3')).toBe('heartbeat');
    expect(l.state('w3', 2200)).toBe('Down'); // cut off: no signal for 2.2 s
    // the partition heals; the renewal the agent retried arrives first
    expect(l.observe('w3', 'rv7', 5000, true)).toBe(false);
    expect(l.observe('w3', 'rv7', 5010, true)).toBe(false);
    // its heartbeats stay blocked: the next renewal is held back too, and told once per Down spell
    expect(l.observe('w3', 'rv7b', 5020, true)).toBe(false);
    expect(held).toEqual(['w3']);
    expect(l.state('w3', 5021)).toBe('Down');
    // (granting it expiryMs made the node Up at 5000 and Down again at 5600, before the heartbeat at 5640)
    expect(l.state('w3', 5600)).toBe('Down');
    expect(l.heartbeat('w3', 'hb 1 6', 1000, 5640)).toBe(true);
    expect(l.lastSignal('w3')).toBe('heartbeat');
    expect(l.lastSeen('w3')).toBe(5640);
    expect(l.state('w3', 5640 + 2199)).toBe('Up');
    // a renewal already seen counts nothing; a new one while Up extends as before (never shortens)
    expect(l.observe('w3', 'rv7b', 6000, true)).toBe(false);
    expect(l.lastSignal('w3')).toBe('heartbeat');
    expect(l.lastSeen('w3')).toBe(5640);
    expect(l.observe('w3', 'rv8', 7000, true)).toBe(false);
    expect(l.lastSignal('w3')).toBe('lease');
    expect(l.state('w3', 5640 + 2199)).toBe('Up');
    expect(l.state('w3', 5640 + 2200)).toBe('Down');
    // a new Down spell: its first held-back renewal is told again
    expect(l.observe('w3', 'rv9', 9000, true)).toBe(false);
    expect(held).toEqual(['w3', 'w3']);
  });

  it('the Lease says whether the node beats, not the tracker memory: a node restarted without heartbeats lives by its renewals', () => {
    const l = new LivenessTracker(T);
    l.heartbeat('w4', 'hb 1 1', 200, 0);
    expect(l.state('w4', 700)).toBe('Down');
    // the agent comes back with heartbeats off: its Lease says 0, and each renewal counts
    expect(l.observe('w4', 'rv1', 10_000, false)).toBe(true);
    expect(l.lastSignal('w4')).toBe('lease');
    expect(l.state('w4', 10_599)).toBe('Up');
    expect(l.state('w4', 10_600)).toBe('Down');
    // after a controller restart (seed) the Lease still decides: a node that beats waits for its heartbeat
    const r = new LivenessTracker(T);
    r.seed('w5', 'Down', 'rv1', 0);
    expect(r.observe('w5', 'rv2', 100, true)).toBe(false);
    expect(r.state('w5', 101)).toBe('Down');
    expect(r.heartbeat('w5', 'hb 2 1', 1000, 150)).toBe(true);
    // a deleted Lease: Down at once; its re-creation by an agent that beats waits for the heartbeat
    r.forget('w5');
    expect(r.state('w5', 151)).toBe('Down');
    expect(r.observe('w5', 'rv3', 200, true)).toBe(false);
    expect(r.heartbeat('w5', 'hb 2 2', 1000, 300)).toBe(true);
  });

  it('a deleted lease makes the node Down immediately', () => {
    const l = new LivenessTracker(T);
    l.observe('w1', 'a', 0);
    l.forget('w1');
    expect(l.state('w1', 1)).toBe('Down');
  });
});

describe('gateway reconciliation', () => {
  const nodes = [
    { name: 'worker1', role: 'worker' as const, subnets: ['192.168.1.0/24'], state: 'Up' as const },
    { name: 'worker2', role: 'worker' as const, subnets: ['192.168.1.0/24'], state: 'Down' as const },
  ];
  const gateway = { namespace: 'kube-system', name: 'default', floatingIPs: ['192.168.1.100', '192.168.1.101', '10.9.9.9'] };

  it('computes the seed-shaped status and each node IP list', () => {
    const r = reconcileGateway({ gateway, nodes, previous: {}, policies: [] });
    expect(r.status).toEqual({ nodes: { worker1: 'Up', worker2: 'Down' }, floatingIPs: { '192.168.1.100': 'worker1', '192.168.1.101': 'worker1' } });
    expect(r.nodeIPs).toEqual({ worker1: ['192.168.1.100', '192.168.1.101'], worker2: [] });
  });

  it('marks policies UnknownEgressIP for each reference problem, served otherwise', () => {
    const r = reconcileGateway({
      gateway,
      nodes,
      previous: {},
      policies: [
        { name: 'ok', egressSourceIP: '192.168.1.100' },
        { name: 'not-floating', egressSourceIP: '192.168.1.200' },
        { name: 'no-subnet', egressSourceIP: '10.9.9.9' },
      ],
    });
    expect(r.policies.map((p) => [p.name, p.served, p.reason])).toEqual([
      ['ok', true, 'Served'],
      ['not-floating', false, 'UnknownEgressIP'],
      ['no-subnet', false, 'UnknownEgressIP'],
    ]);
    expect(r.policies[1]!.message).toContain('not one of the floating IPs');
    expect(r.policies[2]!.message).toContain('not in the subnet of any gateway node');
    const none = reconcileGateway({
      gateway,
      nodes: nodes.map((n) => ({ ...n, state: 'Down' as const })),
      previous: {},
      policies: [{ name: 'p', egressSourceIP: '192.168.1.100' }],
    });
    expect(none.policies[0]!.message).toContain('not assigned to any node');
    const noGw = reconcileGateway({ nodes, previous: {}, policies: [{ name: 'p', egressSourceIP: '192.168.1.100' }] });
    expect(noGw.policies[0]!.served).toBe(false);
  });
});

describe('autopilot policies', () => {
  it('the default policy holds the 11 default non-masquerade CIDRs', () => {
    const d = defaultPolicy();
    expect(d.spec.action).toBe('NoSNAT');
    expect(d.spec.destinations.map((x) => x.cidr).sort()).toEqual([...DEFAULT_NON_MASQUERADE_CIDRS].sort());
  });

  it('the managed policy is gke-<8 hex>-1 with pod, service and node ranges', () => {
    expect(managedPolicyName('cluster1')).toMatch(/^gke-[0-9a-f]{8}-1$/);
    expect(managedPolicyName('cluster1')).toBe(managedPolicyName('cluster1'));
    const m = managedPolicy('cluster1', { podCIDRs: ['10.10.10.0/24', '10.10.11.0/24'], serviceCIDRs: ['10.96.0.0/12'], nodeCIDRs: ['192.168.1.0/24'] });
    expect(m.spec.destinations.map((x) => x.cidr)).toEqual(['10.10.10.0/24', '10.10.11.0/24', '10.96.0.0/12', '192.168.1.0/24']);
  });

  it('the ConfigMap config is the sorted union of NoSNAT destinations', () => {
    const cidrs = noSnatDestinations([
      { spec: { action: 'NoSNAT', destinations: [{ cidr: '10.0.0.0/8' }, { cidr: '8.8.8.0/24' }] } },
      { spec: { action: 'NoSNAT', destinations: [{ cidr: '10.0.0.0/8' }] } },
      { spec: { action: 'Other', destinations: [{ cidr: '1.1.1.0/24' }] } },
    ]);
    expect(cidrs).toEqual(['8.8.8.0/24', '10.0.0.0/8']);
    expect(parse(ipMasqAgentConfig(cidrs))).toEqual({ nonMasqueradeCIDRs: ['8.8.8.0/24', '10.0.0.0/8'], masqLinkLocal: false, resyncInterval: '60s' });
  });
});

describe('revivals (told to the agent with every heartbeat acknowledgement)', () => {
  it('counts each return from Down, not the first signal; a deleted Lease makes the next signal a revival too', () => {
    const l = new LivenessTracker(T);
    expect(l.revivals('n1')).toBe(0);
    l.heartbeat('n1', 'hb 1 1', T.renewIntervalMs, 0);
    expect(l.revivals('n1'), 'first signal').toBe(0);
    l.heartbeat('n1', 'hb 1 2', T.renewIntervalMs, 100);
    expect(l.revivals('n1'), 'still Up').toBe(0);
    expect(l.state('n1', 100 + T.expiryMs)).toBe('Down');
    l.heartbeat('n1', 'hb 1 3', T.renewIntervalMs, 100 + T.expiryMs + 1);
    expect(l.revivals('n1'), 'back from Down').toBe(1);
    l.forget('n1');
    l.heartbeat('n1', 'hb 1 4', T.renewIntervalMs, 100 + T.expiryMs + 2);
    expect(l.revivals('n1'), 'back after the Lease was deleted').toBe(2);
  });
});
