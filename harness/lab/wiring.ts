/**
 * Renders the shell script that wires a lab: run once, inside the lab's "wirer" helper container
 * (host PID namespace, so `nsenter -t PID` reaches every lab container). The script only ever enters
 * lab containers' namespaces; nothing is created in the host's network namespace. Pure.
 */
import { createHash } from 'node:crypto';
import type { LabPlan } from '../topology/plan.js';

/**
 * A stable, locally administered MAC per interface: a node that reboots keeps its MAC (as a real
 * NIC does), so its neighbours' ARP caches stay right.
 */
export function stableMac(container: string, ifname: string): string {
  const h = createHash('sha1').update(`${container}/${ifname}`).digest();
  const bytes = [0x02, h[0]!, h[1]!, h[2]!, h[3]!, h[4]!];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export const LINK_ALIAS_PREFIX = 'egresslab:';

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function heredoc(lines: string[]): string {
  return `<<'EGRESSLAB_EOF'\n${lines.join('\n')}\nEGRESSLAB_EOF`;
}

function sysctlScript(sysctls: Record<string, string>): string {
  return Object.entries(sysctls)
    .map(([k, v]) => `echo ${v} > /proc/sys/${k.replace(/\./g, '/')}`)
    .join('; ');
}

/**
 * `pids` maps each container key of the plan to its main process id on the host. `only` limits the
 * script to what lives in (or connects to) those containers: used to re-wire a node that was
 * restarted (its namespace, links and pods are new).
 */
export function renderWiringScript(plan: LabPlan, pids: Record<string, number>, labId: string, only?: ReadonlySet<string>): string {
  const inScope = (key: string) => !only || only.has(key);
  const pid = (key: string): number => {
    const p = pids[key];
    if (!p) throw new Error(`no pid for lab container ${key}`);
    return p;
  };
  const out: string[] = ['set -eu'];
  const alias = (key: string) => q(`${LINK_ALIAS_PREFIX}${labId}:${key}`);

  for (const b of plan.bridges) {
    if (!inScope(b.container)) continue;
    out.push(`nsenter -t ${pid(b.container)} -n ip link add ${b.name} type bridge`);
    out.push(`nsenter -t ${pid(b.container)} -n ip link set ${b.name} up`);
  }
  for (const v of plan.veths) {
    if (!inScope(v.a.container) && !inScope(v.b.container)) continue;
    out.push(
      `nsenter -t ${pid(v.a.container)} -n ip link add ${v.a.ifname} address ${stableMac(v.a.container, v.a.ifname)} type veth peer name ${v.b.ifname} address ${stableMac(v.b.container, v.b.ifname)} netns ${pid(v.b.container)}`,
      `nsenter -t ${pid(v.a.container)} -n ip link set ${v.a.ifname} alias ${alias(v.a.container)}`,
      `nsenter -t ${pid(v.b.container)} -n ip link set ${v.b.ifname} alias ${alias(v.b.container)}`,
    );
    if (v.bridge) {
      out.push(`nsenter -t ${pid(v.b.container)} -n ip link set ${v.b.ifname} master ${v.bridge} up`);
    }
  }
  for (const pod of plan.pods) {
    if (pod.hostNetwork || !inScope(pod.node)) continue;
    const n = `nsenter -t ${pid(pod.node)} -m -n -p`;
    out.push(
      `${n} ip netns add ${q(pod.netns!)}`,
      `${n} ip link add ${pod.hostVeth} address ${stableMac(pod.node, pod.hostVeth!)} type veth peer name eth0 address ${stableMac(pod.key, 'eth0')} netns ${q(pod.netns!)}`,
      `${n} ip link set ${pod.hostVeth} alias ${alias(`${pod.node}/${pod.key}`)}`,
      `${n} ip -n ${q(pod.netns!)} -batch - ${heredoc(pod.ip_)}`,
    );
  }
  for (const cfg of plan.netns) {
    if (!inScope(cfg.container)) continue;
    const sys = sysctlScript(cfg.sysctls);
    if (sys) out.push(`nsenter -t ${pid(cfg.container)} -n sh -c ${q(sys)}`);
    if (cfg.ip.length) out.push(`nsenter -t ${pid(cfg.container)} -n ip -batch - ${heredoc(cfg.ip)}`);
  }
  return `${out.join('\n')}\n`;
}

/**
 * Shell snippet naming a process of the Docker engine's own network namespace (the host's network
 * stack the lab must never touch): the engine itself, seen from a container in the host PID
 * namespace. PID 1 is not always readable from there (sandboxed hosts).
 */
export const HOST_NETNS_PID = '$(pidof -s dockerd || pidof -s containerd || echo 1)';

/**
 * Script for the isolation guard: lists the host network namespace's links and prints any that
 * carries a lab alias. Exits 98 when it cannot look (the lab must then not start).
 */
export function renderHostGuardScript(): string {
  return [
    `hostlinks=$(nsenter -t ${HOST_NETNS_PID} -n ip -o link show) || { echo "isolation guard: cannot list the host's network interfaces" >&2; exit 98; }`,
    `leak=$(printf '%s\n' "$hostlinks" | grep -F ${q(LINK_ALIAS_PREFIX)} || true)`,
    `if [ -n "$leak" ]; then echo "isolation guard: lab links found in the host network namespace: $leak" >&2; exit 97; fi`,
  ].join('\n');
}
