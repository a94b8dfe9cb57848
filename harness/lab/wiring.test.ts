import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTopology } from '../topology/load.js';
import { planLab } from '../topology/plan.js';
import { HOST_NETNS_PID, LINK_ALIAS_PREFIX, labSignature, renderWiringCommands, renderWiringScript, stableMac } from './wiring.js';

const plan = planLab(loadTopology());
const LAB = 'lab-t1';
/** Fake host PIDs: 4242, 4243, ... (never 1). */
const pids: Record<string, number> = Object.fromEntries(plan.containers.map((c, i) => [c.key, 4242 + i]));
/** The whole script (guard around the commands) and the wiring commands alone. */
const full = renderWiringScript(plan, pids, LAB);
const script = `${renderWiringCommands(plan, pids, LAB).join('\n')}\n`;

/** PIDs every `nsenter -t PID` of a script targets. */
const targets = (s: string) => [...s.matchAll(/nsenter -t (\d+)/g)].map((m) => Number(m[1]));

/** One wiring command: `nsenter -t PID FLAGS CMD <<'DELIM'`, its body and, for a shell, the `ip` batches in it. */
interface Entered {
  pid: number;
  flags: string;
  cmd: string;
  body: string[];
  /** `ip [-n NS] -batch -` runs inside a shell body (or the command itself when it is one): netns ('' for the container's own) and lines */
  batches: { netns: string; lines: string[] }[];
  /** the body's lines that are neither batch commands nor batch lines */
  other: string[];
}

function parseCommand(c: string): Entered {
  const [head, ...rest] = c.split('\n');
  const m = /^nsenter -t (\d+) ((?:-\w )+)(.*?) <<'(\w+)'$/.exec(head!);
  if (!m) throw new Error(`not an nsenter with a heredoc: ${head}`);
  const body = rest.slice(0, -1);
  expect(rest.at(-1)).toBe(m[4]);
  const batches: Entered['batches'] = [];
  const other: string[] = [];
  if (m[3] === 'ip -batch -') batches.push({ netns: '', lines: body });
  else
    for (let i = 0; i < body.length; i++) {
      const b = /^ip (?:-n '([^']+)' )?-batch - <<'EGRESSLAB_EOF'$/.exec(body[i]!);
      if (!b) {
        other.push(body[i]!);
        continue;
      }
      const end = body.indexOf('EGRESSLAB_EOF', i);
      batches.push({ netns: b[1] ?? '', lines: body.slice(i + 1, end) });
      i = end;
    }
  return { pid: Number(m[1]), flags: m[2]!.trim(), cmd: m[3]!, body, batches, other };
}

const commands = renderWiringCommands(plan, pids, LAB).map(parseCommand);
const links = commands.filter((c) => c.cmd === 'ip -batch -');
const configs = commands.filter((c) => c.cmd === 'sh -s');
const configOf = (key: string) => configs.find((c) => c.pid === pids[key]);
const aliasOf = (key: string) => `'${LINK_ALIAS_PREFIX}${LAB}:${key}'`;

