/**
 * The Node.js that runs the in-lab programs (agent, controller, in-lab helpers, probe clients,
 * responders): every lab container calls it as /usr/bin/node.
 *
 *   image  the base image's own: Debian 12's nodejs (18.20), built with shared libraries and
 *          without V8's code cache or startup snapshot, so every start compiles Node's own
 *          JavaScript first. Measured in a lab container: 0.21 CPU-seconds for `node -e 0`, 0.34
 *          to load the agent's bundle, 0.27 for an in-lab helper.
 *   host   the Node.js running the harness (process.execPath, its real path) bind-mounted read-only
 *          over /usr/bin/node in every lab container. On the machines this was measured on
 *          (NodeSource's 20.20, code cache and snapshot built in): 0.08, 0.17 and 0.13
 *          CPU-seconds. A cluster lab starts some twenty Node programs, and faults restart some.
 *   auto   (default) host when that binary runs in the lab image, else image. Whether it runs is
 *          checked once per (image, binary) in a throwaway container with no network and no
 *          capability, and remembered in the state dir (lab-node.json; delete it to check again).
 *          Remembered is what the binary did there; an engine that failed to run the check, and a
 *          version other than this process's (the binary replaced meanwhile), are checked again
 *          at the next lab. Never with the volume payload: a remote engine cannot see this
 *          machine's files.
 *
 * EGRESSLAB_LAB_NODE (or the Lab option `node`) picks one; a bad value is refused naming it.
 * The lab's containers carry the choice in the label egresslab.node ("image" or "host:<version>").
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { docker, LABEL } from './client.js';
import type { LabMount } from './containers.js';
import { LabError, ValidationError } from '../util/errors.js';

export type LabNodeMode = 'image' | 'host' | 'auto';
export const LAB_NODE_MODES: readonly LabNodeMode[] = ['image', 'host', 'auto'];
export const LAB_NODE_ENV = 'EGRESSLAB_LAB_NODE';
/** Where the in-lab programs find node (lab-config.ts and the in-lab helpers call plain "node"). */
export const IN_LAB_NODE = '/usr/bin/node';

/** What the lab's containers run their Node programs with. */
export interface LabNode {
  kind: 'image' | 'host';
  /** host: the binary mounted over /usr/bin/node, and its version */
  binary?: string;
  version?: string;
  /** why, for progress messages */
  reason: string;
}

/** The mode: the Lab option, else EGRESSLAB_LAB_NODE, else auto. A bad value is refused naming the option or variable and the value. */
export function labNodeMode(option: string | undefined, env: NodeJS.ProcessEnv = process.env): { mode: LabNodeMode; from: string } {
  const allowed = 'expected "image", "host" or "auto"';
  if (option !== undefined) {
    if (!(LAB_NODE_MODES as readonly string[]).includes(option)) throw new ValidationError('lab options', [{ path: 'node', value: option, message: allowed }]);
    return { mode: option as LabNodeMode, from: 'Lab option node' };
  }
  const v = env[LAB_NODE_ENV];
  if (v === undefined || v === '') return { mode: 'auto', from: 'default' };
  if (!(LAB_NODE_MODES as readonly string[]).includes(v)) throw new ValidationError('environment', [{ path: LAB_NODE_ENV, value: v, message: allowed }]);
  return { mode: v as LabNodeMode, from: `${LAB_NODE_ENV}=${v}` };
}

/** The read-only mount that puts the host's binary in place of the image's node (none for the image's own). */
export function labNodeMounts(n: LabNode): LabMount[] {
  return n.kind === 'host' && n.binary ? [{ type: 'bind', source: n.binary, target: IN_LAB_NODE }] : [];
}

/** The label value saying which node a lab container runs. */
export function labNodeLabel(n: LabNode): string {
  return n.kind === 'host' ? `host:${n.version}` : 'image';
}

/** The outcome of running the host's binary in the image: its output, or why it did not run. */
export type NodeCheck = { ok: true; output: string } | { ok: false; message: string /** not remembered: the next lab checks again */; transient?: boolean };

export interface ChooseLabNodeArgs {
  mode: LabNodeMode;
  /** where the mode came from (option, variable, default) */
  from: string;
  /** the payload mode: a volume payload means an engine that cannot see this machine's files */
  payload: 'bundle' | 'bind' | 'volume';
  image: string;
  /** the image's id (content): part of the cache key */
  imageId: string;
  /** default: the real path of process.execPath */
  binary?: string;
  /** default: process.version and process.arch */
  expect?: string;
  /** runs `command -v node` and `node -p 'process.version + " " + process.arch'` with `binary` over /usr/bin/node in `image` (checkNodeInImage) */
  check: (image: string, binary: string) => Promise<NodeCheck>;
  /** the cache file (default <state dir>/lab-node.json); null: no cache */
  cacheFile: string | null;
  /** only this platform's binaries can run in a Linux container */
  platform?: NodeJS.Platform;
}

interface CacheEntry {
  /** the check's container ran the binary to its end with exit status 0 */
  ran: boolean;
  /** what it printed (ran), else why it did not run */
  output: string;
  checkedAt: string;
}

/** What the (image, binary) pair is: the image's id, the binary's path, size, change time and inode. */
function cacheKey(imageId: string, binary: string): string {
  const s = statSync(binary);
  return createHash('sha256')
    .update(JSON.stringify([imageId, binary, s.size, s.mtimeMs, s.ino]))
    .digest('hex')
    .slice(0, 24);
}

function readCache(file: string | null): Record<string, CacheEntry> {
  if (!file) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, CacheEntry>;
  } catch {
    return {};
  }
}

