/**
 * The Docker API connection (dockerode): the one client every Docker call of the harness goes
 * through (lab containers, exec, volumes, images, forwards). It follows DOCKER_HOST (unix://,
 * tcp:// with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, ssh://), so a remote engine works the same as the
 * local socket; the in-lab code then travels as a payload volume (harness/lab/payload.ts).
 */
import Docker from 'dockerode';
import { LabError } from '../util/errors.js';

let shared: { key: string; client: Docker } | undefined;

/**
 * The shared client for the engine the environment names now (DOCKER_HOST, DOCKER_TLS_VERIFY,
 * DOCKER_CERT_PATH, as the docker CLI reads them): made again when those change.
 */
export function docker(): Docker {
  const key = ['DOCKER_HOST', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'].map((k) => process.env[k] ?? '').join('\n');
  if (shared?.key !== key) shared = { key, client: new Docker() };
  return shared.client;
}

/** Where the client connects, for messages: DOCKER_HOST, or the default local socket. */
export function engineAddress(): string {
  return process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
}

/** Fails with a clear message when no engine answers. */
export async function assertEngine(d: Docker = docker()): Promise<{ apiVersion: string; version: string }> {
  try {
    const v = await d.version();
    return { apiVersion: v.ApiVersion, version: v.Version };
  } catch (error) {
    throw new LabError(`no Docker engine answers (${engineAddress()}): start dockerd (README: the setup command starts it), or set DOCKER_HOST`, {
      cause: error,
    });
  }
}

export const LABEL = Object.freeze({
  lab: 'egresslab.lab',
  /** how the lab's containers get the in-lab code: "bind", "bundle:<payload hash>" or "volume:<payload hash>" */
  payload: 'egresslab.payload',
  /** which Node.js the lab's programs run: "image" or "host:<version>" (lab-node.ts) */
  node: 'egresslab.node',
  role: 'egresslab.role',
  key: 'egresslab.key',
  owner: 'egresslab.owner',
  persistent: 'egresslab.persistent',
  topology: 'egresslab.topology',
  created: 'egresslab.created',
  managed: 'egresslab.managed',
});

export function isNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { statusCode?: number }).statusCode === 404;
}
