/**
 * A small, strict argument parser: `--name value`, `--flag`, `--name=value`, a one-letter alias
 * (`-f value`, when the spec gives `short: 'f'`), and `--` for the rest.
 * Unknown flags and missing values are errors that name the flag.
 */
import { ValidationError } from '../util/errors.js';

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

/** A command's usage line, from its flags: required ones bare, the others in brackets, then the positionals. */
export function usageLine(name: string, spec: CommandSpec): string {
  const flags = Object.entries(spec.flags).map(([flag, s]) => {
    const text = `${s.short ? `-${s.short}|` : ''}--${flag}${s.value ? ` ${flagArg(s)}` : ''}`;
    return s.required ? text : `[${text}]`;
  });
  return ['egresslab', name, ...flags, ...(spec.args ? [spec.args] : [])].join(' ');
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
  const flags: Parsed['flags'] = {};
  const positionals: string[] = [];
  const issues = [];
  let rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest = argv.slice(i + 1);
      break;
    }
    const shortName = /^-[A-Za-z]$/.test(a) ? Object.keys(spec).find((k) => spec[k]!.short === a[1]) : undefined;
    if (!a.startsWith('--') && !shortName) {
      if (/^-[A-Za-z]$/.test(a)) issues.push({ path: a, value: a, message: `is not an option of "${command}"` });
      else positionals.push(a);
      continue;
    }
    const eq = shortName ? -1 : a.indexOf('=');
    const name = shortName ?? a.slice(2, eq > 0 ? eq : undefined);
    const s = spec[name];
    if (!s) {
      issues.push({ path: `--${name}`, value: a, message: `is not an option of "${command}" (options: ${Object.keys(spec).map((k) => `--${k}`).join(', ') || 'none'})` });
      continue;
    }
    if (!s.value) {
      flags[name] = true;
      continue;
    }
    const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (v === undefined || (eq < 0 && v.startsWith('--'))) {
      issues.push({ path: `--${name}`, value: v, message: 'needs a value' });
      continue;
    }
    if (s.int) {
      const n = Number(v);
      if (!Number.isInteger(n)) issues.push({ path: `--${name}`, value: v, message: 'must be a whole number' });
      else flags[name] = n;
    } else if (s.oneOf && !s.oneOf.includes(v)) {
      issues.push({ path: `--${name}`, value: v, message: `must be one of ${s.oneOf.join(', ')}` });
    } else flags[name] = v;
  }
  for (const [name, s] of Object.entries(spec)) {
    if (s.required && flags[name] === undefined) issues.push({ path: `--${name}`, value: undefined, message: 'is required' });
  }
  if (positionals.length > maxPositionals) {
    issues.push({ path: '(arguments)', value: positionals.slice(maxPositionals), message: `"${command}" takes ${maxPositionals || 'no'} positional argument(s)` });
  }
  if (issues.length) throw new ValidationError(command, issues);
  return { flags, positionals, rest };
}
