/**
 * Payload mode selection (bind vs volume), the deterministic tar, and bundling + the host cache on a
 * small synthetic project (no Docker, no build output needed).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildPayload,
  bundledPayloadDir,
  choosePayloadMode,
  dockerHostIsRemote,
  isLoopbackHost,
  payloadBindSource,
  payloadEntries,
  prebuiltPayloadDir,
  tarArchive,
  untar as unpack,
  writePrebuiltPayload,
} from './payload.js';
import { ValidationError } from '../util/errors.js';
import { useTempDirs } from '../testing/temp-dirs.js';

const tmp = useTempDirs();

describe('dockerHostIsRemote', () => {
  it.each([undefined, '', 'unix:///var/run/docker.sock', 'unix:///run/user/1000/docker.sock', 'npipe:////./pipe/docker_engine'])('%s is local', (h) => {
    expect(dockerHostIsRemote(h)).toBe(false);
  });
  it.each(['tcp://127.0.0.1:2375', 'tcp://127.1.2.3:2375', 'tcp://localhost:2376', 'tcp://[::1]:2375', 'ssh://me@localhost', 'http://127.0.0.1:2375'])(
    '%s is this machine',
    (h) => {
      expect(dockerHostIsRemote(h)).toBe(false);
    },
  );
  it.each([
    'tcp://10.0.0.5:2376',
    'tcp://docker.example.com:2376',
    'ssh://user@build-host',
    'ssh://user@192.168.7.2:2222',
    'https://engine.internal:2376',
    'tcp://[fd00::5]:2375',
  ])('%s is another machine', (h) => {
    expect(dockerHostIsRemote(h)).toBe(true);
  });
  it.each(['10.0.0.5:2375', 'fd://', 'tcp://', 'ftp://host', '/var/run/docker.sock'])('%s is refused, naming DOCKER_HOST and the value', (h) => {
    expect(() => dockerHostIsRemote(h)).toThrow(ValidationError);
    expect(() => dockerHostIsRemote(h)).toThrow(`DOCKER_HOST`);
    expect(() => dockerHostIsRemote(h)).toThrow(JSON.stringify(h));
  });
  it('loopback names', () => {
    expect(['localhost', 'api.localhost', '127.0.0.1', '127.255.0.9', '::1', '[::1]'].map(isLoopbackHost)).toEqual([true, true, true, true, true, true]);
    expect(['10.0.0.1', '128.0.0.1', 'my-localhost-box', '::2', 'example.com'].map(isLoopbackHost)).toEqual([false, false, false, false, false]);
  });
});

describe('choosePayloadMode', () => {
  it('a local engine mounts the bundled payload; another machine gets the volume', () => {
    expect(choosePayloadMode(undefined, {})).toMatchObject({ mode: 'bundle' });
    expect(choosePayloadMode(undefined, { DOCKER_HOST: 'unix:///var/run/docker.sock' })).toMatchObject({ mode: 'bundle' });
    expect(choosePayloadMode(undefined, { DOCKER_HOST: 'tcp://127.0.0.1:2375' })).toMatchObject({ mode: 'bundle' });
    expect(choosePayloadMode(undefined, { DOCKER_HOST: 'ssh://ci@engine-1' })).toEqual({
      mode: 'volume',
      reason: 'DOCKER_HOST=ssh://ci@engine-1 is another machine',
    });
    expect(choosePayloadMode('auto', { DOCKER_HOST: 'tcp://10.1.2.3:2376' })).toMatchObject({ mode: 'volume' });
  });

  it('EGRESSLAB_PAYLOAD forces a mode; the Lab option wins over it', () => {
    expect(choosePayloadMode(undefined, { EGRESSLAB_PAYLOAD: 'volume' })).toEqual({ mode: 'volume', reason: 'EGRESSLAB_PAYLOAD=volume' });
    expect(choosePayloadMode(undefined, { EGRESSLAB_PAYLOAD: 'bind', DOCKER_HOST: 'tcp://10.1.2.3:2376' })).toMatchObject({ mode: 'bind' });
    expect(choosePayloadMode(undefined, { EGRESSLAB_PAYLOAD: 'auto', DOCKER_HOST: 'tcp://10.1.2.3:2376' })).toMatchObject({ mode: 'volume' });
    expect(choosePayloadMode(undefined, { EGRESSLAB_PAYLOAD: '' })).toMatchObject({ mode: 'bundle' });
    expect(choosePayloadMode(undefined, { EGRESSLAB_PAYLOAD: 'bundle', DOCKER_HOST: 'tcp://10.1.2.3:2376' })).toEqual({
      mode: 'bundle',
      reason: 'EGRESSLAB_PAYLOAD=bundle',
    });
    expect(choosePayloadMode('bind', { EGRESSLAB_PAYLOAD: 'volume' })).toEqual({ mode: 'bind', reason: 'Lab option payload' });
    expect(choosePayloadMode('volume', {})).toMatchObject({ mode: 'volume' });
    // A forced mode does not need DOCKER_HOST to parse.
    expect(choosePayloadMode('volume', { DOCKER_HOST: 'garbage' })).toMatchObject({ mode: 'volume' });
  });

  it('bad values are refused, naming the variable or option and the value', () => {
    expect(() => choosePayloadMode(undefined, { EGRESSLAB_PAYLOAD: 'Volume' })).toThrow(
      /environment: EGRESSLAB_PAYLOAD: expected "bundle", "bind", "volume" or "auto" \(value: "Volume"\)/,
    );
    expect(() => choosePayloadMode(undefined, { EGRESSLAB_PAYLOAD: 'copy' })).toThrow(ValidationError);
    expect(() => choosePayloadMode('tar', {})).toThrow(/lab options: payload: expected "bundle", "bind", "volume" or "auto" \(value: "tar"\)/);
    expect(() => choosePayloadMode(undefined, { DOCKER_HOST: 'docker:2375' })).toThrow(/DOCKER_HOST.*"docker:2375"/);
  });
});

/** Lists and extracts an archive with the system's tar: the format must be one real tools read. */
function untar(archive: Buffer): { listing: string; dir: string } {
  const dir = tmp('egl-untar-');
  const listing = execFileSync('tar', ['-tvf', '-'], { input: archive, encoding: 'utf8' });
  execFileSync('tar', ['-xf', '-', '-C', dir], { input: archive });
  return { listing, dir };
}