describe('renderWiringScript: the whole lab', () => {
  it('is a strict sh script that parses, the wiring commands at its end', () => {
    expect(full.split('\n')[0]).toBe('set -eu');
    expect(full.endsWith(`${script}`)).toBe(true);
    // Parse only (-n): nothing runs.
    expect(() => execFileSync('sh', ['-n'], { input: full })).not.toThrow();
    for (const c of configs) expect(() => execFileSync('sh', ['-n'], { input: c.body.join('\n') })).not.toThrow();
  });

  it('only enters lab containers (never PID 1, never the host), one nsenter per container and step: links first, then each container', () => {
    const wanted = new Set(Object.values(pids));
    const used = targets(full);
    expect(used.length).toBeGreaterThan(0);
    for (const p of used) expect(wanted.has(p), String(p)).toBe(true);
    expect(full).not.toMatch(/nsenter -t 1\b/);
    expect(script).not.toMatch(/--net=\/proc\/1|\/proc\/1\/ns/);
    expect(commands.map((c) => c.cmd)).toEqual([...links.map(() => 'ip -batch -'), ...configs.map(() => 'sh -s')]);
    expect(new Set(links.map((c) => c.pid)).size).toBe(links.length);
    expect(new Set(configs.map((c) => c.pid)).size).toBe(configs.length);
    // every container of the plan is configured
    expect(configs.map((c) => c.pid).sort()).toEqual(plan.containers.map((c) => pids[c.key]!).sort());
    // the links step creates veths into other containers by pid: it never enters a PID namespace
    for (const c of links) expect(c.flags).toBe('-n');
    for (const c of configs) expect(c.body[0]).toBe('set -eu');
  });

  it('creates and raises the bridge before any veth', () => {
    const first = links[0]!;
    expect(first.pid).toBe(pids.switch);
    expect(first.body.slice(0, 2)).toEqual(['link add br0 type bridge', 'link set br0 up']);
    expect(script.indexOf('type bridge')).toBeLessThan(script.indexOf('type veth'));
  });

  it('creates each planned veth straight into the peer container and aliases both ends egresslab:<lab>:<container>', () => {
    for (const v of plan.veths) {
      const creator = links.find((c) => c.pid === pids[v.b.container])!;
      const add = `link add ${v.b.ifname} address ${stableMac(v.b.container, v.b.ifname)} type veth peer name ${v.a.ifname} address ${stableMac(v.a.container, v.a.ifname)} netns ${pids[v.a.container]}`;
      const i = creator.body.indexOf(add);
      expect(i, add).toBeGreaterThanOrEqual(0);
      expect(creator.body[i + 1]).toBe(`link set ${v.b.ifname} alias ${aliasOf(v.b.container)}`);
      if (v.bridge) expect(creator.body[i + 2]).toBe(`link set ${v.b.ifname} master br0 up`);
      // the peer end's alias: in its container's own batch, before its addresses
      const own = configOf(v.a.container)!.batches.at(-1)!;
      expect(own.netns).toBe('');
      expect(own.lines).toContain(`link set ${v.a.ifname} alias ${aliasOf(v.a.container)}`);
    }
    expect(links.flatMap((c) => c.body).filter((l) => l.includes('type veth peer'))).toHaveLength(plan.veths.length);
  });

  it("creates each pod's netns, veth and alias in its node (mount and PID namespaces too), then its addresses, before the node's own configuration", () => {
    const podPlans = plan.pods.filter((x) => !x.hostNetwork);
    for (const p of podPlans) {
      const node = configOf(p.node)!;
      expect(node.flags, p.key).toBe('-m -n -p');
      const create = node.batches[0]!;
      expect(create.netns).toBe('');
      const i = create.lines.indexOf(`netns add '${p.netns}'`);
      expect(i, p.key).toBeGreaterThanOrEqual(0);
      expect(create.lines[i + 1]).toBe(
        `link add ${p.hostVeth} address ${stableMac(p.node, p.hostVeth!)} type veth peer name eth0 address ${stableMac(p.key, 'eth0')} netns '${p.netns}'`,
      );
      expect(create.lines[i + 2]).toBe(`link set ${p.hostVeth} alias ${aliasOf(`${p.node}/${p.key}`)}`);
      const own = node.batches.findIndex((b) => b.netns === p.netns);
      expect(own).toBeGreaterThan(0);
      expect(node.batches[own]!.lines).toEqual(p.ip_);
      // the node's own batch (addresses, the routes to its pods) comes last
      expect(own).toBeLessThan(node.batches.length - 1);
    }
    // Pods are the only thing entering mount and PID namespaces.
    expect(
      configs
        .filter((c) => c.flags !== '-n')
        .map((c) => c.pid)
        .sort(),
    ).toEqual([...new Set(podPlans.map((p) => pids[p.node]!))].sort());
    // No netns for the hostNetwork pod.
    expect(script).not.toContain('host-1');
  });

  it("applies each container's sysctls, then its ip batch, after all links and its pods exist", () => {
    for (const cfg of plan.netns) {
      const c = configOf(cfg.container)!;
      const own = c.batches.at(-1)!;
      expect(own.lines.slice(-cfg.ip.length), cfg.container).toEqual(cfg.ip);
      const sys = Object.entries(cfg.sysctls);
      const sysLine = c.other.find((l) => l.startsWith('echo '));
      if (sys.length === 0) expect(sysLine, cfg.container).toBeUndefined();
      for (const [k, v] of sys) expect(sysLine).toContain(`echo ${v} > /proc/sys/${k.replace(/\./g, '/')}`);
      if (sysLine) {
        // after the pods' batches (if any), before the container's own batch
        const ownHeader = c.body.lastIndexOf(`ip -batch - <<'EGRESSLAB_EOF'`);
        const at = c.body.indexOf(sysLine);
        expect(at, cfg.container).toBeLessThan(ownHeader);
        expect(at, cfg.container).toBeGreaterThan(c.body.lastIndexOf('EGRESSLAB_EOF', ownHeader));
      }
    }
    const n1 = plan.pods.find((p) => p.key === 'default/client-1')!;
    expect(script).toContain(`echo 0 > /proc/sys/net/ipv4/neigh/${n1.hostVeth}/proxy_delay`);
  });

  it('throws when a container has no pid', () => {
    const { 'node-2': _, ...partial } = pids;
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
  const partialCommands = renderWiringCommands(plan, partialPids, LAB, new Set(['node-2'])).map(parseCommand);

  it('touches only that node and its switch port', () => {
    expect(new Set(targets(partial))).toEqual(new Set([777, pids.switch]));
    expect(partial).not.toContain('type bridge');
    const pod = plan.pods.find((p) => p.key === 'paul/frontend-2')!;
    const port = plan.switchPorts['node-2']!;
    expect(partialCommands.map((c) => [c.pid, c.flags, c.cmd])).toEqual([
      [pids.switch, '-n', 'ip -batch -'],
      [777, '-m -n -p', 'sh -s'],
    ]);
    const [sw, node] = partialCommands as [Entered, Entered];
    expect(sw.body).toEqual([
      `link add ${port} address ${stableMac('switch', port)} type veth peer name eth0 address ${stableMac('node-2', 'eth0')} netns 777`,
      `link set ${port} alias ${aliasOf('switch')}`,
      `link set ${port} master br0 up`,
    ]);
    expect(node.batches.map((b) => b.netns)).toEqual(['', 'paul.frontend-2', '']);
    expect(node.batches[0]!.lines).toContain(
      `link add ${pod.hostVeth} address ${stableMac('node-2', pod.hostVeth!)} type veth peer name eth0 address ${stableMac(pod.key, 'eth0')} netns 'paul.frontend-2'`,
    );
    expect(node.batches[2]!.lines[0]).toBe(`link set eth0 alias ${aliasOf('node-2')}`);
    for (const other of ['alice.frontend-1', 'default.client-1', 'default.client-3']) expect(partial).not.toContain(other);
    expect(() => execFileSync('sh', ['-n'], { input: partial })).not.toThrow();
  });

  it('never enters PID 1', () => {
    expect(partial).not.toMatch(/nsenter -t 1\b/);
  });
});

describe('the isolation guard in the rendered script (text)', () => {
  const fullLines = full.split('\n');
  const firstWiring = fullLines.indexOf(script.split('\n')[0]!);

  it("checks every container pid's network namespace against the host's before the first wiring command", () => {
    const all = fullLines.indexOf(
      `egl_check_all ${Object.values(pids)
        .map((p) => `/proc/${p}/ns/net`)
        .join(' ')} || {`,
    );
    expect(all).toBeGreaterThan(0);
    for (const [key, p] of Object.entries(pids)) {
      const i = fullLines.indexOf(`  egl_check_ns '${key}' ${p}`);
      expect(i, key).toBeGreaterThan(all);
      expect(i).toBeLessThan(firstWiring);
    }
    expect(full).toContain('egl_host_net1=$(readlink /proc/1/ns/net 2>/dev/null || true)');
    expect(full).toContain(`egl_host_pid=${HOST_NETNS_PID}`);
  });

  it('lists the host before wiring and runs the guard on every way out (EXIT, HUP, INT, TERM), installed before the first wiring command', () => {
    const before = fullLines.findIndex((l) => l.startsWith('egl_host_state > "$egl_dir/before"'));
    const trap = fullLines.indexOf('trap egl_guard EXIT');
    expect(before).toBeGreaterThan(0);
    expect(trap).toBeGreaterThan(before);
    expect(firstWiring).toBeGreaterThan(trap);
    for (const t of ["trap 'exit 129' HUP", "trap 'exit 130' INT", "trap 'exit 143' TERM"]) expect(fullLines.indexOf(t), t).toBeGreaterThan(trap);
  });

  it("in the host's namespace it only lists (links, addresses, routes, rules): nothing is added, set or deleted there", () => {
    const host = fullLines.filter((l) => l.includes('nsenter -t "$egl_host_pid"'));
    expect(host.join('\n').match(/nsenter -t "\$egl_host_pid" -n ip [^)]*/g)).toEqual([
      'nsenter -t "$egl_host_pid" -n ip -o link show',
      'nsenter -t "$egl_host_pid" -n ip -o -4 addr show',
      'nsenter -t "$egl_host_pid" -n ip -4 route show table all',
      'nsenter -t "$egl_host_pid" -n ip -4 rule show',
    ]);
    expect(fullLines.slice(0, firstWiring).join('\n')).not.toMatch(/ip (-\S+ )*(link|addr|route|rule) (add|set|del|replace)|nft|iptables|sysctl/);
  });

  it("labSignature covers the plan's bridges, every link, address, route and rule", () => {
    const sig = labSignature(plan);
    expect(sig.links).toEqual(
      expect.arrayContaining(['br0', 'eth-nodes', 'eth-inet', 'eth-vpc0', 'p0', 'eth0', plan.pods.find((p) => !p.hostNetwork)!.hostVeth!]),
    );
    expect(sig.addresses).toEqual(
      expect.arrayContaining([
        plan.topology.routerAddress,
        plan.transit.router,
        plan.transit.internet,
        ...plan.topology.nodes.map((n) => n.address),
        ...plan.pods.flatMap((p) => (p.ip ? [p.ip] : [])),
      ]),
    );
    expect(sig.routes).toEqual(expect.arrayContaining(['0.0.0.0/0', '10.10.10.0/24', `${plan.podGateway}/32`, `${plan.pods.find((p) => p.ip)!.ip}/32`]));
    expect(sig.rules).toContain('32000');
  });
});

/**
 * Runs the rendered script with `sh`, with nsenter, readlink and pidof replaced by shell functions:
 * the host's listings come from files the fake wiring may append to (a leak, once: by the first
 * command that matches), container namespaces
 * from NS_<pid> variables. Nothing touches the machine's network (the only real commands are
 * mktemp, cat, awk, printf and rm in a temporary directory).
 */
function runFake(
  script: string,
  options: {
    ns?: Record<number, string>;
    leak?: { on: string; file: string; line: string };
    failOn?: string;
    termOn?: string;
    hostFails?: boolean;
    host?: Partial<Record<'links' | 'addrs' | 'routes' | 'rules', string>>;
  } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'egresslab-guard-'));
  try {
    const host = {
      links: '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n2: eth0: <BROADCAST,UP> mtu 1500',
      addrs: '2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0',
      routes:
        'default via 10.0.0.1 dev eth0\n10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.5\nlocal 10.0.0.5 dev eth0 table local proto kernel scope host src 10.0.0.5',
      rules: '0:\tfrom all lookup local\n32766:\tfrom all lookup main',
      ...options.host,
    };
    for (const [f, text] of Object.entries(host)) writeFileSync(join(dir, f), `${text}\n`);
    const ns = Object.entries(options.ns ?? {})
      .map(([p, v]) => `NS_${p}='${v}'`)
      .join('\n');
    const stubs = `
FAKE='${dir}'; HOSTPID=4000
${ns}
pidof() { echo "$HOSTPID"; }
readlink1() {
  case "$1" in
    /proc/1/ns/net|/proc/$HOSTPID/ns/net) echo 'net:[4026531840]' ;;
    /proc/*/ns/net) p=\${1#/proc/}; p=\${p%%/*}; eval "v=\\\${NS_$p:-net:[9$p]}"; [ "$v" != FAIL ] || return 1; echo "$v" ;;
    *) return 1 ;;
  esac
}
readlink() {
  echo "$#" >> "$FAKE/readlinks"
  rl=0; for a in "$@"; do readlink1 "$a" || rl=1; done; return $rl
}
nsenter() {
  pid=$2; shift 2
  while [ "\${1#-}" != "$1" ]; do shift; done
  if [ "$pid" = "$HOSTPID" ]; then
    echo "$*" >> "$FAKE/hostreads"
    [ -z "\${HOST_FAIL:-}" ] || return 1
    case "$*" in
      "ip -o link show") cat "$FAKE/links" ;;
      "ip -o -4 addr show") cat "$FAKE/addrs" ;;
      "ip -4 route show table all") cat "$FAKE/routes" ;;
      "ip -4 rule show") cat "$FAKE/rules" ;;
      *) echo "unexpected command in the host: $*" >&2; exit 55 ;;
    esac
    return
  fi
  echo "$pid $*" >> "$FAKE/calls"
  case "$*" in *"-batch -"|"sh -s") cat > /dev/null ;; esac
  if [ "$*" = "\${LEAK_ON:-}" ]; then printf '%s\\n' "$LEAK_LINE" >> "$FAKE/$LEAK_FILE"; LEAK_ON=; fi
  if [ "$*" = "\${TERM_ON:-}" ]; then kill -TERM $$; fi
  if [ "$*" = "\${FAIL_ON:-}" ]; then return 2; fi
  return 0
}
`;
    const env = {
      PATH: process.env.PATH,
      LEAK_ON: options.leak?.on ?? '',
      LEAK_FILE: options.leak?.file ?? 'links',
      LEAK_LINE: options.leak?.line ?? '',
      FAIL_ON: options.failOn ?? '',
      TERM_ON: options.termOn ?? '',
      HOST_FAIL: options.hostFails ? '1' : '',
    };
    const r = spawnSync('sh', ['-s'], { input: `${stubs}\n${script}`, env, encoding: 'utf8' });
    const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8').trim().split('\n') : []);
    return { code: r.status, stderr: r.stderr, calls: read('calls'), hostReads: read('hostreads'), readlinks: read('readlinks').map(Number) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the isolation guard, run with sh against a fake host', () => {
  /** the four listings of one look at the host */
  const LOOK = ['ip -o link show', 'ip -o -4 addr show', 'ip -4 route show table all', 'ip -4 rule show'];
  /** the first wiring command (the fake matches the first command with these arguments): the switch's links, the bridge first */
  const bridgeAdd = `ip -batch -`;
  /** the first container's own configuration (the switch's; the fake does not run it, so what leaks is only said to) */
  const configShell = `sh -s`;

  it('a clean run wires everything and looks at the host before and after: exit 0', () => {
    const r = runFake(full);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.calls).toHaveLength(commands.length);
    expect(r.hostReads).toEqual([...LOOK, ...LOOK]);
    // the host's two namespace links, then every container's in one readlink: no container-by-container check
    expect(r.readlinks).toEqual([1, 1, Object.keys(pids).length]);
  });

  it('refuses (97) before wiring anything when a container pid is in the host network namespace', () => {
    const r = runFake(full, { ns: { [pids.router!]: 'net:[4026531840]' } });
    expect(r.code).toBe(97);
    // one readlink for all, then one by one until the router: the message names it
    expect(r.readlinks.slice(0, 3)).toEqual([1, 1, Object.keys(pids).length]);
    expect(r.readlinks.slice(3).every((n) => n === 1)).toBe(true);
    expect(r.stderr.trim()).toBe(
      `isolation guard: lab container router (pid ${pids.router}) is in the host's network namespace (net:[4026531840]): refusing to wire`,
    );
    expect(r.calls).toEqual([]);
    expect(r.hostReads).toEqual([]);
  });

  it('refuses (98) before wiring anything when a container namespace cannot be read', () => {
    const r = runFake(full, { ns: { [pids['node-2']!]: 'FAIL' } });
    expect(r.code).toBe(98);
    expect(r.stderr.trim()).toBe(
      `isolation guard: cannot read /proc/${pids['node-2']}/ns/net of lab container node-2 (pid ${pids['node-2']}: stopped or restarted?): refusing to wire`,
    );
    expect(r.calls).toEqual([]);
  });

  it('a bridge that appeared in the host (bridges carry no alias) is refused: 97 naming it', () => {
    const r = runFake(full, { leak: { on: bridgeAdd, file: 'links', line: '9: br0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN' } });
    expect(r.code).toBe(97);
    expect(r.stderr.trim()).toBe(`isolation guard: the lab changed the host's network namespace (pid 4000): link br0`);
  });

  it('an address and a route of the lab that appeared in the host are refused, each named', () => {
    const on = configShell;
    const addr = runFake(full, { leak: { on, file: 'addrs', line: `7: eth-nodes    inet ${plan.topology.routerAddress}/24 scope global eth-nodes` } });
    expect(addr.code).toBe(97);
    expect(addr.stderr).toContain(`: addr ${plan.topology.routerAddress} eth-nodes`);
    const route = runFake(full, { leak: { on, file: 'routes', line: '10.10.11.0/24 via 192.168.1.2 dev eth-nodes' } });
    expect(route.code).toBe(97);
    expect(route.stderr).toContain(': route 10.10.11.0/24 10.10.11.0/24 via 192.168.1.2 dev eth-nodes');
    const rule = runFake(full, { leak: { on, file: 'rules', line: '32000:\tfrom all lookup main' } });
    expect(rule.code).toBe(97);
    expect(rule.stderr).toContain(': rule 32000 32000:');
  });

  it("what the host had before, or what is not the lab's, is no leak", () => {
    // the host already has the router's address and a default route; an unrelated veth appears meanwhile
    const host = { addrs: `3: br-x    inet ${plan.topology.routerAddress}/24 scope global br-x`, routes: 'default via 10.0.0.1 dev eth0' };
    const r = runFake(full, { host, leak: { on: bridgeAdd, file: 'links', line: '12: veth1a2b3c@if11: <BROADCAST,UP> mtu 1500' } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('a host link with a lab alias is refused even when it was there before', () => {
    const r = runFake(full, { host: { links: `4: vx: <BROADCAST> mtu 1500 \\    alias ${LINK_ALIAS_PREFIX}old:node-1` } });
    expect(r.code).toBe(97);
    expect(r.stderr).toContain(`labalias 4: vx:`);
  });

  it('runs when the wiring fails: the failure stands (exit 2) when the host is clean, a leak wins and says the wiring had failed', () => {
    const failed = runFake(full, { failOn: bridgeAdd });
    expect(failed.code).toBe(2);
    expect(failed.calls).toHaveLength(1);
    expect(failed.hostReads).toEqual([...LOOK, ...LOOK]);
    const leaked = runFake(full, { failOn: bridgeAdd, leak: { on: bridgeAdd, file: 'links', line: '9: br0: <BROADCAST> mtu 1500' } });
    expect(leaked.code).toBe(97);
    expect(leaked.stderr.trim()).toBe(`isolation guard: the lab changed the host's network namespace (pid 4000): link br0 (the wiring had failed with exit 2)`);
  });

  it('runs when the script is terminated (SIGTERM): exit 143 after the host was looked at again', () => {
    const r = runFake(full, { termOn: bridgeAdd });
    expect(r.code).toBe(143);
    expect(r.hostReads).toEqual([...LOOK, ...LOOK]);
  });

  it('fails closed (98) when it cannot look at the host', () => {
    const r = runFake(full, { hostFails: true });
    expect(r.code).toBe(98);
    expect(r.stderr.trim()).toBe("isolation guard: cannot list the host's network interfaces, addresses, routes and rules (pid 4000)");
    expect(r.calls).toEqual([]);
  });
});

describe('stableMac', () => {
  it('is a locally administered unicast MAC, the same for the same interface and different across interfaces', () => {
    const a = stableMac('node-2', 'eth0');
    expect(a).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(stableMac('node-2', 'eth0')).toBe(a);
    expect(stableMac('node-3', 'eth0')).not.toBe(a);
  });
});
