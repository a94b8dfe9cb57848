/**
 * Creating lab containers: testcontainers' start lifecycle with our own create request on a local
 * engine; on a remote one (DOCKER_HOST tcp:// or ssh://) the one Docker API client
 * (harness/docker/client.ts) creates and starts them (see startPath). Nothing is ever pulled.
 * The lab needs what generic container libraries do not expose: the exact capability set, a seccomp
 * profile, read-only /proc paths, PID mode, an init process, a tmpfs /run, and read-only mounts of the in-lab code (a
 * bind mount of the checkout, or the lab's payload volume: harness/lab/payload.ts).
 */
import { existsSync } from 'node:fs';
import type Docker from 'dockerode';
import { docker, LABEL, isNotFound } from './client.js';
import { LabError } from '../util/errors.js';

// The lab relies on its own labels, teardown and prune; testcontainers' reaper image cannot be pulled.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';

/**
 * What a lab container may do (issue 12: before, every capability, no seccomp, no masked or
 * read-only /proc paths: code in a lab container could write /proc/sys/kernel/*, load modules or
 * trigger sysrq on the host). Measured needs: network administration inside its own namespaces
 * (veth, bridge, nft, iptables, conntrack, conntrackd, tcpdump, arping, net sysctls), entering a
 * pod's network namespace (setns: CAP_SYS_ADMIN, through `nsenter --net`, never a mount), and a
 * raised priority for the agent's heartbeat thread (CAP_SYS_NICE). Everything else is dropped or
 * refused:
 * - capabilities: `--cap-drop ALL` and only LAB_CAPABILITIES back (no SYS_MODULE, SYS_RAWIO,
 *   SYS_BOOT, SYS_TIME, SYS_PTRACE, DAC_READ_SEARCH, MKNOD, SYSLOG, MAC_*, BPF, PERFMON);
 * - a seccomp profile (LAB_SECCOMP) that allows everything but the calls that change the host's
 *   kernel or reach past the container's mounts: the whole mount API (so CAP_SYS_ADMIN cannot undo
 *   the read-only /proc paths below), modules, kexec, reboot, swap, bpf, perf, keyrings, syslog,
 *   open_by_handle_at, iopl/ioperm, userfaultfd, quotactl, acct;
 * - Docker's default masked paths (/proc/kcore, /proc/keys, /sys/firmware, ...);
 * - /proc read-only as Docker has it, except /proc/sys/net (per network namespace: the lab's own):
 *   every other /proc/sys directory (kernel, vm, fs, dev, ...) is read-only;
 * - no new privileges (setuid binaries gain nothing).
 * AppArmor stays unconfined: Docker's default profile refuses writes under /proc/sys/net, which the
 * lab needs (this machine has no AppArmor; seccomp and the read-only paths do the work).
 * `--privileged` is not an option anyway: it fails on machines whose bounding set lacks
 * CAP_SYS_RESOURCE.
 */
export const LAB_CAPABILITIES = Object.freeze([
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'SETFCAP',
  'NET_BIND_SERVICE',
  'NET_RAW',
  'NET_ADMIN',
  'SYS_CHROOT',
  'AUDIT_WRITE',
  'SYS_ADMIN',
  'SYS_NICE',
]);

/** The wirer (host PID namespace) also enters other containers' namespaces by pid: + SYS_PTRACE. */
export const WIRER_CAPABILITIES = Object.freeze([...LAB_CAPABILITIES, 'SYS_PTRACE']);

/** System calls a lab container may not make (LAB_HOST_CONFIG); refused with EPERM. */
export const LAB_DENIED_SYSCALLS = Object.freeze([
  // the mount API: a fresh procfs, a non-recursive bind of /proc or an umount would undo the read-only paths
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'move_mount',
  'open_tree',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'mount_setattr',
  // the host's kernel
  'init_module',
  'finit_module',
  'delete_module',
  'kexec_load',
  'kexec_file_load',
  'reboot',
  'swapon',
  'swapoff',
  'acct',
  'syslog',
  'bpf',
  'perf_event_open',
  'iopl',
  'ioperm',
  'quotactl',
  'lookup_dcookie',
  'userfaultfd',
  // handles and keyrings that reach past the container
  'open_by_handle_at',
  'name_to_handle_at',
  'keyctl',
  'add_key',
  'request_key',
]);

