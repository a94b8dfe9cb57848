/**
 * Argument parsing for the CLI, the in-lab programs and the benchmarks: one table per command or
 * program (flags, positionals, what it does) from which both the parser and the help come, on
 * `node:util` parseArgs (`--name value`, `--flag`, `--name=value`, a one-letter alias `-f value`,
 * and `--` for the rest). Unknown flags, missing or bad values are collected into one
 * ValidationError naming each flag and value.
 */
import { parseArgs as nodeParseArgs } from 'node:util';
import { ValidationError, type FieldIssue } from './errors.js';

/** What a flag is: a switch or a value (integer, one of a list), required or not, its alias. */
export interface FlagSpec {
  /** Takes a value (otherwise a boolean switch). */
  value?: boolean;
  /** Parse as an integer. */
  int?: boolean;
  /** Required. */
  required?: boolean;
  /** Allowed values. */
  oneOf?: readonly string[];
  /** One-letter alias: `-f value` for `--file value`. */
  short?: string;
  /** The value's placeholder in the help, e.g. "FILE|NAME" (default: N for int, the oneOf values, else VALUE). */
  arg?: string;
}

/**
 * One command of the CLI: the flags its parser accepts and its help. The usage line in the help and
 * in the overview is generated from `flags`, so the help lists exactly what the parser accepts.
 */
export interface CommandSpec {
  flags: Record<string, FlagSpec>;
  /** Positional arguments after the flags in the usage line, e.g. "NODE" or "WHERE IFACE". */
  args?: string;
  /** How many positional arguments the parser accepts (default 0). */
  maxPositionals?: number;
  /** What the command does and an example: the help's lines after the usage line (indented). */
  about: string;
}

/** The placeholder a flag's value is shown with. */
function flagArg(s: FlagSpec): string {
  return s.arg ?? (s.int ? 'N' : s.oneOf ? s.oneOf.join('|') : 'VALUE');
}

/** A usage line: `words`, then the flags (required ones bare, the others in brackets), then the positionals. */
export function usageOf(words: string, spec: Pick<CommandSpec, 'flags' | 'args'>): string {
  const flags = Object.entries(spec.flags).map(([flag, s]) => {
    const text = `${s.short ? `-${s.short}|` : ''}--${flag}${s.value ? ` ${flagArg(s)}` : ''}`;
    return s.required ? text : `[${text}]`;
  });
  return [words, ...flags, ...(spec.args ? [spec.args] : [])].join(' ');
}

/** A command's usage line, from its flags: required ones bare, the others in brackets, then the positionals. */
export function usageLine(name: string, spec: CommandSpec): string {
  return usageOf(`egresslab ${name}`, spec);
}

/** A command's full help: the generated usage line, then what it does. */
export function commandHelp(name: string, spec: CommandSpec): string {
  return `${usageLine(name, spec)}\n${spec.about}`;
}

/** Parses a command's arguments with its spec (the same table its help comes from). */
export function parseCommand(name: string, spec: CommandSpec, argv: string[]): Parsed {
  return parseArgs(name, argv, spec.flags, spec.maxPositionals ?? 0);
}

/** Parsed arguments: flags by name, positionals, and what came after "--". */
export interface Parsed {
  flags: Record<string, string | number | boolean | undefined>;
  positionals: string[];
  rest: string[];
}

