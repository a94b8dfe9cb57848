import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultMasqConfig } from '../masq/config.js';
import { EGRESS_GW_BYPASS_MARK, EGRESS_GW_BYPASS_MASK } from '../masq/constants.js';
import { renderMasqRuleset } from '../masq/render.js';
import { afterCommit, inPlaceReplace } from '../host/nft-replace.js';
import { BOOT_GUARD_TABLE } from './constants.js';
import { computeGatewayPlan, type GatewayPlan, type ModelInput, type PolicyPlan } from './model.js';
import {
  addressCommands,
  changedPairs,
  leavingPairs,
  transitionPlan,
  steeredPairs,
  treatmentsAfter,
  treatmentsAfterFailure,
  UNKNOWN_TREATMENT,
  conntrackFlushArgs,
  forwardedFlushArgs,
  forwardedSnats,
  bindingDeleteArgs,
  misboundBindings,
  snatIPs,
  parseIpAddrs,
  parseIpRules,
  parseRouteTables,
  policySetPrefix,
  setPrefixes,
  renderAliveRefresh,
  renderBootFence,
  renderBootGuard,
  renderGateway,
  renderGatewayRemoval,
  renderStrayReplyFence,
  renderChangeoverWindow,
  renderTakeoverWindow,
  renderTakeoverWindowEnd,
  routingCommands,
} from './render.js';

function input(self: string, assignments: Record<string, string>, down: string[] = []): ModelInput {
  const nodes = [
    { name: 'node-1', ip: '192.168.1.1', subnet: '192.168.1.0/24', podCIDRs: ['10.10.10.0/24'] },
    { name: 'node-2', ip: '192.168.1.2', subnet: '192.168.1.0/24', podCIDRs: ['10.10.11.0/24'] },
    { name: 'node-3', ip: '192.168.1.3', subnet: '192.168.1.0/24', podCIDRs: ['10.10.12.0/24'] },
  ];
  return {
    self: { name: self, ip: nodes.find((n) => n.name === self)!.ip },
    nodes,
    gateway: {
      floatingIPs: ['192.168.1.100', '192.168.1.101'],
      assignments,
      nodes: Object.fromEntries(nodes.map((n) => [n.name, down.includes(n.name) ? 'Down' : 'Up'])),
    },
    policies: [
      {
        name: 'egress',
        rules: [{ namespaceSelector: { matchLabels: { user: 'alice' } } }],
        destinationCIDRs: ['8.8.8.0/24', '9.9.9.9/32'],
        egressSourceIP: '192.168.1.100',
      },
      { name: 'other', rules: [{ podSelector: { matchLabels: { app: 'x' } } }], destinationCIDRs: ['1.1.1.0/24'], egressSourceIP: '192.168.1.101' },
    ],
    pods: [
      { namespace: 'alice', name: 'fe', labels: {}, ip: '10.10.10.1', nodeName: 'node-1', hostNetwork: false, terminated: false },
      { namespace: 'default', name: 'x', labels: { app: 'x' }, ip: '10.10.10.2', nodeName: 'node-1', hostNetwork: false, terminated: false },
      { namespace: 'alice', name: 'fe2', labels: {}, ip: '10.10.11.1', nodeName: 'node-2', hostNetwork: false, terminated: false },
    ],
    namespaces: [{ name: 'alice', labels: { user: 'alice' } }],
    networkPolicies: [
      {
        namespace: 'default',
        name: 'np',
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }], ports: [{ protocol: 'TCP', port: 443 }] }],
      },
    ],
  };
}

const MID = 'ct state new tcp flags & (syn | ack) != syn';
const PICKUP_COMMENT = 'comment "mid-stream segment to a local pod without a conntrack entry: no NAT would judge its answers"';
// not from the cluster's pods (in address order, none inside another)
const podPickupDrop = `iifname "eth0" ip daddr @podcidrs ip saddr != @clusterpods ${MID} counter drop ${PICKUP_COMMENT}`;
const chain = (ruleset: string, name: string): string[] => {
  const m = new RegExp(`\\tchain ${name} \\{\\n([\\s\\S]*?)\\n\\t\\}`).exec(ruleset);
  if (!m) throw new Error(`no chain ${name}`);
  return m[1]!.split('\n').map((l) => l.trim());
};

describe('policySetPrefix: the sets and guard chain of a policy are named after it', () => {
  it('an object name after p_, a leaving plan with /, anything else hashed under ph_ (never an nft syntax error, never a clash)', () => {
    expect(['egress', 'egress.v1-blue', '0abc', 'egress~leaving'].map(policySetPrefix)).toEqual(['p_egress', 'p_egress.v1-blue', 'p_0abc', 'p_egress/leaving']);
    const odd = ['x'.repeat(64), 'Egress', 'a b', 'a;drop', '-a', 'a~b'].map(policySetPrefix);
    for (const k of odd) expect(k).toMatch(/^ph_[0-9a-f]{16}$/);
    expect(new Set(odd).size).toBe(odd.length);
    expect(policySetPrefix('x'.repeat(63))).toBe(`p_${'x'.repeat(63)}`);
  });
});

describe("setPrefixes: a leaving entry takes its policy's sets when the policy is gone", () => {
  const plan = (name: string) => ({ name }) as PolicyPlan;
  it('the deleted policy p_<name>; a policy still there keeps its own, its leaving pairs p_<name>/leaving', () => {
    const deleted = [plan('other'), plan('egress~leaving')];
    expect(deleted.map(setPrefixes(deleted))).toEqual(['p_other', 'p_egress']);
    const relabelled = [plan('egress'), plan('other'), plan('egress~leaving')];
    expect(relabelled.map(setPrefixes(relabelled))).toEqual(['p_egress', 'p_other', 'p_egress/leaving']);
  });
});

