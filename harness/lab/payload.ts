/**
 * The in-lab code (agent, controller, harness/inlab/* programs) and how lab containers get it.
 *
 *   bundle  the "payload" (below), unpacked once per content hash into the host cache and
 *           bind-mounted read-only at /opt/egresslab: the default with a local engine. A bundled
 *           program starts with about a third less CPU than the same program loading its ~100
 *           modules one by one from dist/ and node_modules/ (measured: an agent 0.34 against 0.52
 *           CPU-seconds), and a lab starts about ten Node programs.
 *   bind    the checkout is bind-mounted read-only at /opt/egresslab (a local engine: a rebuilt
 *           dist/ is live in every new process, nothing else to ship: for working on egresslab's
 *           own in-lab code in a lab that stays up)
 *   volume  the payload: each in-lab entry point bundled (rolldown, from dist/) into one ESM
 *           file at the same path under dist/, shared code in dist/chunks/, plus a package.json
 *           saying "type": "module"; packed into a deterministic tar, content-hashed, and put into
 *           a per-lab Docker volume (labelled like every lab object) through the Docker API — the
 *           volume is then mounted read-only at /opt/egresslab, so every in-lab path is the same
 *           in both modes. Works against any engine DOCKER_HOST names.
 *
 * Mode: the Lab option `payload`, else EGRESSLAB_PAYLOAD (bundle | bind | volume | auto), else auto:
 * volume when DOCKER_HOST points at another machine (tcp://, http(s)://, ssh:// to a non-loopback
 * host), bundle otherwise.
 *
 * The bundle is cached on the host (<state dir>/payload/): reused while every file that went into
 * it (dist/ modules and node_modules files, by sha256) is unchanged.
 *
 * An installed package (npm install egresslab; no TypeScript sources, see installedPackage) has
 * neither the sources nor a node_modules of its own to bundle from: `npm pack` bundled the payload
 * beforehand into dist/payload/ (bin/prepack.ts, writePrebuiltPayload). Bind mode then mounts that
 * folder (bundle and bind modes alike), volume mode archives it as it is; nothing is bundled at run
 * time and rolldown (a development dependency) is not needed.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { isIP } from 'node:net';
import { extract as tarExtract, pack as tarPack } from 'tar-stream';
import { docker, isNotFound } from '../docker/client.js';
import { LAB_CONFIG } from '../docker/containers.js';
import { LabError, ValidationError } from '../util/errors.js';
import { IN_LAB_ROOT, installedPackage, projectRoot } from '../util/paths.js';
import { stateDir } from '../cluster/background-forward.js';

/**
 * How the lab's programs reach its containers: the bundled payload bind-mounted from the host cache,
 * a bind mount of the checkout, or a Docker volume filled once (EGRESSLAB_PAYLOAD; a remote engine
 * needs volume).
 */
export type PayloadMode = 'bundle' | 'bind' | 'volume';
export const PAYLOAD_MODES: readonly PayloadMode[] = ['bundle', 'bind', 'volume'];
export const PAYLOAD_ENV = 'EGRESSLAB_PAYLOAD';
/** Bump when the payload's layout or bundling options change (invalidates the host cache). */
export const PAYLOAD_REVISION = 1;

export interface PayloadModeChoice {
  mode: PayloadMode;
  /** why, for progress messages */
  reason: string;
}

/** Whether `host` (a URL hostname) names this machine's loopback: localhost, 127.0.0.0/8, ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * Whether DOCKER_HOST names an engine on another machine (one that cannot see this checkout).
 * Unset, unix:// and npipe:// are local; tcp://, http(s):// and ssh:// are remote unless their host
 * is a loopback address. Anything else is refused, naming the variable and its value.
 */
