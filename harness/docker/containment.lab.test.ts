/**
 * Containment (issue 12): a lab container cannot change a setting of the host's kernel. Before,
 * lab containers had every capability, no seccomp and no read-only /proc paths:
 * `egresslab exec node-1 -- sh -c 'echo 0 > /proc/sys/kernel/core_uses_pid'` changed the host's
 * (global, non-namespaced) setting. Each attempt below is made from a node and from a pod of a
 * running lab, and the host's own /proc is read before and after (this process runs on the host).
 * What the lab needs keeps working: net sysctls in its own namespaces, nft, entering a pod.
 */
import { readFileSync } from 'node:fs';
import { docker, LABEL } from './client.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../lab/lab.js';
import { startTestLab } from '../testing/lab.js';

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('foundation', 'cage');
});
afterAll(async () => {
  await lab?.down();
});

const HOST_SETTINGS = ['/proc/sys/kernel/core_uses_pid', '/proc/sys/kernel/core_pattern', '/proc/sys/vm/swappiness', '/proc/sys/fs/file-max'];
const hostValues = () => Object.fromEntries(HOST_SETTINGS.map((p) => [p, readFileSync(p, 'utf8')]));

/** Runs a shell line in a lab place; its exit code and output. */
async function sh(where: string, line: string): Promise<{ code: number; out: string }> {
  const r = await lab.exec(where, ['sh', '-c', `{ ${line}; } 2>&1`], { check: false });
  return { code: r.exitCode, out: r.stdout.trim() };
}

