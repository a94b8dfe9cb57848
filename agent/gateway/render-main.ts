/**
 * Debug tool: `node dist/agent/gateway/render-main.js INPUT.json [--plan]` renders the datapath of
 * the node `INPUT.self` for a ModelInput given as JSON (what the agent would apply), without I/O on
 * the kernel. Prints the nft transaction, then the `ip -batch` lines (as comments); with --plan, the
 * computed plan as JSON instead.
 */
import { readFileSync } from 'node:fs';
import { computeGatewayPlan, type ModelInput } from './model.js';
import { addressCommands, renderGateway, routingCommands } from './render.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: render-main INPUT.json [--plan] [--uplink IF]\n');
  process.exit(2);
}
const input = JSON.parse(readFileSync(file, 'utf8')) as ModelInput;
const plan = computeGatewayPlan(input);
if (process.argv.includes('--plan')) {
  process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
} else {
  const i = process.argv.indexOf('--uplink');
  const uplink = i > 0 ? process.argv[i + 1] : undefined;
  const r = renderGateway(plan, uplink ? { uplink } : {});
  const cmds = routingCommands(r, { rules: [], tables: [] });
  const addrs = addressCommands(r.addresses, [], plan.floatingIPs, plan.nodeIP, uplink ?? 'eth0');
  process.stdout.write(r.ruleset);
  for (const l of [...cmds.before, ...addrs.add]) process.stdout.write(`#ip ${l}\n`);
}
