import { describe, expect, it } from 'vitest';
import { loadTopology, topologyFromArg } from './load.js';
import { INTERNET, POD_GATEWAY, ROUTER, SWITCH, UNMERGE_RULE_PREF, planLab, podNetnsName, podVethName, type LabPlan, type NetnsConfig } from './plan.js';
import { parseTopology } from './validate.js';

const topology = loadTopology();
const plan = planLab(topology);

function netnsOf(p: LabPlan, container: string): NetnsConfig {
  const cfg = p.netns.find((n) => n.container === container);
  expect(cfg, `netns config of ${container}`).toBeDefined();
  return cfg!;
}

describe('planLab on the default topology', () => {
  it('plans switch, router, internet, the VPC endpoint and the 4 nodes', () => {
    expect(plan.containers).toEqual([
      { key: 'switch', role: 'switch', hostname: 'switch' },
      { key: 'router', role: 'router', hostname: 'router' },
      { key: 'internet', role: 'internet', hostname: 'internet' },
      { key: 'vpc', role: 'vpc', hostname: 'vpc' },
      { key: 'node-1', role: 'node', hostname: 'node-1' },
      { key: 'node-2', role: 'node', hostname: 'node-2' },
      { key: 'node-3', role: 'node', hostname: 'node-3' },
      { key: 'cp-1', role: 'node', hostname: 'cp-1' },
    ]);
    expect(new Set(plan.containers.map((c) => c.key)).size).toBe(plan.containers.length);
  });

  it('gives every member of the node segment (router and each node) its own switch port on br0', () => {
    expect(plan.bridges).toEqual([{ container: SWITCH, name: 'br0' }]);
    const members = [ROUTER, ...topology.nodes.map((n) => n.name)];
    expect(Object.keys(plan.switchPorts).sort()).toEqual([...members].sort());
    expect(new Set(Object.values(plan.switchPorts)).size).toBe(members.length);
    for (const m of members) {
      const port = plan.switchPorts[m]!;
      const veth = plan.veths.find((v) => v.a.container === m && v.b.container === SWITCH);
      expect(veth, m).toEqual({ a: { container: m, ifname: m === ROUTER ? 'eth-nodes' : 'eth0' }, b: { container: SWITCH, ifname: port }, bridge: 'br0' });
    }
  });

  it('links router <-> internet and router <-> VPC point to point (no bridge)', () => {
    expect(plan.veths).toContainEqual({ a: { container: ROUTER, ifname: 'eth-inet' }, b: { container: INTERNET, ifname: 'eth0' } });
    expect(plan.veths).toContainEqual({ a: { container: ROUTER, ifname: 'eth-vpc0' }, b: { container: 'vpc', ifname: 'eth0' } });
    expect(plan.veths.filter((v) => !v.bridge)).toHaveLength(2);
    // No container has two interfaces with the same name.
    const ends = plan.veths.flatMap((v) => [v.a, v.b]).map((e) => `${e.container}/${e.ifname}`);
    expect(new Set(ends).size).toBe(ends.length);
  });

  it('addresses: nodes, router, internet and VPC', () => {
    expect(plan.transit).toEqual({ router: '100.127.255.253', internet: '100.127.255.254' });
    expect(plan.addresses).toEqual({
      router: '192.168.1.254',
      internet: '100.127.255.254',
      vpc: '172.16.100.10',
      'node-1': '192.168.1.1',
      'node-2': '192.168.1.2',
      'node-3': '192.168.1.3',
      'cp-1': '192.168.1.10',
    });
    expect(plan.podGateway).toBe(POD_GATEWAY);
  });

  it('router: forwards, routes each podCIDR via its node and the VPC answer ranges via the VPC, default to the internet', () => {
    const r = netnsOf(plan, ROUTER);
    expect(r.sysctls['net.ipv4.ip_forward']).toBe('1');
    expect(r.ip).toEqual(
      expect.arrayContaining([
        'addr add 192.168.1.254/24 dev eth-nodes',
        'addr add 100.127.255.253/30 dev eth-inet',
        'addr add 172.16.100.1/24 dev eth-vpc0',
        'route add 10.10.10.0/24 via 192.168.1.1 dev eth-nodes',
        'route add 10.10.11.0/24 via 192.168.1.2 dev eth-nodes',
        'route add 10.10.12.0/24 via 192.168.1.3 dev eth-nodes',
        'route add default via 100.127.255.254 dev eth-inet',
      ]),
    );
    // cp-1 has no podCIDR: no route through it.
    expect(r.ip.filter((l) => l.includes('via 192.168.1.10'))).toEqual([]);
    for (const a of topology.vpcEndpoints[0]!.answers) expect(r.ip).toContain(`route replace ${a} via 172.16.100.10 dev eth-vpc0`);
    // Never NATs.
    expect(JSON.stringify(plan.netns)).not.toMatch(/\b(masquerade|snat|dnat|nat|iptables|nft)\b/i);
  });

  it('internet: AnyIP in its local table, throws for nodeSubnet and transit, the unmerge rule, a route back to nodes only', () => {
    const i = netnsOf(plan, INTERNET);
    expect(i.ip).toEqual(
      expect.arrayContaining([
        'addr add 100.127.255.254/30 dev eth0',
        'route add local 0.0.0.0/0 dev lo table local',
        'route add throw 192.168.1.0/24 table local',
        'route add throw 100.127.255.252/30 table local',
        `rule add pref ${UNMERGE_RULE_PREF} lookup main`,
        'route add 192.168.1.0/24 via 100.127.255.253 dev eth0',
      ]),
    );
    // The unmerge rule exists before the throws can take effect.
    expect(i.ip.findIndex((l) => l.startsWith('rule add'))).toBeLessThan(i.ip.findIndex((l) => l.includes('throw')));
    // No way back to pod CIDRs (a reply to a pod IP is lost), and no default route.
    for (const n of topology.nodes) if (n.podCIDR) expect(i.ip.join('\n')).not.toContain(n.podCIDR);
    expect(i.ip.some((l) => l.startsWith('route add default'))).toBe(false);
  });

  it('VPC: answers its ranges (AnyIP) except the lab own ranges, routes back through the router', () => {
    const v = netnsOf(plan, 'vpc');
    expect(v.ip).toEqual(
      expect.arrayContaining([
        'addr add 172.16.100.10/24 dev eth0',
        'route add default via 172.16.100.1 dev eth0',
        `rule add pref ${UNMERGE_RULE_PREF} lookup main`,
        'route replace local 10.0.0.0/8 dev lo table local',
        'route replace throw 192.168.1.0/24 table local',
        'route replace throw 172.16.100.0/24 table local',
        'route replace throw 10.10.10.0/24 table local',
        'route replace throw 10.10.11.0/24 table local',
        'route replace throw 10.10.12.0/24 table local',
      ]),
    );
  });

  it('nodes: address, default via the router, routed CNI to other nodes, pod host routes', () => {
    const n1 = netnsOf(plan, 'node-1');
    expect(n1.ip.slice(0, 4)).toEqual([
      'link set lo up',
      'addr add 192.168.1.1/24 dev eth0',
      'link set eth0 up',
      'route add default via 192.168.1.254 dev eth0',
    ]);
    expect(n1.ip).toContain('route add 10.10.11.0/24 via 192.168.1.2 dev eth0');
    expect(n1.ip).toContain('route add 10.10.12.0/24 via 192.168.1.3 dev eth0');
    expect(n1.ip.join('\n')).not.toContain('route add 10.10.10.0/24');
    const client1 = plan.pods.find((p) => p.key === 'default/client-1')!;
    expect(n1.ip).toContain(`route add 10.10.10.2/32 dev ${client1.hostVeth} scope link`);
    expect(n1.sysctls['net.ipv4.ip_forward']).toBe('1');
    const cp = netnsOf(plan, 'cp-1');
    expect(cp.ip).toContain('route add 10.10.10.0/24 via 192.168.1.1 dev eth0');
    expect(cp.ip.some((l) => l.includes('scope link'))).toBe(false);
  });

  it('pods: veth names are at most 15 characters and unique; hostNetwork pods have none', () => {
    const withNetns = plan.pods.filter((p) => !p.hostNetwork);
    expect(withNetns).toHaveLength(4);
    for (const p of withNetns) {
      expect(p.hostVeth!.length, p.key).toBeLessThanOrEqual(15);
      expect(p.hostVeth).toMatch(/^[a-z0-9]+$/);
      expect(p.hostVeth).toBe(podVethName(p.key));
      expect(p.netns).toBe(podNetnsName(p));
    }
    expect(new Set(withNetns.map((p) => p.hostVeth)).size).toBe(withNetns.length);
    expect(new Set(withNetns.map((p) => p.netns)).size).toBe(withNetns.length);
    const host = plan.pods.find((p) => p.hostNetwork)!;
    expect(host).toEqual({ key: 'default/host-1', namespace: 'default', name: 'host-1', node: 'node-1', hostNetwork: true, labels: {}, ip_: [] });
  });

  it('pod veth names stay unique and short across many pods', () => {
    const names = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const n = podVethName(`ns-${i % 7}/pod-${i}`);
      expect(n.length).toBeLessThanOrEqual(15);
      names.add(n);
    }
    expect(names.size).toBe(2000);
  });

  it('pods: /32 address, link-local gateway on eth0', () => {
    const p = plan.pods.find((x) => x.key === 'alice/frontend-1')!;
    expect(p).toMatchObject({ node: 'node-1', ip: '10.10.10.1', netns: 'alice.frontend-1', labels: { role: 'frontend' } });
    expect(p.ip_).toEqual([
      'link set lo up',
      'addr add 10.10.10.1/32 dev eth0',
      'link set eth0 up',
      `route add ${POD_GATEWAY} dev eth0 scope link`,
      `route add default via ${POD_GATEWAY} dev eth0`,
    ]);
  });

  it('pod host veths answer ARP at once: proxy_arp 1, proxy_delay 0, rp_filter 0', () => {
    for (const p of plan.pods.filter((x) => !x.hostNetwork)) {
      const s = netnsOf(plan, p.node).sysctls;
      expect(s[`net.ipv4.conf.${p.hostVeth}.proxy_arp`], p.key).toBe('1');
      expect(s[`net.ipv4.neigh.${p.hostVeth}.proxy_delay`], p.key).toBe('0');
      expect(s[`net.ipv4.conf.${p.hostVeth}.rp_filter`], p.key).toBe('0');
      expect(netnsOf(plan, p.node).ip).toContain(`link set ${p.hostVeth} up`);
    }
  });

  it('is deterministic', () => {
    expect(planLab(loadTopology())).toEqual(plan);
    expect(JSON.stringify(planLab(topology))).toBe(JSON.stringify(plan));
  });
});

