/**
 * Creating lab containers: testcontainers' start lifecycle with our own create request on a local
 * engine; on a remote one (DOCKER_HOST tcp:// or ssh://) the one Docker API client
 * (harness/docker/client.ts) creates and starts them (see startPath). Nothing is ever pulled.
 * The lab needs what generic container libraries do not expose: the exact capability set, no masked
 * /proc paths, PID mode, an init process, a tmpfs /run, and read-only mounts of the in-lab code (a
 * bind mount of the checkout, or the lab's payload volume: harness/lab/payload.ts).
 */
import type Docker from 'dockerode';
import { GenericContainer } from 'testcontainers';
import { docker, LABEL, isNotFound } from './client.js';
import { LabError } from '../util/errors.js';

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
}

/** The engine's create request for a lab container (pure; exported for tests). */
export function labContainerOptions(spec: LabContainerSpec): Docker.ContainerCreateOptions {
  return {
    name: spec.name,
    Image: spec.image,
    Hostname: spec.hostname,
    Cmd: spec.command,
    Labels: { ...spec.labels, [LABEL.managed]: 'true' },
    HostConfig: {
      NetworkMode: LAB_HOST_CONFIG.NetworkMode,
      CapAdd: [...LAB_HOST_CONFIG.CapAdd],
      CapDrop: [...LAB_HOST_CONFIG.CapDrop],
      SecurityOpt: [...LAB_HOST_CONFIG.SecurityOpt],
      MaskedPaths: [...LAB_HOST_CONFIG.MaskedPaths],
      ReadonlyPaths: [...LAB_HOST_CONFIG.ReadonlyPaths],
      Init: LAB_HOST_CONFIG.Init,
      // /run is a tmpfs, as on a real node: a restarted node starts without stale pid files or netns.
      Tmpfs: { '/run': 'rw,mode=755' },
      Mounts: spec.mounts.map((m) => ({ Type: m.type, Source: m.source, Target: m.target, ReadOnly: true })),
      ...(spec.pidHost ? { PidMode: 'host' } : {}),
    },
  };
}

function engineError(spec: LabContainerSpec, error: unknown): Error {
  const message = String((error as { json?: { message?: string } }).json?.message ?? (error as Error).message);
  if (isNotFound(error) && /image/i.test(message)) {
    return new LabError(`${spec.name}: image ${spec.image} is not in the engine (egresslab never pulls images)`, { cause: error });
  }
  const bind = spec.mounts.find((m) => m.type === 'bind');
  if (bind && /bind source path does not exist/i.test(message)) {
    return new LabError(
      `${spec.name}: the Docker engine cannot see ${bind.source} (the checkout bind-mounted at ${bind.target}; ` +
        `a remote engine?): set EGRESSLAB_PAYLOAD=volume to ship the in-lab code through the Docker API instead`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * testcontainers gives the start lifecycle (create, start, startup timeout, its session labels);
 * the create request is replaced by ours (labContainerOptions: exact capabilities, masks, mounts).
 */
class LabContainer extends GenericContainer {
  constructor(spec: LabContainerSpec) {
    super(spec.image);
    const o = labContainerOptions(spec);
    this.withName(spec.name)
      .withHostname(spec.hostname)
      .withCommand(spec.command)
      .withLabels(o.Labels ?? {})
      .withNetworkMode('none')
      .withStartupTimeout(30_000);
    Object.assign(this.hostConfig, o.HostConfig);
  }
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
  await container.start();
  return container;
}
