/**
 * `egresslab help` and each command's help come from the same table as the parsers (COMMAND_SPECS):
 * the flags a help text names are exactly the flags its parser accepts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { COMMANDS, COMMAND_SPECS, main } from './main.js';
import { parseCommand, usageLine, type CommandSpec } from '../util/args.js';
import { ValidationError } from '../util/errors.js';

/** The flags a text names: "--name" and one-letter "-x" (not "--" alone, not inside words like node-2). */
function flagsIn(text: string): Set<string> {
  const long = [...text.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => `--${m[1]}`);
  const short = [...text.matchAll(/(?<![\w-])-([A-Za-z])(?![\w-])/g)].map((m) => `-${m[1]}`);
  return new Set([...long, ...short]);
}

/** The flags a parser accepts, as typed on the command line. */
function parserFlags(spec: CommandSpec): Set<string> {
  return new Set(Object.entries(spec.flags).flatMap(([name, s]) => [`--${name}`, ...(s.short ? [`-${s.short}`] : [])]));
}

/** A value the parser accepts for a flag. */
function valueFor(spec: CommandSpec, name: string): string[] {
  const s = spec.flags[name]!;
  if (!s.value) return [];
  return [s.int ? '1' : (s.oneOf?.[0] ?? 'x')];
}

async function helpOf(args: string[]): Promise<string> {
  const out: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
  expect(await main(args)).toBe(0);
  vi.restoreAllMocks();
  return out.join('');
}

describe('egresslab help', () => {
  afterEach(() => vi.restoreAllMocks());

  it('every command has a spec and every spec a command', () => {
    expect(Object.keys(COMMAND_SPECS).sort()).toEqual(Object.keys(COMMANDS).sort());
  });

  for (const [name, spec] of Object.entries(COMMAND_SPECS)) {
    it(`${name}: its help lists exactly the flags its parser accepts`, async () => {
      const help = await helpOf(['help', name]);
      const usage = help.split('\n')[0]!;
      expect(usage).toBe(usageLine(name, spec));
      expect([...flagsIn(usage)].sort()).toEqual([...parserFlags(spec)].sort());
      // Every flag named anywhere in the help (description, examples) is one the parser accepts...
      for (const flag of flagsIn(help)) expect(parserFlags(spec), `${name} help names ${flag}`).toContain(flag);
      // ...and the parser takes each one of the usage line (with the required ones), refusing others.
      const required = Object.entries(spec.flags)
        .filter(([, s]) => s.required)
        .flatMap(([f]) => [`--${f}`, ...valueFor(spec, f)]);
      for (const [flag] of Object.entries(spec.flags)) {
        expect(() => parseCommand(name, spec, [...required, `--${flag}`, ...valueFor(spec, flag)]), `${name} --${flag}`).not.toThrow();
      }
      expect(() => parseCommand(name, spec, [...required, '--not-a-flag'])).toThrow(ValidationError);
      expect(await helpOf([name, '--help'])).toBe(help);
    });
  }

  it('the overview lists every command with all its flags (timeline: --seconds, --allow, --svg, --interval-ms, --json)', async () => {
    const overview = await helpOf(['help']);
    for (const [name, spec] of Object.entries(COMMAND_SPECS)) expect(overview).toContain(`  ${usageLine(name, spec)}\n`);
    const timeline = overview.split('\n').find((l) => l.trim().startsWith('egresslab timeline '))!;
    for (const flag of ['--seconds', '--allow', '--svg', '--interval-ms', '--json']) expect(timeline).toContain(flag);
  });
});

describe('usageLine', () => {
  it('required flags bare, others in brackets, aliases and value placeholders, then the positionals', () => {
    const spec: CommandSpec = {
      flags: {
        lab: { value: true, arg: 'NAME' },
        file: { value: true, required: true, short: 'f', arg: 'FILE' },
        n: { value: true, int: true },
        proto: { value: true, oneOf: ['tcp', 'udp'] },
        json: {},
      },
      args: 'NODE',
      about: '',
    };
    expect(usageLine('x', spec)).toBe('egresslab x [--lab NAME] -f|--file FILE [--n N] [--proto tcp|udp] [--json] NODE');
  });
});
