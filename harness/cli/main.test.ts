import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main, nearestCommand, nextProbeHint } from './main.js';
import { projectRoot } from '../util/paths.js';
import { run } from '../testing/run.js';

describe('CLI entry (no engine needed)', () => {
  afterEach(() => vi.restoreAllMocks());

  it('"help foo" names the unknown command, suggests the nearest one and exits 2, like "egresslab foo"', async () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    expect(await main(['help', 'prob'])).toBe(2);
    expect(err.join('')).toContain('unknown command "prob" (did you mean "probe"?)');
    expect(await main(['help', 'toString'])).toBe(2);
    expect(await main(['statsu'])).toBe(2);
    expect(err.join('')).toContain('unknown command "statsu" (did you mean "status"?)');
    expect(await main(['help', 'probe'])).toBe(0);
    expect(await main(['help'])).toBe(0);
  });

  it('suggests only near commands', () => {
    const known = ['up', 'down', 'probe', 'status', 'timeline', 'partition'];
    expect(nearestCommand('timelin', known)).toBe('timeline');
    expect(nearestCommand('dwon', known)).toBe('down');
    expect(nearestCommand('xyzzy', known)).toBeUndefined();
  });

  it('the "next:" hint after up uses the lab\'s own first pod, else its first node', () => {
    const node = { name: 'w1', role: 'worker' as const, address: '192.168.1.1' };
    expect(nextProbeHint('x', { nodes: [node], pods: [{ namespace: 'team', name: 'web', node: 'w1', hostNetwork: false, labels: {} }] })).toBe(
      'npx egresslab probe --lab x --from team/web --to 8.8.8.8',
    );
    expect(nextProbeHint('x', { nodes: [node], pods: [] })).toBe('npx egresslab probe --lab x --from w1 --to 8.8.8.8');
  });

  it('output to a closed pipe ends quietly (exit 0, no stack trace)', async () => {
    const child = spawn(process.execPath, [join(projectRoot(), 'bin/egresslab.js'), '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader went away (`| head -0`)
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(stderr).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  });

  it('a command that starts no container never loads testcontainers (its load is the first container start: 260-350 ms of CPU per command)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egl-cli-loads-'));
    try {
      // every CommonJS file loaded (testcontainers is one, imported from ESM or not), listed at exit
      const probe = join(dir, 'loads.mjs');
      writeFileSync(
        probe,
        "import { createRequire } from 'node:module';\n" +
          'const req = createRequire(import.meta.url);\n' +
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the source of a script the test writes and runs
          "process.on('exit', () => process.stderr.write(`LOADED ${JSON.stringify(Object.keys(req.cache))}\\n`));\n",
      );
      const { code, stderr } = await run(process.execPath, [
        '--import',
        probe,
        join(projectRoot(), 'bin/egresslab.js'),
        'status',
        '--lab',
        'no-such-lab-loads',
      ]);
      const line = stderr.split('\n').find((l) => l.startsWith('LOADED '));
      expect(line, stderr).toBeDefined();
      const loaded = JSON.parse(line!.slice('LOADED '.length)) as string[];
      // the witness works: the lab runtime's own CommonJS dependency is in the list
      expect(loaded.some((f) => f.includes('/node_modules/dockerode/'))).toBe(true);
      expect(loaded.filter((f) => f.includes('/node_modules/testcontainers/'))).toEqual([]);
      // it got as far as asking the engine about the lab (or found no engine: either way past the loads)
      expect(code).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stop --grace outside 0-3600: exit 2 naming the flag and the value, before any lab is looked up', async () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    // no lab of this name exists: reaching the lookup would fail with another message
    expect(await main(['stop', '--lab', 'no-such-lab', 'node-2', '--grace', '-1'])).toBe(2);
    expect(err.join('')).toContain('--grace: must be a whole number of seconds from 0 to 3600 (value: -1)');
    expect(err.join('')).not.toContain('no-such-lab');
  });
});

describe('egresslab validate', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a valid topology: exit 0 and a summary, nothing started; a bad one: exit 2 and every problem named', async () => {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    expect(await main(['validate', '--topology', 'default'])).toBe(0);
    expect(out.join('')).toMatch(/^topology default is valid: 4 node\(s\), \d+ pod\(s\)/);
    const dir = mkdtempSync(join(tmpdir(), 'egl-validate-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'name: bad\nnodes:\n  - name: Node_1\n    role: boss\n');
    expect(await main(['validate', '--topology', bad])).toBe(2);
    const msg = err.join('');
    expect(msg).toContain('egresslab validate: invalid input');
    expect(msg).toContain('Node_1');
    expect(msg).toContain('boss');
    expect(await main(['validate'])).toBe(2);
    expect(err.join('')).toContain('--topology');
    rmSync(dir, { recursive: true, force: true });
  });
});
