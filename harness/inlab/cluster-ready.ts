/**
 * Runs inside the control-plane container (Node 18) while a lab's cluster starts, as one process
 * (each Node start costs a lab container ~0.2 s of CPU, and a lab's start is CPU-bound on 2 cores):
 *  1. with --register, registers the topology's namespaces and pods (JSON on standard input,
 *     harness/cluster/pods.ts) in the local API server, retrying every 20 ms until the API answers;
 *  2. waits until every listed node is Up in the API (its AnthosNetworkGatewayNode state), by a
 *     watch (list, then the changes as they happen: no polling of the API).
 * Usage: node cluster-ready.js --info /etc/egresslab/harness.json --nodes a,b,c [--register] [--timeout-ms 20000]
 * Each step has the whole --timeout-ms (the wait for the nodes counts from when the pods are
 * registered, about when the agents start). Exit 0 when all are Up; at a deadline 3 when the pods
 * could not be registered, 1 when a node is not Up, with what is missing on stderr (2: bad flags).
 */
import { readFileSync } from 'node:fs';
import { R, type KubeClient } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { GATEWAY_NAMESPACE } from '../../lib/kube/well-known.js';
import { registerPods, type PodRegistration } from '../cluster/pods.js';
import { API_PROGRAM_FLAGS, StepFailed, runApiProgram } from './api-program.js';
import { programArgs } from '../util/args.js';
import { REGISTER_FAILED, nodesNotUp } from './cluster-ready-core.js';

const { flags } = programArgs('cluster-ready.js', {
  flags: { ...API_PROGRAM_FLAGS, nodes: { value: true, arg: 'A,B,...' }, register: {} },
  about:
    '  Registers the pods (--register: JSON on standard input), then waits until every listed node is Up in the API (exit 0), or prints what is missing at the deadline.',
});
const nodes = (flags.nodes ?? '').split(',').filter(Boolean);
const registration = flags.register ? (JSON.parse(readFileSync(0, 'utf8')) as PodRegistration) : undefined;

/**
 * Resolves once every node is Up in the informer's cache; StepFailed at the deadline. A watch that
 * has not listed yet at the deadline (a slow first list under load) gets one last list, so that the
 * verdict comes from the API, not from an empty cache.
 */
function untilUp(client: KubeClient, deadline: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let lastError = '';
    let synced = false;
    let finished = false;
    const finish = (error?: Error): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      void informer.stop();
      if (error) reject(error);
      else resolve();
    };
    const check = (): void => {
      if (nodesNotUp(nodes, informer.list()).length === 0) finish();
    };
    const informer = client.informer<KubeObject>(
      R.anthosNetworkGatewayNodes,
      { namespace: GATEWAY_NAMESPACE },
      {
        onSync: () => {
          synced = true;
          check();
        },
        onAdd: check,
        onUpdate: check,
        onDelete: check,
        onError: (e) => (lastError = (e as Error).message),
      },
    );
    const atDeadline = async (): Promise<void> => {
      let items = informer.list();
      if (!synced) {
        try {
          items = (await client.list<KubeObject>(R.anthosNetworkGatewayNodes, { namespace: GATEWAY_NAMESPACE })).items;
        } catch (e) {
          finish(new StepFailed(`no answer from the API to a list of the nodes: ${(e as Error).message}`));
          return;
        }
      }
      const missing = nodesNotUp(nodes, items);
      if (missing.length === 0) finish();
      else finish(new StepFailed(`not Up: ${missing.join(', ')}${lastError ? ` (last API error: ${lastError})` : ''}`));
    };
    const timer = setTimeout(() => void atDeadline(), Math.max(0, deadline - Date.now()));
  });
}

runApiProgram('cluster-ready', flags, async ({ client, timeoutMs, retry }) => {
  if (registration) {
    await retry(() => registerPods(client, registration), REGISTER_FAILED);
  }
  await untilUp(client, Date.now() + timeoutMs);
});