export function dockerHostIsRemote(dockerHost: string | undefined): boolean {
  if (dockerHost === undefined || dockerHost === '') return false;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(dockerHost)?.[1]?.toLowerCase();
  if (scheme === 'unix' || scheme === 'npipe') return false;
  if (scheme === 'tcp' || scheme === 'http' || scheme === 'https' || scheme === 'ssh') {
    let host = '';
    try {
      host = new URL(dockerHost).hostname;
    } catch {
      // fall through to the error below
    }
    if (host) return !isLoopbackHost(host);
  }
  throw new ValidationError('environment', [
    { path: 'DOCKER_HOST', value: dockerHost, message: 'expected unix:///path, npipe:///path, tcp://host:port, http(s)://host:port or ssh://[user@]host' },
  ]);
}

/**
 * Chooses bind or volume: `option` (the Lab option; "auto" or absent defers), then
 * EGRESSLAB_PAYLOAD ("auto" or empty defers), then DOCKER_HOST. Bad values are refused with the
 * field and value named.
 */
export function choosePayloadMode(option: string | undefined, env: NodeJS.ProcessEnv = process.env): PayloadModeChoice {
  const allowed = 'expected "bundle", "bind", "volume" or "auto"';
  if (option !== undefined && option !== 'auto') {
    if (!(PAYLOAD_MODES as readonly string[]).includes(option))
      throw new ValidationError('lab options', [{ path: 'payload', value: option, message: allowed }]);
    return { mode: option as PayloadMode, reason: 'Lab option payload' };
  }
  const fromEnv = env[PAYLOAD_ENV];
  if (fromEnv !== undefined && fromEnv !== '' && fromEnv !== 'auto') {
    if (!(PAYLOAD_MODES as readonly string[]).includes(fromEnv))
      throw new ValidationError('environment', [{ path: PAYLOAD_ENV, value: fromEnv, message: allowed }]);
    return { mode: fromEnv as PayloadMode, reason: `${PAYLOAD_ENV}=${fromEnv}` };
  }
  const dockerHost = env.DOCKER_HOST;
  if (dockerHostIsRemote(dockerHost)) return { mode: 'volume', reason: `DOCKER_HOST=${dockerHost} is another machine` };
  return { mode: 'bundle', reason: dockerHost ? `DOCKER_HOST=${dockerHost} is this machine` : 'local engine' };
}

// ---------------------------------------------------------------------------------------------
// tar

export interface TarFile {
  /** relative, "/"-separated; directories end with "/" */
  path: string;
  content?: Buffer | string;
}

/** A path inside a payload archive: relative, and never climbing out of the folder it is unpacked in (tarArchive, untar). */
function assertTarPath(path: string): void {
  if (!path || path.startsWith('/') || path.split('/').includes('..')) throw new LabError(`payload: bad tar path ${JSON.stringify(path)}`);
}

/**
 * A deterministic ustar archive (tar-stream): entries sorted, every parent directory listed, owner
 * root, mode 0644/0755, mtime 0. The same files always give the same bytes.
 */
export async function tarArchive(files: TarFile[]): Promise<Buffer> {
  const entries = new Map<string, Buffer | undefined>();
  for (const f of files) {
    assertTarPath(f.path);
    const parts = f.path.replace(/\/$/, '').split('/');
    for (let i = 1; i < parts.length; i++) entries.set(`${parts.slice(0, i).join('/')}/`, undefined);
    if (f.path.endsWith('/')) entries.set(f.path, undefined);
    else entries.set(f.path, Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content ?? '', 'utf8'));
  }
  const pack = tarPack();
  const owner = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: new Date(0) }; // fixed: the archive (and its hash) is deterministic
  for (const path of [...entries.keys()].sort()) {
    const content = entries.get(path);
    if (content === undefined) pack.entry({ name: path, type: 'directory', mode: 0o755, ...owner });
    else pack.entry({ name: path, type: 'file', mode: 0o644, ...owner }, content);
  }
  pack.finalize();
  const out: Buffer[] = [];
  for await (const chunk of pack) out.push(chunk as Buffer);
  return Buffer.concat(out);
}

// ---------------------------------------------------------------------------------------------
// bundling

