/**
 * The user's side of the package, for the test that takes it (harness/cli/package.lab.test.ts): `npm pack` of this repository, a fresh
 * `npm init -y` project that installs the tarball, and the environment its programs run in.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunResult } from './run.js';

/** egresslab variables that belong to this run (where its artifacts go, which labs it keeps), not to the user's. */
const PER_RUN = ['EGRESSLAB_ARTIFACTS', 'EGRESSLAB_STATE_DIR', 'EGRESSLAB_KEEP', 'EGRESSLAB_KEPT_FILE', 'EGRESSLAB_KEEP_TIMELINES'];

/**
 * The environment of a program a user runs, for a test that runs it: this process's, without
 * vitest's own variables (a vitest started from a test would take them for its own), without the
 * egresslab variables of this run, and without colours (messages are matched as text).
 */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^VITEST/.test(k) || k === 'TEST' || k === 'NODE_ENV' || k === 'FORCE_COLOR' || PER_RUN.includes(k)) continue;
    env[k] = v;
  }
  return { ...env, NO_COLOR: '1', ...extra };
}

/** Runs a command as the user would, in `cwd`; a failure to start throws, an exit code is returned. */
export function userRun(cwd: string, cmd: string, args: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return run(cmd, args, { cwd, env: userEnv(options.env), timeoutMs: options.timeoutMs ?? 300_000 });
}

/** What `npm pack --json` says about the tarball it wrote. */
export interface PackResult {
  /** absolute path of the .tgz */
  tarball: string;
  /** every file in it, "/"-separated, relative to the package root */
  files: string[];
  /** bytes of the .tgz, and of its files unpacked */
  size: number;
  unpackedSize: number;
  ms: number;
  /** what npm and the prepack step printed */
  output: string;
}

/**
 * `npm pack` of the package at `root` into `dest`. With `ignoreScripts` the prepack step (build and
 * payload bundling) is skipped: the tarball then holds the current dist/.
 */
export async function npmPack(root: string, dest: string, options: { ignoreScripts?: boolean; timeoutMs?: number } = {}): Promise<PackResult> {
  mkdirSync(dest, { recursive: true });
  const t0 = Date.now();
  const r = await userRun(root, 'npm', ['pack', '--json', '--pack-destination', dest, ...(options.ignoreScripts ? ['--ignore-scripts'] : [])], {
    timeoutMs: options.timeoutMs ?? 600_000,
  });
  const ms = Date.now() - t0;
  if (r.code !== 0) throw new Error(`npm pack in ${root} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  // the JSON report is the last thing on stdout; a prepack step prints before it
  const at = r.stdout.search(/^\[\s*$/m);
  if (at < 0) throw new Error(`npm pack printed no JSON report:\n${r.stdout}`);
  const [report] = JSON.parse(r.stdout.slice(at)) as { filename: string; files: { path: string }[]; size: number; unpackedSize: number }[];
  return {
    tarball: join(dest, report!.filename),
    files: report!.files.map((f) => f.path).sort(),
    size: report!.size,
    unpackedSize: report!.unpackedSize,
    ms,
    output: `${r.stdout.slice(0, at)}${r.stderr}`,
  };
}

/** A fresh project as a user makes one, with the tarball installed as a dev dependency. */
export interface UserProject {
  dir: string;
  /** time of `npm install` */
  installMs: number;
}

/**
 * `npm init -y` in `dir` (created), then `npm install --save-dev` of the tarball and `extra` packages
 * (e.g. typescript for type checks); offline-friendly: from npm's cache where it has them.
 * `ignoreScripts` skips the dependencies' install scripts (egresslab has none; ssh2's optional
 * native build, cpu-features, takes ~30 s of node-gyp on a 2-core machine and nothing here needs it).
 */
export async function userProject(
  dir: string,
  tarball: string,
  extra: string[] = [],
  options: { timeoutMs?: number; ignoreScripts?: boolean } = {},
): Promise<UserProject> {
  mkdirSync(dir, { recursive: true });
  const init = await userRun(dir, 'npm', ['init', '-y']);
  if (init.code !== 0) throw new Error(`npm init -y in ${dir} failed (exit ${init.code}):\n${init.stderr}`);
  const t0 = Date.now();
  const flags = ['--no-audit', '--no-fund', '--prefer-offline', ...(options.ignoreScripts ? ['--ignore-scripts'] : [])];
  const r = await userRun(dir, 'npm', ['install', ...flags, '--save-dev', tarball, ...extra], { timeoutMs: options.timeoutMs ?? 600_000 });
  if (r.code !== 0) throw new Error(`npm install of ${tarball} in ${dir} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return { dir, installMs: Date.now() - t0 };
}
