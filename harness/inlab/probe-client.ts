/**
 * The probe client: runs inside a lab container, in a pod's network namespace or a node's host
 * network. One JSON argument (ProbeClientOptions, protocol.ts):
 *   {"to":"8.8.8.8","port":80,"proto":"tcp","timeoutMs":1000,"token":"<16 hex>",
 *    "mode":"once"|"continuous","intervalMs":20,"count":100,
 *    "stream":true,"reconnect":false,"localPort":40001}
 * once: prints one ClientRecord as JSON. continuous: prints one ClientRecord per line as each
 * packet is settled (replied or timed out) until `count` packets are sent or SIGTERM arrives.
 * TCP continuous opens one connection per probe, unless `stream`: then ONE connection carries a
 * probe line every interval for the whole run (the responder answers every line on it); a break of
 * that connection (RST, error, close) is recorded in `connectionError` and never hidden by a silent
 * reconnect (`reconnect` opens a new connection, numbered in `conn`). Exit 2 on a bad argument.
 */
import { probeClientIssues, type ClientRecord, type ProbeClientOptions } from './protocol.js';
import { runProbe } from './probe-core.js';
import { programArgs } from '../util/args.js';
import { issueText } from '../util/errors.js';

function parseOptions(): ProbeClientOptions {
  const { positionals } = programArgs('probe-client.js', {
    flags: {},
    args: 'JSON',
    maxPositionals: 1,
    about: '  Sends a probe (or a continuous series) described by one JSON object (ProbeClientOptions) and prints one JSON record per settled packet.',
  });
  let raw: unknown;
  try {
    raw = JSON.parse(positionals[0] ?? '');
  } catch {
    process.stderr.write(`probe-client: the argument must be one JSON object, got ${JSON.stringify(positionals[0] ?? '(nothing)')}\n`);
    process.exit(2);
  }
  const issues =
    typeof raw === 'object' && raw !== null
      ? probeClientIssues(raw as Partial<ProbeClientOptions>)
      : [{ path: 'JSON', value: raw, message: 'must be a JSON object' }];
  if (issues.length) {
    process.stderr.write(`probe-client: bad options:\n  - ${issues.map(issueText).join('\n  - ')}\n`);
    process.exit(2);
  }
  return raw as ProbeClientOptions;
}

const opts = parseOptions();

function emit(r: ClientRecord): void {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

const run = runProbe(opts, emit);
process.on('SIGTERM', () => run.stop());
run.done.then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