/** Entry points always shipped (when their source exists), besides every harness/inlab program. */
const FIXED_ENTRIES = ['agent/main', 'controller/main'];

/**
 * Every in-lab entry point: name (path under dist/ without .js) -> absolute dist/ file. An entry is
 * included when its TypeScript source exists; its build output must then exist too.
 */
export function payloadEntries(root = projectRoot()): Record<string, string> {
  const inlabSrc = join(root, 'harness/inlab');
  const inlab = existsSync(inlabSrc)
    ? readdirSync(inlabSrc)
        .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
        .map((f) => `harness/inlab/${f.slice(0, -3)}`)
    : readdirSync(join(root, 'dist/harness/inlab'))
        .filter((f) => f.endsWith('.js'))
        .map((f) => `harness/inlab/${f.slice(0, -3)}`);
  const names = [...FIXED_ENTRIES.filter((e) => existsSync(join(root, `${e}.ts`)) || existsSync(join(root, 'dist', `${e}.js`))), ...inlab].sort();
  const entries: Record<string, string> = {};
  for (const name of names) {
    const file = join(root, 'dist', `${name}.js`);
    if (!existsSync(file)) throw new LabError(`payload: ${file} is missing: run "npm run build" first`);
    entries[name] = file;
  }
  return entries;
}

export interface Payload {
  /** sha256 of the tar archive, hex */
  hash: string;
  tar: Buffer;
  /** the archive's files (not directories) */
  files: string[];
  /** modules that went into the bundle, relative to the project root */
  inputs: number;
  /** bundling time (0 when taken from the cache) */
  bundleMs: number;
  /** time to hash the inputs and check the cache */
  checkMs: number;
  cached: boolean;
}

interface CacheManifest {
  revision: number;
  rolldown: string;
  hash: string;
  files: string[];
  /** input file (relative to the project root) -> sha256 */
  inputs: Record<string, string>;
}

type Rolldown = typeof import('rolldown');