function writeCache(file: string | null, key: string, entry: CacheEntry): void {
  if (!file) return;
  try {
    const all = { ...readCache(file), [key]: entry };
    // a handful of (image, binary) pairs: keep the newest 20
    const kept = Object.fromEntries(
      Object.entries(all)
        .sort((a, b) => b[1].checkedAt.localeCompare(a[1].checkedAt))
        .slice(0, 20),
    );
    mkdirSync(join(file, '..'), { recursive: true });
    const tmp = `${file}.${process.pid}-${Date.now()}`;
    writeFileSync(tmp, `${JSON.stringify(kept, null, 2)}\n`);
    renameSync(tmp, file);
  } catch {
    // the cache is an optimisation: an unwritable state dir only costs the check next time
  }
}

/**
 * Decides which node the lab's containers run (see the file comment). "host" that cannot be had
 * is an error naming why; "auto" then falls back to the image's, saying why in `reason`.
 */
export async function chooseLabNode(a: ChooseLabNodeArgs): Promise<LabNode> {
  if (a.mode === 'image') return { kind: 'image', reason: a.from };
  const refuse = (why: string): LabNode => {
    if (a.mode === 'host') throw new LabError(`${a.from}: the host's Node.js cannot run the in-lab programs: ${why}`);
    return { kind: 'image', reason: `the host's Node.js is not used: ${why}` };
  };
  if ((a.platform ?? process.platform) !== 'linux') return refuse(`this machine runs ${a.platform ?? process.platform}, lab containers run Linux`);
  if (a.payload === 'volume') return refuse("the in-lab code goes in a payload volume (an engine on another machine cannot see this one's files)");
  let binary: string;
  try {
    binary = a.binary ?? realpathSync(process.execPath);
  } catch (error) {
    return refuse(`${process.execPath}: ${(error as Error).message}`);
  }
  const expect = a.expect ?? `${process.version} ${process.arch}`;
  const version = expect.split(' ')[0]!;
  const key = cacheKey(a.imageId, binary);
  const judge = (e: CacheEntry, when: string): LabNode | 'again' => {
    if (!e.ran) return refuse(`${binary} did not run in ${a.image}${when}: ${e.output}`);
    const [path, printed] = e.output.split('\n').map((l) => l.trim());
    // the lab's programs call plain "node": an image whose PATH finds another one first would not run the mounted binary
    if (path !== IN_LAB_NODE) return refuse(`in ${a.image} "node" is ${JSON.stringify(path)}, not ${IN_LAB_NODE}, where the binary is mounted`);
    if (printed === expect) return { kind: 'host', binary, version, reason: `${a.from}; ran in ${a.image}${when}` };
    // another version than this process's: the binary was replaced since this process started (an
    // upgrade during a long run), or since the check; never remembered as "does not run"
    return 'again';
  };
  const cached = readCache(a.cacheFile)[key];
  if (cached && typeof cached.ran === 'boolean') {
    const j = judge(cached, ` (checked ${cached.checkedAt})`);
    if (j !== 'again') return j;
  }
  const r = await a.check(a.image, binary);
  const entry: CacheEntry = { ran: r.ok, output: r.ok ? r.output.trim() : r.message, checkedAt: new Date().toISOString() };
  // remembered: what the binary did in the image; not: the engine failing to run the check (an
  // API error, the container removed by a teardown meanwhile, a timeout), which says nothing about it
  if (r.ok || !r.transient) writeCache(a.cacheFile, key, entry);
  const j = judge(entry, '');
  if (j !== 'again') return j;
  return refuse(`${binary} in ${a.image} printed ${JSON.stringify(entry.output.split('\n')[1] ?? '')}, expected ${JSON.stringify(expect)}`);
}

/**
 * Runs the binary in the image the way lab containers would (mounted read-only over /usr/bin/node,
 * called as plain "node") in a throwaway container: no network, no capability, labelled with the
 * lab's id (down and prune remove a leftover), removed afterwards. Bounded by `timeoutMs`.
 */
export async function checkNodeInImage(image: string, binary: string, labels: Record<string, string>, timeoutMs = 60_000): Promise<NodeCheck> {
  const d = docker();
  let container: Awaited<ReturnType<typeof d.createContainer>> | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    container = await d.createContainer({
      Image: image,
      // the path "node" resolves to (the lab's programs call plain "node"), then what it says it is
      Cmd: ['sh', '-c', 'command -v node && node -p \'process.version + " " + process.arch\''],
      Tty: true,
      Labels: { ...labels, [LABEL.managed]: 'true' },
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges:true'],
        Mounts: [{ Type: 'bind', Source: binary, Target: IN_LAB_NODE, ReadOnly: true }],
      },
    });
    const c = container;
    const run = (async () => {
      await c.start();
      const w = (await c.wait()) as { StatusCode: number };
      const out = String(await c.logs({ stdout: true, stderr: true })).trim();
      return w.StatusCode === 0 ? ({ ok: true, output: out } as const) : ({ ok: false, message: `exit ${w.StatusCode}: ${out.slice(0, 300)}` } as const);
    })();
    const limit = new Promise<NodeCheck>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, message: `no answer within ${timeoutMs} ms`, transient: true }), timeoutMs);
    });
    return await Promise.race([run, limit]);
  } catch (error) {
    // the engine did not run the check (or a teardown removed its container meanwhile): nothing learnt about the binary
    return { ok: false, message: String((error as { json?: { message?: string } }).json?.message ?? (error as Error).message), transient: true };
  } finally {
    if (timer) clearTimeout(timer);
    await container?.remove({ force: true }).catch(() => {});
  }
}
