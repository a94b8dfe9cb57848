import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allocate, type AllocNode } from './allocator.js';
import { cidrTextContains } from '../../lib/net/addresses.js';

const w = (name: string, state: 'Up' | 'Down' = 'Up', subnets = ['192.168.1.0/24']): AllocNode => ({ name, role: 'worker', subnets, state });
const cp = (name: string, state: 'Up' | 'Down' = 'Up', subnets = ['192.168.1.0/24']): AllocNode => ({ name, role: 'control-plane', subnets, state });

describe('allocate: SPEC 2 rules', () => {
  it('rule 1: an IP only goes to a node whose subnet contains it', () => {
    const r = allocate(['10.0.2.5', '192.168.1.100'], [w('a', 'Up', ['10.0.2.0/24']), w('b')]);
    expect(r.assignments).toEqual({ '10.0.2.5': 'a', '192.168.1.100': 'b' });
  });

  it('rule 1: an IP no subnet contains is reported, never assigned', () => {
    const r = allocate(['172.16.0.1', '192.168.1.100'], [w('a'), w('b')]);
    expect(r.assignments).toEqual({ '192.168.1.100': 'a' });
    expect(r.unassignable).toEqual([{ ip: '172.16.0.1', reason: 'NoMatchingSubnet', message: 'no node has a subnet containing 172.16.0.1' }]);
  });

  it('reports invalid addresses instead of assigning them', () => {
    const r = allocate(['192.168.1.300'], [w('a')]);
    expect(r.assignments).toEqual({});
    expect(r.unassignable[0]).toMatchObject({ ip: '192.168.1.300', reason: 'InvalidIP' });
  });

  it("never hands out a node's own address or a subnet's network or broadcast address (issue 12); an assigned one is released", () => {
    const nodes = [
      { ...w('a'), addresses: ['192.168.1.1'] },
      { ...w('b'), addresses: ['192.168.1.2'] },
    ];
    const r = allocate(['192.168.1.2', '192.168.1.0', '192.168.1.255', '192.168.1.100'], nodes);
    expect(r.assignments).toEqual({ '192.168.1.100': 'a' });
    expect(r.unassignable).toEqual([
      { ip: '192.168.1.2', reason: 'ReservedAddress', message: "192.168.1.2 is node b's own address" },
      { ip: '192.168.1.0', reason: 'ReservedAddress', message: '192.168.1.0 is the network address of 192.168.1.0/24' },
      { ip: '192.168.1.255', reason: 'ReservedAddress', message: '192.168.1.255 is the broadcast address of 192.168.1.0/24' },
    ]);
    // a /31 or /32 has no network/broadcast address to protect
    expect(allocate(['10.0.0.0'], [w('p2p', 'Up', ['10.0.0.0/31'])]).assignments).toEqual({ '10.0.0.0': 'p2p' });
    // previously assigned (before the rule, or before the node reported that address): released
    const again = allocate(['192.168.1.2'], nodes, { '192.168.1.2': 'a' });
    expect(again.assignments).toEqual({});
    expect(again.released).toEqual([{ ip: '192.168.1.2', from: 'a' }]);
  });

  it("never hands out the router's address (the subnet's default gateway, issue 12); an assigned one is released", () => {
    const nodes = [{ ...w('a'), gateways: ['192.168.1.254'] }, w('b')];
    const r = allocate(['192.168.1.254', '192.168.1.100'], nodes);
    expect(r.assignments).toEqual({ '192.168.1.100': 'a' });
    expect(r.unassignable).toEqual([
      { ip: '192.168.1.254', reason: 'ReservedAddress', message: '192.168.1.254 is the router (default gateway) of 192.168.1.0/24' },
    ]);
    expect(allocate(['192.168.1.254'], nodes, { '192.168.1.254': 'b' }).released).toEqual([{ ip: '192.168.1.254', from: 'b' }]);
  });

  it('rule 2: workers take precedence over control-plane nodes', () => {
    const r = allocate(['192.168.1.100'], [cp('aaa-cp'), w('zzz-worker')]);
    expect(r.assignments).toEqual({ '192.168.1.100': 'zzz-worker' });
  });

  it('rule 2: a control-plane node is used when no worker can take the IP', () => {
    const r = allocate(['192.168.1.100'], [cp('cp-1'), w('worker1', 'Down')]);
    expect(r.assignments).toEqual({ '192.168.1.100': 'cp-1' });
  });

  it('rule 3: nodes holding no floating IP are preferred (spread), as in the seed example', () => {
    const r = allocate(['192.168.1.100', '192.168.1.101', '192.168.1.102'], [w('worker1'), w('worker2')]);
    expect(r.assignments).toEqual({ '192.168.1.100': 'worker1', '192.168.1.101': 'worker2', '192.168.1.102': 'worker1' });
  });

  it('rule 3: spread takes existing assignments into account', () => {
    const r = allocate(['192.168.1.100', '192.168.1.101'], [w('worker1'), w('worker2')], { '192.168.1.100': 'worker2' });
    expect(r.assignments).toEqual({ '192.168.1.100': 'worker2', '192.168.1.101': 'worker1' });
  });

  it('rule 4: IPs of a Down node move to the next node by the same rules', () => {
    const prev = { '192.168.1.100': 'worker1', '192.168.1.101': 'worker2' };
    const r = allocate(['192.168.1.100', '192.168.1.101'], [cp('cp-1'), w('worker1', 'Down'), w('worker2'), w('worker3')], prev);
    expect(r.assignments).toEqual({ '192.168.1.100': 'worker3', '192.168.1.101': 'worker2' });
    expect(r.moves).toEqual([{ ip: '192.168.1.100', from: 'worker1', to: 'worker3' }]);
  });

  it('rule 4: with no Up candidate the IP is released and reported NoUpNode', () => {
    const r = allocate(['192.168.1.100'], [w('worker1', 'Down')], { '192.168.1.100': 'worker1' });
    expect(r.assignments).toEqual({});
    expect(r.released).toEqual([{ ip: '192.168.1.100', from: 'worker1' }]);
    expect(r.unassignable[0]).toMatchObject({ reason: 'NoUpNode' });
  });

  it('rule 4: an IP whose holder disappeared or no longer contains it moves', () => {
    const r = allocate(['192.168.1.100'], [w('worker2'), w('worker1', 'Up', ['10.0.0.0/24'])], { '192.168.1.100': 'worker1' });
    expect(r.assignments).toEqual({ '192.168.1.100': 'worker2' });
    const gone = allocate(['192.168.1.100'], [w('worker2')], { '192.168.1.100': 'ghost' });
    expect(gone.assignments).toEqual({ '192.168.1.100': 'worker2' });
  });

  it('rule 5: no reshuffle when a node comes back Up', () => {
    const prev = { '192.168.1.100': 'worker2', '192.168.1.101': 'worker2' };
    const r = allocate(['192.168.1.100', '192.168.1.101'], [w('worker1'), w('worker2')], prev);
    expect(r.assignments).toEqual(prev);
    expect(r.moves).toEqual([]);
  });

  it('rule 5 beats rule 2: an IP on an Up control-plane node stays there when a worker appears', () => {
    const prev = { '192.168.1.100': 'cp-1' };
    expect(allocate(['192.168.1.100'], [cp('cp-1'), w('worker1')], prev).assignments).toEqual(prev);
  });

  it('is deterministic and independent of node order', () => {
    const nodes = [w('b'), cp('c'), w('a'), w('d', 'Down')];
    const ips = ['192.168.1.100', '192.168.1.101', '192.168.1.102'];
    expect(allocate(ips, nodes)).toEqual(allocate(ips, [...nodes].reverse()));
  });

  it('removing an IP from the spec releases it', () => {
    const r = allocate(['192.168.1.100'], [w('a')], { '192.168.1.100': 'a', '192.168.1.101': 'a' });
    expect(r.released).toEqual([{ ip: '192.168.1.101', from: 'a' }]);
  });
});