async function loadRolldown(): Promise<Rolldown> {
  try {
    return await import('rolldown');
  } catch (error) {
    throw new LabError(
      'payload: cannot load rolldown, which bundles the in-lab code for the bundle and volume modes (it is installed with the dev dependencies, via vitest/vite): ' +
        'run "npm install", or use EGRESSLAB_PAYLOAD=bind with a local engine',
      { cause: error },
    );
  }
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Where `import.meta.url` of a module points in bind mode: its path under /opt/egresslab. */
function inLabUrl(root: string, id: string): string {
  return `file://${IN_LAB_ROOT}/${relative(root, id).split(sep).join('/')}`;
}

/**
 * Bundles the entries. Each module's `import.meta.url` is replaced by the URL it has in bind mode,
 * so a `import.meta.url === argv[1]` main guard of a module bundled into another entry stays false.
 * An import that does not resolve, or an output importing anything but node builtins and its own
 * chunks, fails the build (it would fail only later, inside the lab).
 */
async function bundle(root: string, entries: Record<string, string>): Promise<{ files: TarFile[]; inputs: string[]; rolldown: string }> {
  const { rolldown, VERSION } = await loadRolldown();
  const problems: string[] = [];
  const build = await rolldown({
    input: entries,
    cwd: root,
    platform: 'node',
    treeshake: true,
    onLog(level, log) {
      if (level === 'warn' && log.code === 'UNRESOLVED_IMPORT') problems.push(log.message.split('\n')[0] ?? log.message);
    },
    plugins: [
      {
        name: 'egresslab-in-lab-import-meta-url',
        transform(code, id) {
          if (!code.includes('import.meta.url') || !isAbsolute(id)) return null;
          return { code: code.replace(/\bimport\.meta\.url\b/g, JSON.stringify(inLabUrl(root, id))) };
        },
      },
    ],
  });
  let output: Awaited<ReturnType<typeof build.generate>>;
  try {
    output = await build.generate({ format: 'esm', entryFileNames: '[name].js', chunkFileNames: 'chunks/[name]-[hash].js', sourcemap: false });
  } finally {
    await build.close();
  }
  if (problems.length) throw new LabError(`payload: the in-lab code imports what cannot be bundled:\n${problems.join('\n')}`);
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  const chunks = new Set(output.output.map((o) => o.fileName));
  const files: TarFile[] = [];
  const inputs = new Set<string>();
  for (const o of output.output) {
    if (o.type !== 'chunk') continue;
    const foreign = [...o.imports, ...o.dynamicImports].filter((i) => !builtins.has(i) && !chunks.has(i));
    if (foreign.length) throw new LabError(`payload: ${o.fileName} would import ${foreign.join(', ')} at run time (not bundled)`);
    files.push({ path: `dist/${o.fileName}`, content: o.code });
    for (const id of o.moduleIds) if (isAbsolute(id) && existsSync(id)) inputs.add(id);
  }
  return { files, inputs: [...inputs].sort(), rolldown: VERSION };
}

export interface BuildPayloadOptions {
  root?: string;
  /** default <state dir>/payload; null: no cache */
  cacheDir?: string | null;
  /**
   * A folder holding the payload's files, bundled beforehand (writePrebuiltPayload): archived as it
   * is, nothing bundled. Default: an installed package's dist/payload/ (when `root` is not given and
   * installedPackage()), else none (null).
   */
  prebuilt?: string | null;
}

/** The folder where `npm pack` leaves the bundled payload (bin/prepack.ts), inside the package. */
export function prebuiltPayloadDir(root = projectRoot()): string {
  return join(root, 'dist', 'payload');
}

/**
 * What lab containers mount at /opt/egresslab in bind mode: the checkout (its dist/ and
 * node_modules/), or for an installed package the payload bundled when it was packed.
 */
export function payloadBindSource(root = projectRoot()): string {
  if (!installedPackage(root)) return root;
  const dir = prebuiltPayloadDir(root);
  if (!existsSync(join(dir, 'payload.json'))) throw missingPrebuilt(dir);
  return dir;
}

function missingPrebuilt(dir: string): LabError {
  return new LabError(
    `payload: ${dir} is missing: this installed egresslab package has no bundled in-lab code. ` +
      `Install it from a tarball made by "npm pack" (its prepack step bundles the payload), or from the registry`,
  );
}

/** Every file under `dir`, relative and "/"-separated, sorted. */
function filesUnder(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, prefix)).sort()) {
    const rel = prefix ? `${prefix}/${name}` : name;
    if (statSync(join(dir, rel)).isDirectory()) out.push(...filesUnder(dir, rel));
    else out.push(rel);
  }
  return out;
}

/** The payload from a folder of bundled files (an installed package's dist/payload/). */
function payloadFromDir(dir: string, t0: number): Promise<Payload> {
  if (!existsSync(join(dir, 'payload.json')) || !existsSync(join(dir, 'package.json'))) return Promise.reject(missingPrebuilt(dir));
  const paths = filesUnder(dir);
  return tarArchive(paths.map((path) => ({ path, content: readFileSync(join(dir, path)) }))).then((tar) => ({
    hash: sha256(tar),
    tar,
    files: paths,
    inputs: paths.length,
    bundleMs: 0,
    checkMs: performance.now() - t0,
    cached: true,
  }));
}

/** Bundles the entries and adds the payload's package.json (type: module) and payload.json (what went in). */
async function assemble(root: string, entries: Record<string, string>): Promise<{ files: TarFile[]; inputs: string[]; rolldown: string }> {
  const built = await bundle(root, entries);
  const meta = { revision: PAYLOAD_REVISION, rolldown: built.rolldown, entries: Object.keys(entries) };
  const files: TarFile[] = [
    { path: 'package.json', content: `${JSON.stringify({ name: 'egresslab-payload', private: true, type: 'module' })}\n` },
    { path: 'payload.json', content: `${JSON.stringify(meta, null, 2)}\n` },
    ...built.files,
  ];
  return { files, inputs: built.inputs, rolldown: built.rolldown };
}

