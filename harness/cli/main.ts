/**
 * The egresslab command line. Human output by default; --json where a script parses it.
 */
import { Lab } from '../lab/lab.js';
import type { Topology } from '../topology/types.js';
import { listLabs, prune, removeLab } from '../lab/registry.js';
import { topologyFromArg } from '../topology/load.js';
import { commandHelp, parseCommand, usageLine, type CommandSpec } from '../util/args.js';
import { ValidationError, LabError, CommandError, TimeoutError } from '../util/errors.js';
import type { ProbeResult } from '../probe/probe.js';
import type { Proto } from '../inlab/protocol.js';
import { CLUSTER_SPECS, applyCmd, clusterStatusOf, kubeconfigCmd, printClusterStatus } from './cluster-commands.js';
import { LAB_COMMANDS, LAB_SPECS } from './lab-commands.js';
import { CHAOS_SPECS, chaosCmd, replayCmd } from './chaos-command.js';
import { REPORT_SPECS, reportCmd } from './report-command.js';
import { INIT_COMMANDS, INIT_SPECS } from './init-command.js';
import { ensureImage } from '../docker/image.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { applyAll, loadManifests } from '../cluster/apply.js';
import { workerHolder } from '../cluster/holder.js';
import { gatewayOf } from '../cluster/cluster-status.js';
import { pollUntil } from '../util/poll.js';
import { artifactsDir, projectRoot } from '../util/paths.js';
import { summarize } from '../report/failover.js';
import { renderTimelineSvg } from '../report/timeline-svg.js';
import { abortOnSignal } from './abort-on-signal.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const progress = (s: string) => process.stderr.write(`${s}\n`);

const LAB = { value: true, arg: 'NAME' } as const;
const TOPOLOGY = { value: true, arg: 'FILE|NAME' } as const;

/** The commands defined here: flags (what the parser accepts) and help. */
const SPECS: Record<string, CommandSpec> = {
  up: {
    flags: { topology: TOPOLOGY, lab: LAB, json: {} },
    about: `  Builds the base image if needed, brings a lab up and leaves it running.
  Example: npx egresslab up --lab demo`,
  },
  down: {
    flags: { lab: LAB },
    about: `  Removes every container and volume of the lab (by its label, a half-built one too), stops its
  kubeconfig forward and removes its files in .egresslab/ (the kubeconfig, the forward's state and
  log). With one lab up, --lab may be omitted.`,
  },
  probe: {
    flags: {
      lab: LAB,
      from: { value: true, required: true, arg: 'POD|NODE' },
      to: { value: true, required: true, arg: 'IP' },
      port: { value: true, int: true },
      proto: { value: true, oneOf: ['tcp', 'udp', 'icmp'] },
      'timeout-ms': { value: true, int: true, arg: 'MS' },
      json: {},
    },
    about: `  Sends one probe and prints what the far end observed.
  Example: npx egresslab probe --from default/client-1 --to 8.8.8.8 --proto udp --json`,
  },
  status: {
    flags: { lab: LAB, json: {} },
    about: `  Lists labs, or one lab's containers, nodes and pods; for a lab running a cluster also the gateway
  (nodes Up/Down, floating IPs) and each node's agent (phase, lease, masquerade config hash, last error).`,
  },
  prune: {
    flags: { all: {} },
    about: `  Removes leftovers of crashed runs: labs whose creating process is gone and that were not
  started with "up", and labs an interrupted "up" left half-built; with their files in .egresslab/.
  --all removes every egresslab lab.`,
  },
  demo: {
    flags: { topology: TOPOLOGY, keep: {}, lab: LAB, 'no-gateway': {} },
    about: `  Brings the default lab up, runs a set of probes, prints what each observed; with the cluster, then
  applies the seed's egress NAT gateway, shows a matched pod leaving as 192.168.1.100 and kills the
  gateway node under a continuous probe (failover time, leaks, an SVG timeline in artifacts/demo/;
  --no-gateway skips that). Tears the lab down (--keep leaves it up).
  Example: npx egresslab demo --keep`,
  },
  image: {
    flags: {},
    about: `  Builds the lab's base image when the engine lacks it (from Debian packages with mmdebstrap, about
  30 s; nothing is pulled) and prints its tag; with EGRESSLAB_IMAGE set, checks that image exists.
  Labs build it on first use anyway: CI runs this once, as root, before the tests (mmdebstrap needs
  root where user namespaces are restricted).
  Example: sudo "$(which node)" node_modules/egresslab/bin/egresslab.js image`,
  },
  validate: {
    flags: { topology: { ...TOPOLOGY, required: true }, json: {} },
    about: `  Checks a topology without starting anything: exit 0 and a one-line summary when it is valid,
  exit 2 and every problem (field, value, what is wrong) when it is not.
  Example: npx egresslab validate --topology fixtures/topologies/mine.yaml`,
  },
};

