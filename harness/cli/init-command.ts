/**
 * `egresslab init`: scaffolds egresslab in the user's own repository (issue 14) — a vitest config
 * for lab scenarios, a topology, an egress NAT gateway, a first scenario (one SNAT behaviour, one
 * failover), a GitHub Actions workflow, and a tsconfig and a `test` script when they are missing.
 * The files are the package's templates/init/ (shipped in the package).
 *
 * It never overwrites a file without --force: when one of the files it would write exists, it
 * names it, writes nothing and exits 2. A tsconfig.json and a package.json of the user's are never
 * replaced (the tsconfig is written only where none exists; package.json only gains a `test`
 * script when it has none).
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseCommand, type CommandSpec } from '../util/args.js';
import { ValidationError } from '../util/errors.js';
import { projectRoot } from '../util/paths.js';

const out = (s: string) => process.stdout.write(`${s}\n`);

/** One file `init` writes: where its text comes from (under templates/init/), where it goes, what it is. */
export interface InitFile {
  template: string;
  target: string;
  what: string;
  /** written only where none exists; an existing one is kept, even with --force */
  onlyIfMissing?: boolean;
}

/** What `egresslab init` writes, relative to the project folder (--dir). */
export const INIT_FILES: readonly InitFile[] = [
  // .mts: an ES module whatever the package's "type" (npm init writes "commonjs", and Vite warns about
  // an ESM config loaded as CommonJS)
  { template: 'vitest.config.mts', target: 'vitest.config.mts', what: 'vitest for lab scenarios: the lab timeouts, the matchers, one lab at a time' },
  { template: 'lab/topology.yaml', target: 'lab/topology.yaml', what: 'the lab: two workers and a control plane, ip-masq-agent, the cluster' },
  { template: 'lab/gateway.yaml', target: 'lab/gateway.yaml', what: 'an egress NAT gateway and a policy (egress IP 192.168.1.100)' },
  { template: 'scenarios/egress.test.ts', target: 'scenarios/egress.test.ts', what: 'SNAT seen at the far end, and a failover of the gateway with zero leaks' },
  {
    template: 'github-workflow.yml',
    target: '.github/workflows/egress.yml',
    what: 'CI: the lab engine, the base image, the scenarios sharded, artifacts/ uploaded',
  },
  { template: 'tsconfig.json', target: 'tsconfig.json', what: 'TypeScript for the scenarios (type checks: npx tsc)', onlyIfMissing: true },
];

/** vitest configs other than the one init writes: with one of them, ours would not be the one vitest reads. */
const OTHER_VITEST_CONFIGS = ['vitest.config.ts', 'vitest.config.js', 'vitest.config.mjs', 'vitest.config.cts', 'vitest.config.cjs'];

/** The `test` script init adds to package.json when it has none. */
export const TEST_SCRIPT = 'vitest run';

/** npm init's placeholder: a package.json with it has no test script yet. */
const NPM_PLACEHOLDER = /no test specified/;

/** The init command's flags and help. */
export const INIT_SPECS: Record<string, CommandSpec> = {
  init: {
    flags: { dir: { value: true, arg: 'DIR' }, force: {} },
    about: `  Scaffolds egresslab in your repository (once the package is a dev dependency there): vitest.config.mts,
  lab/topology.yaml, lab/gateway.yaml, scenarios/egress.test.ts (one SNAT behaviour, one failover),
  .github/workflows/egress.yml (installs the lab engine, runs the scenarios sharded, uploads
  artifacts/), a tsconfig.json when none exists, and a "test" script in package.json when it has
  none. Writes into the current folder, or --dir. Refuses to overwrite a file (names it, writes
  nothing, exit 2) unless --force; your tsconfig.json and package.json are never replaced.
  Example: npx egresslab init && npx vitest run`,
  },
};

/** Where the templates are: templates/init/ of the package. */
export function templatesDir(root = projectRoot()): string {
  return join(root, 'templates', 'init');
}

/** What init will do to package.json: nothing, add the test script, or create the file with it. */
type PackagePlan = { action: 'keep'; reason: string } | { action: 'add-test'; text: string } | { action: 'create'; text: string };

function planPackageJson(dir: string): PackagePlan {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) {
    const name =
      basename(dir)
        .toLowerCase()
        .replace(/[^a-z0-9-._]/g, '-')
        .replace(/^[-._]+/, '') || 'egress-tests';
    return { action: 'create', text: `${JSON.stringify({ name, private: true, scripts: { test: TEST_SCRIPT } }, null, 2)}\n` };
  }
  const text = readFileSync(file, 'utf8');
  let pkg: unknown;
  try {
    pkg = JSON.parse(text);
  } catch (error) {
    throw new ValidationError('init', [
      { path: 'package.json', value: file, message: `is not valid JSON (${(error as Error).message}); fix it, then run init again` },
    ]);
  }
  if (typeof pkg !== 'object' || pkg === null || Array.isArray(pkg))
    throw new ValidationError('init', [{ path: 'package.json', value: file, message: 'is not a JSON object' }]);
  const p = pkg as { scripts?: Record<string, unknown> };
  if (p.scripts !== undefined && (typeof p.scripts !== 'object' || p.scripts === null || Array.isArray(p.scripts))) {
    throw new ValidationError('init', [{ path: 'package.json scripts', value: p.scripts, message: 'is not an object' }]);
  }
  const current = p.scripts?.test;
  if (typeof current === 'string' && current.trim() !== '' && !NPM_PLACEHOLDER.test(current))
    return { action: 'keep', reason: `its test script is kept: ${JSON.stringify(current)}` };
  const indent = /^\{\s*\n([ \t]+)"/.exec(text)?.[1] ?? '  ';
  p.scripts = { ...(p.scripts ?? {}), test: TEST_SCRIPT };
  return { action: 'add-test', text: `${JSON.stringify(p, null, indent)}\n` };
}