describe('allocate: properties over random topologies', () => {
  const subnets = ['192.168.1.0/24', '192.168.2.0/24', '10.1.0.0/16'];
  const nodeArb = fc.record({
    role: fc.constantFrom('worker' as const, 'control-plane' as const),
    subnet: fc.constantFrom(...subnets),
    up: fc.boolean(),
  });
  const ipArb = fc.oneof(
    fc.integer({ min: 1, max: 254 }).map((x) => `192.168.1.${x}`),
    fc.integer({ min: 1, max: 254 }).map((x) => `192.168.2.${x}`),
    fc.integer({ min: 1, max: 254 }).map((x) => `10.1.0.${x}`),
    fc.integer({ min: 1, max: 254 }).map((x) => `172.20.0.${x}`),
  );
  const topo = fc.record({
    nodes: fc.array(nodeArb, { minLength: 0, maxLength: 7 }),
    ips: fc.uniqueArray(ipArb, { maxLength: 8 }),
    flips: fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }),
  });
  const build = (spec: { role: 'worker' | 'control-plane'; subnet: string; up: boolean }[]): AllocNode[] =>
    spec.map((n, i) => ({ name: `n${i}`, role: n.role, subnets: [n.subnet], state: n.up ? 'Up' : 'Down' }));

  it('never places an IP outside its node subnet or on a Down node; assigns whenever an Up candidate exists; no move while Up', () => {
    fc.assert(
      fc.property(topo, ({ nodes: spec, ips, flips }) => {
        const nodes = build(spec);
        const first = allocate(ips, nodes);
        // change liveness randomly, then re-allocate from the previous assignment
        const next = nodes.map((n, i) => ({ ...n, state: flips[i] ? (n.state === 'Up' ? 'Down' : 'Up') : n.state }) as AllocNode);
        const second = allocate(ips, next, first.assignments);
        for (const [r, ns] of [
          [first, nodes],
          [second, next],
        ] as const) {
          for (const [ip, holder] of Object.entries(r.assignments)) {
            const node = ns.find((n) => n.name === holder)!;
            expect(node.subnets.some((s) => cidrTextContains(s, ip))).toBe(true);
            expect(node.state).toBe('Up');
          }
          for (const ip of ips) {
            const upCandidate = ns.some((n) => n.state === 'Up' && n.subnets.some((s) => cidrTextContains(s, ip)));
            expect(r.assignments[ip] !== undefined).toBe(upCandidate);
          }
        }
        // rule 5: an assignment whose holder stayed Up does not move
        for (const [ip, holder] of Object.entries(first.assignments)) {
          if (next.find((n) => n.name === holder)!.state === 'Up') expect(second.assignments[ip]).toBe(holder);
        }
        // rule 2: a control-plane holder only when no worker candidate was Up at assignment time
        for (const m of second.moves) {
          const to = next.find((n) => n.name === m.to)!;
          if (to.role === 'control-plane') {
            expect(next.some((n) => n.role === 'worker' && n.state === 'Up' && n.subnets.some((s) => cidrTextContains(s, m.ip)))).toBe(false);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
