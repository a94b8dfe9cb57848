/**
 * Runs inside the control-plane container (Node 18): waits until every listed node is Up in the
 * API (its AnthosNetworkGatewayNode state), polling the local API server every 20 ms, with a deadline.
 * Usage: node cluster-ready.js --info /etc/egresslab/harness.json --nodes a,b,c [--timeout-ms 20000]
 * Exit 0 when all are Up; 1 with what is missing on stderr at the deadline.
 */
import { R } from '../../lib/kube/client.js';
import { GATEWAY_NAMESPACE } from '../../lib/kube/well-known.js';
import { API_PROGRAM_FLAGS, runApiProgram } from './api-program.js';
import { programArgs } from '../util/args.js';

const { flags } = programArgs('cluster-ready.js', {
  flags: { ...API_PROGRAM_FLAGS, nodes: { value: true, arg: 'A,B,...' } },
  about: '  Waits until every listed node is Up in the API (exit 0), or prints what is missing at the deadline (exit 1).',
});
const nodes = (flags.nodes ?? '').split(',').filter(Boolean);

runApiProgram('cluster-ready', flags, async (client) => {
  const list = await client.list(R.anthosNetworkGatewayNodes, { namespace: GATEWAY_NAMESPACE });
  const state = new Map(list.items.map((o) => [o.metadata.name, (o as { status?: { state?: string } }).status?.state ?? '?']));
  const notUp = nodes.filter((n) => state.get(n) !== 'Up');
  return notUp.length === 0 ? undefined : `not Up: ${notUp.map((n) => `${n} (${state.get(n) ?? 'no AnthosNetworkGatewayNode'})`).join(', ')}`;
});
