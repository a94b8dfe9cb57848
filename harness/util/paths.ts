import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError } from './errors.js';

let root: string | undefined;

/** The egresslab checkout (the folder with our package.json), from source or from dist/. */
export function projectRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'egresslab') {
      root = dir;
      return dir;
    }
    const up = resolve(dir, '..');
    if (up === dir) throw new LabError('cannot find the egresslab project root (package.json)');
    dir = up;
  }
}

/**
 * Whether this is the installed package (npm install egresslab: built JavaScript and type
 * declarations, no TypeScript sources) rather than a checkout of the repository. An installed
 * package runs its in-lab code from the payload bundled when it was packed (dist/payload/); a
 * checkout runs it from its own dist/.
 */
export function installedPackage(root = projectRoot()): boolean {
  return !existsSync(join(root, 'harness', 'lab', 'payload.ts'));
}

/**
 * The project egresslab works for: the folder holding the node_modules this package is installed
 * in (the user's repository, where artifacts/ and .egresslab/ belong; the outermost one, for
 * nested and pnpm layouts), or the checkout itself.
 */
export function workspaceRoot(root = projectRoot()): string {
  const parts = root.split(sep);
  const at = parts.indexOf('node_modules');
  return at > 0 ? parts.slice(0, at).join(sep) || sep : root;
}

/** Where the project is mounted inside lab containers (read-only); programs run from its dist/. */
export const IN_LAB_ROOT = '/opt/egresslab';

/** The path of a built program inside lab containers (`/opt/egresslab/dist/<relative>`). */
export function inLabProgram(relative: string): string {
  return `${IN_LAB_ROOT}/dist/${relative}`;
}

/**
 * The in-lab programs run from the build output (a checkout's dist/, an installed package's bundled
 * dist/payload/); fail early with a clear message when it is absent.
 */
export function assertBuilt(): void {
  const root = projectRoot();
  if (installedPackage(root)) {
    const probe = join(root, 'dist/payload/dist/harness/inlab/responder.js');
    if (!existsSync(probe))
      throw new LabError(
        `${probe} is missing: this installed egresslab package has no bundled in-lab code; install it from a tarball made by "npm pack" (its prepack step bundles it)`,
      );
    return;
  }
  const probe = join(root, 'dist/harness/inlab/responder.js');
  if (!existsSync(probe)) throw new LabError(`${probe} is missing: run "npm run build" first (npm test does it)`);
}

/**
 * Where artifacts are written: EGRESSLAB_ARTIFACTS, default artifacts/ of the project (of the
 * repository that installed egresslab, see workspaceRoot; never inside node_modules).
 */
export function artifactsDir(): string {
  return process.env.EGRESSLAB_ARTIFACTS ?? join(workspaceRoot(), 'artifacts');
}
