import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadTopology } from '../topology/load.js';
import { planLab } from '../topology/plan.js';
import { HOST_NETNS_PID, LINK_ALIAS_PREFIX, renderHostGuardScript, renderWiringScript, stableMac } from './wiring.js';

const plan = planLab(loadTopology());
const LAB = 'lab-t1';
/** Fake host PIDs: 4242, 4243, ... (never 1). */
const pids: Record<string, number> = Object.fromEntries(plan.containers.map((c, i) => [c.key, 4242 + i]));
const script = renderWiringScript(plan, pids, LAB);
const lines = script.trimEnd().split('\n');

const idx = (pred: (l: string) => boolean) => lines.findIndex(pred);
const lastIdx = (pred: (l: string) => boolean) => lines.length - 1 - [...lines].reverse().findIndex(pred);
/** PIDs every `nsenter -t PID` of a script targets. */
const targets = (s: string) => [...s.matchAll(/nsenter -t (\d+)/g)].map((m) => Number(m[1]));

describe('renderWiringScript: the whole lab', () => {
  it('is a strict sh script that parses', () => {
    expect(lines[0]).toBe('set -eu');
    expect(script.endsWith('\n')).toBe(true);
    // Parse only (-n): nothing runs.
    expect(() => execFileSync('sh', ['-n'], { input: script })).not.toThrow();
  });

  it('only enters lab containers (never PID 1, never the host)', () => {
    const wanted = new Set(Object.values(pids));
    const used = targets(script);
    expect(used.length).toBeGreaterThan(0);
    for (const p of used) expect(wanted.has(p), String(p)).toBe(true);
    expect(script).not.toMatch(/nsenter -t 1\b/);
    expect(script).not.toMatch(/--net=\/proc\/1|\/proc\/1\/ns/);
    // Every command runs through nsenter (or is a heredoc body / terminator).
    const commands = lines.slice(1).filter((l, i, all) => !isHeredocBody(all, i));
    for (const c of commands) expect(c.startsWith('nsenter -t '), c).toBe(true);
  });

  it('creates and raises the bridge before any veth', () => {
    const bridgeAdd = idx((l) => l === `nsenter -t ${pids.switch} -n ip link add br0 type bridge`);
    const bridgeUp = idx((l) => l === `nsenter -t ${pids.switch} -n ip link set br0 up`);
    const firstVeth = idx((l) => l.includes('type veth'));
    expect(bridgeAdd).toBeGreaterThan(0);
    expect(bridgeUp).toBeGreaterThan(bridgeAdd);
    expect(firstVeth).toBeGreaterThan(bridgeUp);
  });

  it('creates each planned veth straight into the peer container and aliases both ends egresslab:<lab>:<container>', () => {
    for (const v of plan.veths) {
      const add = `nsenter -t ${pids[v.a.container]} -n ip link add ${v.a.ifname} address ${stableMac(v.a.container, v.a.ifname)} type veth peer name ${v.b.ifname} address ${stableMac(v.b.container, v.b.ifname)} netns ${pids[v.b.container]}`;
      const i = lines.indexOf(add);
      expect(i, add).toBeGreaterThan(0);
      expect(lines[i + 1]).toBe(`nsenter -t ${pids[v.a.container]} -n ip link set ${v.a.ifname} alias '${LINK_ALIAS_PREFIX}${LAB}:${v.a.container}'`);
      expect(lines[i + 2]).toBe(`nsenter -t ${pids[v.b.container]} -n ip link set ${v.b.ifname} alias '${LINK_ALIAS_PREFIX}${LAB}:${v.b.container}'`);
      if (v.bridge) expect(lines[i + 3]).toBe(`nsenter -t ${pids.switch} -n ip link set ${v.b.ifname} master br0 up`);
    }
    expect(lines.filter((l) => l.includes('type veth peer') && !l.includes(' -m -n -p '))).toHaveLength(plan.veths.length);
  });

  it("creates each pod's netns with nsenter -m -n -p into its node, then its veth, alias and addresses", () => {
    for (const p of plan.pods.filter((x) => !x.hostNetwork)) {
      const n = `nsenter -t ${pids[p.node]} -m -n -p`;
      const add = lines.indexOf(`${n} ip netns add '${p.netns}'`);
      expect(add, p.key).toBeGreaterThan(0);
      expect(lines[add + 1]).toBe(`${n} ip link add ${p.hostVeth} address ${stableMac(p.node, p.hostVeth!)} type veth peer name eth0 address ${stableMac(p.key, 'eth0')} netns '${p.netns}'`);
      expect(lines[add + 2]).toBe(`${n} ip link set ${p.hostVeth} alias '${LINK_ALIAS_PREFIX}${LAB}:${p.node}/${p.key}'`);
      expect(lines[add + 3]).toBe(`${n} ip -n '${p.netns}' -batch - <<'EGRESSLAB_EOF'`);
      expect(lines.slice(add + 4, add + 4 + p.ip_.length)).toEqual(p.ip_);
      expect(lines[add + 4 + p.ip_.length]).toBe('EGRESSLAB_EOF');
      // After the node is linked to the switch, before the node's own configuration.
      expect(add).toBeGreaterThan(idx((l) => l.startsWith(`nsenter -t ${pids[p.node]} -n ip link add eth0 type veth`)));
      expect(add).toBeLessThan(idx((l) => l.startsWith(`nsenter -t ${pids[p.node]} -n ip -batch -`)));
    }
    // Pods are the only thing entering mount and PID namespaces.
    const mnt = lines.filter((l) => l.includes(' -m -n -p '));
    expect(mnt).toHaveLength(plan.pods.filter((x) => !x.hostNetwork).length * 4);
    // No netns for the hostNetwork pod.
    expect(script).not.toContain('host-1');
  });

  it('applies each container ip -batch and sysctls, after all links and pods exist', () => {
    const lastLink = lastIdx((l) => l.includes('type veth'));
    for (const cfg of plan.netns) {
      const i = lines.indexOf(`nsenter -t ${pids[cfg.container]} -n ip -batch - <<'EGRESSLAB_EOF'`);
      expect(i, cfg.container).toBeGreaterThan(lastLink);
      expect(lines.slice(i + 1, i + 1 + cfg.ip.length)).toEqual(cfg.ip);
      expect(lines[i + 1 + cfg.ip.length]).toBe('EGRESSLAB_EOF');
      const sys = Object.entries(cfg.sysctls);
      const sysLine = lines.find((l) => l.startsWith(`nsenter -t ${pids[cfg.container]} -n sh -c `));
      if (sys.length === 0) expect(sysLine, cfg.container).toBeUndefined();
      for (const [k, v] of sys) expect(sysLine).toContain(`echo ${v} > /proc/sys/${k.replace(/\./g, '/')}`);
    }
    const n1 = plan.pods.find((p) => p.key === 'default/client-1')!;
    expect(script).toContain(`echo 0 > /proc/sys/net/ipv4/neigh/${n1.hostVeth}/proxy_delay`);
  });

  it('throws when a container has no pid', () => {
    const { ['node-2']: _, ...partial } = pids;
    expect(() => renderWiringScript(plan, partial, LAB)).toThrow('no pid for lab container node-2');
  });

  it('quotes the alias for the shell', () => {
    const s = renderWiringScript(plan, pids, "it's");
    expect(s).toContain(`alias 'egresslab:it'\\''s:router'`);
    expect(() => execFileSync('sh', ['-n'], { input: s })).not.toThrow();
  });
});

