/**
 * One Docker API client: every Docker call of the project goes through harness/docker/client.ts
 * (which follows DOCKER_HOST), and lab containers mount the in-lab code read-only, never with a
 * host-path bind unless asked for.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlPlaneCpuShares, labContainerOptions, labCpuShares, labSysctls, startPath } from './containers.js';
import { projectRoot } from '../util/paths.js';

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sources(full));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

describe('the Docker client', () => {
  it('is constructed in one place only, and no other Docker client library is used', () => {
    const root = projectRoot();
    const offenders: string[] = [];
    for (const top of ['lib', 'harness', 'agent', 'controller', 'integration', 'bench', 'bin', 'scenarios']) {
      let files: string[] = [];
      try {
        files = sources(join(root, top));
      } catch {
        continue;
      }
      for (const f of files) {
        const rel = relative(root, f);
        if (rel === 'harness/docker/client.ts' || rel === 'harness/docker/client.test.ts') continue;
        const text = readFileSync(f, 'utf8');
        // testcontainers: only the container start lifecycle (containers.ts), on the same DOCKER_HOST
        const tc = rel !== 'harness/docker/containers.ts' && /from\s+'testcontainers'/.test(text);
        if (/new\s+(Docker|Dockerode)\s*\(/.test(text) || tc || /from\s+'docker-modem'/.test(text) || /spawn\(\s*'docker'|execa\(\s*'docker'/.test(text))
          offenders.push(rel);
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe('labContainerOptions', () => {
  const base = { name: 'egl-x-node-1', image: 'img:1', hostname: 'node-1', command: ['sleep', 'infinity'], labels: { 'egresslab.lab': 'x' } };

  it("sets a container's CPU weight only when asked; a control-plane node weighs one default per 3 workers", () => {
    expect(labContainerOptions({ ...base, mounts: [] }).HostConfig?.CpuShares).toBeUndefined();
    expect(labContainerOptions({ ...base, mounts: [], cpuShares: 4096 }).HostConfig?.CpuShares).toBe(4096);
    expect([2, 4, 5, 6, 10, 50, 100].map(controlPlaneCpuShares)).toEqual([1024, 1024, 1024, 2048, 3072, 16384, 33792]);
  });

  it('weighs the containers of a cluster lab of more than 5 nodes, every one explicitly; smaller labs and labs without a cluster not at all', () => {
    const nodes = (n: number) => [
      { name: 'cp-1', role: 'control-plane' },
      ...Array.from({ length: n - 1 }, (_, i) => ({ name: `node-${i + 1}`, role: 'worker' })),
    ];
    const keys = ['cp-1', 'node-1', 'router', 'internet', 'wirer'];
    expect(keys.map((k) => labCpuShares({ cluster: true, nodes: nodes(4) }, k))).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(keys.map((k) => labCpuShares({ cluster: true, nodes: nodes(10) }, k))).toEqual([3072, 1024, 1024, 1024, 1024]);
    expect(keys.map((k) => labCpuShares({ cluster: false, nodes: nodes(10) }, k))).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('mounts the payload volume read-only, with no network and no bind of the checkout', () => {
    const o = labContainerOptions({ ...base, mounts: [{ type: 'volume', source: 'egl-x-payload', target: '/opt/egresslab' }] });
    expect(o.HostConfig?.Mounts).toEqual([{ Type: 'volume', Source: 'egl-x-payload', Target: '/opt/egresslab', ReadOnly: true }]);
    expect(o.HostConfig?.Binds).toBeUndefined();
    expect(o.HostConfig?.NetworkMode).toBe('none');
    // no libnetwork sandbox either (runc's private namespace with a loopback only), and IPv6 off as Docker's none mode leaves it
    expect(o.NetworkDisabled).toBe(true);
    expect(o.HostConfig?.Sysctls).toEqual(labSysctls());
    expect(o.HostConfig?.PidMode).toBeUndefined();
    expect(o.Env).toEqual(['NODE_OPTIONS=--use-openssl-ca']);
    const off = { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1', 'net.ipv6.conf.lo.disable_ipv6': '1' };
    expect(labSysctls({ local: true, ipv6: true })).toEqual(off);
    // a remote engine's kernel cannot be looked at: it gets them (a refusal is explained)
    expect(labSysctls({ local: false, ipv6: false })).toEqual(off);
    // a local engine whose kernel has no IPv6 (ipv6.disable=1) gets none: runc refuses a sysctl that does not exist
    expect(labSysctls({ local: true, ipv6: false })).toEqual({});
    expect(o.Labels).toEqual({ 'egresslab.lab': 'x', 'egresslab.managed': 'true' });
  });

  it('binds the checkout read-only in bind mode; the wirer gets the host PID namespace, no mount, and SYS_PTRACE', () => {
    const o = labContainerOptions({ ...base, mounts: [{ type: 'bind', source: '/src/egresslab', target: '/opt/egresslab' }] });
    expect(o.HostConfig?.Mounts).toEqual([{ Type: 'bind', Source: '/src/egresslab', Target: '/opt/egresslab', ReadOnly: true }]);
    const w = labContainerOptions({ ...base, mounts: [], pidHost: true });
    expect(w.HostConfig).toMatchObject({ PidMode: 'host', Mounts: [], Tmpfs: { '/run': 'rw,mode=755' }, CapDrop: ['ALL'], Init: true });
    // the wirer also enters containers by pid, and mounts pods' namespaces (Docker's default seccomp profile)
    expect(w.HostConfig?.CapAdd).toContain('SYS_PTRACE');
    expect(w.HostConfig?.SecurityOpt?.some((o: string) => o.startsWith('seccomp='))).toBe(false);
  });

  it('drops every capability but the network ones, refuses the mount API and module loading, keeps /proc/sys read-only but net', () => {
    const o = labContainerOptions({ ...base, mounts: [] });
    const hc = o.HostConfig!;
    expect(hc.CapDrop).toEqual(['ALL']);
    expect(hc.CapAdd).toEqual(expect.arrayContaining(['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN']));
    for (const cap of ['SYS_MODULE', 'SYS_RAWIO', 'SYS_PTRACE', 'SYS_BOOT', 'SYS_TIME', 'MKNOD', 'DAC_READ_SEARCH', 'ALL'])
      expect(hc.CapAdd).not.toContain(cap);
    expect(hc.Privileged).toBeUndefined();
    // Docker's default masked paths apply (the field is left out)
    expect(hc.MaskedPaths).toBeUndefined();
    expect(hc.ReadonlyPaths).toEqual(expect.arrayContaining(['/proc/sys/kernel', '/proc/sys/vm', '/proc/sys/fs', '/proc/sysrq-trigger']));
    expect(hc.ReadonlyPaths?.some((p) => p === '/proc/sys' || p.startsWith('/proc/sys/net'))).toBe(false);
    const seccomp = JSON.parse(hc.SecurityOpt!.find((x: string) => x.startsWith('seccomp='))!.slice('seccomp='.length)) as {
      defaultAction: string;
      syscalls: { names: string[]; action: string }[];
    };
    const denied = seccomp.syscalls.filter((r) => r.action === 'SCMP_ACT_ERRNO').flatMap((r) => r.names);
    expect(denied).toEqual(expect.arrayContaining(['mount', 'umount2', 'fsopen', 'open_tree', 'init_module', 'finit_module', 'kexec_load', 'reboot', 'bpf']));
    expect(denied).not.toContain('setns');
    expect(hc.SecurityOpt).toContain('no-new-privileges:true');
  });
});

describe('assertSameArchitecture', () => {
  it("accepts an engine of this machine's architecture and refuses another, naming both", async () => {
    const { assertSameArchitecture } = await import('./image.js');
    expect(() => assertSameArchitecture('amd64', 'x64')).not.toThrow();
    expect(() => assertSameArchitecture('arm64', 'arm64')).not.toThrow();
    expect(() => assertSameArchitecture('arm64', 'x64')).toThrow(/engine runs on arm64 but this machine is amd64.*EGRESSLAB_IMAGE/);
  });
});

describe('startPath: who starts lab containers', () => {
  it('testcontainers on the local engine, the Docker API directly on a remote or changed one', () => {
    expect(startPath(undefined, undefined)).toBe('testcontainers');
    expect(startPath('unix:///var/run/docker.sock', undefined)).toBe('testcontainers');
    expect(startPath('tcp://10.0.0.5:2376', undefined)).toBe('direct');
    expect(startPath('ssh://me@box', undefined)).toBe('direct');
    // testcontainers caches the engine of its first use: a later, different DOCKER_HOST goes direct
    expect(startPath('unix:///other.sock', '')).toBe('direct');
    expect(startPath(undefined, '')).toBe('testcontainers');
  });
});
