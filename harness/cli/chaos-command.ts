/**
 * `egresslab chaos`: the chaos explorer (issue 15). Only --dry-run exists so far: it prints the
 * schedule a seed draws for a topology, the one a run WOULD execute. Running it against a lab,
 * checking the invariants and shrinking are not wired up yet (docs/chaos.md).
 */
import { parseCommand, type CommandSpec } from '../util/args.js';
import { ValidationError } from '../util/errors.js';
import { topologyFromArg } from '../topology/load.js';
import { describeStep, generateSchedule, universeOf } from '../chaos/schedule.js';

const out = (s: string) => process.stdout.write(`${s}\n`);

/** The chaos command's flags and help. */
export const CHAOS_SPECS: Record<string, CommandSpec> = {
  chaos: {
    flags: {
      seed: { value: true, int: true },
      steps: { value: true, int: true },
      topology: { value: true, arg: 'FILE|NAME' },
      'dry-run': {},
      json: {},
    },
    about: `  Draws a random fault schedule from a seed (same seed, same schedule) for a topology (default:
  default) and prints it. Only --dry-run is implemented: running schedules against a lab, checking
  the invariants and shrinking a failure are not yet (docs/chaos.md). Without --seed a random seed
  is drawn and printed; --steps defaults to 8.
  Example: npx egresslab chaos --seed 42 --steps 8 --dry-run --json`,
  },
};

/** `egresslab chaos`: prints the schedule of a seed (--dry-run); exit 2 without --dry-run. */
export async function chaosCmd(argv: string[]): Promise<number> {
  const { flags } = parseCommand('chaos', CHAOS_SPECS.chaos!, argv);
  const steps = (flags.steps as number | undefined) ?? 8;
  const issues = [];
  if (steps < 1 || steps > 200) issues.push({ path: '--steps', value: steps, message: 'must be from 1 to 200' });
  if (flags.seed !== undefined && ((flags.seed as number) < -2147483648 || (flags.seed as number) > 2147483647)) issues.push({ path: '--seed', value: flags.seed, message: 'must be a 32-bit whole number' });
  if (issues.length) throw new ValidationError('chaos', issues);
  if (!flags['dry-run']) {
    process.stderr.write('egresslab chaos: running schedules against a lab is not implemented yet; use --dry-run\n');
    return 2;
  }
  const seed = (flags.seed as number | undefined) ?? Math.floor(Math.random() * 2 ** 31);
  const topology = topologyFromArg(flags.topology as string | undefined);
  const schedule = generateSchedule(seed, universeOf(topology), { steps });
  if (flags.json) out(JSON.stringify({ seed, topology: topology.name, dryRun: true, schedule }));
  else {
    out(`seed ${seed}, topology ${topology.name}: ${schedule.steps.length} step(s) (dry run: nothing is executed)`);
    for (const s of schedule.steps) out(`  ${describeStep(s)}`);
  }
  return 0;
}
