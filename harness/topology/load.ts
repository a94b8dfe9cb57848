import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseTopology } from './validate.js';
import type { Topology } from './types.js';
import { ValidationError } from '../util/errors.js';
import { projectRoot } from '../util/paths.js';

/** The topology file used when none is given (the seed fixture). */
export function defaultTopologyPath(): string {
  return join(projectRoot(), 'fixtures/topologies/default.yaml');
}

/** Reads and validates a topology file (YAML or JSON). */
export function loadTopology(path = defaultTopologyPath()): Topology {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ValidationError(path, [
      { path: '--topology', value: path, message: `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})` },
    ]);
  }
  let data: unknown;
  try {
    data = parse(text);
  } catch (error) {
    throw new ValidationError(path, [{ path: '(file)', value: path, message: `is not valid YAML: ${(error as Error).message.split('\n')[0]}` }]);
  }
  return parseTopology(data, path);
}

/** Topology from a fixture name (fixtures/topologies/NAME.yaml) or a path. */
export function topologyFromArg(arg: string | undefined): Topology {
  if (!arg) return loadTopology();
  if (/^[a-z0-9-]+$/.test(arg)) return loadTopology(join(projectRoot(), 'fixtures/topologies', `${arg}.yaml`));
  return loadTopology(arg);
}

/**
 * A topology from what a scenario holds: a fixture name or a file path (as topologyFromArg; a
 * relative path is relative to the working directory), or an object with the fields of a topology
 * file (validated like one; an already parsed Topology passes unchanged).
 *
 * @example
 * ```ts
 * topologyFrom('lab/topology.yaml');
 * topologyFrom({ name: 'two', nodes: [{ name: 'node-1', role: 'worker', address: '192.168.1.1' }] });
 * ```
 */
export function topologyFrom(input: string | Topology | Record<string, unknown>, source = 'topology object'): Topology {
  if (typeof input === 'string') return topologyFromArg(input);
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ValidationError(source, [{ path: 'topology', value: input, message: 'expected a fixture name, a file path or a topology object' }]);
  }
  return parseTopology(input, source);
}
