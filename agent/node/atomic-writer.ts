/**
 * Kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go), the way a ConfigMap volume is kept up
 * to date inside a pod, reduced to what the agent needs:
 *
 *   <dir>/..2025_01_02_03_04_05.123456789/<file>   the payload, in a fresh timestamped directory
 *   <dir>/..data -> ..2025_01_02_03_04_05.123456789 swapped atomically (symlink ..data_tmp + rename)
 *   <dir>/<file> -> ..data/<file>                    user-visible symlinks, created once
 *
 * A reader that opens <dir>/<file> sees the old content or the new one, never a mix. A file that
 * leaves the payload (e.g. the ConfigMap was deleted) disappears with the swap (its symlink dangles)
 * and its symlink is then removed. Synchronous on purpose: writes are tiny and must not interleave.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export const DATA_DIR_NAME = '..data';
const DATA_TMP_NAME = '..data_tmp';

export type Payload = Record<string, string>;

function tsDirName(now: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const stamp = `${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  // kubelet: os.MkdirTemp(dir, "..2006_01_02_15_04_05.") -> a random numeric suffix
  return `..${stamp}.${randomBytes(4).readUInt32BE(0)}`;
}

function validName(name: string): boolean {
  return name !== '' && !name.includes('/') && !name.startsWith('..') && name !== '.';
}

function lstatOrNull(p: string): ReturnType<typeof lstatSync> | null {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** The payload currently visible through ..data (the target directory and its files). */
export function readProjected(dir: string): { target: string | null; files: Payload } {
  let target: string | null = null;
  try {
    target = readlinkSync(join(dir, DATA_DIR_NAME));
  } catch {
    return { target: null, files: {} };
  }
  const files: Payload = {};
  try {
    for (const f of readdirSync(join(dir, target))) files[f] = readFileSync(join(dir, target, f), 'utf8');
  } catch {
    /* a half-removed directory reads as empty */
  }
  return { target, files };
}

function same(a: Payload, b: Payload): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

/**
 * Makes `dir` hold exactly `payload` (file name -> content). Returns false when it already did
 * (nothing touched), true after a swap.
 */
export function writePayload(dir: string, payload: Payload, now = new Date()): boolean {
  for (const name of Object.keys(payload)) if (!validName(name)) throw new Error(`atomic writer: invalid file name ${JSON.stringify(name)}`);
  mkdirSync(dir, { recursive: true });
  const cur = readProjected(dir);
  const visibleOk = Object.keys(payload).every((n) => lstatOrNull(join(dir, n))?.isSymbolicLink());
  if (cur.target !== null && same(cur.files, payload) && visibleOk) return false;

  // 1. the new payload in a fresh timestamped directory
  const tsName = tsDirName(now);
  const tsDir = join(dir, tsName);
  mkdirSync(tsDir, { mode: 0o755 });
  for (const [name, text] of Object.entries(payload)) {
    const fd = openSync(join(tsDir, name), 'w', 0o644);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  // 2. swap ..data atomically
  const tmpLink = join(dir, DATA_TMP_NAME);
  rmSync(tmpLink, { force: true });
  symlinkSync(tsName, tmpLink);
  renameSync(tmpLink, join(dir, DATA_DIR_NAME));
  // 3. user-visible symlinks for new files (a plain file in the way is replaced atomically)
  for (const name of Object.keys(payload)) {
    const p = join(dir, name);
    const st = lstatOrNull(p);
    if (st?.isSymbolicLink()) continue;
    const tmp = join(dir, `..${name}_tmp`);
    rmSync(tmp, { force: true, recursive: true });
    symlinkSync(join(DATA_DIR_NAME, name), tmp);
    if (st?.isDirectory()) rmSync(p, { recursive: true, force: true });
    renameSync(tmp, p);
  }
  // 4. remove user-visible symlinks of files no longer in the payload
  for (const name of readdirSync(dir)) {
    if (name.startsWith('..') || name in payload) continue;
    const p = join(dir, name);
    const st = lstatOrNull(p);
    if (st?.isSymbolicLink() && readlinkSync(p) === join(DATA_DIR_NAME, name)) rmSync(p, { force: true });
  }
  // 5. remove old timestamped directories
  for (const name of readdirSync(dir)) {
    if (name.startsWith('..') && name !== DATA_DIR_NAME && name !== tsName && /^\.\.\d{4}_/.test(name))
      rmSync(join(dir, name), { recursive: true, force: true });
  }
  return true;
}