/** The project folder --dir names (default: the working directory): an existing directory. */
function projectDir(flag: string | undefined): string {
  if (flag === undefined) return process.cwd();
  if (flag.trim() === '')
    throw new ValidationError('init', [{ path: '--dir', value: flag, message: 'is empty: name the folder of your project (the one with package.json)' }]);
  const dir = resolve(flag);
  if (!existsSync(dir))
    throw new ValidationError('init', [
      { path: '--dir', value: flag, message: 'does not exist: create the project first (npm init -y, npm install --save-dev egresslab)' },
    ]);
  if (!statSync(dir).isDirectory()) throw new ValidationError('init', [{ path: '--dir', value: flag, message: 'is not a directory' }]);
  return dir;
}

async function initCmd(argv: string[]): Promise<number> {
  const { flags } = parseCommand('init', INIT_SPECS.init!, argv);
  const dir = projectDir(flags.dir as string | undefined);
  const force = Boolean(flags.force);
  const templates = templatesDir();
  const shown = (f: string) => relative(process.cwd(), join(dir, f)) || f;

  // Everything is decided before anything is written: a refusal changes nothing.
  const pkg = planPackageJson(dir);
  const conflicts = INIT_FILES.filter((f) => !f.onlyIfMissing && existsSync(join(dir, f.target)));
  // another vitest config would compete with ours (vitest reads only one)
  const otherConfigs = OTHER_VITEST_CONFIGS.filter((f) => existsSync(join(dir, f)));
  if ((conflicts.length || otherConfigs.length) && !force) {
    const names = [...conflicts.map((f) => shown(f.target)), ...otherConfigs.map(shown)];
    const lines = [`egresslab init: ${names[0]} already exists${names.length > 1 ? ` (and ${names.slice(1).join(', ')})` : ''}; nothing was written.`];
    if (conflicts.length)
      lines.push(
        `"egresslab init --force" overwrites ${conflicts.map((f) => shown(f.target)).join(', ')}; or move ${conflicts.length > 1 ? 'them' : 'it'} away first.`,
      );
    for (const f of otherConfigs)
      lines.push(`${shown(f)}: vitest reads only one config, and init writes vitest.config.mts; move yours away (or use --force and merge the two).`);
    process.stderr.write(`${lines.join('\n')}\n`);
    return 2;
  }
  const written: { file: string; what: string }[] = [];
  const kept: string[] = [];
  for (const f of INIT_FILES) {
    const target = join(dir, f.target);
    if (f.onlyIfMissing && existsSync(target)) {
      kept.push(
        `${shown(f.target)} exists: kept (for type checks the scenarios need "moduleResolution": "Bundler" and "types": ["node"]; see node_modules/egresslab/templates/init/${f.template})`,
      );
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, readFileSync(join(templates, f.template)));
    written.push({ file: shown(f.target), what: `${f.what}${conflicts.includes(f) ? ' (overwritten)' : ''}` });
  }
  for (const f of otherConfigs) kept.push(`${shown(f)} exists too: vitest reads only one config, so merge the two and delete one`);
  if (pkg.action === 'keep') kept.push(`${shown('package.json')}: ${pkg.reason}`);
  else {
    writeFileSync(join(dir, 'package.json'), pkg.text);
    written.push({
      file: shown('package.json'),
      what: pkg.action === 'create' ? `created, with the test script "${TEST_SCRIPT}"` : `test script "${TEST_SCRIPT}" added`,
    });
  }
  const width = Math.max(...written.map((w) => w.file.length));
  out(`egresslab init: wrote ${written.length} file(s) in ${dir}`);
  for (const w of written) out(`  ${w.file.padEnd(width)}  ${w.what}`);
  for (const k of kept) out(`  ${k}`);
  out(`
next:
  npx vitest run                      brings the lab up (the base image is built on first use) and runs the scenarios
  npm install --save-dev typescript @types/node && npx tsc     type-checks them
  npx egresslab up --topology lab/topology.yaml                a lab to poke at by hand (npx egresslab help)
documentation: node_modules/egresslab/docs/own-repository.md`);
  return 0;
}

/** The init command by name. */
export const INIT_COMMANDS: Record<string, (argv: string[]) => Promise<number>> = { init: initCmd };
