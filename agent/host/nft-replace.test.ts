import { describe, expect, it } from 'vitest';
import { computeGatewayPlan, type ModelInput } from '../gateway/model.js';
import { renderGateway, renderGatewayRemoval, renderTakeoverWindow } from '../gateway/render.js';
import { defaultMasqConfig } from '../masq/config.js';
import { renderMasqRuleset } from '../masq/render.js';
import { afterCommit, inPlaceReplace, listedDefinition, tableDefinitions, type TableDefinition } from './nft-replace.js';

const NODES = [
  { name: 'node-1', ip: '192.168.1.1', subnet: '192.168.1.0/24', podCIDRs: ['10.10.10.0/24'] },
  { name: 'node-2', ip: '192.168.1.2', subnet: '192.168.1.0/24', podCIDRs: ['10.10.11.0/24'] },
  { name: 'node-3', ip: '192.168.1.3', subnet: '192.168.1.0/24', podCIDRs: ['10.10.12.0/24'] },
];
const POLICY = (name: string, ip: string, dst: string) => ({
  name,
  rules: [{ namespaceSelector: { matchLabels: { user: 'alice' } } }],
  destinationCIDRs: [dst],
  egressSourceIP: ip,
});

/** node-2's gateway model: `fo-a` (192.168.1.100) held by `holderA`, and optionally `fo-b` (192.168.1.101) held here. */
function input(holderA: string, withB = true): ModelInput {
  return {
    self: { name: 'node-2', ip: '192.168.1.2' },
    nodes: NODES,
    gateway: {
      floatingIPs: ['192.168.1.100', '192.168.1.101'],
      assignments: { '192.168.1.100': holderA, '192.168.1.101': 'node-2' },
      nodes: { 'node-1': 'Up', 'node-2': 'Up', 'node-3': 'Up' },
    },
    policies: [POLICY('fo-a', '192.168.1.100', '8.8.8.0/24'), ...(withB ? [POLICY('fo-b', '192.168.1.101', '8.8.4.0/24')] : [])],
    pods: [{ namespace: 'alice', name: 'fe', labels: {}, ip: '10.10.11.1', nodeName: 'node-2', hostNetwork: false, terminated: false }],
    namespaces: [{ name: 'alice', labels: { user: 'alice' } }],
    networkPolicies: [],
  };
}
const gw = (holderA: string, withB = true): string => renderGateway(computeGatewayPlan(input(holderA, withB)), { aliveTimeoutMs: 0 }).ruleset;

const committed = (...rulesets: string[]): Map<string, TableDefinition> => rulesets.reduce((m, r) => afterCommit(m, r), new Map<string, TableDefinition>());

describe('tableDefinitions', () => {
  it("reads the gateway's two tables, their sets (declarations without elements) and chains (base-chain headers)", () => {
    const defs = tableDefinitions(gw('node-1'));
    expect(defs.map((d) => `${d.family} ${d.name}`)).toEqual(['ip egresslab_gw', 'arp egresslab_gw']);
    const ip = defs[0]!;
    expect([...ip.sets.keys()]).toEqual([
      'podcidrs',
      'clusterpods',
      'p_fo-a_src',
      'p_fo-a_all',
      'p_fo-a_dst',
      'p_fo-b_src',
      'p_fo-b_all',
      'p_fo-b_dst',
      // empty until a transition fills them with the pairs leaving the policy (render.ts setPrefixes)
      'p_fo-a/leaving_src',
      'p_fo-a/leaving_all',
      'p_fo-a/leaving_dst',
      'p_fo-b/leaving_src',
      'p_fo-b/leaving_all',
      'p_fo-b/leaving_dst',
    ]);
    expect(ip.sets.get('p_fo-a_dst')).toBe('set p_fo-a_dst { type ipv4_addr flags interval }');
    expect(ip.chains.get('prerouting')).toBe('type filter hook prerouting priority -160; policy accept;');
    expect(ip.chains.get('p_fo-a_guard')).toBe('');
  });

  it("reads the masquerade table's multi-line sets", () => {
    const r = renderMasqRuleset(defaultMasqConfig(), { podCidrs: ['10.10.11.0/24'] }).ruleset;
    const [d] = tableDefinitions(r);
    expect(d!.sets.get('nonmasq')).toBe('set nonmasq { type ipv4_addr flags interval }');
    expect([...d!.chains.keys()]).toEqual(['postrouting']);
  });

  it('a later block of the same table in the same ruleset is an addition (the takeover window), not its definition', () => {
    const r = gw('node-2', true);
    // the window as the gateway module appends it to the ruleset (a policy this node SNATs)
    const plan = computeGatewayPlan(input('node-2'));
    const window = renderTakeoverWindow(plan, [{ src: '10.10.11.1', dst: '8.8.4.0/24' }]);
    expect(window, 'a takeover window for fo-b, held here').toContain('chain takeover_window');
    const withWindow = `${r}${window}`;
    const defs = tableDefinitions(withWindow);
    expect(defs[0]!.chains.has('takeover_window')).toBe(false);
    expect(defs[0]!.sets.has('p_fo-a_dst')).toBe(true);
  });
});