describe('renderWiringScript with only (re-wiring a restarted node)', () => {
  // As Lab.wire(only) does: pids of the node and the switch only.
  const partialPids = { 'node-2': 777, switch: pids.switch! };
  const partial = renderWiringScript(plan, partialPids, LAB, new Set(['node-2']));
  const pl = partial.trimEnd().split('\n');

  it('touches only that node and its switch port', () => {
    expect(new Set(targets(partial))).toEqual(new Set([777, pids.switch]));
    expect(partial).not.toContain('type bridge');
    const veths = pl.filter((l) => l.includes('type veth'));
    const pod = plan.pods.find((p) => p.key === 'paul/frontend-2')!;
    expect(veths).toEqual([
      `nsenter -t 777 -n ip link add eth0 address ${stableMac('node-2', 'eth0')} type veth peer name ${plan.switchPorts['node-2']} address ${stableMac('switch', plan.switchPorts['node-2']!)} netns ${pids.switch}`,
      `nsenter -t 777 -m -n -p ip link add ${pod.hostVeth} address ${stableMac('node-2', pod.hostVeth!)} type veth peer name eth0 address ${stableMac(pod.key, 'eth0')} netns 'paul.frontend-2'`,
    ]);
    expect(pl).toContain(`nsenter -t ${pids.switch} -n ip link set ${plan.switchPorts['node-2']} master br0 up`);
    // Only node-2's configuration; not the switch's, nor other nodes' pods.
    expect(pl.filter((l) => l.includes('-batch -'))).toEqual([
      `nsenter -t 777 -m -n -p ip -n 'paul.frontend-2' -batch - <<'EGRESSLAB_EOF'`,
      `nsenter -t 777 -n ip -batch - <<'EGRESSLAB_EOF'`,
    ]);
    for (const other of ['alice.frontend-1', 'default.client-1', 'default.client-3']) expect(partial).not.toContain(other);
    expect(() => execFileSync('sh', ['-n'], { input: partial })).not.toThrow();
  });

  it('never enters PID 1', () => {
    expect(partial).not.toMatch(/nsenter -t 1\b/);
  });
});

