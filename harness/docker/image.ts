/**
 * The lab's base image: built locally from Debian packages (mmdebstrap | docker import), never
 * pulled. Tagged by a hash of its recipe, so it is rebuilt only when the recipe changes.
 * EGRESSLAB_IMAGE points at a user-provided image instead.
 */
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import { docker, isNotFound } from './client.js';
import { LabError } from '../util/errors.js';

export const IMAGE_RECIPE = Object.freeze({
  suite: 'bookworm',
  variant: 'minbase',
  packages: [
    'iproute2',
    'iptables',
    'nftables',
    'conntrack',
    'conntrackd',
    'tcpdump',
    'iputils-ping',
    'iputils-arping',
    'iperf3',
    'procps',
    'nodejs',
    'ethtool',
    'kmod',
    'psmisc',
  ],
  // Bump when the way the image is made changes without the package list changing.
  revision: 1,
});

export const IMAGE_REPO = 'egresslab-base';

export function recipeHash(recipe = IMAGE_RECIPE): string {
  return createHash('sha256').update(JSON.stringify(recipe)).digest('hex').slice(0, 12);
}

export function defaultImageTag(): string {
  return `${IMAGE_REPO}:${recipeHash()}`;
}

/** Receives progress messages of a long step (the base image build), one line each. */
export type Progress = (message: string) => void;

async function imageExists(tag: string): Promise<boolean> {
  try {
    await docker().getImage(tag).inspect();
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

/**
 * Returns the image to run lab containers from, building it when needed. A user image
 * (EGRESSLAB_IMAGE) is used as it is and must already exist: nothing is ever pulled.
 */
export async function ensureImage(progress: Progress = () => {}): Promise<string> {
  const user = process.env.EGRESSLAB_IMAGE;
  if (user) {
    if (!(await imageExists(user))) {
      throw new LabError(
        `EGRESSLAB_IMAGE=${user}: no such image in the engine (egresslab never pulls images; build or load it first, or unset EGRESSLAB_IMAGE)`,
      );
    }
    return user;
  }
  const tag = defaultImageTag();
  if (await imageExists(tag)) return tag;
  await buildImage(tag, progress);
  return tag;
}

/** Node's process.arch -> Docker's architecture names (GOARCH). */
const DOCKER_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/**
 * The image is built here (mmdebstrap, this machine's architecture) and streamed into the engine,
 * which may be remote (DOCKER_HOST): refuse an engine of another architecture, whose containers
 * could not run it.
 */
export function assertSameArchitecture(engineArch: string, localArch: string = process.arch): void {
  const local = DOCKER_ARCH[localArch] ?? localArch;
  if (engineArch && engineArch !== local) {
    throw new LabError(
      `the Docker engine runs on ${engineArch} but this machine is ${local}: the base image is built here (mmdebstrap) for ${local}. ` +
        `Build it on a ${engineArch} machine (or load an image of your own there) and set EGRESSLAB_IMAGE`,
    );
  }
}

/** mmdebstrap ... | docker import; the package mirror is the machine's own apt configuration. */
export async function buildImage(tag: string, progress: Progress = () => {}): Promise<void> {
  assertSameArchitecture((await docker().version()).Arch);
  const { suite, variant, packages } = IMAGE_RECIPE;
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  progress(`building base image ${tag} from Debian ${suite} packages (mmdebstrap, about 30 s)`);
  const args = [`--variant=${variant}`, `--include=${packages.join(',')}`, '--verbose', suite, '-'];
  const child = execa('mmdebstrap', args, { buffer: { stdout: false, stderr: true }, stdout: 'pipe', stderr: 'pipe', reject: false });
  let lastStep = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      const m = /^I: (.*)/.exec(line.trim());
      if (m?.[1] && m[1] !== lastStep) {
        lastStep = m[1];
        progress(`  [${elapsed()}] ${m[1]}`);
      }
    }
  });
  const [name, version] = tag.split(':');
  let imported: Promise<unknown>;
  try {
    const importImage = docker().importImage.bind(docker()) as unknown as (
      file: NodeJS.ReadableStream,
      opts: Record<string, string>,
    ) => Promise<NodeJS.ReadableStream>;
    imported = importImage(child.stdout as unknown as NodeJS.ReadableStream, { repo: name!, tag: version! }).then(
      (stream) =>
        new Promise((resolve, reject) => {
          (stream as NodeJS.ReadableStream).on('data', () => {});
          (stream as NodeJS.ReadableStream).on('end', resolve);
          (stream as NodeJS.ReadableStream).on('error', reject);
        }),
    );
  } catch (error) {
    child.kill();
    throw error;
  }
  const result = await child;
  if (result.failed || result.exitCode !== 0) {
    await imported.catch(() => {});
    const missing = (result as { code?: string }).code === 'ENOENT';
    throw new LabError(
      missing
        ? 'mmdebstrap is not installed: apt-get install mmdebstrap (the README setup command does it), or set EGRESSLAB_IMAGE to an existing image'
        : `mmdebstrap failed (exit ${result.exitCode}) building ${tag}:\n${String(result.stderr).split('\n').slice(-15).join('\n')}`,
      { cause: result },
    );
  }
  await imported;
  if (!(await imageExists(tag))) throw new LabError(`docker import finished but image ${tag} is missing`);
  progress(`base image ${tag} built in ${elapsed()}`);
}
