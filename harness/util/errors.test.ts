import { describe, expect, it } from 'vitest';
import { CommandError, LabError, TimeoutError, ValidationError, formatIssue } from './errors.js';

describe('formatIssue', () => {
  it('names source, path, what is wrong and the value as JSON', () => {
    expect(formatIssue('t.yaml', { path: 'nodes[1].address', value: '10.0.0.1', message: 'must be inside nodeSubnet' })).toBe(
      't.yaml: nodes[1].address: must be inside nodeSubnet (value: "10.0.0.1")',
    );
    expect(formatIssue('s', { path: 'p', value: { a: [1, 2] }, message: 'm' })).toBe('s: p: m (value: {"a":[1,2]})');
    expect(formatIssue('s', { path: 'p', value: null, message: 'm' })).toBe('s: p: m (value: null)');
  });

  it('says (absent) for a missing value', () => {
    expect(formatIssue('s', { path: 'nodes', value: undefined, message: 'is required' })).toBe('s: nodes: is required (value: (absent))');
  });

  it('shortens long values to 80 characters', () => {
    const msg = formatIssue('s', { path: 'p', value: 'x'.repeat(200), message: 'm' });
    const rendered = /\(value: (.*)\)$/.exec(msg)![1]!;
    expect(rendered).toHaveLength(80);
    expect(rendered.endsWith('...')).toBe(true);
    expect(rendered.startsWith('"xxx')).toBe(true);
  });

  it('renders values JSON cannot (cycles, bigint, functions)', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(formatIssue('s', { path: 'p', value: cyclic, message: 'm' })).toBe('s: p: m (value: [object Object])');
    expect(formatIssue('s', { path: 'p', value: 10n, message: 'm' })).toBe('s: p: m (value: 10)');
    expect(formatIssue('s', { path: 'p', value: Symbol('q'), message: 'm' })).toBe('s: p: m (value: Symbol(q))');
  });
});

describe('ValidationError', () => {
  it('lists every issue, one per line, and keeps them', () => {
    const issues = [
      { path: 'a', value: 1, message: 'bad a' },
      { path: 'b.c', value: 'x', message: 'bad c' },
    ];
    const e = new ValidationError('topo.yaml', issues);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('ValidationError');
    expect(e.source).toBe('topo.yaml');
    expect(e.issues).toBe(issues);
    expect(e.message).toBe('topo.yaml: a: bad a (value: 1)\ntopo.yaml: b.c: bad c (value: "x")');
    expect(String(e)).toMatch(/^ValidationError: topo\.yaml: a: bad a/);
  });
});

describe('CommandError', () => {
  it('names where, the exit code and the command, with the tail of stderr', () => {
    const stderr = Array.from({ length: 12 }, (_, i) => `line ${i + 1}`).join('\n');
    const e = new CommandError('lab-1/node-1', ['ip', 'link', 'add', 'x'], 2, 'out', `${stderr}\n`);
    expect(e.name).toBe('CommandError');
    expect(e.message).toBe(`command failed in lab-1/node-1 (exit 2): ip link add x\n${Array.from({ length: 8 }, (_, i) => `line ${i + 5}`).join('\n')}`);
    expect(e).toMatchObject({ where: 'lab-1/node-1', exitCode: 2, stdout: 'out' });
  });

  it('falls back to stdout, says signal for a null exit code, keeps the cause', () => {
    const cause = new Error('killed');
    const e = new CommandError('host', ['sleep', '9'], null, 'partial output\n', '  \n', { cause });
    expect(e.message).toBe('command failed in host (exit signal): sleep 9\npartial output');
    expect(e.cause).toBe(cause);
  });

  it('has no trailing newline when there is no output', () => {
    expect(new CommandError('h', ['true'], 1, '', '').message).toBe('command failed in h (exit 1): true');
  });
});

describe('TimeoutError and LabError', () => {
  it('TimeoutError names what and how long, with the last value seen', () => {
    const e = new TimeoutError('the responder in node-1', 10_000, { ready: false });
    expect(e.name).toBe('TimeoutError');
    expect(e.message).toBe('timed out after 10000 ms waiting for the responder in node-1; last seen: {"ready":false}');
    expect(new TimeoutError('x', 5).message).toBe('timed out after 5 ms waiting for x');
    const cause = new Error('c');
    expect(new TimeoutError('x', 5, undefined, { cause }).cause).toBe(cause);
  });

  it('LabError is a named Error', () => {
    const e = new LabError('no lab is up');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('LabError');
    expect(e.message).toBe('no lab is up');
  });
});