// what `nft -s list table` (nft 1.0.6, kernel 6.18) printed in a lab container for the gateway table
// gw('node-1') renders (node-2's table, fo-a held by node-1), rules left out (they do not define the table)
const LISTED = `table ip egresslab_gw {
\tcomment "egresslab egress gateway (node-2)"
\tset podcidrs {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.10.11.0/24 }
\t}

\tset clusterpods {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.10.10.0/24, 10.10.11.0/24,
\t\t\t     10.10.12.0/24 }
\t}

\tset p_fo-a_src {
\t\ttype ipv4_addr
\t\telements = { 10.10.11.1 }
\t}

\tset p_fo-a_all {
\t\ttype ipv4_addr
\t\telements = { 10.10.11.1 }
\t}

\tset p_fo-a_dst {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 8.8.8.0/24 }
\t}

\tset p_fo-b_src {
\t\ttype ipv4_addr
\t\telements = { 10.10.11.1 }
\t}

\tset p_fo-b_all {
\t\ttype ipv4_addr
\t\telements = { 10.10.11.1 }
\t}

\tset p_fo-b_dst {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 8.8.4.0/24 }
\t}

\tset p_fo-a/leaving_src {
\t\ttype ipv4_addr
\t}

\tset p_fo-a/leaving_all {
\t\ttype ipv4_addr
\t}

\tset p_fo-a/leaving_dst {
\t\ttype ipv4_addr
\t\tflags interval
\t}

\tset p_fo-b/leaving_src {
\t\ttype ipv4_addr
\t}

\tset p_fo-b/leaving_all {
\t\ttype ipv4_addr
\t}

\tset p_fo-b/leaving_dst {
\t\ttype ipv4_addr
\t\tflags interval
\t}

\tchain prerouting {
\t\ttype filter hook prerouting priority mangle - 10; policy accept;
\t\tip saddr != { 10.10.10.0-10.10.12.255 } return
\t}

\tchain egress_snat {
\t\ttype nat hook postrouting priority srcnat - 10; policy accept;
\t}

\tchain guard {
\t\ttype filter hook postrouting priority srcnat + 10; policy accept;
\t}

\tchain p_fo-a_guard {
\t}

\tchain p_fo-b_guard {
\t}

\tchain hairpin {
\t\ttype filter hook prerouting priority raw; policy accept;
\t}

\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t}
}
`;

describe('listedDefinition: the kernel listing of a table defines it as the rendered text does', () => {
  it("the gateway table as listed has the rendered definition's sets and chains, declaration for declaration", () => {
    const listed = listedDefinition(LISTED, 'ip', 'egresslab_gw')!;
    const rendered = tableDefinitions(gw('node-1'))[0]!;
    expect(Object.fromEntries(listed.sets)).toEqual(Object.fromEntries(rendered.sets));
    expect(Object.fromEntries(listed.chains)).toEqual(Object.fromEntries(rendered.chains));
    // so an agent that learnt it from the kernel refills it in place
    const text = inPlaceReplace(gw('node-3'), new Map([['ip egresslab_gw', listed]]));
    expect(text).toContain('table ip egresslab_gw {}\nflush table ip egresslab_gw\nflush set ip egresslab_gw podcidrs\n');
    expect(text).not.toMatch(/^delete (table|set|chain) ip egresslab_gw/m);
  });
  it('a priority the kernel lists as a number is the one a renderer names (srcnat + 20 is 120)', () => {
    const a = listedDefinition('table ip x {\n\tchain c {\n\t\ttype filter hook postrouting priority 120; policy accept;\n\t}\n}\n', 'ip', 'x')!;
    const [b] = tableDefinitions(
      'table ip x {}\ndelete table ip x\ntable ip x {\n\tchain c {\n\t\ttype filter hook postrouting priority srcnat + 20; policy accept;\n\t}\n}\n',
    );
    expect(a.chains.get('c')).toBe('type filter hook postrouting priority 120; policy accept;');
    expect(b!.chains.get('c')).toBe(a.chains.get('c'));
  });
  it('no such table in the listing: null', () => {
    expect(listedDefinition(LISTED, 'ip', 'egresslab_masq')).toBeNull();
    expect(listedDefinition(LISTED, 'arp', 'egresslab_gw')).toBeNull();
  });
});