describe('renderGateway: nft transaction', () => {
  const src = renderGateway(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' })));

  it('is one flush-and-recreate transaction of both tables', () => {
    const head = src.ruleset.split('\n').filter((l) => /^(table|delete)/.test(l));
    expect(head).toEqual([
      'table ip egresslab_gw {}',
      'delete table ip egresslab_gw',
      'table arp egresslab_gw {}',
      'delete table arp egresslab_gw',
      'table ip egresslab_gw {',
      'table arp egresslab_gw {',
    ]);
  });

  it('prerouting: local pod traffic only, NetworkPolicy first, then egress selection with marks or fail-closed drops', () => {
    const pre = chain(src.ruleset, 'prerouting');
    expect(pre[0]).toBe('type filter hook prerouting priority mangle - 10; policy accept;');
    // inbound: mid-stream pickups kept only for the routed policy's pairs (midStream describe below)
    expect(pre[1]).toBe(`iifname "eth0" ip saddr @p_egress_dst ip daddr @p_egress_src ${MID} return`);
    expect(pre[2]).toBe(podPickupDrop);
    // the cluster's pod CIDRs: a named set, refilled in place at every apply (never created anew)
    expect(src.ruleset).toContain('set clusterpods { type ipv4_addr; flags interval; elements = { 10.10.10.0/24, 10.10.11.0/24, 10.10.12.0/24 } }');
    expect(pre[3]).toMatch(/^iifname "eth0" return/);
    expect(pre[4]).toBe('ip saddr != @podcidrs return');
    expect(pre[5]).toBe('ip saddr vmap { 10.10.10.2 : jump np_0 }');
    // egress -> node-2 (index 2 among node-2, node-3 for node-1... by name: node-2=1, node-3=2)
    expect(pre[6]).toMatch(
      /^ip saddr @p_egress_src ip daddr @p_egress_dst meta mark set meta mark & 0xff00dfff \| 0x00012000 counter accept comment "policy egress: to gateway node-2/,
    );
    // other: 192.168.1.101 unassigned -> drop, in the same chain (same transaction) as the marks
    expect(pre[7]).toMatch(/^ip saddr @p_other_src ip daddr @p_other_dst counter drop comment "policy other: fail-closed/);
    expect(src.ruleset).toContain('set p_egress_src { type ipv4_addr; elements = { 10.10.10.1 } }');
    expect(src.ruleset).toContain('set p_egress_all { type ipv4_addr; elements = { 10.10.10.1, 10.10.11.1 } }');
    expect(src.ruleset).toContain('set p_egress_dst { type ipv4_addr; flags interval; elements = { 8.8.8.0/24, 9.9.9.9/32 } }');
  });

  it('the mark always carries the masquerade bypass bit, and egresslab_masq returns on it first', () => {
    const m = /mark set meta mark & (0x[0-9a-f]+) \| (0x[0-9a-f]+)/.exec(src.ruleset)!;
    expect(Number(m[2]) & EGRESS_GW_BYPASS_MASK).toBe(EGRESS_GW_BYPASS_MARK);
    const masq = renderMasqRuleset(defaultMasqConfig(), { podCidrs: ['10.10.10.0/24'] }).ruleset;
    const post = chain(masq, 'postrouting');
    expect(post[1]).toBe(`meta mark & 0x00002000 == 0x00002000 return comment "egress gateway bypass"`);
  });

  it('NetworkPolicy chain: replies allowed, allowed traffic returns (to egress selection), the rest dropped', () => {
    expect(chain(src.ruleset, 'np_0')).toEqual([
      'ct state established,related return',
      'ip daddr 0.0.0.0/0 ip daddr != @np_10_10_10_2_0_x0 meta l4proto tcp th dport @np_10_10_10_2_0_tcp return',
      'counter drop comment "networkpolicy egress: not allowed for default/x (default/np)"',
    ]);
    // named sets of the table (refilled in place by the next apply), not sets written in the rules
    expect(src.ruleset).toContain('set np_10_10_10_2_0_x0 { type ipv4_addr; flags interval; elements = { 10.0.0.0/8 } }');
    expect(src.ruleset).toContain('set np_10_10_10_2_0_tcp { type inet_service; flags interval; elements = { 443 } }');
  });

  it('NetworkPolicy allow lists are named interval sets after their pod, overlaps merged; a later apply refills them in place, a pod added before them included', () => {
    const withAllows = (cidrs: string[], ports: { protocol: string; port: number; endPort?: number }[], extraPod = false): ModelInput => {
      const i = input('node-1', { '192.168.1.100': 'node-2' });
      i.pods = i.pods.map((p) => (p.name === 'x' ? { ...p, ip: '10.10.10.9' } : p));
      if (extraPod) i.pods.push({ namespace: 'default', name: 'w', labels: {}, ip: '10.10.10.5', nodeName: 'node-1', hostNetwork: false, terminated: false });
      i.networkPolicies = [
        { namespace: 'default', name: 'np', podSelector: {}, policyTypes: ['Egress'], egress: [{ to: cidrs.map((cidr) => ({ ipBlock: { cidr } })), ports }] },
      ];
      return i;
    };
    const a = renderGateway(
      computeGatewayPlan(
        withAllows(
          ['8.8.0.0/16', '8.8.8.0/24', '1.1.1.1/32'],
          [
            { protocol: 'UDP', port: 53 },
            { protocol: 'UDP', port: 50, endPort: 54 },
            { protocol: 'UDP', port: 55, endPort: 60 },
          ],
        ),
      ),
    ).ruleset;
    expect(chain(a, 'np_0')[1]).toBe('ip daddr @np_10_10_10_9_0_d meta l4proto udp th dport @np_10_10_10_9_0_udp return');
    expect(a).toContain('set np_10_10_10_9_0_d { type ipv4_addr; flags interval; elements = { 1.1.1.1/32, 8.8.0.0/16 } }');
    expect(a).toContain('set np_10_10_10_9_0_udp { type inet_service; flags interval; elements = { 50-60 } }');
    // no set is written inline in a NetworkPolicy chain
    expect(chain(a, 'np_0').join('\n')).not.toContain('{');
    // other addresses and ports, and a pod with a lower address now first (its chain np_0, x's np_1)
    const b = renderGateway(computeGatewayPlan(withAllows(['9.9.9.0/24'], [{ protocol: 'UDP', port: 5353 }], true))).ruleset;
    expect(chain(b, 'np_1')[1]).toBe('ip daddr @np_10_10_10_9_0_d meta l4proto udp th dport @np_10_10_10_9_0_udp return');
    const refill = inPlaceReplace(b, afterCommit(new Map(), a));
    expect(refill).toContain('flush set ip egresslab_gw np_10_10_10_9_0_d');
    expect(refill).toContain('flush set ip egresslab_gw np_10_10_10_9_0_udp');
    expect(refill).not.toMatch(/delete (set|table) ip egresslab_gw/);
  });

  it('source node: no SNAT; guard lets matched traffic out only towards the holder (mark) with the pod source', () => {
    expect(chain(src.ruleset, 'egress_snat')).toEqual(['type nat hook postrouting priority srcnat - 10; policy accept;']);
    const g = chain(src.ruleset, 'guard');
    expect(g).toEqual([
      'type filter hook postrouting priority srcnat + 10; policy accept;',
      'oifname != "eth0" return',
      'ct direction original ct original ip saddr @p_egress_all ct original ip daddr @p_egress_dst jump p_egress_guard',
      'ct direction original ct original ip saddr @p_other_all ct original ip daddr @p_other_dst jump p_other_guard',
      // no conntrack entry (a FIN or RST of a flow whose binding never arrived): judged by its own addresses
      'ct state invalid,untracked ip saddr @p_egress_all ip daddr @p_egress_dst jump p_egress_guard',
      'ct state invalid,untracked ip saddr @p_other_all ip daddr @p_other_dst jump p_other_guard',
      // and a local pod's invalid packet no policy judged: dropped, it would leave with the pod IP
      'ct state invalid ip saddr @podcidrs counter drop comment "conntrack-invalid pod packet: no NAT decided its source"',
    ]);
    expect(chain(src.ruleset, 'p_egress_guard')).toEqual([
      'meta mark & 0x00ff0000 == 0x00010000 rt ip nexthop 192.168.1.2 ip saddr @p_egress_all accept',
      'counter drop comment "guard egress: would leave with a source other than 192.168.1.100"',
    ]);
    expect(chain(src.ruleset, 'p_other_guard')).toEqual(['counter drop comment "guard other: would leave with a source other than 192.168.1.101"']);
  });

  it('gateway node: SNAT before masquerade, guard accepts only the egressSourceIP, ARP fence seeded', () => {
    const gw = renderGateway(computeGatewayPlan(input('node-2', { '192.168.1.100': 'node-2' })));
    expect(chain(gw.ruleset, 'egress_snat')).toEqual([
      'type nat hook postrouting priority srcnat - 10; policy accept;',
      'oifname "eth0" meta mark & 0x00ff0000 == 0x00000000 ip saddr @p_egress_all ip daddr @p_egress_dst counter snat to 192.168.1.100 comment "policy egress"',
    ]);
    expect(chain(gw.ruleset, 'p_egress_guard')).toEqual([
      'ip saddr 192.168.1.100 accept',
      'counter drop comment "guard egress: would leave with a source other than 192.168.1.100"',
    ]);
    expect(gw.ruleset).toContain('set alive { type ipv4_addr; flags timeout; elements = { 192.168.1.100 timeout 1s } }');
    expect(gw.ruleset).toContain('set floating { type ipv4_addr; elements = { 192.168.1.100, 192.168.1.101 } }');
    expect(chain(gw.ruleset, 'output')[1]).toMatch(/^arp saddr ip @floating arp saddr ip != @alive counter drop/);
    expect(gw.addresses).toEqual(['192.168.1.100/32']);
    // local pods on the gateway node: bypass only (no routing index)
    expect(chain(gw.ruleset, 'prerouting').find((l) => l.startsWith('ip saddr @p_egress_src'))).toMatch(
      /meta mark set meta mark & 0xff00dfff \| 0x00002000 counter accept/,
    );
  });

  it('failover = one changed transaction on the source node (mark to the new holder), no routing change needed', () => {
    const a = renderGateway(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' })));
    const b = renderGateway(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-3' }, ['node-2'])));
    expect(b.ruleset).toMatch(/\| 0x00022000 counter accept comment "policy egress: to gateway node-3/);
    expect(b.rules).toEqual(a.rules);
    expect(b.routes).toEqual(a.routes);
    expect(routingCommands(b, { rules: a.rules, tables: a.routes.map((r) => r.table) }).after).toEqual([]);
  });

  it('uplink name is checked and used everywhere', () => {
    const r = renderGateway(computeGatewayPlan(input('node-2', { '192.168.1.100': 'node-2' })), { uplink: 'ens3' });
    expect(r.ruleset).not.toContain('"eth0"');
    expect(r.routes.every((x) => x.dev === 'ens3')).toBe(true);
    expect(() => renderGateway(computeGatewayPlan(input('node-2', {})), { uplink: 'bad name"' })).toThrow(/invalid interface/);
  });

  it('removal and alive refresh', () => {
    expect(renderGatewayRemoval()).toContain('delete table arp egresslab_gw');
    expect(renderAliveRefresh(['192.168.1.100'])).toBe('add element arp egresslab_gw alive { 192.168.1.100 timeout 1s expires 1s }\n');
    expect(renderAliveRefresh([])).toBeNull();
    // bounded by the controller's grace: a shorter timeout; none left: nothing refreshed
    expect(renderAliveRefresh(['192.168.1.100'], { aliveTimeoutMs: 320 })).toBe(
      'add element arp egresslab_gw alive { 192.168.1.100 timeout 320ms expires 320ms }\n',
    );
    expect(renderAliveRefresh(['192.168.1.100'], { aliveTimeoutMs: 0 })).toBeNull();
  });

  it('a holder whose grace has run out is rendered with its floating IPs fenced (no @alive element)', () => {
    const plan = computeGatewayPlan(input('node-2', { '192.168.1.100': 'node-2' }));
    expect(renderGateway(plan).ruleset).toContain('set alive { type ipv4_addr; flags timeout; elements = { 192.168.1.100 timeout 1s } }');
    expect(renderGateway(plan, { aliveTimeoutMs: 250 }).ruleset).toContain('elements = { 192.168.1.100 timeout 250ms } }');
    const fenced = renderGateway(plan, { aliveTimeoutMs: 0 }).ruleset;
    expect(fenced).toContain('set alive { type ipv4_addr; flags timeout; }');
    expect(fenced).toContain('snat to 192.168.1.100');
  });
});

describe('policy routing and addresses (diff against ip -j output)', () => {
  const r = renderGateway(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' })));

  it('parses iproute2 6.x rule JSON (fwmark + fwmask) and older fwmark/mask', () => {
    const json = JSON.stringify([
      { priority: 0, src: 'all', table: 'local' },
      { priority: 1000, src: 'all', fwmark: '0x10000', fwmask: '0xff0000', table: '7101' },
      { priority: 1000, src: 'all', fwmark: '0x20000/0xff0000', table: '7102' },
      { priority: 32766, src: 'all', table: 'main' },
    ]);
    expect(parseIpRules(json)).toEqual([
      { pref: 1000, fwmark: 0x10000, mask: 0xff0000, table: 7101 },
      { pref: 1000, fwmark: 0x20000, mask: 0xff0000, table: 7102 },
    ]);
    expect(parseIpRules('garbage')).toEqual([]);
  });

  it('parses the forward fence rule as iproute2 prints it (from, iif, fwmark 0/mask)', () => {
    // captured from `ip -j rule show` in the lab image
    const json =
      '[{"priority":0,"src":"all","table":"local"},{"priority":990,"src":"10.10.11.0","srclen":24,"fwmark":"0","fwmask":"0x1000","iif":"eth0","iif_detached":null,"table":"7100"}]';
    expect(parseIpRules(json)).toEqual([{ pref: 990, fwmark: 0, mask: 0x1000, table: 7100, iif: 'eth0', from: '10.10.11.0/24' }]);
  });

  it('adds missing rules before the nft transaction and removes stale ones after', () => {
    const fence = (from: string) => ({ pref: 990, fwmark: 0, mask: 0x1000, table: 7100, iif: 'eth0', from });
    const c = routingCommands(r, {
      rules: [
        fence('10.10.11.0/24'),
        { pref: 1000, fwmark: 0x10000, mask: 0xff0000, table: 7101 },
        { pref: 1000, fwmark: 0x90000, mask: 0xff0000, table: 7109 },
      ],
      tables: [7101, 7109],
    });
    expect(c.before).toEqual([
      // the forward fence's table is complete before its rules exist
      'route replace throw 10.10.10.0/24 table 7100',
      'route replace blackhole default table 7100',
      'route replace default via 192.168.1.2 dev eth0 table 7101',
      'route replace default via 192.168.1.3 dev eth0 table 7102',
      'rule add pref 990 from 10.10.12.0/24 iif eth0 fwmark 0x0/0x1000 table 7100',
      'rule add pref 1000 fwmark 0x20000/0xff0000 table 7102',
    ]);
    expect(c.after).toEqual(['rule del pref 1000 fwmark 0x90000/0xff0000 table 7109', 'route flush table 7109']);
  });

  it('parses route tables and addresses', () => {
    const routes = parseRouteTables(
      JSON.stringify([
        { dst: 'default', gateway: '192.168.1.2', dev: 'eth0', table: '7101' },
        { dst: '192.168.1.0/24', dev: 'eth0' },
        { dst: 'default', gateway: '192.168.1.254', dev: 'eth0' },
      ]),
    );
    expect([...routes]).toEqual([[7101, '192.168.1.2 eth0']]);
    const addrs = parseIpAddrs(
      JSON.stringify([
        {
          ifname: 'eth0',
          addr_info: [
            { family: 'inet', local: '192.168.1.1', prefixlen: 24 },
            { family: 'inet', local: '192.168.1.102', prefixlen: 32 },
            { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
          ],
        },
      ]),
    );
    expect(addrs).toEqual(['192.168.1.1/24', '192.168.1.102/32']);
  });

  it('address changes: add owned, remove floating IPs not owned, never the node IP or foreign addresses', () => {
    const c = addressCommands(
      ['192.168.1.100/32'],
      ['192.168.1.1/24', '192.168.1.101/32', '192.168.1.50/32'],
      ['192.168.1.100', '192.168.1.101', '192.168.1.1'],
      '192.168.1.1',
      'eth0',
    );
    expect(c).toEqual({ add: ['address add 192.168.1.100/32 dev eth0'], del: ['address del 192.168.1.101/32 dev eth0'] });
    expect(addressCommands(['192.168.1.100/32'], ['192.168.1.100/32'], ['192.168.1.100'], '192.168.1.1', 'eth0')).toEqual({ add: [], del: [] });
  });

  it("a holder removes a forwarded pair's bindings to an IP its policy no longer SNATs it to, while it keeps that IP (chaos seed 848037965)", () => {
    // node-3 holds both IPs and forwards for alice's pods on node-1 (10.10.10.1) and node-2 (10.10.11.1)
    const wide = {
      name: 'wide',
      rules: [{ namespaceSelector: { matchLabels: { user: 'alice' } } }],
      destinationCIDRs: ['0.0.0.0/0'],
      egressSourceIP: '192.168.1.101',
    };
    const on3 = (withWide: boolean, assignments = { '192.168.1.100': 'node-3', '192.168.1.101': 'node-3' }): GatewayPlan => {
      const base = input('node-3', assignments);
      return computeGatewayPlan({ ...base, policies: [base.policies[0]!, ...(withWide ? [wide] : [])] });
    };
    const both = on3(true);
    expect(Object.fromEntries(forwardedSnats(both))).toEqual({
      '10.10.10.1>8.8.8.0/24': 'egress@192.168.1.100',
      '10.10.10.1>9.9.9.9/32': 'egress@192.168.1.100',
      '10.10.11.1>8.8.8.0/24': 'egress@192.168.1.100',
      '10.10.11.1>9.9.9.9/32': 'egress@192.168.1.100',
      '10.10.10.1>0.0.0.0/0': 'wide@192.168.1.101',
      '10.10.11.1>0.0.0.0/0': 'wide@192.168.1.101',
    });
    // `wide` deleted, 192.168.1.101 still held here: its bindings go, only those (--reply-dst), and
    // the pairs' bindings to 192.168.1.100 (egress) stay
    expect(forwardedFlushArgs(forwardedSnats(both), on3(false))).toEqual([
      ['-D', '-s', '10.10.10.1', '-d', '0.0.0.0', '--mask-dst', '0.0.0.0', '--reply-dst', '192.168.1.101'],
      ['-D', '-s', '10.10.11.1', '-d', '0.0.0.0', '--mask-dst', '0.0.0.0', '--reply-dst', '192.168.1.101'],
    ]);
    // nothing changed; nothing known before (a new agent); a pair newly SNATed here (a take: the
    // replicated bindings it commits stay)
    expect(forwardedFlushArgs(forwardedSnats(both), on3(true))).toEqual([]);
    expect(forwardedFlushArgs(null, on3(false))).toEqual([]);
    const elsewhere = on3(true, { '192.168.1.100': 'node-3', '192.168.1.101': 'node-2' });
    expect(forwardedFlushArgs(forwardedSnats(elsewhere), both)).toEqual([]);
    // the IP released (moved to node-2): its traffic goes there, nothing here is removed
    expect(forwardedFlushArgs(forwardedSnats(both), elsewhere)).toEqual([]);
    // this node's own pods are not forwarded pairs (steeredPairs has them)
    const on1 = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1' }));
    expect([...forwardedSnats(on1).keys()]).toEqual(['10.10.11.1>8.8.8.0/24', '10.10.11.1>9.9.9.9/32']);
    // a node that SNATs nothing forwards nothing
    expect(forwardedSnats(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' }))).size).toBe(0);
  });

  it("a take's commits remove the bindings they bring to a held IP that is not their flows' (chaos seed 848038283)", () => {
    const wide = (name: string) => ({
      name,
      rules: [{ namespaceSelector: { matchLabels: { user: 'alice' } } }],
      destinationCIDRs: ['0.0.0.0/0'],
      egressSourceIP: '192.168.1.101',
    });
    const on2 = (assignments: Record<string, string>, wideName: string | null = null): GatewayPlan => {
      const base = input('node-2', assignments);
      // `wide` in place of `other` (two policies cannot share an egress IP)
      return computeGatewayPlan({ ...base, policies: [base.policies[0]!, wideName ? wide(wideName) : base.policies[1]!] });
    };
    const took = on2({ '192.168.1.100': 'node-2', '192.168.1.101': 'node-2' });
    // node-2 takes both IPs: its own pod's pairs and the ones it forwards, each with its IP and policy
    expect(Object.fromEntries([...snatIPs(took)].map(([k, v]) => [k, `${v.policy}@${v.ip}`]))).toEqual({
      '10.10.11.1>8.8.8.0/24': 'egress@192.168.1.100',
      '10.10.11.1>9.9.9.9/32': 'egress@192.168.1.100',
      '10.10.10.1>8.8.8.0/24': 'egress@192.168.1.100',
      '10.10.10.1>9.9.9.9/32': 'egress@192.168.1.100',
      '10.10.10.2>1.1.1.0/24': 'other@192.168.1.101',
    });
    expect(snatIPs(on2({ '192.168.1.100': 'node-1', '192.168.1.101': 'node-1' })).size).toBe(0);
    const lines = (plan: GatewayPlan) => misboundBindings(plan).map((b) => bindingDeleteArgs(b).join(' '));
    // no pair of a source SNATed here to a held IP: every binding of the source to it goes
    expect(lines(took)).toEqual([
      '-D -s 10.10.10.1 --reply-dst 192.168.1.101',
      '-D -s 10.10.11.1 --reply-dst 192.168.1.101',
      '-D -s 10.10.10.2 --reply-dst 192.168.1.100',
    ]);
    // one IP held: the same for the sources not SNATed here to it (x's policy is held by node-1);
    // a source whose every pair here is SNATed to it keeps all of its bindings to it
    expect(lines(on2({ '192.168.1.100': 'node-2', '192.168.1.101': 'node-1' }))).toEqual(['-D -s 10.10.10.2 --reply-dst 192.168.1.100']);
    // nothing held, nothing committed
    expect(lines(on2({ '192.168.1.100': 'node-1', '192.168.1.101': 'node-1' }))).toEqual([]);
    // a source with pairs to both IPs: a pair's bindings to the other IP go, unless a pair to that
    // IP from an EARLIER policy overlaps it (the ruleset decides a flow by the first policy listing it):
    // `egress` (8.8.8.0/24, 9.9.9.9/32 -> .100) before `wide` (0.0.0.0/0 -> .101): flows to 8.8.8.0/24
    // and 9.9.9.9 are .100's, the others .101's
    const after = on2({ '192.168.1.100': 'node-2', '192.168.1.101': 'node-2' }, 'wide');
    expect(lines(after)).toEqual([
      '-D -s 10.10.10.1 -d 8.8.8.0 --mask-dst 255.255.255.0 --reply-dst 192.168.1.101',
      '-D -s 10.10.10.1 -d 9.9.9.9 --mask-dst 255.255.255.255 --reply-dst 192.168.1.101',
      '-D -s 10.10.11.1 -d 8.8.8.0 --mask-dst 255.255.255.0 --reply-dst 192.168.1.101',
      '-D -s 10.10.11.1 -d 9.9.9.9 --mask-dst 255.255.255.255 --reply-dst 192.168.1.101',
    ]);
    // `a-wide` first: every flow of alice's pods is .101's, none is .100's
    const before = on2({ '192.168.1.100': 'node-2', '192.168.1.101': 'node-2' }, 'a-wide');
    expect(before.policies.map((p) => p.name)).toEqual(['a-wide', 'egress']);
    expect(lines(before)).toEqual([
      '-D -s 10.10.10.1 -d 0.0.0.0 --mask-dst 0.0.0.0 --reply-dst 192.168.1.100',
      '-D -s 10.10.11.1 -d 0.0.0.0 --mask-dst 0.0.0.0 --reply-dst 192.168.1.100',
    ]);
  });

  it('conntrack is flushed for flows entering or leaving gateway treatment, not for a holder move', () => {
    const a = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' }));
    const moved = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-3' }, ['node-2']));
    expect(changedPairs(steeredPairs(a), moved)).toEqual([]);
    const base = input('node-1', { '192.168.1.100': 'node-2' });
    const relabelled = computeGatewayPlan({ ...base, pods: base.pods.filter((p) => p.name !== 'fe') });
    expect(changedPairs(steeredPairs(a), relabelled)).toEqual([
      { src: '10.10.10.1', dst: '8.8.8.0/24' },
      { src: '10.10.10.1', dst: '9.9.9.9/32' },
    ]);
    const local = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1' }));
    expect(changedPairs(steeredPairs(a), local)).toHaveLength(2); // remote -> this node: the null SNAT binding must go
    expect(changedPairs(steeredPairs(local), a)).toHaveLength(2);
    // failing closed keeps the entries (it drops whatever they say): see the fenced-holder test
    const closed = computeGatewayPlan(input('node-1', {}));
    expect(changedPairs(steeredPairs(a), closed)).toEqual([]);
    // a pair that had no gateway treatment (masqueraded with the node IP) has its entries go
    const fresh = input('node-1', {});
    expect(changedPairs(new Map(), computeGatewayPlan(fresh))).toHaveLength(3);
    // both orientations: the pod's own entries, and those a reply de-NATed by a remote holder made
    expect(conntrackFlushArgs([{ src: '10.10.10.1', dst: '8.8.8.0/24' }])).toEqual([
      ['-D', '-s', '10.10.10.1', '-d', '8.8.8.0', '--mask-dst', '255.255.255.0'],
      ['-D', '-s', '8.8.8.0', '--mask-src', '255.255.255.0', '-d', '10.10.10.1'],
    ]);
  });
});

describe('forward fence: nothing from pods of other nodes is forwarded un-NATed, even with no nft hook', () => {
  it('the holder marks the traffic it will SNAT; every node blackholes unmarked forwarded pod traffic', () => {
    const holder = renderGateway(computeGatewayPlan(input('node-2', { '192.168.1.100': 'node-2' })));
    expect(holder.ruleset).toMatch(/iifname "eth0" ip saddr @p_egress_all ip daddr @p_egress_dst meta mark set meta mark \| 0x00001000/);
    // the mark comes before the early return of forwarded traffic
    expect(holder.ruleset.indexOf('0x00001000')).toBeLessThan(holder.ruleset.indexOf('iifname "eth0" return'));
    expect(holder.rules.filter((x) => x.table === 7100)).toEqual([
      { pref: 990, fwmark: 0, mask: 0x1000, table: 7100, iif: 'eth0', from: '10.10.10.0/24' },
      { pref: 990, fwmark: 0, mask: 0x1000, table: 7100, iif: 'eth0', from: '10.10.12.0/24' },
    ]);
    expect(holder.fenceThrow).toEqual(['10.10.11.0/24']);
    // a node that holds nothing marks nothing, and still fences
    const other = renderGateway(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' })));
    expect(other.ruleset).not.toContain('0x00001000');
    expect(other.rules.filter((x) => x.table === 7100).map((x) => x.from)).toEqual(['10.10.11.0/24', '10.10.12.0/24']);
  });
});

describe('the forward fence and the pod guard as a boot hook (renderBootFence)', () => {
  /** Runs the hook with `sh` and stand-ins for `ip` and `nft` first on PATH that record their arguments and stdin. */
  function runHook(text: string, fail: 'ip' | 'nft' | null = null): { code: number; ran: Record<string, { args: string; stdin: string[] }> } {
    const dir = mkdtempSync(join(tmpdir(), 'egresslab-bootfence-'));
    try {
      for (const cmd of ['ip', 'nft']) {
        writeFileSync(join(dir, cmd), `#!/bin/sh\necho "$*" > '${dir}/${cmd}.args'\ncat > '${dir}/${cmd}.stdin'\nexit ${cmd === fail ? 2 : 0}\n`);
        chmodSync(join(dir, cmd), 0o755);
      }
      writeFileSync(join(dir, 'hook.sh'), text);
      const r = spawnSync('sh', [join(dir, 'hook.sh')], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
      const ran: Record<string, { args: string; stdin: string[] }> = {};
      for (const cmd of ['ip', 'nft']) {
        if (!existsSync(join(dir, `${cmd}.args`))) continue;
        ran[cmd] = {
          args: readFileSync(join(dir, `${cmd}.args`), 'utf8').trim(),
          stdin: readFileSync(join(dir, `${cmd}.stdin`), 'utf8')
            .trim()
            .split('\n'),
        };
      }
      return { code: r.status ?? -1, ran };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('installs, in one ip batch, exactly the fence the agent applies: blackhole by default, throw for the own pods, one rule per peer', () => {
    const plan = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' }));
    const r = renderGateway(plan);
    const hook = renderBootFence(plan.podCIDRs, plan.peerPodCIDRs);
    const { code, ran } = runHook(hook);
    expect(code).toBe(0);
    expect(ran.ip?.args).toBe('-force -batch -');
    // the same lines the agent's own apply sends for its fence (routingCommands of the rendered fence)
    const fenceOnly = { rules: r.rules.filter((x) => x.table === 7100), routes: [], fenceThrow: r.fenceThrow };
    expect(ran.ip?.stdin).toEqual(routingCommands(fenceOnly, { rules: [], tables: [] }).before);
    expect(ran.ip?.stdin).toEqual([
      'route replace throw 10.10.10.0/24 table 7100',
      'route replace blackhole default table 7100',
      'rule add pref 990 from 10.10.11.0/24 iif eth0 fwmark 0x0/0x1000 table 7100',
      'rule add pref 990 from 10.10.12.0/24 iif eth0 fwmark 0x0/0x1000 table 7100',
    ]);
  });

  it("installs the pod guard with nft: the node's own pods reach only the other nodes' pods through the uplink until the agent lifts it", () => {
    const plan = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' }));
    const { ran } = runHook(renderBootFence(plan.podCIDRs, plan.peerPodCIDRs, 'ens4'));
    expect(ran.nft?.args).toBe('-f -');
    expect(ran.nft?.stdin.join('\n')).toBe(renderBootGuard(plan.podCIDRs, plan.peerPodCIDRs, 'ens4').trimEnd());
    expect(ran.nft?.stdin).toContain('    oifname "ens4" ip saddr { 10.10.10.0/24 } ip daddr != { 10.10.11.0/24, 10.10.12.0/24 } counter drop');
    expect(ran.nft?.stdin.slice(0, 3)).toEqual([`table ip ${BOOT_GUARD_TABLE}`, `delete table ip ${BOOT_GUARD_TABLE}`, `table ip ${BOOT_GUARD_TABLE} {`]);
    // a node alone in the cluster: its pods reach nothing through the uplink; a node without pods: no guard
    expect(renderBootGuard(['10.10.10.0/24'], [])).toContain('oifname "eth0" ip saddr { 10.10.10.0/24 } counter drop');
    expect(renderBootGuard([], ['10.10.11.0/24'])).toBe('');
  });

  it('a failing command fails the hook (the boot fails loudly, harness/lab/boot.ts); the guard goes in first', () => {
    const hook = renderBootFence(['10.10.10.0/24'], ['10.10.11.0/24']);
    const nftFails = runHook(hook, 'nft');
    expect(nftFails.code).toBe(1);
    expect(nftFails.ran.ip).toBeUndefined();
    const ipFails = runHook(hook, 'ip');
    expect(ipFails.code).toBe(1);
    expect(ipFails.ran.nft?.args).toBe('-f -');
  });

  it('the guard replaces itself when the hook runs again (one drop rule, not two)', () => {
    const text = renderBootGuard(['10.10.10.0/24'], ['10.10.11.0/24']).split('\n');
    expect(text.slice(0, 3)).toEqual([`table ip ${BOOT_GUARD_TABLE}`, `delete table ip ${BOOT_GUARD_TABLE}`, `table ip ${BOOT_GUARD_TABLE} {`]);
    // the forward guard and the pickup drop, once each
    expect(text.filter((l) => l.includes('drop'))).toHaveLength(2);
  });

  it('a node without peers has no forward fence (no ip at all, like the agent), a node without pods no guard; the text depends only on the CIDRs', () => {
    expect(routingCommands({ rules: [], routes: [], fenceThrow: ['10.10.10.0/24'] }, { rules: [], tables: [] }).before).toEqual([]);
    expect(Object.keys(runHook(renderBootFence(['10.10.10.0/24'], [])).ran)).toEqual(['nft']);
    expect(runHook(renderBootFence([], []))).toEqual({ code: 0, ran: {} });
    expect(renderBootFence(['10.10.10.0/24'], ['10.10.11.0/24'])).toBe(renderBootFence(['10.10.10.0/24'], ['10.10.11.0/24']));
    expect(renderBootFence(['10.10.10.0/24'], ['10.10.11.0/24'])).not.toBe(renderBootFence(['10.10.10.0/24'], ['10.10.11.0/24', '10.10.12.0/24']));
  });
});

describe('a fail-closed drop keeps the conntrack entries made before it (the connections resume when the treatment comes back)', () => {
  // chaos seed 1937633441: node-1, holder of 192.168.1.100 for its own pod, fenced for ~2 s
  const held = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1' }));
  const fenced = computeGatewayPlan({ ...input('node-1', { '192.168.1.100': 'node-1' }), fenced: true });

  it('holder fenced and back: no pair of its own pods is flushed at either step', () => {
    expect(fenced.policies.find((p) => p.name === 'egress')).toMatchObject({ action: 'drop', localSources: ['10.10.10.1'] });
    const t0 = treatmentsAfter(null, held);
    expect(changedPairs(t0, fenced)).toEqual([]);
    const t1 = treatmentsAfter(t0, fenced);
    expect(t1).toEqual(t0); // what the entries stand for did not change
    expect(changedPairs(t1, held)).toEqual([]);
    expect(transitionPlan(fenced, held)).toBeNull();
  });

  it('back under another treatment, or another floating IP: flushed then, against what was before the drop', () => {
    const t1 = treatmentsAfter(treatmentsAfter(null, held), fenced);
    // the controller moved the IP away meanwhile: the SNAT bindings made here must go
    const routed = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' }));
    expect(changedPairs(t1, routed)).toEqual([
      { src: '10.10.10.1', dst: '8.8.8.0/24' },
      { src: '10.10.10.1', dst: '9.9.9.9/32' },
    ]);
    // same policy, same action, another egressSourceIP: a binding to the old IP is wrong
    const base = input('node-1', { '192.168.1.100': 'node-1', '192.168.1.102': 'node-1' });
    const moved = computeGatewayPlan({
      ...base,
      gateway: { ...base.gateway!, floatingIPs: ['192.168.1.100', '192.168.1.101', '192.168.1.102'] },
      policies: base.policies.map((p) => (p.name === 'egress' ? { ...p, egressSourceIP: '192.168.1.102' } : p)),
    });
    expect(moved.policies.find((p) => p.name === 'egress')).toMatchObject({ action: 'local', egressSourceIP: '192.168.1.102' });
    expect(changedPairs(t1, moved)).toHaveLength(2);
  });

  it('a pair dropped from the start keeps nothing: it is flushed when it gets a treatment (its entries were masqueraded)', () => {
    const t = treatmentsAfter(null, fenced);
    expect(t.get('10.10.10.1>8.8.8.0/24')).toBe('egress:drop');
    expect(changedPairs(t, held)).toHaveLength(2);
  });

  it('a pod that moves to another policy while dropped is flushed when that policy serves it', () => {
    const t1 = treatmentsAfter(treatmentsAfter(null, held), fenced);
    // fe leaves "egress" for "other" (selected by app=x), still fenced: dropped, entries kept
    const moved = (f: boolean) => {
      const b = input('node-1', { '192.168.1.100': 'node-1', '192.168.1.101': 'node-1' });
      return computeGatewayPlan({
        ...b,
        fenced: f,
        pods: b.pods.map((p) => (p.name === 'fe' ? { ...p, namespace: 'default', labels: { app: 'x' } } : p)),
        policies: b.policies.map((p) => (p.name === 'other' ? { ...p, destinationCIDRs: ['8.8.8.0/24', '9.9.9.9/32'] } : p)),
      });
    };
    const dropped = moved(true);
    expect(dropped.policies.find((p) => p.name === 'other')).toMatchObject({ action: 'drop', localSources: ['10.10.10.1', '10.10.10.2'] });
    const t2 = treatmentsAfter(t1, dropped);
    expect(t2.get('10.10.10.1>8.8.8.0/24')).toBe('egress:local@192.168.1.100');
    expect(changedPairs(t2, moved(false)).filter((c) => c.src === '10.10.10.1')).toEqual([
      { src: '10.10.10.1', dst: '8.8.8.0/24' },
      { src: '10.10.10.1', dst: '9.9.9.9/32' },
    ]);
  });

  it('after a commit that failed part way, the pairs it was changing are flushed at the next apply, dropped or not', () => {
    const routed = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' }));
    const t0 = treatmentsAfter(null, held);
    const failed = treatmentsAfterFailure(t0, routed);
    expect(failed.get('10.10.10.1>8.8.8.0/24')).toBe(UNKNOWN_TREATMENT);
    expect(failed.get('10.10.10.2>1.1.1.0/24')).toBe(t0.get('10.10.10.2>1.1.1.0/24')); // not changing: as before
    // a drop keeps the unknown state; the treatment after it, even the one before the failure, flushes
    const t1 = treatmentsAfter(failed, fenced);
    expect(t1.get('10.10.10.1>8.8.8.0/24')).toBe(UNKNOWN_TREATMENT);
    expect(changedPairs(t1, held)).toHaveLength(2);
  });

  it('a pair leaving while dropped still gets the fail-closed transition and its flush (its entries were kept)', () => {
    const base = { ...input('node-1', { '192.168.1.100': 'node-1' }), fenced: true };
    const deleted = computeGatewayPlan({ ...base, policies: base.policies.filter((p) => p.name !== 'egress') });
    const t = transitionPlan(fenced, deleted)!;
    expect(leavingPairs(t, deleted)).toEqual([
      { src: '10.10.10.1', dst: '8.8.8.0/24' },
      { src: '10.10.10.1', dst: '9.9.9.9/32' },
    ]);
    expect(changedPairs(treatmentsAfter(treatmentsAfter(null, held), fenced), deleted)).toHaveLength(2);
  });
});

describe('leaving gateway treatment: fail closed until the old conntrack entries are gone', () => {
  const a = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' }));

  it('a deleted policy: the transition plan drops and guards its old pairs; the final plan does not', () => {
    const base = input('node-1', { '192.168.1.100': 'node-2' });
    const next = computeGatewayPlan({ ...base, policies: base.policies.filter((p) => p.name !== 'egress') });
    const t = transitionPlan(a, next)!;
    expect(t).not.toBeNull();
    const extra = t.policies.slice(next.policies.length);
    expect(extra).toMatchObject([
      { name: 'egress~leaving', action: 'drop', localSources: ['10.10.10.1'], destinations: ['8.8.8.0/24', '9.9.9.9/32'], snatHere: false },
    ]);
    // the deleted policy's own sets and guard chain, refilled with its leaving pairs in place: none
    // created (a created interval set misses lookups for a moment; a missed leaving pair's packet
    // would go by its old entry, un-NATed, unjudged)
    const pre = chain(renderGateway(t).ruleset, 'prerouting');
    expect(pre.some((l) => l.startsWith('ip saddr @p_egress_src ip daddr @p_egress_dst counter drop'))).toBe(true);
    expect(chain(renderGateway(t).ruleset, 'p_egress_guard').join('\n')).toMatch(/^\s*counter drop/);
    const refill = inPlaceReplace(renderGateway(t).ruleset, afterCommit(new Map(), renderGateway(a).ruleset));
    for (const set of ['p_egress_src', 'p_egress_all', 'p_egress_dst']) expect(refill).toContain(`flush set ip egresslab_gw ${set}\n`);
    // no set of the transition's table is created: each one was in the last table
    const sets = [...renderGateway(t).ruleset.matchAll(/^\tset (\S+) \{/gm)].map((m) => m[1]!);
    expect(sets.filter((x) => !new RegExp(`^flush set (ip|arp) egresslab_gw ${x.replace(/[./]/g, '\\$&')}$`, 'm').test(refill))).toEqual([]);
    expect(leavingPairs(t, next)).toEqual([
      { src: '10.10.10.1', dst: '8.8.8.0/24' },
      { src: '10.10.10.1', dst: '9.9.9.9/32' },
    ]);
  });

  it('a policy that keeps some pairs: its leaving pairs fill the empty sets every table has for them, none is created', () => {
    const base = input('node-1', { '192.168.1.100': 'node-2' });
    // egress loses 9.9.9.9/32: the pair 10.10.10.1 > 9.9.9.9/32 leaves, the policy stays
    const next = computeGatewayPlan({ ...base, policies: base.policies.map((p) => (p.name === 'egress' ? { ...p, destinationCIDRs: ['8.8.8.0/24'] } : p)) });
    const t = transitionPlan(a, next)!;
    expect(t.policies.map((p) => p.name)).toEqual(['egress', 'other', 'egress~leaving']);
    const before = renderGateway(a).ruleset;
    expect(before).toContain('set p_egress/leaving_dst { type ipv4_addr; flags interval; }');
    const during = renderGateway(t).ruleset;
    expect(during).toContain('set p_egress/leaving_dst { type ipv4_addr; flags interval; elements = { 9.9.9.9/32 } }');
    expect(chain(during, 'prerouting')).toContain(
      'ip saddr @p_egress/leaving_src ip daddr @p_egress/leaving_dst counter drop comment "policy egress~leaving: fail-closed (leaving the policy: dropped until its conntrack entries are flushed)"',
    );
    const refill = inPlaceReplace(during, afterCommit(new Map(), before));
    const sets = [...during.matchAll(/^\tset (\S+) \{/gm)].map((m) => m[1]!);
    expect(sets).toContain('p_egress/leaving_src');
    expect(sets.filter((x) => !new RegExp(`^flush set (ip|arp) egresslab_gw ${x.replace(/[./]/g, '\\$&')}$`, 'm').test(refill))).toEqual([]);
  });

  it('after the last policy is deleted, a local pod packet conntrack declares invalid is still dropped (no NAT would give it a source)', () => {
    // the leak this closes: the stream's entry flushed on the deletion, its next FIN/RST or
    // out-of-window segment gets no entry, no NAT, and no policy guard any more
    const base = input('node-1', { '192.168.1.100': 'node-2' });
    const none = computeGatewayPlan({ ...base, policies: [] });
    expect(none.policies).toEqual([]);
    const r = renderGateway(none).ruleset;
    expect(chain(r, 'guard')).toEqual([
      'type filter hook postrouting priority srcnat + 10; policy accept;',
      'oifname != "eth0" return',
      'ct state invalid ip saddr @podcidrs counter drop comment "conntrack-invalid pod packet: no NAT decided its source"',
    ]);
    expect(r).toContain('set podcidrs { type ipv4_addr; flags interval; elements = { 10.10.10.0/24 } }');
    // the transition plan of that deletion has it too, after the leaving policy's own guard jumps
    const g = chain(renderGateway(transitionPlan(a, none)!).ruleset, 'guard');
    expect(g.at(-1)).toBe(chain(r, 'guard').at(-1));
    expect(g.slice(0, -1).some((l) => l.startsWith('ct state invalid,untracked ip saddr @p'))).toBe(true);
  });

  it('a narrowed destination list holds back only the pairs that leave', () => {
    const base = input('node-1', { '192.168.1.100': 'node-2' });
    const narrowed = computeGatewayPlan({
      ...base,
      policies: base.policies.map((p) => (p.name === 'egress' ? { ...p, destinationCIDRs: ['8.8.8.0/24'] } : p)),
    });
    expect(leavingPairs(transitionPlan(a, narrowed)!, narrowed)).toEqual([{ src: '10.10.10.1', dst: '9.9.9.9/32' }]);
  });

  it('nothing leaves on a holder move, a fail-closed policy, or the first plan', () => {
    expect(transitionPlan(a, computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-3' })))).toBeNull();
    expect(transitionPlan(a, computeGatewayPlan(input('node-1', {})))).toBeNull();
    expect(transitionPlan(null, a)).toBeNull();
  });
});

describe("a floating IP never reaches a node's own stack", () => {
  it('every node drops TCP/UDP addressed to a floating IP in input (no RST for a reply conntrack did not de-NAT), held or not', () => {
    const silenced = [
      'type filter hook input priority filter; policy accept;',
      expect.stringMatching(/^ip daddr \{ 192\.168\.1\.100, 192\.168\.1\.101 \} meta l4proto \{ tcp, udp \} counter drop comment "floating IP/),
    ];
    // (the fixture's gateway lists .100 and .101; .101 is assigned to nobody)
    const holder = renderGateway(computeGatewayPlan(input('node-2', { '192.168.1.100': 'node-2' })));
    expect(chain(holder.ruleset, 'input')).toEqual(silenced);
    // a node releasing the IP applies this ruleset while the address is still on its uplink (it
    // goes at the end of the apply), and the release's purge deletes its bindings: replies still
    // routed here must not meet the local stack either (session 38)
    const other = renderGateway(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' })));
    expect(chain(other.ruleset, 'input')).toEqual(silenced);
    // without a gateway, no chain
    expect(renderGateway(computeGatewayPlan({ ...input('node-1', {}), gateway: null })).ruleset).not.toContain('chain input');
  });
});

describe('a floating IP this node does not hold: its traffic is hairpinned untracked (chaos seed 848038198)', () => {
  it("every node renders the raw-priority hairpin chain for the gateway's floating IPs; the kernel decides what is local", () => {
    const hairpin = [
      'type filter hook prerouting priority raw; policy accept;',
      expect.stringMatching(
        /^iifname "eth0" ip daddr \{ 192\.168\.1\.100, 192\.168\.1\.101 \} fib daddr type != local counter notrack comment "floating IP not held here/,
      ),
    ];
    // the holder and a node that holds nothing render the same chain: the address on the uplink is what differs
    expect(chain(renderGateway(computeGatewayPlan(input('node-2', { '192.168.1.100': 'node-2' }))).ruleset, 'hairpin')).toEqual(hairpin);
    expect(chain(renderGateway(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' }))).ruleset, 'hairpin')).toEqual(hairpin);
  });

  it('no chain without floating IPs; the uplink name is used', () => {
    const none = computeGatewayPlan(input('node-1', {}));
    expect(renderGateway({ ...none, floatingIPs: [] }).ruleset).not.toContain('chain hairpin');
    expect(chain(renderGateway(none, { uplink: 'ens5' }).ruleset, 'hairpin')[1]).toMatch(/^iifname "ens5" ip daddr/);
  });
});

describe("a holder drops its own pods' replies that another kernel already de-NATed", () => {
  // node-1 has matched pods of both policies (10.10.10.1 for egress, 10.10.10.2 for other)
  const stray = (name: string) =>
    `iifname "eth0" ip saddr @p_${name}_dst ip daddr @p_${name}_src ct state new tcp flags & (syn | ack) != syn counter drop comment "policy ${name}: reply de-NATed by another kernel"`;

  it('rendered first in prerouting for each policy SNATed here, never on a node that only routes', () => {
    const holder = renderGateway(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1' })));
    const pre = chain(holder.ruleset, 'prerouting');
    expect(pre[1]).toBe(stray('egress'));
    expect(pre.filter((l) => l.includes('de-NATed by another kernel'))).toEqual([stray('egress')]);
    expect(pre.indexOf(stray('egress'))).toBeLessThan(pre.findIndex((l) => l.startsWith('iifname "eth0" return')));
    const router = renderGateway(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' })));
    expect(router.ruleset).not.toContain('de-NATed by another kernel');
  });

  it('inserted into the current table before a commit, for every policy with local pods that the table does not SNAT here', () => {
    // the commit brings the whole external cache: bindings of the IP being taken and, until its
    // purge, of IPs held elsewhere: every policy routed from here
    const before = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2', '192.168.1.101': 'node-2' }));
    expect(renderStrayReplyFence(before)!.split('\n').filter(Boolean)).toEqual([
      `insert rule ip egresslab_gw prerouting ${stray('egress')}`,
      `insert rule ip egresslab_gw prerouting ${stray('other')}`,
    ]);
    // holding .100 already: that policy has its drop in the table; the other one is routed
    const holding = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1', '192.168.1.101': 'node-2' }));
    expect(renderStrayReplyFence(holding)).toBe(`insert rule ip egresslab_gw prerouting ${stray('other')}\n`);
    // node-3 has no matched pod: nothing of its own to protect
    expect(renderStrayReplyFence(computeGatewayPlan(input('node-3', { '192.168.1.100': 'node-2' })))).toBeNull();
    // holding every IP: nothing routed elsewhere to protect
    expect(renderStrayReplyFence(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1', '192.168.1.101': 'node-1' })))).toBeNull();
    // no previous plan (a restarted agent, whose pods' connections outlived its predecessor): from
    // the plan it is about to commit, addresses written out (the current table's set indices are the
    // previous agent's), every policy with local pods
    const next = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1', '192.168.1.101': 'node-2' }));
    expect(renderStrayReplyFence(null, { next })!.split('\n').filter(Boolean)).toEqual([
      'insert rule ip egresslab_gw prerouting iifname "eth0" ip saddr { 8.8.8.0/24, 9.9.9.9/32 } ip daddr { 10.10.10.1 } ct state new tcp flags & (syn | ack) != syn counter drop comment "policy egress: reply de-NATed by another kernel"',
      'insert rule ip egresslab_gw prerouting iifname "eth0" ip saddr { 1.1.1.0/24 } ip daddr { 10.10.10.2 } ct state new tcp flags & (syn | ack) != syn counter drop comment "policy other: reply de-NATed by another kernel"',
    ]);
    // no local pod; neither plan known
    expect(renderStrayReplyFence(null, { next: computeGatewayPlan(input('node-3', { '192.168.1.100': 'node-3' })) })).toBeNull();
    expect(renderStrayReplyFence(null)).toBeNull();
    expect(() => renderStrayReplyFence(before, { uplink: 'eth0; drop' })).toThrow(/invalid interface name/);
  });
});

describe("a local pod's flow is never picked up mid-stream from the uplink unless a holder will SNAT its answers", () => {
  // node-1: 10.10.10.1 in egress (192.168.1.100), 10.10.10.2 in other (192.168.1.101)
  const keep = (name: string) => `iifname "eth0" ip saddr @p_${name}_dst ip daddr @p_${name}_src ${MID} return`;
  const inbound = (plan: GatewayPlan) => {
    const pre = chain(renderGateway(plan).ruleset, 'prerouting');
    return pre.slice(
      1,
      pre.findIndex((l) => l.startsWith('iifname "eth0" return')),
    );
  };

  it('kept for the pairs routed to a holder (their answers are marked and SNATed there), dropped for every other', () => {
    expect(inbound(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2', '192.168.1.101': 'node-3' })))).toEqual([
      keep('egress'),
      keep('other'),
      podPickupDrop,
    ]);
    // other's IP unassigned: its pairs are dropped (fail-closed) and not kept
    expect(inbound(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' })))).toEqual([keep('egress'), podPickupDrop]);
  });

  it("a local policy's pairs are dropped by its own stray-reply rule first; with no policy at all the drop stays", () => {
    const local = inbound(computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1', '192.168.1.101': 'node-3' })));
    expect(local[0]).toMatch(
      /^iifname "eth0" ip saddr @p_egress_dst ip daddr @p_egress_src ct state new .* drop comment "policy egress: reply de-NATed by another kernel"/,
    );
    // no keep rule for the local policy's pairs (its stray-reply drop, then other's keep)
    expect(local).toHaveLength(4);
    expect(local.slice(1)).toEqual([
      expect.stringMatching(/^iifname "eth0" ip saddr @p_egress_all ip daddr @p_egress_dst meta mark set/),
      keep('other'),
      podPickupDrop,
    ]);
    const none = computeGatewayPlan({ ...input('node-1', {}), policies: [] });
    expect(inbound(none)).toEqual([podPickupDrop]);
    // the pairs of a deleted policy, during the deletion's transition too (their flush comes next)
    const before = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2', '192.168.1.101': 'node-3' }));
    expect(inbound(transitionPlan(before, none)!)).toEqual([podPickupDrop]);
  });

  it('a node without matched pods keeps nothing but drops still', () => {
    expect(inbound(computeGatewayPlan(input('node-3', { '192.168.1.100': 'node-2' })))).toEqual([podPickupDrop]);
  });

  it('the cluster set has no overlapping elements (nft refuses them: the whole transaction would fail)', () => {
    const text = renderBootGuard(['10.10.10.0/24', '10.10.10.0/24'], ['10.10.0.0/16', '10.10.11.0/24']);
    expect(text).toContain(`iifname "eth0" ip daddr { 10.10.10.0/24 } ip saddr != { 10.10.0.0/16 } ${MID} counter drop`);
  });

  it("the boot guard drops the same pickups until the agent's first apply, to its own pod CIDRs", () => {
    const text = renderBootGuard(['10.10.10.0/24'], ['10.10.11.0/24']).split('\n');
    const pre = text.slice(text.indexOf('  chain prerouting {') + 1, text.indexOf('  chain prerouting {') + 3).map((l) => l.trim());
    expect(pre).toEqual([
      'type filter hook prerouting priority mangle - 10; policy accept;',
      `iifname "eth0" ip daddr { 10.10.10.0/24 } ip saddr != { 10.10.10.0/24, 10.10.11.0/24 } ${MID} counter drop ${PICKUP_COMMENT}`,
    ]);
  });
});

describe("the takeover window: a new holder's own pods make no entry of their own until their bindings are re-committed", () => {
  const win = (name: string) =>
    `ip saddr @p_${name}_src ip daddr @p_${name}_dst ct state new tcp flags & (syn | ack) != syn counter drop comment "policy ${name}: takeover window, binding not committed yet"`;
  const stray = (name: string) =>
    `iifname "eth0" ip saddr @p_${name}_dst ip daddr @p_${name}_src ct state new tcp flags & (syn | ack) != syn counter drop comment "policy ${name}: reply de-NATed by another kernel"`;
  const replyMade = (name: string, srcs = '10.10.10.1') =>
    `ip saddr { ${srcs} } ip daddr @p_${name}_dst ct direction reply counter drop comment "policy ${name}: entry made by a reply while routed (no NAT), flushed next"`;

  it('one drop per policy now SNATed here that has a changed pair, in a chain of its own that one command deletes', () => {
    const before = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2', '192.168.1.101': 'node-2' }));
    const after = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1', '192.168.1.101': 'node-2' }));
    const changed = changedPairs(steeredPairs(before), after);
    expect(changed.length).toBeGreaterThan(0);
    const w = renderTakeoverWindow(after, changed)!;
    expect(w.split('\n')).toEqual([
      'table ip egresslab_gw {',
      '\tchain takeover_window {',
      '\t\ttype filter hook prerouting priority mangle - 10; policy accept;',
      `\t\t${win('egress')}`,
      // the pods' segments of entries a reply made while the pair was routed: no NAT, no guard
      `\t\t${replyMade('egress')}`,
      // other (.101 on node-2) is routed from here: the re-commit brings its bindings too
      `\t\t${stray('other')}`,
      '\t}',
      '}',
      '',
    ]);
    expect(renderTakeoverWindowEnd()).toBe('delete chain ip egresslab_gw takeover_window\n');
    // taking both IPs: both policies
    const both = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1', '192.168.1.101': 'node-1' }));
    expect(
      renderTakeoverWindow(both, changedPairs(steeredPairs(before), both))!
        .split('\n')
        .filter((l) => l.includes('takeover window')),
    ).toEqual([`\t\t${win('egress')}`, `\t\t${win('other')}`]);
  });

  it('a change that makes pairs local without a re-commit holds only the segments of entries a reply made (session 38)', () => {
    const before = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2', '192.168.1.101': 'node-2' }));
    const after = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1', '192.168.1.101': 'node-2' }));
    const w = renderChangeoverWindow(after, changedPairs(steeredPairs(before), after))!;
    expect(w.split('\n').filter((l) => l.startsWith('\t\t') && !l.includes('type filter'))).toEqual([`\t\t${replyMade('egress')}`]);
    // the same chain, so the same command ends it
    expect(w).toContain('chain takeover_window {');
    // a change that makes nothing local (routed to another holder): no window
    const moved = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-3', '192.168.1.101': 'node-2' }));
    expect(renderChangeoverWindow(moved, changedPairs(steeredPairs(before), moved))).toBeNull();
    expect(renderChangeoverWindow(after, [])).toBeNull();
  });

  it("a re-commit also fences the replies of the pods' connections through IPs held elsewhere, until its purge", () => {
    // node-1 lets .100 go to node-2 while taking nothing: every policy is routed (or fail-closed) from here
    const held = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1', '192.168.1.101': 'node-3' }));
    const routed = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2', '192.168.1.101': 'node-3' }));
    const changed = changedPairs(steeredPairs(held), routed);
    expect(changed.length).toBeGreaterThan(0);
    expect(
      renderTakeoverWindow(routed, changed)!
        .split('\n')
        .filter((l) => l.startsWith('\t\t') && !l.includes('type filter')),
    ).toEqual([`\t\t${stray('egress')}`, `\t\t${stray('other')}`]);
    expect(() => renderTakeoverWindow(routed, changed, { uplink: 'eth0; drop' })).toThrow(/invalid interface name/);
  });

  it('none when nothing changed, when the changed pairs are routed elsewhere, or for a node without matched pods', () => {
    const held = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-1' }));
    expect(renderTakeoverWindow(held, changedPairs(steeredPairs(held), held))).toBeNull();
    const routedBefore = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-2' }));
    const routedAfter = computeGatewayPlan(input('node-1', { '192.168.1.100': 'node-3' }));
    expect(renderTakeoverWindow(routedAfter, changedPairs(steeredPairs(routedBefore), routedAfter))).toBeNull();
    const n3 = computeGatewayPlan(input('node-3', { '192.168.1.100': 'node-3' }));
    expect(renderTakeoverWindow(n3, changedPairs(steeredPairs(computeGatewayPlan(input('node-3', { '192.168.1.100': 'node-2' }))), n3))).toBeNull();
  });
});
