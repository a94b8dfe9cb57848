#!/usr/bin/env node
/**
 * Entry point of the masquerade agent inside a lab node (Node 18+, root):
 *
 *   node dist/agent/masq/main.js --pod-cidr 10.244.1.0/24 [--pod-cidr ...]
 *        [--config /etc/config/ip-masq-agent] [--state /run/egresslab/masq-state.json]
 *        [--enable-ipv6] [--nft /usr/sbin/nft]
 *
 * One-shot flavours without an agent (SPEC 1, "no agent" rows):
 *   node dist/agent/masq/main.js --flavour default-snat --pod-cidr ...   # disableDefaultSnat: false
 *   node dist/agent/masq/main.js --flavour no-snat                       # disableDefaultSnat: true
 *
 * SIGTERM/SIGINT: remove the rules and exit 0. A crash (or SIGKILL) leaves the last rules in place.
 * Events are logged as "event <type> <reason>: <message>" lines until the harness wires them to
 * Kubernetes Events.
 */
import { pathToFileURL } from 'node:url';
import { MasqAgent } from './agent.js';
import { DEFAULT_CONFIG_PATH, DEFAULT_STATE_PATH } from './constants.js';
import { ExecHost } from '../host/exec-host.js';
import { renderFlavour, renderMasqRemoval } from './render.js';

export interface MainArgs {
  podCidrs: string[];
  configPath: string;
  statePath: string;
  enableIPv6: boolean;
  nftPath: string;
  flavour: 'agent' | 'default-snat' | 'no-snat';
}

export function parseArgs(argv: readonly string[]): MainArgs {
  const a: MainArgs = {
    podCidrs: [],
    configPath: DEFAULT_CONFIG_PATH,
    statePath: DEFAULT_STATE_PATH,
    enableIPv6: false,
    nftPath: 'nft',
    flavour: 'agent',
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${k} needs a value`);
      return v;
    };
    switch (k) {
      case '--pod-cidr':
        a.podCidrs.push(...val().split(',').filter(Boolean));
        break;
      case '--config':
        a.configPath = val();
        break;
      case '--state':
        a.statePath = val();
        break;
      case '--enable-ipv6':
        a.enableIPv6 = true;
        break;
      case '--nft':
        a.nftPath = val();
        break;
      case '--flavour': {
        const f = val();
        if (f !== 'agent' && f !== 'default-snat' && f !== 'no-snat') throw new Error(`unknown flavour ${f}`);
        a.flavour = f;
        break;
      }
      default:
        throw new Error(`unknown argument ${k}`);
    }
  }
  if (a.podCidrs.length === 0 && a.flavour !== 'no-snat') throw new Error('--pod-cidr is required');
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const host = new ExecHost({ nftPath: args.nftPath });

  if (args.flavour !== 'agent') {
    const r = renderFlavour({ kind: args.flavour }, { podCidrs: args.podCidrs });
    await host.nftApply(r ? r.ruleset : renderMasqRemoval());
    process.stderr.write(`ip-masq-agent: flavour ${args.flavour} applied\n`);
    return;
  }

  const agent = new MasqAgent({
    host,
    podCidrs: args.podCidrs,
    configPath: args.configPath,
    statePath: args.statePath,
    enableIPv6: args.enableIPv6,
    onEvent: (reason, message, type) => process.stderr.write(`ip-masq-agent: event ${type} ${reason}: ${message}\n`),
  });
  let stopping = false;
  const onSignal = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`ip-masq-agent: ${sig}: removing rules\n`);
    agent.stop({ removeRules: true }).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  await agent.start();
  // Keep the process alive (timers/watchers are unref'd / non-persistent).
  setInterval(() => undefined, 1 << 30);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: unknown) => {
    process.stderr.write(`ip-masq-agent: fatal: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