/** Every command's flags and help: the parsers and `egresslab help` read this one table. */
export const COMMAND_SPECS: Record<string, CommandSpec> = { ...SPECS, ...CLUSTER_SPECS, ...LAB_SPECS, ...CHAOS_SPECS, ...INIT_SPECS, ...REPORT_SPECS };

const HELP: Record<string, string> = Object.fromEntries(Object.entries(COMMAND_SPECS).map(([name, spec]) => [name, commandHelp(name, spec)]));

function usage(): string {
  return `egresslab: a network lab for Kubernetes egress NAT

Commands:
${Object.entries(COMMAND_SPECS)
  .map(([name, spec]) => `  ${usageLine(name, spec)}`)
  .join('\n')}

"egresslab help COMMAND" explains one command with an example.`;
}

async function validate(argv: string[]): Promise<number> {
  const { flags } = parseCommand('validate', SPECS.validate!, argv);
  if (typeof flags.topology !== 'string')
    throw new ValidationError('validate', [{ path: '--topology', value: flags.topology, message: 'is required: a topology file or fixture name' }]);
  const t = topologyFromArg(flags.topology);
  const summary = {
    topology: t.name,
    valid: true,
    nodes: t.nodes.length,
    pods: t.pods.length,
    vpcEndpoints: t.vpcEndpoints.length,
    snat: t.snat,
    cluster: t.cluster,
  };
  out(
    flags.json
      ? JSON.stringify(summary)
      : `topology ${t.name} is valid: ${t.nodes.length} node(s), ${t.pods.length} pod(s), ${t.vpcEndpoints.length} VPC endpoint(s), snat ${t.snat}, cluster ${t.cluster ? 'on' : 'off'}`,
  );
  return 0;
}

async function image(argv: string[]): Promise<number> {
  parseCommand('image', SPECS.image!, argv);
  out(await ensureImage(progress));
  return 0;
}

async function up(argv: string[]): Promise<number> {
  const { flags } = parseCommand('up', SPECS.up!, argv);
  const topology = topologyFromArg(flags.topology as string | undefined);
  const abort = abortOnSignal();
  const started = Date.now();
  try {
    const lab = await Lab.up({ topology, id: flags.lab as string | undefined, persistent: true, progress, signal: abort.signal });
    if (abort.signal.aborted) {
      await lab.down();
      return 130;
    }
    if (flags.json) out(JSON.stringify({ lab: lab.id, upMs: Date.now() - started, ...summary(lab) }));
    else {
      out(`lab ${lab.id} is up (${Date.now() - started} ms)`);
      printLab(lab);
      out(`\nnext: ${nextProbeHint(lab.id, lab.topology)}`);
      if (lab.topology.cluster) out(`      export KUBECONFIG=$(npx egresslab kubeconfig --lab ${lab.id}); kubectl get nodes`);
    }
    return 0;
  } catch (error) {
    if (abort.signal.aborted) return 130;
    throw error;
  } finally {
    abort.dispose();
  }
}

