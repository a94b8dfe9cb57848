/**
 * Runs inside the control-plane container (Node 18): registers the topology's namespaces and pods
 * in the local API server (harness/cluster/pods.ts), retrying until the API answers, with a deadline.
 * Usage: node register-pods.js --info /etc/egresslab/harness.json [--timeout-ms 20000] < registration.json
 * Exit 0 when done; 1 with the last error on stderr at the deadline.
 */
import { readFileSync } from 'node:fs';
import { registerPods, type PodRegistration } from '../cluster/pods.js';
import { API_PROGRAM_FLAGS, runApiProgram } from './api-program.js';
import { programArgs } from '../util/args.js';

const { flags } = programArgs('register-pods.js', {
  flags: API_PROGRAM_FLAGS,
  about: "  Registers the topology's namespaces and pods (JSON on standard input) in the local API server.",
});
const reg = JSON.parse(readFileSync(0, 'utf8')) as PodRegistration;

runApiProgram('register-pods', flags, async (client) => {
  await registerPods(client, reg);
  return undefined;
});