describe('tarArchive', () => {
  it('is deterministic, lists parent directories, and real tar reads it back', async () => {
    const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/file-with-a-long-name.js`;
    const files = [
      { path: 'dist/b.js', content: 'b' },
      { path: 'dist/sub/a.js', content: Buffer.from([0, 1, 2, 255]) },
      { path: 'package.json', content: '{"type":"module"}\n' },
      { path: long, content: 'x'.repeat(1000) },
    ];
    const a = await tarArchive(files);
    expect((await tarArchive([...files].reverse())).equals(a)).toBe(true);
    expect(a.length % 512).toBe(0);
    const { listing, dir } = untar(a);
    expect(
      listing
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(/\s+/).pop()),
    ).toEqual([`${'d'.repeat(60)}/`, `${'d'.repeat(60)}/${'e'.repeat(60)}/`, long, 'dist/', 'dist/b.js', 'dist/sub/', 'dist/sub/a.js', 'package.json']);
    expect(listing).toMatch(/^drwxr-xr-x root\/root/m);
    expect(listing).toMatch(/-rw-r--r-- root\/root\s+4 1970-01-01/);
    expect([...readFileSync(join(dir, 'dist/sub/a.js'))]).toEqual([0, 1, 2, 255]);
    expect(readFileSync(join(dir, long), 'utf8')).toBe('x'.repeat(1000));
  });

  it('refuses paths that would escape the target', async () => {
    await expect(tarArchive([{ path: '../etc/passwd', content: '' }])).rejects.toThrow(/bad tar path "..\/etc\/passwd"/);
    await expect(tarArchive([{ path: '/abs', content: '' }])).rejects.toThrow(/bad tar path "\/abs"/);
  });
  it('untar unpacks what tarArchive packed, byte for byte; an archive of something else is refused', async () => {
    const files = [
      { path: 'dist/b.js', content: 'b' },
      { path: 'dist/sub/a.js', content: Buffer.from([0, 1, 2, 255]) },
      { path: 'empty/', content: undefined },
      { path: `${'d'.repeat(60)}/${'e'.repeat(60)}/long.js`, content: 'x'.repeat(1000) },
    ];
    const dir = join(tmp('egl-unpack-'), 'out');
    await unpack(await tarArchive(files), dir);
    expect([...readFileSync(join(dir, 'dist/sub/a.js'))]).toEqual([0, 1, 2, 255]);
    expect(readFileSync(join(dir, 'dist/b.js'), 'utf8')).toBe('b');
    expect(readFileSync(join(dir, files[3]!.path), 'utf8')).toBe('x'.repeat(1000));
    expect(readdirSync(join(dir, 'empty'))).toEqual([]);
    // a symbolic link (made by the system's tar) is not something a payload holds
    const src = tmp('egl-link-');
    writeFileSync(join(src, 'target'), 't');
    execFileSync('ln', ['-s', '/etc/passwd', join(src, 'link')]);
    const withLink = execFileSync('tar', ['-cf', '-', '-C', src, 'link']);
    await expect(unpack(withLink, join(tmp('egl-unpack-'), 'out'))).rejects.toThrow(/unexpected symlink entry "link"/);
    // nor a path climbing out of the folder (made by the system's tar with -P)
    mkdirSync(join(src, 'sub'));
    const climbing = execFileSync('tar', ['-cf', '-', '-C', join(src, 'sub'), '-P', '../target']);
    const out = join(tmp('egl-unpack-'), 'out');
    await expect(unpack(climbing, out)).rejects.toThrow(/bad tar path "..\/target"/);
    expect(existsSync(join(out, '..', 'target'))).toBe(false);
  });
});

/** A tiny project: dist/ entry points, a shared module with its own main guard, a CommonJS package. */
function fakeProject(): string {
  const root = tmp('egl-payload-');
  const write = (rel: string, text: string) => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  };
  write('package.json', '{"name":"fake","type":"module"}\n');
  write('node_modules/fakepkg/package.json', '{"name":"fakepkg","main":"index.js"}\n');
  write('node_modules/fakepkg/index.js', 'exports.greet = (n) => "hello " + n;\n');
  write(
    'dist/lib/shared.js',
    [
      "import { pathToFileURL } from 'node:url';",
      "import { greet } from 'fakepkg';",
      'export const who = () => greet("lab");',
      'export const sharedUrl = import.meta.url;',
      "if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) console.log('SHARED MAIN RAN');",
    ].join('\n'),
  );
  write(
    'dist/agent/main.js',
    "import { who, sharedUrl } from '../lib/shared.js';\nconsole.log(JSON.stringify({ who: who(), sharedUrl, self: import.meta.url }));\n",
  );
  write('dist/controller/main.js', "import { who } from '../lib/shared.js';\nconsole.log(who());\n");
  write('harness/inlab/responder.ts', '// source\n');
  write('harness/inlab/responder.test.ts', '// a test: not an entry\n');
  write('dist/harness/inlab/responder.js', "console.log('responder');\n");
  write('dist/bench/unrelated.js', "console.log('not shipped');\n");
  return root;
}

describe('buildPayload', () => {
  it('bundles every entry point, keeps each module its in-lab import.meta.url, and runs', async () => {
    const root = fakeProject();
    expect(Object.keys(payloadEntries(root))).toEqual(['agent/main', 'controller/main', 'harness/inlab/responder']);
    const p = await buildPayload({ root, cacheDir: null });
    expect(p.cached).toBe(false);
    expect(p.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(p.files).toEqual(
      expect.arrayContaining(['package.json', 'payload.json', 'dist/agent/main.js', 'dist/controller/main.js', 'dist/harness/inlab/responder.js']),
    );
    expect(p.files.some((f) => f.includes('bench'))).toBe(false);
    const { dir } = untar(p.tar);
    expect(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))).toMatchObject({ type: 'module' });
    // No node_modules in the payload: fakepkg is inside the bundle.
    const stdout = execFileSync(process.execPath, [join(dir, 'dist/agent/main.js')], { encoding: 'utf8' });
    // The shared module's main guard stays false although it now lives in the entry's file.
    expect(stdout).not.toContain('SHARED MAIN RAN');
    const out = JSON.parse(stdout) as Record<string, string>;
    expect(out).toEqual({ who: 'hello lab', sharedUrl: 'file:///opt/egresslab/dist/lib/shared.js', self: 'file:///opt/egresslab/dist/agent/main.js' });
    // Same inputs, same bytes.
    expect((await buildPayload({ root, cacheDir: null })).hash).toBe(p.hash);
  });

  it('reuses the cached bundle until a file that went into it changes', async () => {
    const root = fakeProject();
    const cacheDir = tmp('egl-payload-cache-');
    const first = await buildPayload({ root, cacheDir });
    const again = await buildPayload({ root, cacheDir });
    expect(again).toMatchObject({ cached: true, hash: first.hash, bundleMs: 0 });
    expect(again.tar.equals(first.tar)).toBe(true);
    // A file outside the bundle changes: still cached.
    writeFileSync(join(root, 'dist/bench/unrelated.js'), "console.log('changed');\n");
    expect(await buildPayload({ root, cacheDir })).toMatchObject({ cached: true, hash: first.hash });
    // A bundled package changes: rebuilt, new hash.
    writeFileSync(join(root, 'node_modules/fakepkg/index.js'), 'exports.greet = (n) => "hi " + n;\n');
    const changed = await buildPayload({ root, cacheDir });
    expect(changed.cached).toBe(false);
    expect(changed.hash).not.toBe(first.hash);
    expect(await buildPayload({ root, cacheDir })).toMatchObject({ cached: true, hash: changed.hash });
  });

  it('refuses an import it cannot bundle, and a missing build output', async () => {
    const root = fakeProject();
    writeFileSync(join(root, 'dist/controller/main.js'), "import x from 'not-installed-pkg';\nconsole.log(x);\n");
    await expect(buildPayload({ root, cacheDir: null })).rejects.toThrow(/cannot be bundled:\n.*not-installed-pkg/);
    rmSync(join(root, 'dist/harness/inlab/responder.js'));
    expect(() => payloadEntries(root)).toThrow(/dist\/harness\/inlab\/responder\.js is missing: run "npm run build" first/);
  });
});

describe('bundledPayloadDir (bundle mode)', () => {
  it('unpacks the payload once per content hash, runs from there, and reuses it', async () => {
    const root = fakeProject();
    const cacheDir = tmp('egl-payload-cache-');
    const first = await bundledPayloadDir({ root, cacheDir });
    expect(first).toMatchObject({ dir: join(cacheDir, first.hash.slice(0, 12)), unpacked: true });
    expect(first.payload?.cached).toBe(false);
    // what is in the folder is what the archive holds
    expect(readFileSync(join(first.dir, 'dist/agent/main.js'), 'utf8')).toBe(readFileSync(join(untar(first.payload!.tar).dir, 'dist/agent/main.js'), 'utf8'));
    const stdout = execFileSync(process.execPath, [join(first.dir, 'dist/agent/main.js')], { encoding: 'utf8' });
    expect(JSON.parse(stdout)).toMatchObject({ who: 'hello lab', self: 'file:///opt/egresslab/dist/agent/main.js' });
    const again = await bundledPayloadDir({ root, cacheDir });
    expect(again).toMatchObject({ dir: first.dir, hash: first.hash, unpacked: false });
    expect(again.payload?.cached).toBe(true);
    expect(readdirSync(cacheDir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('a new build gets a new folder; old ones go once unused for an hour, never while a lab mounts them', async () => {
    const root = fakeProject();
    const cacheDir = tmp('egl-payload-cache-');
    const a = await bundledPayloadDir({ root, cacheDir });
    writeFileSync(join(root, 'node_modules/fakepkg/index.js'), 'exports.greet = (n) => "hi " + n;\n');
    const inUse = new Set<string>();
    let asked = 0;
    const b = await bundledPayloadDir({ root, cacheDir, inUse: async () => (asked++, inUse) });
    expect(b.dir).not.toBe(a.dir);
    expect(b.unpacked).toBe(true);
    // a is recent: kept without asking the engine
    expect(existsSync(a.dir)).toBe(true);
    expect(asked).toBe(0);
    // a is old but mounted: kept
    const old = new Date(Date.now() - 2 * 3600_000);
    utimesSync(a.dir, old, old);
    inUse.add(a.hash.slice(0, 12));
    writeFileSync(join(root, 'node_modules/fakepkg/index.js'), 'exports.greet = (n) => "hey " + n;\n');
    const c = await bundledPayloadDir({ root, cacheDir, inUse: async () => (asked++, inUse) });
    expect(asked).toBe(1);
    expect(existsSync(a.dir)).toBe(true);
    expect(existsSync(b.dir)).toBe(true);
    // a is old and no longer mounted: removed at the next new payload; the current one stays
    inUse.clear();
    writeFileSync(join(root, 'node_modules/fakepkg/index.js'), 'exports.greet = (n) => "yo " + n;\n');
    // and so is what a process that died while unpacking left, once as old; a recent one stays
    const deadUnpack = `${a.dir}.tmp-99999-1`;
    const liveUnpack = `${b.dir}.tmp-99998-2`;
    mkdirSync(join(deadUnpack, 'dist'), { recursive: true });
    mkdirSync(liveUnpack);
    utimesSync(deadUnpack, old, old);
    const d = await bundledPayloadDir({ root, cacheDir, inUse: async () => inUse });
    expect(existsSync(a.dir)).toBe(false);
    expect(existsSync(deadUnpack)).toBe(false);
    expect(existsSync(liveUnpack)).toBe(true);
    expect([b.dir, c.dir, d.dir].every((x) => existsSync(x))).toBe(true);
  });

  it('a folder an interrupted removal left without payload.json is unpacked again', async () => {
    const root = fakeProject();
    const cacheDir = tmp('egl-payload-cache-');
    const a = await bundledPayloadDir({ root, cacheDir });
    rmSync(join(a.dir, 'payload.json'));
    rmSync(join(a.dir, 'dist/agent'), { recursive: true });
    const again = await bundledPayloadDir({ root, cacheDir });
    expect(again).toMatchObject({ dir: a.dir, unpacked: true });
    expect(existsSync(join(a.dir, 'payload.json'))).toBe(true);
    expect(existsSync(join(a.dir, 'dist/agent/main.js'))).toBe(true);
  });
});

describe('the prebuilt payload of an installed package', () => {
  it('writePrebuiltPayload writes the files the bundle would archive; archiving them gives the same bytes', async () => {
    const root = fakeProject();
    const dir = join(tmp('egl-prebuilt-'), 'payload');
    const written = await writePrebuiltPayload({ root, dir });
    expect(written.dir).toBe(dir);
    expect(written.files).toEqual(
      expect.arrayContaining(['package.json', 'payload.json', 'dist/agent/main.js', 'dist/controller/main.js', 'dist/harness/inlab/responder.js']),
    );
    expect(written.bytes).toBeGreaterThan(0);
    const bundled = await buildPayload({ root, cacheDir: null });
    const fromDir = await buildPayload({ prebuilt: dir });
    expect(fromDir).toMatchObject({ hash: bundled.hash, cached: true, bundleMs: 0, files: bundled.files });
    expect(fromDir.tar.equals(bundled.tar)).toBe(true);
    // it runs where it is, as it would under /opt/egresslab (fakepkg bundled in: no node_modules needed)
    const stdout = execFileSync(process.execPath, [join(dir, 'dist/agent/main.js')], { encoding: 'utf8' });
    expect(JSON.parse(stdout)).toMatchObject({ who: 'hello lab', self: 'file:///opt/egresslab/dist/agent/main.js' });
    // written again: replaced whole, never merged with what was there
    writeFileSync(join(dir, 'stale.js'), '');
    await writePrebuiltPayload({ root, dir });
    expect(existsSync(join(dir, 'stale.js'))).toBe(false);
  });

  it("bind mode mounts the checkout, or an installed package's dist/payload; a missing one is named", async () => {
    const checkout = fakeProject();
    mkdirSync(join(checkout, 'harness/lab'), { recursive: true });
    writeFileSync(join(checkout, 'harness/lab/payload.ts'), '// source\n');
    expect(payloadBindSource(checkout)).toBe(checkout);
    const installed = tmp('egl-installed-');
    expect(() => payloadBindSource(installed)).toThrow(
      `payload: ${join(installed, 'dist/payload')} is missing: this installed egresslab package has no bundled in-lab code`,
    );
    await expect(buildPayload({ prebuilt: join(installed, 'dist/payload') })).rejects.toThrow(/is missing: this installed egresslab package/);
    await writePrebuiltPayload({ root: fakeProject(), dir: prebuiltPayloadDir(installed) });
    expect(payloadBindSource(installed)).toBe(join(installed, 'dist/payload'));
  });
});