/** The seccomp profile of lab containers (Docker's format): everything allowed but LAB_DENIED_SYSCALLS. */
export const LAB_SECCOMP = Object.freeze({
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  syscalls: [{ names: [...LAB_DENIED_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
});

/** Docker's read-only /proc paths, with /proc/sys narrowed to every directory but net. */
export const LAB_READONLY_PATHS = Object.freeze([
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sysrq-trigger',
  '/proc/sys/abi',
  '/proc/sys/crypto',
  '/proc/sys/debug',
  '/proc/sys/dev',
  '/proc/sys/fs',
  '/proc/sys/kernel',
  '/proc/sys/user',
  '/proc/sys/vm',
]);

/**
 * IPv6 stays off in every lab container's own network namespace, as Docker leaves a `--network
 * none` container (libnetwork turns it off): no link-local addresses, router solicitations or MLD
 * reports from the containers' links. Set here because NetworkDisabled (LAB_CONFIG) skips
 * libnetwork. (Pods' namespaces, made by `ip netns add` in the wiring, keep the kernel's defaults,
 * as they always did.)
 */
export const LAB_SYSCTLS = Object.freeze({
  'net.ipv6.conf.all.disable_ipv6': '1',
  'net.ipv6.conf.default.disable_ipv6': '1',
  'net.ipv6.conf.lo.disable_ipv6': '1',
});

/**
 * The sysctls a lab container is created with: LAB_SYSCTLS, except on a local engine whose kernel
 * has no IPv6 at all (booted with ipv6.disable=1: there is nothing to turn off, and runc refuses a
 * sysctl that does not exist, where libnetwork only warned). A remote engine's kernel cannot be
 * looked at from here: it gets them, and a refusal is explained (engineError).
 */
export function labSysctls(engine: { local: boolean; ipv6: boolean } = localEngineIpv6()): Record<string, string> {
  return engine.local && !engine.ipv6 ? {} : { ...LAB_SYSCTLS };
}

function localEngineIpv6(): { local: boolean; ipv6: boolean } {
  const h = process.env.DOCKER_HOST ?? '';
  return { local: h === '' || /^unix:\/\//i.test(h), ipv6: existsSync('/proc/sys/net/ipv6') };
}

/**
 * `--network none` and, on top, NetworkDisabled: the engine leaves networking out altogether. Both
 * give the container a private network namespace with only a loopback (runc creates it); without
 * NetworkDisabled the engine also builds a libnetwork sandbox for it, which costs two re-executions
 * of dockerd per container start (`netns-create`, and the `libnetwork-setkey` prestart hook: about
 * 0.15 s of CPU each) and /etc/hosts, /etc/resolv.conf bind mounts nothing in the lab reads.
 * Measured on 2 cores: 9 containers created and started in 2.7 s with the sandbox, 1.1 s without.
 */
export const LAB_CONFIG = Object.freeze({ NetworkDisabled: true });

/**
 * The environment of every lab container (and so of every process in it: execs inherit it).
 * NODE_OPTIONS=--use-openssl-ca: the lab's Node programs take their default CA store from OpenSSL
 * (the node's system store, none in the base image), as Debian's nodejs package is built to, not
 * from Node's bundled Mozilla list. Node parses that list of ~140 certificates when a process first
 * creates a TLS context with a `ca` of its own (the agent's and the readiness check's API client),
 * in every such process at every lab start, on the machine's busiest second. Measured with
 * process.cpuUsage() around a process's first tls.createSecureContext({ ca }) in a container of the
 * base image running this machine's node (v20.20.2): 26.0-27.9 ms of CPU, 1.6 ms with the flag. (A
 * process started with NODE_EXTRA_CA_CERTS, as on some hosts, loads the store at its start instead.)
 * Trust is unchanged: a `ca` replaces the default store either way, and nothing in a lab trusts a
 * public CA.
 */
export const LAB_ENV: Readonly<Record<string, string>> = Object.freeze({ NODE_OPTIONS: '--use-openssl-ca' });

export const LAB_HOST_CONFIG = Object.freeze({
  NetworkMode: 'none',
  CapDrop: ['ALL'],
  SecurityOpt: [`seccomp=${JSON.stringify(LAB_SECCOMP)}`, 'apparmor=unconfined', 'no-new-privileges:true'],
  ReadonlyPaths: LAB_READONLY_PATHS,
  Init: true,
});

/**
 * The wirer runs only the lab's wiring script: it creates pods' network namespaces inside node
 * containers (`ip netns add` mounts) and enters every lab container by pid. Docker's default seccomp
 * profile (mount, setns and unshare allowed with CAP_SYS_ADMIN), the same read-only paths.
 */
export const WIRER_SECURITY_OPT = Object.freeze(['apparmor=unconfined', 'no-new-privileges:true']);

/** A read-only mount: a host path (bind, needs the engine to see that path) or a named volume. */
export interface LabMount {
  type: 'bind' | 'volume';
  /** host path (bind) or volume name (volume) */
  source: string;
  target: string;
}

export interface LabContainerSpec {
  name: string;
  image: string;
  hostname: string;
  command: string[];
  labels: Record<string, string>;
  /** Read-only mounts. */
  mounts: LabMount[];
  pidHost?: boolean;
  /** The container's CPU weight against the other containers (Docker's cpu-shares; default 1024). */
  cpuShares?: number;
}

/** Docker's default CPU weight of a container (cpu-shares). */
export const DEFAULT_CPU_SHARES = 1024;

/**
 * The CPU weight of a cluster lab's control-plane node (it runs the controller, the API server
 * every agent renews its lease with): one default weight per 3 workers, so that with every node
 * busy it still gets about a quarter of the machine, as a dedicated control-plane machine would.
 * Every container is a cgroup of its own with an equal weight: in a 100-node lab starting on
 * 2 cores the control-plane node got about 1/100 of the CPU, and lease renewals timed out
 * ("request timed out after 5000 ms: PATCH .../leases/node-5"). Up to 5 nodes (the default lab:
 * 4) the weight stays Docker's default.
 */
export function controlPlaneCpuShares(nodes: number): number {
  return DEFAULT_CPU_SHARES * Math.max(1, Math.round((nodes - 1) / 3));
}

/**
 * The CPU weight to set on a lab container (container key, or the wirer's): the control-plane
 * node's (controlPlaneCpuShares) when the lab runs a cluster of more than 5 nodes, and then the
 * default, set explicitly, on every other container; nothing otherwise. Explicit everywhere or
 * nowhere: on cgroup v2 a runc before 1.3.2 maps cpu-shares 1024 to cpu.weight 39, not to the
 * default 100 an unset container gets.
 */
export function labCpuShares(topology: { cluster: boolean; nodes: readonly { name: string; role: string }[] }, key: string): number | undefined {
  const cp = topology.cluster ? topology.nodes.find((n) => n.role === 'control-plane')?.name : undefined;
  const weight = cp ? controlPlaneCpuShares(topology.nodes.length) : DEFAULT_CPU_SHARES;
  if (weight <= DEFAULT_CPU_SHARES) return undefined;
  return key === cp ? weight : DEFAULT_CPU_SHARES;
}

/** The engine's create request for a lab container (pure; exported for tests). */
export function labContainerOptions(spec: LabContainerSpec): Docker.ContainerCreateOptions {
  return {
    name: spec.name,
    Image: spec.image,
    Hostname: spec.hostname,
    Cmd: spec.command,
    Labels: { ...spec.labels, [LABEL.managed]: 'true' },
    Env: Object.entries(LAB_ENV).map(([k, v]) => `${k}=${v}`),
    NetworkDisabled: LAB_CONFIG.NetworkDisabled,
    HostConfig: {
      NetworkMode: LAB_HOST_CONFIG.NetworkMode,
      Sysctls: labSysctls(),
      CapDrop: [...LAB_HOST_CONFIG.CapDrop],
      CapAdd: [...(spec.pidHost ? WIRER_CAPABILITIES : LAB_CAPABILITIES)],
      SecurityOpt: [...(spec.pidHost ? WIRER_SECURITY_OPT : LAB_HOST_CONFIG.SecurityOpt)],
      // MaskedPaths left out: Docker's defaults apply
      ReadonlyPaths: [...LAB_HOST_CONFIG.ReadonlyPaths],
      Init: LAB_HOST_CONFIG.Init,
      // /run is a tmpfs, as on a real node: a restarted node starts without stale pid files or netns.
      Tmpfs: { '/run': 'rw,mode=755' },
      Mounts: spec.mounts.map((m) => ({ Type: m.type, Source: m.source, Target: m.target, ReadOnly: true })),
      ...(spec.pidHost ? { PidMode: 'host' } : {}),
      ...(spec.cpuShares !== undefined ? { CpuShares: spec.cpuShares } : {}),
    },
  };
}

function engineError(spec: LabContainerSpec, error: unknown): Error {
  const message = String((error as { json?: { message?: string } }).json?.message ?? (error as Error).message);
  if (isNotFound(error) && /image/i.test(message)) {
    return new LabError(`${spec.name}: image ${spec.image} is not in the engine (egresslab never pulls images)`, { cause: error });
  }
  if (/disable_ipv6/.test(message)) {
    return new LabError(
      `${spec.name}: the engine refused the sysctls that keep IPv6 off in lab containers (its kernel has no IPv6? booted with ipv6.disable=1): ${message}`,
      { cause: error },
    );
  }
  // the mount the engine names (the in-lab code's folder, or the node binary mounted over /usr/bin/node)
  const binds = spec.mounts.filter((m) => m.type === 'bind');
  const bind = binds.find((m) => message.includes(m.source)) ?? binds[0];
  if (bind && /bind source path does not exist/i.test(message)) {
    return new LabError(
      `${spec.name}: the Docker engine cannot see ${bind.source} (bind-mounted at ${bind.target}; a remote engine?): ` +
        `set EGRESSLAB_PAYLOAD=volume to ship the in-lab code through the Docker API instead (the lab then runs the image's node)`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * testcontainers gives the start lifecycle (create, start, startup timeout, its session labels);
 * the create request is replaced by ours (labContainerOptions: exact capabilities, masks, mounts).
 * Loaded on the first container start, not with this module: testcontainers and what only it
 * brings (undici, archiver and their dependencies; dockerode loads ssh2 and grpc anyway) cost every
 * CLI command that starts no container (status, apply, exec, down, ...) 260-350 ms of CPU at
 * startup (bench/cli-start: 1150-1170 ms per command before, 820-890 ms after).
 */
type LabContainerClass = new (spec: LabContainerSpec) => { start(): Promise<{ getId(): string }> };
let labContainerClass: Promise<LabContainerClass> | undefined;
function loadLabContainer(): Promise<LabContainerClass> {
  labContainerClass ??= import('testcontainers').then(
    ({ GenericContainer }) =>
      class LabContainer extends GenericContainer {
        constructor(spec: LabContainerSpec) {
          super(spec.image);
          const o = labContainerOptions(spec);
          this.withName(spec.name)
            .withHostname(spec.hostname)
            .withCommand(spec.command)
            .withLabels(o.Labels ?? {})
            .withEnvironment({ ...LAB_ENV })
            .withNetworkMode('none')
            .withStartupTimeout(30_000);
          this.createOpts.NetworkDisabled = o.NetworkDisabled;
          Object.assign(this.hostConfig, o.HostConfig);
        }
      },
  );
  labContainerClass.catch(() => {
    labContainerClass = undefined;
  });
  return labContainerClass;
}

/**
 * testcontainers resolves its engine once per process (from DOCKER_HOST, or its own config) and
 * caches that client, and it does not speak ssh://. So it starts lab containers on a local engine
 * (unix socket: DOCKER_HOST unset or unix://), and only while DOCKER_HOST is what it was at its
 * first use; a remote engine (tcp://, ssh://) or a changed DOCKER_HOST is driven through the one
 * Docker API client directly (same create request either way).
 */
let testcontainersHost: string | undefined;
export function startPath(dockerHost: string | undefined, firstHost: string | undefined = testcontainersHost): 'testcontainers' | 'direct' {
  const h = dockerHost ?? '';
  if (h && !/^unix:\/\//i.test(h)) return 'direct';
  return firstHost === undefined || firstHost === h ? 'testcontainers' : 'direct';
}

/** Creates and starts a lab container; engine errors are turned into what to do about them. */
export async function startLabContainer(spec: LabContainerSpec): Promise<Docker.Container> {
  const d = docker();
  // never pulled: testcontainers would try a pull for a missing image, so check first
  try {
    await d.getImage(spec.image).inspect();
  } catch (error) {
    throw isNotFound(error) ? new LabError(`${spec.name}: image ${spec.image} is not in the engine (egresslab never pulls images)`, { cause: error }) : error;
  }
  if (startPath(process.env.DOCKER_HOST) === 'testcontainers') {
    testcontainersHost ??= process.env.DOCKER_HOST ?? '';
    const LabContainer = await loadLabContainer();
    try {
      const started = await new LabContainer(spec).start();
      return d.getContainer(started.getId());
    } catch (error) {
      throw engineError(spec, error);
    }
  }
  let container: Docker.Container;
  try {
    container = await d.createContainer(labContainerOptions(spec));
  } catch (error) {
    throw engineError(spec, error);
  }
  try {
    await container.start();
  } catch (error) {
    throw engineError(spec, error);
  }
  return container;
}