/** Parses `argv` against `spec`; throws a ValidationError naming every bad flag and value at once. */
export function parseArgs(command: string, argv: string[], spec: Record<string, FlagSpec>, maxPositionals = 0): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, s] of Object.entries(spec)) options[name] = { type: s.value ? 'string' : 'boolean', ...(s.short ? { short: s.short } : {}) };
  // Not strict: every token comes back, so that all problems are reported at once, in our words.
  const { tokens } = nodeParseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const flags: Parsed['flags'] = {};
  const positionals: string[] = [];
  const issues: FieldIssue[] = [];
  let rest: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'option-terminator') {
      rest = argv.slice(t.index + 1);
      break;
    }
    if (t.kind === 'positional') {
      positionals.push(t.value);
      continue;
    }
    const s = spec[t.name];
    if (!s) {
      const known =
        Object.keys(spec)
          .map((k) => `--${k}`)
          .join(', ') || 'none';
      const raw = argv[t.index]!;
      issues.push({
        path: t.rawName.startsWith('--') ? t.rawName : raw,
        value: raw,
        message: `is not an option of "${command}"${t.rawName.startsWith('--') ? ` (options: ${known})` : ''}`,
      });
      continue;
    }
    const name = `--${t.name}`;
    if (!s.value) {
      flags[t.name] = true;
      continue;
    }
    const v = t.value;
    if (v === undefined || (!t.inlineValue && v.startsWith('--'))) {
      issues.push({ path: name, value: v, message: 'needs a value' });
      continue;
    }
    if (s.int) {
      const n = v.trim() === '' ? NaN : Number(v);
      if (!Number.isInteger(n)) issues.push({ path: name, value: v, message: 'must be a whole number' });
      else flags[t.name] = n;
    } else if (s.oneOf && !s.oneOf.includes(v)) {
      issues.push({ path: name, value: v, message: `must be one of ${s.oneOf.join(', ')}` });
    } else flags[t.name] = v;
  }
  for (const [name, s] of Object.entries(spec)) {
    if (s.required && flags[name] === undefined) issues.push({ path: `--${name}`, value: undefined, message: 'is required' });
  }
  if (positionals.length > maxPositionals) {
    issues.push({
      path: '(arguments)',
      value: positionals.slice(maxPositionals),
      message: `"${command}" takes ${maxPositionals || 'no'} positional argument(s)`,
    });
  }
  if (issues.length) throw new ValidationError(command, issues);
  return { flags, positionals, rest };
}

// ---------------------------------------------------------------------------------------------
// programs: the in-lab programs and the benchmarks

/** The value type a flag parses to: a number (int), a string (value), else a switch. */
type FlagValue<S extends FlagSpec> = S extends { value: true } ? (S extends { int: true } ? number : string) : boolean;

/** Parsed flags of a program, typed from its table (absent flags are undefined). */
export type Flags<F extends Record<string, FlagSpec>> = { -readonly [K in keyof F]?: FlagValue<F[K]> };

/** A program's table: its flags, positionals and what it does (the help's text). */
export interface ProgramSpec<F extends Record<string, FlagSpec>> {
  flags: F;
  /** Positional arguments in the usage line, e.g. "HOST PORT". */
  args?: string;
  /** How many positional arguments it accepts (default 0). */
  maxPositionals?: number;
  /** Every positional argument must be a whole number. */
  intPositionals?: boolean;
  /** Checks beyond the types (ranges, combinations): the problems found, each naming the flag and value. */
  check?: (flags: Flags<F>, positionals: string[]) => FieldIssue[];
  about: string;
}

/** A program's usage and help: `node <file> FLAGS ARGS`, then what it does. */
export function programHelp<F extends Record<string, FlagSpec>>(file: string, spec: ProgramSpec<F>): string {
  return `usage: ${usageOf(`node ${file}`, spec)}
${spec.about}`;
}

/**
 * Parses a program's arguments (default: process.argv) with its table. `--help` prints the help and
 * exits 0; a bad flag or value prints every problem (flag and value named) and the usage to stderr
 * and exits 2.
 */
export function programArgs<const F extends Record<string, FlagSpec>>(
  file: string,
  spec: ProgramSpec<F>,
  argv: string[] = process.argv.slice(2),
): { flags: Flags<F>; positionals: string[] } {
  const program = file.replace(/^.*\//, '');
  if (argv.includes('--help') && !Object.hasOwn(spec.flags, 'help')) {
    process.stdout.write(`${programHelp(file, spec)}\n`);
    process.exit(0);
  }
  try {
    const { flags, positionals } = parseArgs(program, argv, spec.flags, spec.maxPositionals ?? 0);
    const issues: FieldIssue[] = [];
    if (spec.intPositionals) {
      for (const p of positionals)
        if (p.trim() === '' || !Number.isInteger(Number(p))) issues.push({ path: '(arguments)', value: p, message: 'must be a whole number' });
    }
    if (!issues.length && spec.check) issues.push(...spec.check(flags as Flags<F>, positionals));
    if (issues.length) throw new ValidationError(program, issues);
    return { flags: flags as Flags<F>, positionals };
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    process.stderr.write(`${error.message}\n${programHelp(file, spec).split('\n')[0]}\n`);
    process.exit(2);
  }
}
