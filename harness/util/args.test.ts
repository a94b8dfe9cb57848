import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { projectRoot } from './paths.js';
import { parseArgs } from './args.js';
import { ValidationError } from './errors.js';

describe('parseArgs', () => {
  const spec = { lab: { value: true }, file: { value: true, short: 'f', required: true } };
  it('accepts a one-letter alias, --name value and --name=value', () => {
    expect(parseArgs('apply', ['-f', 'x.yaml', '--lab', 'a'], spec).flags).toEqual({ file: 'x.yaml', lab: 'a' });
    expect(parseArgs('apply', ['--file=y'], spec).flags).toEqual({ file: 'y' });
  });
  it('refuses unknown short options and missing values', () => {
    expect(() => parseArgs('apply', ['-x', 'a', '-f', 'b'], spec)).toThrow(ValidationError);
    expect(() => parseArgs('apply', ['-f'], spec)).toThrow(/--file.*needs a value/s);
  });
});

describe('parseArgs on node:util parseArgs', () => {
  const spec = { runs: { value: true, int: true }, proto: { value: true, oneOf: ['tcp', 'udp'] }, json: {} };
  it('reports every bad flag and value at once, each named', () => {
    let error: ValidationError | undefined;
    try {
      parseArgs('bench', ['--runs', 'x', '--proto=sctp', '--nope', '--json'], spec);
    } catch (e) {
      error = e as ValidationError;
    }
    expect(error?.issues.map((i) => [i.path, i.value])).toEqual([
      ['--runs', 'x'],
      ['--proto', 'sctp'],
      ['--nope', '--nope'],
    ]);
    expect(error?.message).toMatch(/bench: --runs: must be a whole number \(value: "x"\)/);
  });
  it('keeps what follows "--" apart, and a flag followed by another flag has no value', () => {
    expect(parseArgs('exec', ['--json', '--', 'ip', '-j', 'addr'], spec)).toEqual({ flags: { json: true }, positionals: [], rest: ['ip', '-j', 'addr'] });
    expect(() => parseArgs('x', ['--runs', '--json'], spec)).toThrow(/--runs: needs a value/);
    expect(parseArgs('x', ['--runs=-3'], spec).flags).toEqual({ runs: -3 });
  });
});

describe('programArgs (in-lab programs and benchmarks)', () => {
  const run = (file: string, ...args: string[]) => execa(process.execPath, [join(projectRoot(), 'dist', file), ...args], { reject: false, timeout: 30_000 });
  it('--help prints the usage from the table and exits 0', async () => {
    const [r, t] = await Promise.all([run('bench/lab-up.js', '--help'), run('harness/inlab/tunnel.js', '--help')]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^usage: node dist\/bench\/lab-up\.js \[--runs N\] \[--topology NAME\|FILE\]\n/);
    expect(t.stdout).toContain('usage: node tunnel.js HOST PORT');
  }, 30_000);
  it('a bad flag or value: exit 2, the flag and the value named, the usage', async () => {
    const [r, m, f, p] = await Promise.all([
      run('bench/lab-up.js', '--runs', 'five'),
      run('bench/masq-render.js', '10', 'x'),
      run('bench/gateway-failover.js', '--modes', 'quiet,loud'),
      run('harness/inlab/responder.js', '--port', '70x'),
    ]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('lab-up.js: --runs: must be a whole number (value: "five")');
    expect(r.stderr).toContain('usage: node dist/bench/lab-up.js');
    expect(m.exitCode).toBe(2);
    expect(m.stderr).toContain('(arguments): must be a whole number (value: "x")');
    expect(f.exitCode).toBe(2);
    expect(f.stderr).toContain('--modes: is not quiet or busy (value: "loud")');
    expect(p.exitCode).toBe(2);
    expect(p.stderr).toContain('--port: must be a whole number (value: "70x")');
  }, 30_000);
});