/** The payload for the current build output: from the host cache when its inputs are unchanged, else bundled. */
export async function buildPayload(options: BuildPayloadOptions = {}): Promise<Payload> {
  const t0 = performance.now();
  const prebuilt = options.prebuilt !== undefined ? options.prebuilt : options.root === undefined && installedPackage() ? prebuiltPayloadDir() : null;
  if (prebuilt) return payloadFromDir(prebuilt, t0);
  const root = options.root ?? projectRoot();
  const entries = payloadEntries(root);
  const cacheDir = options.cacheDir === undefined ? join(stateDir(), 'payload') : options.cacheDir;
  const key = sha256(JSON.stringify({ revision: PAYLOAD_REVISION, root, entries: Object.keys(entries) })).slice(0, 16);
  const manifestPath = cacheDir ? join(cacheDir, `${key}.json`) : undefined;
  if (manifestPath && existsSync(manifestPath)) {
    try {
      const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as CacheManifest;
      const fresh =
        m.revision === PAYLOAD_REVISION && Object.entries(m.inputs).every(([f, h]) => existsSync(join(root, f)) && sha256(readFileSync(join(root, f))) === h);
      const tarPath = join(cacheDir!, `${m.hash}.tar`);
      if (fresh && existsSync(tarPath)) {
        const tar = readFileSync(tarPath);
        if (sha256(tar) === m.hash) {
          return { hash: m.hash, tar, files: m.files, inputs: Object.keys(m.inputs).length, bundleMs: 0, checkMs: performance.now() - t0, cached: true };
        }
      }
    } catch {
      // an unreadable cache entry is rebuilt
    }
  }
  const checkMs = performance.now() - t0;
  const t1 = performance.now();
  const built = await assemble(root, entries);
  const tar = await tarArchive(built.files);
  const hash = sha256(tar);
  const bundleMs = performance.now() - t1;
  const payload: Payload = { hash, tar, files: built.files.map((f) => f.path).sort(), inputs: built.inputs.length, bundleMs, checkMs, cached: false };
  if (cacheDir && manifestPath) {
    try {
      mkdirSync(cacheDir, { recursive: true });
      const inputs: Record<string, string> = {};
      for (const f of built.inputs) inputs[relative(root, f).split(sep).join('/')] = sha256(readFileSync(f));
      const manifest: CacheManifest = { revision: PAYLOAD_REVISION, rolldown: built.rolldown, hash, files: payload.files, inputs };
      const tmp = `.${process.pid}-${Date.now()}`;
      writeFileSync(join(cacheDir, `${hash}.tar${tmp}`), tar);
      renameSync(join(cacheDir, `${hash}.tar${tmp}`), join(cacheDir, `${hash}.tar`));
      writeFileSync(`${manifestPath}${tmp}`, `${JSON.stringify(manifest)}\n`);
      renameSync(`${manifestPath}${tmp}`, manifestPath);
      pruneCache(cacheDir);
    } catch {
      // the cache is an optimisation: a read-only state dir only costs a rebuild next time
    }
  }
  return payload;
}

/** What bundle mode mounts: the unpacked payload's folder, and the payload it holds. */
export interface PayloadDir {
  dir: string;
  /** sha256 of the payload archive (hex); "prebuilt" for an installed package's dist/payload/ */
  hash: string;
  payload?: Payload;
  /** the folder was unpacked now (false: it was there from an earlier lab) */
  unpacked: boolean;
}

/** How long an unused unpacked payload stays in the host cache (a lab being set up elsewhere may be about to mount it). */
const UNPACKED_KEEP_MS = 60 * 60 * 1000;

