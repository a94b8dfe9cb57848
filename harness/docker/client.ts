/**
 * The Docker API connection (dockerode). Everything the lab does goes through the Docker API, so a
 * remote engine (DOCKER_HOST) works the same as the local socket.
 */
import Docker from 'dockerode';
import { LabError } from '../util/errors.js';

let shared: Docker | undefined;

export function docker(): Docker {
  shared ??= new Docker();
  return shared;
}

/** Fails with a clear message when no engine answers. */
export async function assertEngine(d: Docker = docker()): Promise<{ apiVersion: string; version: string }> {
  try {
    const v = await d.version();
    return { apiVersion: v.ApiVersion, version: v.Version };
  } catch (error) {
    throw new LabError(
      `no Docker engine answers (${process.env.DOCKER_HOST ?? '/var/run/docker.sock'}): ` +
        `start dockerd (README: the setup command starts it), or set DOCKER_HOST`,
      { cause: error },
    );
  }
}

export const LABEL = Object.freeze({
  lab: 'egresslab.lab',
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
