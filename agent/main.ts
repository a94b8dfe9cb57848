#!/usr/bin/env node
/**
 * The egresslab node agent (runs on every lab node, Node 18+, as root):
 *
 *   node /opt/egresslab/dist/agent/main.js /etc/egresslab/agent.json
 *   (or EGRESSLAB_AGENT_CONFIG=/etc/egresslab/agent.json; agent/config.ts documents the file)
 *
 * Renews the node's Lease, projects ConfigMap kube-system/ip-masq-agent into a file, runs the
 * masquerade datapath for the flavour, posts Events on its Node and writes
 * /run/egresslab/agent-status.json. One log line per significant action on stdout.
 *
 * SIGTERM/SIGINT: clean stop (lease no longer renewed; the datapath stays as programmed unless removeRulesOnStop), exit 0. Exit 2 on a bad
 * config; 1 on a fatal error (rules stay, as after a crash).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { AgentConfigError, DEFAULT_AGENT_CONFIG_PATH, parseAgentConfigText, type AgentConfig } from './config.js';
import { NodeAgent } from './node/agent.js';

export function loadAgentConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new AgentConfigError([`cannot read ${path}: ${(e as Error).message}`]);
  }
  return parseAgentConfigText(text, path);
}

async function main(): Promise<void> {
  const path = process.argv[2] ?? process.env.EGRESSLAB_AGENT_CONFIG ?? DEFAULT_AGENT_CONFIG_PATH;
  let config: AgentConfig;
  try {
    config = loadAgentConfig(path);
  } catch (e) {
    process.stderr.write(`agent: bad config ${path}: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const agent = new NodeAgent(config);
  let signalled = false;
  const onSignal = (sig: string): void => {
    if (signalled) return;
    signalled = true;
    agent.log('agent', `${sig} received`);
    agent.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`agent: stop failed: ${(e as Error).stack ?? String(e)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // keep the process alive whatever the modules' timers do
  setInterval(() => undefined, 1 << 30);
  await agent.start();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: unknown) => {
    process.stderr.write(`agent: fatal: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