/**
 * Bundle mode's folder: the payload of the current build (buildPayload: from the host cache when
 * its inputs are unchanged) unpacked under <cache>/<hash>/, once per content hash; an installed
 * package's dist/payload/ as it is. `inUse` lists the payload hashes (12 hex digits) that lab
 * containers mount: their folders are never removed; other unpacked payloads older than an hour are.
 */
export async function bundledPayloadDir(options: BuildPayloadOptions & { inUse?: () => Promise<Set<string>> } = {}): Promise<PayloadDir> {
  if (options.root === undefined && options.prebuilt === undefined && installedPackage())
    return { dir: payloadBindSource(), hash: 'prebuilt', unpacked: false };
  const cacheDir = options.cacheDir ?? join(stateDir(), 'payload');
  const payload = await buildPayload({ ...options, cacheDir });
  const dir = join(cacheDir, payload.hash.slice(0, 12));
  if (existsSync(join(dir, 'payload.json'))) {
    // used now: an hour before another process's prune may take it (pruneUnpacked)
    try {
      const now = new Date();
      utimesSync(dir, now, now);
      if (existsSync(join(dir, 'payload.json'))) return { dir, hash: payload.hash, payload, unpacked: false };
    } catch {
      // pruned meanwhile (it was an hour old and unused): unpacked again below
    }
  }
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  try {
    await untar(payload.tar, tmp);
    // a folder without payload.json is what an interrupted removal left: never mounted complete
    if (existsSync(dir) && !existsSync(join(dir, 'payload.json'))) rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(tmp, dir);
    } catch (error) {
      // another process unpacked the same payload meanwhile: same content, keep theirs
      if (!existsSync(join(dir, 'payload.json')))
        throw new LabError(`payload: cannot put the unpacked payload in place at ${dir}: ${(error as Error).message}`, { cause: error });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (options.inUse) await pruneUnpacked(cacheDir, payload.hash.slice(0, 12), options.inUse).catch(() => {});
  return { dir, hash: payload.hash, payload, unpacked: true };
}

/**
 * Removes, from the host cache, unpacked payloads (folders named by 12 hex digits) that no lab
 * container mounts and that no process used for UNPACKED_KEEP_MS, and unpacking leftovers
 * (`*.tmp-*`, a process that died while unpacking) as old. The age is read again after the engine
 * said what is mounted: a process that reused the folder meanwhile keeps it.
 */
async function pruneUnpacked(cacheDir: string, keep: string, inUse: () => Promise<Set<string>>): Promise<void> {
  const old = (n: string): boolean => {
    try {
      return Date.now() - statSync(join(cacheDir, n)).mtimeMs > UNPACKED_KEEP_MS;
    } catch {
      return false;
    }
  };
  const names = readdirSync(cacheDir);
  for (const n of names.filter((n) => /^[0-9a-f]{12}\.tmp-/.test(n) && old(n))) rmSync(join(cacheDir, n), { recursive: true, force: true });
  const candidates = names.filter((n) => /^[0-9a-f]{12}$/.test(n) && n !== keep && old(n));
  if (candidates.length === 0) return;
  const used = await inUse();
  for (const n of candidates) {
    if (used.has(n) || !old(n)) continue;
    // out of the way first (one rename): a process that looks for it now unpacks it again
    const trash = join(cacheDir, `${n}.tmp-prune-${process.pid}-${Date.now()}`);
    try {
      renameSync(join(cacheDir, n), trash);
    } catch {
      continue;
    }
    rmSync(trash, { recursive: true, force: true });
  }
}

/** Unpacks a payload archive (tarArchive: files and directories only, relative paths) into `dir`. */
export function untar(tar: Buffer, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ex = tarExtract();
    ex.on('entry', (header, stream, next) => {
      try {
        assertTarPath(header.name);
      } catch (error) {
        ex.destroy(error as Error);
        return;
      }
      const name = header.name.replace(/\/$/, '');
      const target = join(dir, name);
      if (header.type === 'directory') {
        mkdirSync(target, { recursive: true });
        stream.resume();
        stream.on('end', next);
        return;
      }
      if (header.type !== 'file') {
        ex.destroy(new LabError(`payload: unexpected ${header.type} entry ${JSON.stringify(header.name)} in the archive`));
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        try {
          mkdirSync(dirname(target), { recursive: true });
          writeFileSync(target, Buffer.concat(chunks), { mode: 0o644 });
          next();
        } catch (error) {
          ex.destroy(error as Error);
        }
      });
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
    mkdirSync(dir, { recursive: true });
    ex.end(tar);
  });
}