describe('planLab on other topologies', () => {
  it('a /31 transit uses both addresses', () => {
    const t = parseTopology({ transitCIDR: '100.127.255.254/31', nodes: [{ name: 'n1', address: '192.168.1.1' }] });
    const p = planLab(t);
    expect(p.transit).toEqual({ router: '100.127.255.254', internet: '100.127.255.255' });
    expect(netnsOf(p, INTERNET).ip).toContain('addr add 100.127.255.255/31 dev eth0');
  });

  it('several VPC endpoints get one router link each', () => {
    const t = parseTopology({
      nodes: [{ name: 'n1', address: '192.168.1.1' }],
      vpcEndpoints: [
        { name: 'vpc-a', address: '172.16.100.10', subnet: '172.16.100.0/24', answers: ['10.0.0.0/8'] },
        { name: 'vpc-b', address: '172.16.101.2', subnet: '172.16.101.0/30', answers: ['10.20.0.0/16'] },
      ],
    });
    const p = planLab(t);
    expect(p.containers.filter((c) => c.role === 'vpc').map((c) => c.key)).toEqual(['vpc-a', 'vpc-b']);
    const r = netnsOf(p, ROUTER).ip;
    expect(r).toContain('addr add 172.16.101.1/30 dev eth-vpc1');
    expect(r).toContain('route replace 10.0.0.0/8 via 172.16.100.10 dev eth-vpc0');
    expect(r).toContain('route replace 10.20.0.0/16 via 172.16.101.2 dev eth-vpc1');
  });
});

describe("a node's boot config is the lab's network only: the system under test installs its own rules", () => {
  it('no cluster node gets a gateway fence or any other policy-routing rule from the lab (the agent writes its fence as a boot hook: harness/lab/boot.ts)', () => {
    const p = planLab(topologyFromArg('default'));
    const nodes = p.netns.filter((n) => topologyFromArg('default').nodes.some((x) => x.name === n.container));
    expect(nodes.length).toBeGreaterThan(0);
    for (const n of nodes)
      expect(
        n.ip.filter((l) => /^rule |table 7\d{3}/.test(l)),
        n.container,
      ).toEqual([]);
  });
});
