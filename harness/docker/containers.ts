/**
 * Creating lab containers. testcontainers gives the start lifecycle (image check, create, start,
 * startup timeout); the lab adds what a network lab needs and the generic API does not expose: the
 * exact capability set, no masked /proc paths, PID mode, an init process, a tmpfs /run.
 */
import { GenericContainer, type StartedTestContainer } from 'testcontainers';
import { LABEL } from './client.js';

// The lab relies on its own labels, teardown and prune; testcontainers' reaper image cannot be pulled.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';

/**
 * `--privileged` fails on machines whose bounding set lacks CAP_SYS_RESOURCE; this set gives veth,
 * bridge, netns, nft, iptables, conntrack and writable net sysctls (measured).
 */
export const LAB_HOST_CONFIG = Object.freeze({
  NetworkMode: 'none',
  CapAdd: ['ALL'],
  CapDrop: ['SYS_RESOURCE'],
  SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'],
  MaskedPaths: [] as string[],
  ReadonlyPaths: [] as string[],
  Init: true,
});

export interface LabContainerSpec {
  name: string;
  image: string;
  hostname: string;
  command: string[];
  labels: Record<string, string>;
  /** host path -> container path, read-only. */
  binds: Record<string, string>;
  pidHost?: boolean;
  startupTimeoutMs?: number;
}

class LabContainer extends GenericContainer {
  constructor(spec: LabContainerSpec) {
    super(spec.image);
    this.withName(spec.name)
      .withHostname(spec.hostname)
      .withCommand(spec.command)
      .withLabels({ ...spec.labels, [LABEL.managed]: 'true' })
      .withNetworkMode('none')
      .withAddedCapabilities(...LAB_HOST_CONFIG.CapAdd)
      .withDroppedCapabilities(...LAB_HOST_CONFIG.CapDrop)
      .withSecurityOpt(...LAB_HOST_CONFIG.SecurityOpt)
      .withBindMounts(Object.entries(spec.binds).map(([source, target]) => ({ source, target, mode: 'ro' as const })))
      // /run is a tmpfs, as on a real node: a restarted node starts without stale pid files or netns.
      .withTmpFs({ '/run': 'rw,mode=755' })
      .withStartupTimeout(spec.startupTimeoutMs ?? 30_000);
    Object.assign(this.hostConfig, {
      MaskedPaths: LAB_HOST_CONFIG.MaskedPaths,
      ReadonlyPaths: LAB_HOST_CONFIG.ReadonlyPaths,
      Init: LAB_HOST_CONFIG.Init,
      ...(spec.pidHost ? { PidMode: 'host' } : {}),
    });
  }
}

export async function startLabContainer(spec: LabContainerSpec): Promise<StartedTestContainer> {
  return new LabContainer(spec).start();
}
