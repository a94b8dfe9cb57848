/**
 * `egresslab init` in-process (no engine, no install): what it writes, what it refuses, and that the
 * templates it writes agree with each other (the topology validates, the gateway's egress IP is the
 * scenario's, the policy selects the scenario's pods, the workflow shards and uploads artifacts/).
 * harness/cli/package.lab.test.ts runs it again from an installed package, type-checks the result and runs it against a lab.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { main } from './main.js';
import { INIT_FILES, TEST_SCRIPT, templatesDir } from './init-command.js';
import { loadTopology } from '../topology/load.js';
import { loadManifests } from '../cluster/apply.js';
import { podRegistration } from '../cluster/pods.js';
import { planLab } from '../topology/plan.js';

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

/** A project as `npm init -y` (npm 11) leaves it. */
function npmInitProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'egl-init-'));
  temps.push(dir);
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify(
      {
        name: 'my-egress-tests',
        version: '1.0.0',
        description: '',
        main: 'index.js',
        scripts: { test: 'echo "Error: no test specified" && exit 1' },
        keywords: [],
        author: '',
        license: 'ISC',
        type: 'commonjs',
      },
      null,
      2,
    )}\n`,
  );
  return dir;
}

/** Every file under `dir` with its content and mtime: a refusal must leave this unchanged. */
function snapshot(dir: string): Record<string, { text: string; mtimeMs: number }> {
  const out: Record<string, { text: string; mtimeMs: number }> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else out[relative(dir, full)] = { text: readFileSync(full, 'utf8'), mtimeMs: st.mtimeMs };
    }
  };
  walk(dir);
  return out;
}

/** Runs `egresslab ARGS` in-process: exit code and output. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => (stdout.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => (stderr.push(String(s)), true));
  try {
    const code = await main(args);
    return { code, stdout: stdout.join(''), stderr: stderr.join('') };
  } finally {
    vi.restoreAllMocks();
  }
}

const template = (f: string) => readFileSync(join(templatesDir(), f), 'utf8');

describe('egresslab init', () => {
  afterEach(() => vi.restoreAllMocks());

  it('writes the project into an npm init -y folder: every file, and the test script in package.json', async () => {
    const dir = npmInitProject();
    const r = await cli('init', '--dir', dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const f of INIT_FILES) {
      expect(readFileSync(join(dir, f.target), 'utf8'), f.target).toBe(template(f.template));
      expect(r.stdout, f.target).toContain(f.what);
    }
    expect(INIT_FILES.map((f) => f.target).sort()).toEqual([
      '.github/workflows/egress.yml',
      'lab/gateway.yaml',
      'lab/topology.yaml',
      'scenarios/egress.test.ts',
      'tsconfig.json',
      'vitest.config.mts',
    ]);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    // only the placeholder test script changed
    expect(pkg).toEqual({
      name: 'my-egress-tests',
      version: '1.0.0',
      description: '',
      main: 'index.js',
      scripts: { test: TEST_SCRIPT },
      keywords: [],
      author: '',
      license: 'ISC',
      type: 'commonjs',
    });
    expect(readFileSync(join(dir, 'package.json'), 'utf8')).toMatch(/^\{\n {2}"name"/);
    expect(r.stdout).toContain(`wrote ${INIT_FILES.length + 1} file(s) in ${dir}`);
    expect(r.stdout).toContain(`test script "${TEST_SCRIPT}" added`);
  });

  it('refuses to overwrite without --force: names the files, exit 2, changes nothing', async () => {
    const dir = npmInitProject();
    expect((await cli('init', '--dir', dir)).code).toBe(0);
    const mine = join(dir, 'scenarios/egress.test.ts');
    writeFileSync(mine, '// my own scenario\n');
    rmSync(join(dir, 'lab/gateway.yaml'));
    const before = snapshot(dir);
    const r = await cli('init', '--dir', dir);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const shown = (f: string) => relative(process.cwd(), join(dir, f));
    expect(r.stderr).toContain(`egresslab init: ${shown('vitest.config.mts')} already exists (and `);
    expect(r.stderr).toContain(shown('scenarios/egress.test.ts'));
    expect(r.stderr).toContain('nothing was written');
    expect(r.stderr).toContain('--force');
    expect(snapshot(dir)).toEqual(before);
    expect(existsSync(join(dir, 'lab/gateway.yaml'))).toBe(false);

    const forced = await cli('init', '--dir', dir, '--force');
    expect(forced.code).toBe(0);
    expect(readFileSync(mine, 'utf8')).toBe(template('scenarios/egress.test.ts'));
    expect(readFileSync(join(dir, 'lab/gateway.yaml'), 'utf8')).toBe(template('lab/gateway.yaml'));
    expect(forced.stdout).toMatch(/scenarios\/egress\.test\.ts +.*\(overwritten\)/);
  });

  it('keeps your tsconfig.json and test script, even with --force; creates package.json when there is none', async () => {
    const dir = npmInitProject();
    writeFileSync(join(dir, 'tsconfig.json'), '{ "compilerOptions": { "strict": true } }\n');
    writeFileSync(join(dir, 'package.json'), '{\n    "name": "x",\n    "scripts": { "test": "jest" }\n}\n');
    const r = await cli('init', '--dir', dir, '--force');
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'tsconfig.json'), 'utf8')).toBe('{ "compilerOptions": { "strict": true } }\n');
    expect(readFileSync(join(dir, 'package.json'), 'utf8')).toBe('{\n    "name": "x",\n    "scripts": { "test": "jest" }\n}\n');
    expect(r.stdout).toMatch(/tsconfig\.json exists: kept .*"moduleResolution": "Bundler"/);
    expect(r.stdout).toContain('its test script is kept: "jest"');

    const bare = mkdtempSync(join(tmpdir(), 'Egl Bare-'));
    temps.push(bare);
    expect((await cli('init', '--dir', bare)).code).toBe(0);
    const pkg = JSON.parse(readFileSync(join(bare, 'package.json'), 'utf8')) as { name: string; private: boolean; scripts: Record<string, string> };
    expect(pkg.scripts).toEqual({ test: TEST_SCRIPT });
    expect(pkg.private).toBe(true);
    expect(pkg.name).toMatch(/^egl-bare-[a-z0-9]+$/i);
    expect(pkg.name).toBe(pkg.name.toLowerCase());
    expect(readFileSync(join(bare, 'tsconfig.json'), 'utf8')).toBe(template('tsconfig.json'));
  });

  it('another vitest config is named and nothing is written', async () => {
    const dir = npmInitProject();
    writeFileSync(join(dir, 'vitest.config.ts'), 'export default {};\n');
    const before = snapshot(dir);
    const r = await cli('init', '--dir', dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${relative(process.cwd(), join(dir, 'vitest.config.ts'))} already exists; nothing was written`);
    expect(r.stderr).toContain('vitest reads only one config');
    expect(snapshot(dir)).toEqual(before);
  });

  it('bad input names the flag (or file) and the value: exit 2, nothing written', async () => {
    const dir = npmInitProject();
    const missing = join(dir, 'no-such-folder');
    let r = await cli('init', '--dir', missing);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--dir: does not exist`);
    expect(r.stderr).toContain(JSON.stringify(missing));
    expect(r.stderr).toContain('see "egresslab help init"');
    r = await cli('init', '--dir', join(dir, 'package.json'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--dir: is not a directory');
    r = await cli('init', '--dir', '');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--dir: is empty');
    r = await cli('init', '--dir');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--dir');
    r = await cli('init', '--forse');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--forse');
    writeFileSync(join(dir, 'package.json'), '{ "name": "broken", }\n');
    const before = snapshot(dir);
    r = await cli('init', '--dir', dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('package.json: is not valid JSON');
    expect(r.stderr).toContain(JSON.stringify(join(dir, 'package.json')));
    expect(snapshot(dir)).toEqual(before);
  });

  it('egresslab help init describes it, from the command table', async () => {
    const r = await cli('help', 'init');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('egresslab init [--dir DIR] [--force]');
    expect(r.stdout).toContain('Refuses to overwrite a file');
    expect((await cli('help')).stdout).toContain('  egresslab init [--dir DIR] [--force]\n');
  });
});

describe('the templates egresslab init writes agree with each other', () => {
  const dir = templatesDir();
  const scenario = template('scenarios/egress.test.ts');
  const egressIP = /const EGRESS_IP = '([\d.]+)'/.exec(scenario)?.[1];

  it('the topology validates and runs the cluster with ip-masq-agent', () => {
    const t = loadTopology(join(dir, 'lab/topology.yaml'));
    expect(t).toMatchObject({ snat: 'ip-masq-agent', cluster: true });
    expect(t.nodes.filter((n) => n.role === 'worker').length).toBeGreaterThanOrEqual(2);
  });

  it("the gateway's floating IP is the scenario's egress IP, and its policy selects the scenario's pods on two workers", () => {
    expect(egressIP).toBeDefined();
    const objects = loadManifests(join(dir, 'lab/gateway.yaml')).map((m) => m.object);
    const gateway = objects.find((o) => o.kind === 'AnthosNetworkGateway');
    const policy = objects.find((o) => o.kind === 'EgressNATPolicy');
    expect((gateway!.spec as { floatingIPs: string[] }).floatingIPs).toContain(egressIP);
    expect((policy!.spec as { egressSourceIP: string }).egressSourceIP).toBe(egressIP);
    expect((policy!.spec as { destinationCIDRs: string[] }).destinationCIDRs).toContain('8.8.8.0/24');
    expect(scenario).toContain("const INTERNET = '8.8.8.8';");
    // the pods the failover probes from: selected by the policy (namespace and pod labels), one per worker
    const t = loadTopology(join(dir, 'lab/topology.yaml'));
    const reg = podRegistration(planLab(t));
    const spec = policy!.spec as {
      egress: { namespaceSelector: { matchLabels: Record<string, string> }; podSelector: { matchLabels: Record<string, string> } }[];
    };
    const nsLabels = (ns: string) => reg.namespaces.find((n) => n.name === ns)?.labels ?? {};
    const selected = reg.pods
      .filter((p) =>
        spec.egress.some(
          (e) =>
            Object.entries(e.namespaceSelector.matchLabels).every(([k, v]) => nsLabels(p.namespace)[k] === v) &&
            Object.entries(e.podSelector.matchLabels).every(([k, v]) => p.labels[k] === v),
        ),
      )
      .map((p) => `${p.namespace}/${p.name}`);
    const failoverPods = /\['(shop\/web-1)', '(shop\/web-2)'\]/.exec(scenario)!.slice(1);
    expect(selected.sort()).toEqual(failoverPods.sort());
    expect(new Set(failoverPods.map((p) => t.pods.find((x) => `${x.namespace}/${x.name}` === p)!.node)).size).toBe(2);
    // the SNAT pod is selected by nothing
    expect(scenario).toContain("const pod = 'default/client-1';");
    expect(selected).not.toContain('default/client-1');
  });

  it('the scenario imports only the public entry points and names its files as init writes them', () => {
    const imports = [...scenario.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    expect(imports.sort()).toEqual(['egresslab', 'egresslab/vitest', 'vitest']);
    expect(scenario).toContain("startTestLab('lab/topology.yaml'");
    expect(scenario).toContain("lab.apply('lab/gateway.yaml')");
    const config = template('vitest.config.mts');
    expect(config).toContain("setupFiles: ['egresslab/vitest-setup']");
    expect(config).toContain("globalSetup: ['egresslab/vitest-global-setup']");
    expect(config).toContain('maxWorkers: 1');
    expect(config).toContain("include: ['scenarios/**/*.test.ts']");
  });

  it('the workflow installs the engine, builds the base image, shards the tests and uploads artifacts/', () => {
    const wf = parse(template('github-workflow.yml')) as {
      jobs: Record<
        string,
        { strategy: { matrix: { shard: number[] } }; steps: { name?: string; run?: string; uses?: string; if?: string; with?: Record<string, unknown> }[] }
      >;
    };
    const job = Object.values(wf.jobs)[0]!;
    expect(job.strategy.matrix.shard.length).toBeGreaterThanOrEqual(2);
    const runs = job.steps.map((s) => s.run ?? '').join('\n');
    expect(runs).toMatch(/apt-get install .*mmdebstrap/);
    expect(runs).toContain('debian-archive-keyring');
    expect(runs).toContain('npm ci');
    expect(runs).toContain('egresslab.js image');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, not a template
    expect(runs).toContain('npx vitest run --shard=${{ matrix.shard }}/${{ strategy.job-total }}');
    const upload = job.steps.find((s) => s.uses?.startsWith('actions/upload-artifact'));
    expect(upload).toMatchObject({ if: 'always()', with: { path: 'artifacts/' } });
  });

  it('templates/init holds exactly the files init writes', () => {
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const name of readdirSync(d)) {
        const full = join(d, name);
        if (statSync(full).isDirectory()) walk(full);
        else files.push(relative(dir, full));
      }
    };
    walk(dir);
    expect(files.sort()).toEqual(INIT_FILES.map((f) => f.template).sort());
  });
});