describe('inPlaceReplace: the interval sets keep their identity across a re-apply', () => {
  it('with nothing known the ruleset is re-created as rendered', () => {
    const r = gw('node-1');
    expect(inPlaceReplace(r, new Map())).toBe(r);
  });

  it('a failover re-apply (route node-1 -> node-3): flush the rules and the kept sets, then the definition refills them; no table is deleted', () => {
    const before = gw('node-1');
    const after = gw('node-3');
    const text = inPlaceReplace(after, committed(before));
    expect(text).not.toMatch(/^delete table/m);
    expect(text).toContain('table ip egresslab_gw {}\nflush table ip egresslab_gw\nflush set ip egresslab_gw podcidrs\n');
    for (const s of ['clusterpods', 'p_fo-a_src', 'p_fo-a_all', 'p_fo-a_dst', 'p_fo-b_src', 'p_fo-b_all', 'p_fo-b_dst'])
      expect(text).toContain(`flush set ip egresslab_gw ${s}\n`);
    expect(text).toContain('flush table arp egresslab_gw\n');
    // the definition itself follows unchanged
    expect(text.endsWith(after.slice(after.indexOf('table ip egresslab_gw {\n')))).toBe(true);
    expect(text).not.toMatch(/delete (set|chain)/);
  });

  it('a policy added before the others (by name) renames none of their sets: each is refilled in place with its own elements', () => {
    // named by position, fo-b's sets became the third policy's, created in that apply: a created
    // interval set misses lookups for a moment, and a missed packet of fo-b's pod left unmarked
    const before = gw('node-1');
    const base = input('node-1');
    const after = renderGateway(computeGatewayPlan({ ...base, policies: [POLICY('a-new', '192.168.1.101', '1.1.1.0/24'), ...base.policies] }), {
      aliveTimeoutMs: 0,
    }).ruleset;
    const setHolding = (ruleset: string, cidr: string): string | undefined =>
      new RegExp(`set (\\S+) \\{ type ipv4_addr; flags interval; elements = \\{ ${cidr.replace(/[./]/g, '\\$&')} \\} \\}`).exec(ruleset)?.[1];
    for (const cidr of ['8.8.8.0/24', '8.8.4.0/24']) {
      const name = setHolding(after, cidr);
      expect(name, cidr).toBeDefined();
      expect(name, cidr).toBe(setHolding(before, cidr));
      expect(inPlaceReplace(after, committed(before))).toContain(`flush set ip egresslab_gw ${name}\n`);
    }
    expect(setHolding(after, '1.1.1.0/24')).toBe('p_a-new_dst');
    expect(inPlaceReplace(after, committed(before))).not.toMatch(/^delete (set|chain)/m);
  });

  it('a policy gone: its sets and chains are deleted after the flush (nothing refers to them any more)', () => {
    const text = inPlaceReplace(gw('node-1', false), committed(gw('node-1', true)));
    for (const s of ['p_fo-b_src', 'p_fo-b_all', 'p_fo-b_dst']) expect(text).toContain(`delete set ip egresslab_gw ${s}\n`);
    expect(text).toContain('delete chain ip egresslab_gw p_fo-b_guard\n');
    expect(text).not.toContain('flush set ip egresslab_gw p_fo-b_dst');
    const flush = text.indexOf('flush table ip egresslab_gw');
    expect(flush).toBeGreaterThan(-1);
    expect(text.indexOf('delete set ip egresslab_gw p_fo-b_dst')).toBeGreaterThan(flush);
  });

  it('a set whose declaration changed is deleted and declared anew (it cannot be declared over the old one)', () => {
    const prev = committed(
      'table ip t {}\ndelete table ip t\ntable ip t {\n\tset s { type ipv4_addr; elements = { 1.1.1.1 } }\n\tchain c {\n\t\tip daddr @s drop\n\t}\n}\n',
    );
    const next =
      'table ip t {}\ndelete table ip t\ntable ip t {\n\tset s { type ipv4_addr; flags interval; elements = { 1.1.1.0/24 } }\n\tchain c {\n\t\tip daddr @s drop\n\t}\n}\n';
    expect(inPlaceReplace(next, prev)).toBe(`table ip t {}\nflush table ip t\ndelete set ip t s\n${next.slice(next.indexOf('table ip t {\n'))}`);
  });

  it('a removal stays a removal, and forgets the table', () => {
    const prev = committed(gw('node-1'));
    const removal = renderGatewayRemoval();
    expect(inPlaceReplace(removal, prev)).toBe(removal);
    expect([...afterCommit(prev, removal).keys()]).toEqual([]);
  });

  it('the masquerade table: its two interval sets are refilled in place', () => {
    const a = renderMasqRuleset(defaultMasqConfig(), { podCidrs: ['10.10.11.0/24'] }).ruleset;
    const b = renderMasqRuleset({ ...defaultMasqConfig(), nonMasqueradeCIDRs: ['10.0.0.0/8', '8.8.8.0/24'] }, { podCidrs: ['10.10.11.0/24'] }).ruleset;
    const text = inPlaceReplace(b, committed(a));
    expect(text).toMatch(/flush table ip egresslab_masq\nflush set ip egresslab_masq podcidrs\nflush set ip egresslab_masq nonmasq\n/);
    expect(text).not.toMatch(/^delete table ip egresslab_masq$/m);
  });
});