describe('renderHostGuardScript', () => {
  it("is the only script that enters the engine's (host) network namespace, and there it only lists links", () => {
    const g = renderHostGuardScript();
    expect(g).toContain(`nsenter -t ${HOST_NETNS_PID} -n ip -o link show`);
    expect(g).toContain(`grep -F '${LINK_ALIAS_PREFIX}'`);
    expect(g).not.toMatch(/ip (link|addr|route|rule) (add|set|del|replace)/);
    expect(g).not.toMatch(/nft|iptables|sysctl/);
    expect(() => execFileSync('sh', ['-n'], { input: g })).not.toThrow();
  });

  it('refuses (exit 97) when a lab link is found and fails closed (exit 98) when it cannot look', () => {
    const g = renderHostGuardScript();
    // Run the guard's logic with `nsenter` replaced by a stub printing a chosen link list.
    const run = (stub: string) => {
      try {
        execFileSync('sh', ['-c', `nsenter() { ${stub}; }\npidof() { echo 42; }\n${g}`], { stdio: 'pipe' });
        return 0;
      } catch (e) {
        return (e as { status: number }).status;
      }
    };
    expect(run(`echo '1: lo: <LOOPBACK>'`)).toBe(0);
    expect(run(`echo '7: veth0: <UP> alias ${LINK_ALIAS_PREFIX}lab:node-1'`)).toBe(97);
    expect(run('return 1')).toBe(98);
  });
});

/** True when line i of `all` is inside a heredoc (body or terminator). */
function isHeredocBody(all: string[], i: number): boolean {
  let inside = false;
  for (let k = 0; k <= i; k++) {
    const l = all[k]!;
    if (k === i) return inside;
    if (!inside && l.endsWith(`<<'EGRESSLAB_EOF'`)) inside = true;
    else if (inside && l === 'EGRESSLAB_EOF') inside = false;
  }
  return inside;
}

describe('stableMac', () => {
  it('is a locally administered unicast MAC, the same for the same interface and different across interfaces', () => {
    const a = stableMac('node-2', 'eth0');
    expect(a).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(stableMac('node-2', 'eth0')).toBe(a);
    expect(stableMac('node-3', 'eth0')).not.toBe(a);
  });
});