/** What writePrebuiltPayload wrote. */
export interface PrebuiltPayload {
  dir: string;
  /** the payload's files, relative to dir */
  files: string[];
  bytes: number;
  bundleMs: number;
}

/**
 * Bundles the in-lab code of the build output under `root` (no cache) and writes the payload's
 * files into `dir` (default dist/payload/ of `root`), replacing what was there: what an installed
 * package mounts or ships (see prebuiltPayloadDir). `npm pack` runs it (bin/prepack.ts).
 */
export async function writePrebuiltPayload(options: { root?: string; dir?: string } = {}): Promise<PrebuiltPayload> {
  const root = options.root ?? projectRoot();
  const dir = options.dir ?? prebuiltPayloadDir(root);
  const t0 = performance.now();
  const built = await assemble(root, payloadEntries(root));
  const bundleMs = performance.now() - t0;
  // written next to the target, then swapped in: a reader never sees half a payload
  const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
  let bytes = 0;
  try {
    for (const f of built.files) {
      const content = Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content ?? '', 'utf8');
      mkdirSync(dirname(join(tmp, f.path)), { recursive: true });
      writeFileSync(join(tmp, f.path), content);
      bytes += content.length;
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { dir, files: built.files.map((f) => f.path).sort(), bytes, bundleMs };
}

/** Removes cached archives no manifest refers to (older builds). */
function pruneCache(cacheDir: string): void {
  const names = readdirSync(cacheDir);
  const wanted = new Set<string>();
  for (const n of names.filter((n) => n.endsWith('.json'))) {
    try {
      wanted.add(`${(JSON.parse(readFileSync(join(cacheDir, n), 'utf8')) as CacheManifest).hash}.tar`);
    } catch {
      // ignore
    }
  }
  for (const n of names) if (n.endsWith('.tar') && !wanted.has(n)) rmSync(join(cacheDir, n), { force: true });
}

// ---------------------------------------------------------------------------------------------
// shipping

export function payloadVolumeName(labId: string): string {
  return `egl-${labId}-payload`;
}

/**
 * Creates the lab's (empty) payload volume, labelled with `labels`. A volume of that name left by a
 * crashed lab of the same id is replaced.
 */
export async function createPayloadVolume(volume: string, labels: Record<string, string>): Promise<void> {
  const d = docker();
  try {
    await d.getVolume(volume).remove({ force: true });
  } catch (error) {
    if (!isNotFound(error)) throw new LabError(`payload: a volume ${volume} exists and cannot be removed: ${(error as Error).message}`, { cause: error });
  }
  await d.createVolume({ Name: volume, Labels: labels });
}

/**
 * Fills the payload volume through the Docker API: a short-lived loader container (never started)
 * mounts it and the archive is put into it. Containers that already mount the volume see the
 * files as soon as this resolves.
 */
export async function fillPayloadVolume(args: {
  volume: string;
  loaderName: string;
  image: string;
  labels: Record<string, string>;
  payload: Payload;
}): Promise<void> {
  const loader = await docker().createContainer({
    name: args.loaderName,
    Image: args.image,
    Cmd: ['true'],
    Labels: args.labels,
    NetworkDisabled: LAB_CONFIG.NetworkDisabled,
    HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: args.volume, Target: '/payload' }] },
  });
  try {
    await loader.putArchive(args.payload.tar, { path: '/payload' });
  } finally {
    await loader.remove({ force: true }).catch(() => {});
  }
}