function summary(lab: Lab) {
  return {
    nodes: lab.topology.nodes.map((n) => ({ name: n.name, role: n.role, address: n.address, podCIDR: n.podCIDR ?? null })),
    pods: lab.plan.pods.map((p) => ({ pod: p.key, node: p.node, ip: p.ip ?? lab.plan.addresses[p.node], hostNetwork: p.hostNetwork })),
    endpoints: [
      { name: 'internet', answers: 'any address outside the lab ranges' },
      ...lab.topology.vpcEndpoints.map((e) => ({ name: e.name, address: e.address, answers: e.answers })),
    ],
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function printLab(lab: Lab): void {
  out(table([['NODE', 'ROLE', 'ADDRESS', 'POD CIDR'], ...lab.topology.nodes.map((n) => [n.name, n.role, n.address, n.podCIDR ?? '-'])]));
  out('');
  out(table([['POD', 'NODE', 'IP'], ...lab.plan.pods.map((p) => [p.key, p.node, p.ip ?? `${lab.plan.addresses[p.node]} (hostNetwork)`])]));
}

async function down(argv: string[]): Promise<number> {
  const { flags } = parseCommand('down', SPECS.down!, argv);
  // by label, not through Lab.attach: a half-built lab (a killed "up", no router yet) goes too
  const id = (flags.lab as string | undefined) ?? (await Lab.attach()).id;
  const r = await removeLab(id);
  if (r.containers === 0 && r.volumes === 0 && !r.forwarder && r.files.length === 0)
    throw new LabError(`no lab named ${id} is up ("egresslab status" lists labs)`);
  const extras = [...(r.forwarder ? ['kubeconfig forward stopped'] : []), ...(r.files.length ? [`removed ${r.files.join(', ')}`] : [])];
  out(`lab ${id} removed (${r.containers} containers${extras.map((e) => `, ${e}`).join('')})`);
  return 0;
}

function describeProbe(r: ProbeResult): string {
  const seen = r.observedSource ? `${r.observedSource}${r.observedPort ? `:${r.observedPort}` : ''}` : 'nothing arrived';
  return `${r.proto} ${r.from} -> ${r.to}${r.port ? `:${r.port}` : ''}: observed ${seen}${r.observedBy ? ` (at ${r.observedBy})` : ''}, reply ${r.replyReceived ? `received in ${r.rttMs} ms` : 'NOT received'}`;
}

async function probeCmd(argv: string[]): Promise<number> {
  const { flags } = parseCommand('probe', SPECS.probe!, argv);
  const lab = await Lab.attach(flags.lab as string | undefined);
  const r = await lab.probe(flags.from as string, flags.to as string, {
    ...(flags.proto ? { proto: flags.proto as Proto } : {}),
    ...(flags.port !== undefined ? { port: flags.port as number } : {}),
    ...(flags['timeout-ms'] !== undefined ? { timeoutMs: flags['timeout-ms'] as number } : {}),
  });
  out(flags.json ? JSON.stringify(r) : describeProbe(r));
  return 0;
}

async function status(argv: string[]): Promise<number> {
  const { flags } = parseCommand('status', SPECS.status!, argv);
  const labs = await listLabs();
  if (!flags.lab && labs.length !== 1) {
    if (flags.json)
      out(JSON.stringify({ labs: labs.map((l) => ({ id: l.id, containers: l.containers.length, persistent: l.persistent, created: l.created })) }));
    else if (labs.length === 0) out('no lab is up ("egresslab up" starts one)');
    else
      out(table([['LAB', 'CONTAINERS', 'KEPT', 'CREATED'], ...labs.map((l) => [l.id, String(l.containers.length), l.persistent ? 'yes' : 'no', l.created])]));
    return 0;
  }
  const lab = await Lab.attach(flags.lab as string | undefined);
  const info = labs.find((l) => l.id === lab.id)!;
  const containers = info.containers.map((c) => ({ key: c.key, role: c.role, state: c.state })).sort((a, b) => a.key.localeCompare(b.key));
  const cluster = lab.topology.cluster ? await clusterStatusOf(lab) : undefined;
  if (flags.json) out(JSON.stringify({ lab: lab.id, containers, ...summary(lab), cluster: cluster ?? null }));
  else {
    out(`lab ${lab.id}`);
    out(table([['CONTAINER', 'ROLE', 'STATE'], ...containers.map((c) => [c.key, c.role, c.state])]));
    out('');
    printLab(lab);
    if (cluster) printClusterStatus(cluster);
  }
  return 0;
}

async function pruneCmd(argv: string[]): Promise<number> {
  const { flags } = parseCommand('prune', SPECS.prune!, argv);
  const removed = await prune({ all: Boolean(flags.all), onRemove: (id, why) => out(`removed lab ${id}: ${why}`) });
  if (removed.length === 0) out('nothing to prune');
  return 0;
}

interface DemoCheck {
  from: string;
  to: string;
  proto: Proto;
  /** what the far end must observe, and whether the reply must reach the sender */
  source: string;
  reply: boolean;
  why: string;
}

/** The demo's probes and what each must observe in the lab's SNAT flavour (SPEC 1). */
export function demoChecks(lab: Lab): DemoCheck[] {
  const nodeIP = (name: string) => lab.topology.nodes.find((n) => n.name === name)?.address ?? '?';
  const podIP = (key: string) => lab.pod(key).ip ?? nodeIP(lab.pod(key).node);
  const client = lab.pod('default/client-1');
  const snat = lab.topology.snat;
  const masq = snat !== 'none';
  const who: Record<typeof snat, string> = {
    none: 'no SNAT (snat: none)',
    'default-snat': "the node's default SNAT (no agent, disableDefaultSnat: false)",
    'ip-masq-agent': 'ip-masq-agent (no ConfigMap: the default non-masquerade list)',
    autopilot: "Autopilot's ip-masq-agent (the default + managed EgressNATPolicy)",
  };
  return [
    { from: 'node-1', to: '8.8.8.8', proto: 'tcp', source: nodeIP('node-1'), reply: true, why: "a node's own traffic leaves with the node IP" },
    masq
      ? {
          from: client.key,
          to: '8.8.8.8',
          proto: 'udp',
          source: nodeIP(client.node),
          reply: true,
          why: `${who[snat]} masquerades pod traffic to the internet: the internet sees the node IP and the reply comes back to the pod`,
        }
      : {
          from: client.key,
          to: '8.8.8.8',
          proto: 'udp',
          source: podIP(client.key),
          reply: false,
          why: `${who[snat]}: the internet sees the pod IP and its reply is lost`,
        },
    {
      from: client.key,
      to: '172.16.100.10',
      proto: 'udp',
      source: podIP(client.key),
      reply: true,
      why: masq
        ? `172.16.0.0/12 is a non-masquerade destination: the VPC sees the pod IP and routes the reply back to the pod CIDR`
        : 'the VPC routes back to pod CIDRs: reply received',
    },
    {
      from: 'alice/frontend-1',
      to: '10.10.11.1',
      proto: 'tcp',
      source: podIP('alice/frontend-1'),
      reply: true,
      why: `pod to pod across nodes: routed, never NATed${masq ? ' (10.0.0.0/8 is non-masquerade)' : ''}`,
    },
    { from: 'default/host-1', to: '1.1.1.1', proto: 'icmp', source: nodeIP(lab.pod('default/host-1').node), reply: true, why: 'a hostNetwork pod is the node' },
  ];
}

const DEMO_IP = '192.168.1.100';
const DEMO_MATCHED = ['alice/frontend-1', 'paul/frontend-2'];

/**
 * The demo's second act (a lab with the cluster): the seed's egress NAT gateway (SPEC 2,
 * fixtures/manifests/seed-000), a matched pod seen as the egress IP, then the gateway node killed
 * under a continuous probe: the failover, its interruption and the leak count, with an SVG timeline.
 * Returns the number of unexpected observations.
 */
async function gatewayDemo(lab: Lab): Promise<number> {
  const seed = join(projectRoot(), 'fixtures/manifests/seed-000');
  out(
    `\negress NAT gateway: the seed's manifests (${relative(process.cwd(), seed) || seed}): ${DEMO_IP} for role=frontend pods of alice and paul, to 8.8.8.0/24`,
  );
  const api = await lab.api();
  await applyAll(api, loadManifests(seed));
  const holder = await workerHolder(lab, api, DEMO_IP);
  const pod = DEMO_MATCHED.find((p) => lab.pod(p).node !== holder) ?? DEMO_MATCHED[0]!;
  const seen = await pollUntil(() => lab.probe(pod, '8.8.8.8', { proto: 'udp' }), {
    what: `${pod} seen as ${DEMO_IP}`,
    timeoutMs: 15_000,
    intervalMs: 100,
    accept: (r) => r.observedSource === DEMO_IP && r.replyReceived,
  });
  out(
    `${describeProbe(seen)}\n    matched by policy egress: routed from ${lab.pod(pod).node} to the gateway node ${holder}, SNATed to ${DEMO_IP} there; the reply is de-NATed back to the pod`,
  );

  progress(`killing the gateway node ${holder} (SIGKILL) under a UDP probe every 20 ms from ${pod}`);
  const probe = await lab.continuousProbe(pod, '8.8.8.8', { proto: 'udp', intervalMs: 20, timeoutMs: 300 });
  let to = '?';
  try {
    await pollUntil(() => probe.answeredAfter(), { what: '10 answered before the kill', timeoutMs: 15_000, accept: (n) => n >= 10 });
    await lab.faults.kill(holder);
    try {
      const moved = await pollUntil(() => gatewayOf(api), {
        what: `${DEMO_IP} to move off ${holder}`,
        timeoutMs: 15_000,
        intervalMs: 20,
        accept: (g) => !!g.assignments[DEMO_IP] && g.assignments[DEMO_IP] !== holder,
      });
      to = moved.assignments[DEMO_IP]!;
      const tMoved = Date.now();
      await pollUntil(() => probe.answeredAfter(tMoved), { what: '20 answered after the failover', timeoutMs: 15_000, accept: (n) => n >= 20 });
    } finally {
      await lab.faults.start(holder);
    }
  } finally {
    await probe.stop().catch(() => undefined);
  }
  const t = await probe.stop();
  const r = summarize(t, [DEMO_IP]);
  const nLeaked = r.leaks!.count;
  const dir = join(artifactsDir(), 'demo');
  mkdirSync(dir, { recursive: true });
  const svg = join(dir, 'gateway-failover.svg');
  writeFileSync(
    svg,
    renderTimelineSvg(
      { timeline: t, label: `udp ${pod} -> 8.8.8.8`, allowedSources: [DEMO_IP] },
      { title: `SIGKILL of gateway node ${holder}: ${DEMO_IP} moved to ${to}` },
    ),
  );
  out(
    `kill ${holder}: ${DEMO_IP} moved to ${to}; ${t.packets.length} packets, longest outage ${r.longestOutageMs} ms (${r.longestLost} lost), ` +
      `sources ${JSON.stringify(r.sources)}, leaked ${nLeaked}\n    ` +
      (nLeaked === 0
        ? `fail-closed: while no node held ${DEMO_IP} the packets were dropped, never sent with the node or pod IP`
        : `UNEXPECTED: ${nLeaked} packet(s) seen with a source other than ${DEMO_IP}`) +
      `\n    timeline: ${relative(process.cwd(), svg) || svg} (${holder} is started again)`,
  );
  return nLeaked === 0 && to !== '?' ? 0 : 1;
}

/** The demo the README's first command ends with: what each probe observed. */
async function demo(argv: string[]): Promise<number> {
  const { flags } = parseCommand('demo', SPECS.demo!, argv);
  const topology = topologyFromArg(flags.topology as string | undefined);
  const abort = abortOnSignal();
  let lab: Lab | undefined;
  try {
    const started = Date.now();
    lab = await Lab.up({ topology, id: (flags.lab as string | undefined) ?? 'demo', persistent: Boolean(flags.keep), progress, signal: abort.signal });
    out(`lab ${lab.id} up in ${Date.now() - started} ms\n`);
    printLab(lab);
    out('');
    let unexpected = 0;
    for (const c of demoChecks(lab)) {
      if (abort.signal.aborted) break;
      const r = await lab.probe(c.from, c.to, { proto: c.proto });
      const ok = r.observedSource === c.source && r.replyReceived === c.reply;
      if (!ok) unexpected++;
      out(`${describeProbe(r)}\n    ${ok ? c.why : `UNEXPECTED: expected source ${c.source} and reply ${c.reply ? 'received' : 'lost'} (${c.why})`}`);
    }
    if (unexpected) out(`\n${unexpected} probe(s) did not observe what the lab's SNAT flavour (${lab.topology.snat}) promises`);
    if (lab.topology.cluster && !abort.signal.aborted && !flags['no-gateway']) unexpected += await gatewayDemo(lab);
    return abort.signal.aborted ? 130 : unexpected ? 1 : 0;
  } finally {
    abort.dispose();
    if (lab && (!flags.keep || abort.signal.aborted)) {
      await lab.down();
      progress(`lab ${lab.id} removed`);
    } else if (lab) out(`\nlab ${lab.id} kept: "npx egresslab down --lab ${lab.id}" removes it`);
  }
}

/** The "next:" hint after `up`: a probe from the lab's own first pod (or node), never a made-up one. */
export function nextProbeHint(labId: string, t: Pick<Topology, 'pods' | 'nodes'>): string {
  const pod = t.pods.find((p) => !p.hostNetwork) ?? t.pods[0];
  const from = pod ? `${pod.namespace}/${pod.name}` : (t.nodes[0]?.name ?? 'NODE');
  return `npx egresslab probe --lab ${labId} --from ${from} --to 8.8.8.8`;
}

/** Edit distance with adjacent transpositions (optimal string alignment; small strings: command names). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The known command nearest to `name` (a typo of at most a third of its letters), if any. */
export function nearestCommand(name: string, known: readonly string[]): string | undefined {
  let best: { c: string; d: number } | undefined;
  for (const c of known) {
    const d = c.startsWith(name) && name.length >= 2 ? 0.5 : distance(name, c);
    if (!best || d < best.d) best = { c, d };
  }
  return best && best.d <= Math.max(1, Math.floor(name.length / 3)) ? best.c : undefined;
}

function unknownCommand(name: string): number {
  const near = nearestCommand(name, [...Object.keys(COMMANDS), 'help']);
  process.stderr.write(`egresslab: unknown command "${name}"${near ? ` (did you mean "${near}"?)` : ''}\n\n${usage()}\n`);
  return 2;
}

/** Every command's implementation, by name (each has its flags and help in COMMAND_SPECS). */
export const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  validate,
  up,
  down,
  probe: probeCmd,
  status,
  prune: pruneCmd,
  demo,
  image,
  kubeconfig: kubeconfigCmd,
  apply: applyCmd,
  ...LAB_COMMANDS,
  chaos: chaosCmd,
  replay: replayCmd,
  ...INIT_COMMANDS,
  report: reportCmd,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h') {
    out(usage());
    return cmd ? 0 : 2;
  }
  if (cmd === 'help') {
    if (rest[0] === undefined) {
      out(usage());
      return 0;
    }
    const text = Object.hasOwn(HELP, rest[0]) ? HELP[rest[0]] : undefined;
    if (text === undefined) return unknownCommand(rest[0]);
    out(text);
    return 0;
  }
  const run = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!run) return unknownCommand(cmd);
  // (only before "--": after it come the arguments of a command egresslab runs, e.g. exec)
  if ((rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest).includes('--help')) {
    out(HELP[cmd] ?? usage());
    return 0;
  }
  try {
    return await run(rest);
  } catch (error) {
    if (error instanceof ValidationError) {
      process.stderr.write(`egresslab ${cmd}: invalid input\n${error.message}\n\nsee "egresslab help ${cmd}"\n`);
      return 2;
    }
    if (error instanceof LabError || error instanceof CommandError || error instanceof TimeoutError) {
      process.stderr.write(`egresslab ${cmd}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