describe('a lab container cannot change the host kernel', () => {
  it.each([
    ['node', 'node-1'],
    ['pod', 'alice/frontend-1'],
  ])(
    "from a %s: /proc/sys/kernel, vm and fs are read-only, the mount API is refused, sysrq and modules are out of reach; the host's values are unchanged",
    async (_kind, where) => {
      const before = hostValues();
      const flipped = before['/proc/sys/kernel/core_uses_pid']!.trim() === '0' ? '1' : '0';
      const attempts = {
        'write kernel.core_uses_pid': await sh(where, `echo ${flipped} > /proc/sys/kernel/core_uses_pid`),
        'write kernel.core_pattern (a host-root path)': await sh(where, `echo '|/bin/true' > /proc/sys/kernel/core_pattern`),
        'write vm.swappiness': await sh(where, 'echo 1 > /proc/sys/vm/swappiness'),
        'write fs.file-max': await sh(where, 'echo 100000 > /proc/sys/fs/file-max'),
        'sysrq-trigger': await sh(where, 'echo h > /proc/sysrq-trigger'),
        'mount a fresh procfs': await sh(where, 'mkdir -p /tmp/p && mount -t proc proc /tmp/p'),
        'bind /proc without its read-only submounts': await sh(where, 'mkdir -p /tmp/b && mount --bind /proc /tmp/b'),
        'umount the read-only /proc/sys/kernel': await sh(where, 'umount /proc/sys/kernel'),
        'remount /proc/sys/kernel read-write': await sh(where, 'mount -o remount,rw /proc/sys/kernel'),
      };
      console.log(
        `[containment] ${where}:\n  ${Object.entries(attempts)
          .map(([w, r]) => `${w}: exit ${r.code}: ${r.out}`)
          .join('\n  ')}`,
      );
      const succeeded = Object.entries(attempts)
        .filter(([, r]) => r.code === 0)
        .map(([what, r]) => `${what}: ${r.out || 'exit 0'}`);
      expect(succeeded, `attempts that succeeded in ${where}`).toEqual([]);
      // refused for the stated reason, not by accident (a missing tool would also fail)
      expect(attempts['write kernel.core_uses_pid'].out).toMatch(/Read-only file system/);
      expect(attempts['mount a fresh procfs'].out).toMatch(/permission denied|not permitted/i);
      expect(attempts['umount the read-only /proc/sys/kernel'].out).toMatch(/permission denied|not permitted|must be superuser/i);
      // no capability to load modules, reach raw I/O, boot or set the clock (CapBnd of the container's processes)
      const bnd = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec((await sh(where, 'cat /proc/self/status')).out)![1]}`);
      const has = (bit: number) => (bnd >> BigInt(bit)) & 1n;
      expect({ SYS_MODULE: has(16), SYS_RAWIO: has(17), SYS_PTRACE: has(19), SYS_BOOT: has(22), SYS_TIME: has(25), MKNOD: has(27) }).toEqual({
        SYS_MODULE: 0n,
        SYS_RAWIO: 0n,
        SYS_PTRACE: 0n,
        SYS_BOOT: 0n,
        SYS_TIME: 0n,
        MKNOD: 0n,
      });
      expect(hostValues(), "the host's kernel settings").toEqual(before);
    },
  );

  it('what the lab needs still works: net sysctls in its own namespaces, nft, a pod entered by nsenter', async () => {
    const hostForwarding = readFileSync('/proc/sys/net/ipv4/conf/all/forwarding', 'utf8');
    const mine = (await sh('node-2', 'cat /proc/sys/net/ipv4/conf/all/forwarding')).out;
    const flipped = mine === '1' ? '0' : '1';
    expect(await sh('node-2', `echo ${flipped} > /proc/sys/net/ipv4/conf/all/forwarding && cat /proc/sys/net/ipv4/conf/all/forwarding`)).toEqual({
      code: 0,
      out: flipped,
    });
    expect((await sh('node-2', `echo ${mine} > /proc/sys/net/ipv4/conf/all/forwarding`)).code).toBe(0);
    expect(readFileSync('/proc/sys/net/ipv4/conf/all/forwarding', 'utf8'), "the host's own forwarding setting").toBe(hostForwarding);
    expect(await sh('node-2', 'nft add table inet egl_cage && nft delete table inet egl_cage && echo ok')).toEqual({ code: 0, out: 'ok' });
    const pod = await lab.exec('paul/frontend-2', ['ip', '-4', '-o', 'addr', 'show', 'eth0']);
    expect(pod.stdout).toContain('10.10.11.1/32');
  });

  it('the engine gives lab containers no network of its own: none, networking disabled, only the links the lab wired, IPv6 off in the node namespace', async () => {
    const listed = await docker().listContainers({ all: true, filters: { label: [`${LABEL.lab}=${lab.id}`] } });
    expect(listed.length).toBeGreaterThan(0);
    for (const c of listed) {
      const i = await docker().getContainer(c.Id).inspect();
      expect({
        name: i.Name,
        mode: i.HostConfig.NetworkMode,
        disabled: (i.Config as { NetworkDisabled?: boolean }).NetworkDisabled,
        networks: Object.keys(i.NetworkSettings.Networks ?? {}),
        // the lab's Node programs use OpenSSL's CA store (containers.ts LAB_ENV), whichever way the container was started
        nodeOptions: i.Config.Env?.find((e) => e.startsWith('NODE_OPTIONS=')),
      }).toEqual({
        name: i.Name,
        mode: 'none',
        disabled: true,
        networks: [],
        nodeOptions: 'NODE_OPTIONS=--use-openssl-ca',
      });
    }
    // node-1's own namespace: the loopback and the veths the wiring made (eth0 on the segment, one per pod), nothing else; no IPv6 address anywhere
    const links = (await sh('node-1', 'ip -d -o link show')).out.split('\n').map((l) => ({ name: l.split(': ')[1]?.split('@')[0], veth: /\bveth\b/.test(l) }));
    expect(links.map((l) => l.name)).toEqual(expect.arrayContaining(['lo', 'eth0']));
    // (the kernel's fallback tunnel devices appear in every new namespace where the ipip, sit or gre modules are loaded)
    const fallback = /^(tunl0|sit0|gre0|gretap0|erspan0|ip_vti0|ip6tnl0|ip6gre0|ip6_vti0)$/;
    expect(links.filter((l) => l.name !== 'lo' && !l.veth && !fallback.test(l.name ?? ''))).toEqual([]);
    expect(await sh('node-1', 'ip -6 -o addr show')).toEqual({ code: 0, out: '' });
    expect(await sh('node-1', 'cat /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6')).toEqual({ code: 0, out: '1\n1' });
  });
});
