import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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

/** Where the project is mounted inside lab containers (read-only); programs run from its dist/. */
export const IN_LAB_ROOT = '/opt/egresslab';

/** The path of a built program inside lab containers (`/opt/egresslab/dist/<relative>`). */
export function inLabProgram(relative: string): string {
  return `${IN_LAB_ROOT}/dist/${relative}`;
}

/** The in-lab programs run from the build output; fail early with a clear message when it is absent. */
export function assertBuilt(): void {
  const probe = join(projectRoot(), 'dist/harness/inlab/responder.js');
  if (!existsSync(probe)) throw new LabError(`${probe} is missing: run "npm run build" first (npm test does it)`);
}

/** Where artifacts are written (EGRESSLAB_ARTIFACTS, default artifacts/ of the project). */
export function artifactsDir(): string {
  return process.env.EGRESSLAB_ARTIFACTS ?? join(projectRoot(), 'artifacts');
}
