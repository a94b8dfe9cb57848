/**
 * Benchmark (issue 6): TCP throughput through the egress gateway vs the direct masquerade path
 * (iperf3 in the lab).
 *
 * Default topology, an AnthosNetworkGateway with one floating IP (192.168.1.100) held by a worker
 * (workerHolder), one EgressNATPolicy to 8.8.8.0/24 selecting the pods labelled
 * `egresslab.io/bench-gateway=yes` in any namespace. The iperf3 server runs in the fake internet
 * container on 8.8.8.8:5201 (its responder redirects every TCP port to itself: `tcp dport 5201
 * accept` is inserted first in `ip egresslab_responder` chain `pre`, as bench/masq-scale.ts does).
 * Clients: a pod on a worker that is not the holder ("remote pod") and a pod on the holder
 * ("holder pod"). Cases:
 *   a  direct   remote pod, not matched: masqueraded by its own node
 *   b  gateway  remote pod, matched: marked and routed to the holder, SNATed there
 *   c  local    holder pod, matched: bypasses the masquerade, SNATed on its own node
 *   a' direct   holder pod, not matched (baseline for c: same node, same veth)
 * Matching is switched by labelling the two pods; after each switch both pods' paths are checked
 * (a UDP probe must be observed from the expected source, polled with a deadline) and each iperf3
 * run's source as the server saw it (--get-server-output) is checked too. The phases alternate
 * order per round so that drift of the machine's load does not favour one path.
 *
 * Caveat: the lab's links are veth pairs and Linux bridges inside one kernel; nothing is
 * serialised on a wire, so the figures are CPU-bound (copies, netfilter, the softirq work of every
 * hop: pod veth -> node -> bridge -> [holder -> bridge] -> router -> internet) and depend on how
 * busy the machine's cores are. The ratio gateway/direct is the meaningful part: the gateway path
 * adds one node hop (a forward + SNAT on the holder, the bridge twice) instead of the SNAT on the
 * pod's own node.
 *
 *   npm run build && node dist/bench/gateway-throughput.js [--rounds 3] [--seconds 5] [--omit 1]
 *   (iperf3 -t SECONDS -O OMIT: the first OMIT seconds, TCP slow start, are left out of the figure)
 */
import type { KubeObject } from '../lib/kube/types.js';
import type { Lab } from '../harness/lab/lab.js';
import { workerHolder } from '../harness/cluster/holder.js';
import { pollUntil } from '../harness/util/poll.js';
import { median, withLab } from './lab-guard.js';
import { execaSync } from 'execa';
import { programArgs } from '../harness/util/args.js';

const { flags } = programArgs('dist/bench/gateway-throughput.js', {
  flags: { rounds: { value: true, int: true }, seconds: { value: true, int: true }, omit: { value: true, int: true } },
  about: '  iperf3 throughput of a pod through the egress gateway beside the direct path (iperf3 -t SECONDS -O OMIT).',
});
const ROUNDS = flags.rounds ?? 3;
const SECONDS = flags.seconds ?? 5;
const OMIT = flags.omit ?? 1;
const IP = '192.168.1.100';
const DST = '8.8.8.8';
const LABEL = 'egresslab.io/bench-gateway';
const CANDIDATES = ['alice/frontend-1', 'paul/frontend-2', 'default/client-3', 'default/client-1'];

type Case = 'a' | 'b' | 'c' | "a'";
const TITLE: Record<Case, string> = {
  a: 'a  direct  (remote pod, masqueraded by its own node)',
  b: 'b  gateway (remote pod, routed to the holder, SNAT there)',
  c: 'c  local   (pod on the holder, SNAT on its own node)',
  "a'": "a' direct  (pod on the holder, masqueraded by its node)",
};

interface Sample {
  gbps: number;
  retransmits: number;
  seenFrom: string;
}

function uptime(): string {
  try {
    return execaSync('uptime').stdout.trim();
  } catch {
    return '(uptime unavailable)';
  }
}

async function iperf(lab: Lab, pod: string): Promise<Sample> {
  const r = await lab.exec(pod, ['iperf3', '-c', DST, '-t', String(SECONDS), '-O', String(OMIT), '-J', '--get-server-output'], {
    timeoutMs: (SECONDS + OMIT + 30) * 1000,
    check: false,
  });
  let j: {
    error?: string;
    end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } };
    server_output_json?: { start?: { accepted_connection?: { host?: string } } };
    server_output_text?: string;
  };
  try {
    j = JSON.parse(r.stdout) as typeof j;
  } catch {
    throw new Error(`iperf3 from ${pod}: exit ${r.exitCode}: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}`);
  }
  if (j.error || !j.end?.sum_received) throw new Error(`iperf3 from ${pod}: ${j.error ?? 'no result'}`);
  return {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    retransmits: j.end.sum_sent?.retransmits ?? NaN,
    // the server (-D, text output) says "Accepted connection from <source>, port N"
    seenFrom: j.server_output_json?.start?.accepted_connection?.host ?? /Accepted connection from ([0-9.]+)/.exec(j.server_output_text ?? '')?.[1] ?? '?',
  };
}

async function run(lab: Lab): Promise<void> {
  const load0 = uptime();
  const api = await lab.api({ timeoutMs: 30_000 });
  await lab.apply({
    apiVersion: 'networking.gke.io/v1alpha1',
    kind: 'AnthosNetworkGateway',
    metadata: { namespace: 'cluster-cluster1', name: 'default' },
    spec: { floatingIPs: [IP] },
  } as KubeObject);
  await lab.apply({
    apiVersion: 'networking.gke.io/v1alpha1',
    kind: 'EgressNATPolicy',
    metadata: { name: 'bench-throughput' },
    spec: {
      egress: [{ namespaceSelector: { matchLabels: {} }, podSelector: { matchLabels: { [LABEL]: 'yes' } } }],
      destinationCIDRs: ['8.8.8.0/24'],
      egressSourceIP: IP,
    },
  } as KubeObject);
  const holder = await workerHolder(lab, api, IP, 60_000);
  await pollUntil(async () => (await lab.exec(holder, ['ip', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout.includes(`${IP}/32`), {
    what: `${IP} on ${holder}`,
    timeoutMs: 15_000,
  });
  const remote = CANDIDATES.find((p) => lab.pod(p).node !== holder)!;
  const local = CANDIDATES.find((p) => lab.pod(p).node === holder);
  if (!local) throw new Error(`no pod on the holder ${holder}`);
  const nodeIP = (key: string) => lab.topology.nodes.find((n) => n.name === lab.pod(key).node)!.address;
  const labels = { [remote]: { ...lab.pod(remote).labels }, [local]: { ...lab.pod(local).labels } };
  console.log(
    `holder of ${IP}: ${holder}; remote pod ${remote} (${lab.pod(remote).ip} on ${lab.pod(remote).node}), holder pod ${local} (${lab.pod(local).ip} on ${holder}); ` +
      `iperf3 ${ROUNDS} round(s) x ${SECONDS} s (+${OMIT} s omitted) per case -> ${DST}:5201`,
  );

  await lab.exec('internet', ['nft', 'insert', 'rule', 'ip', 'egresslab_responder', 'pre', 'tcp', 'dport', '5201', 'accept']);
  await lab.exec('internet', ['iperf3', '-s', '-D', '--pidfile', '/run/egresslab/iperf3.pid']);
  await pollUntil(async () => (await lab.exec('internet', ['ss', '-Htln', 'sport = :5201'])).stdout.includes('5201'), {
    what: 'iperf3 listening in internet',
    timeoutMs: 10_000,
  });

  const setPhase = async (gateway: boolean): Promise<void> => {
    for (const key of [remote, local]) await lab.labelPod(key, gateway ? { ...labels[key], [LABEL]: 'yes' } : { ...labels[key] });
    for (const key of [remote, local]) {
      const want = gateway ? IP : nodeIP(key);
      await pollUntil(() => lab.probe(key, DST, { proto: 'udp', timeoutMs: 500 }), {
        what: `${key} -> ${DST} observed from ${want}`,
        timeoutMs: 15_000,
        intervalMs: 50,
        accept: (r) => r.observedSource === want,
      });
    }
  };

  const samples: Record<Case, Sample[]> = { a: [], b: [], c: [], "a'": [] };
  const expected: Record<Case, string> = { a: nodeIP(remote), b: IP, c: IP, "a'": nodeIP(local) };
  const mismatches: string[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const phases = r % 2 === 0 ? [false, true] : [true, false];
    for (const gateway of phases) {
      await setPhase(gateway);
      const cases: [Case, string][] = gateway
        ? [
            ['b', remote],
            ['c', local],
          ]
        : [
            ['a', remote],
            ["a'", local],
          ];
      for (const [c, pod] of cases) {
        const s = await iperf(lab, pod);
        samples[c].push(s);
        if (s.seenFrom !== expected[c]) mismatches.push(`round ${r + 1} case ${c}: server saw ${s.seenFrom}, expected ${expected[c]}`);
        console.log(`round ${r + 1} ${TITLE[c]}: ${s.gbps.toFixed(2)} Gbit/s, ${s.retransmits} retransmits, server saw ${s.seenFrom}`);
      }
    }
  }
  const load1 = uptime();

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`\nTCP throughput pod -> ${DST} (iperf3, ${ROUNDS} x ${SECONDS} s per case; veth/bridge lab: CPU-bound figures)`);
  console.log(
    `${'case'.padEnd(58)} ${'mean'.padStart(7)} ${'median'.padStart(7)} ${'min'.padStart(7)} ${'max'.padStart(7)}  Gbit/s   retransmits/run (mean, max)`,
  );
  for (const c of ['a', 'b', 'c', "a'"] as Case[]) {
    const g = samples[c].map((s) => s.gbps);
    const rt = samples[c].map((s) => s.retransmits);
    console.log(
      `${TITLE[c].padEnd(58)} ${mean(g).toFixed(2).padStart(7)} ${median(g).toFixed(2).padStart(7)} ${Math.min(...g)
        .toFixed(2)
        .padStart(7)} ${Math.max(...g)
        .toFixed(2)
        .padStart(7)}           ${mean(rt).toFixed(0)}, ${Math.max(...rt)}`,
    );
  }
  const m = (c: Case) => mean(samples[c].map((s) => s.gbps));
  // On a loaded shared machine the level drifts between rounds: the ratio of each round (the two
  // cases ran within seconds of each other) is steadier than the ratio of the means.
  const perRound = (x: Case, y: Case) => samples[x].map((s, i) => s.gbps / samples[y][i]!.gbps);
  const ratio = (x: Case, y: Case) => {
    const rs = perRound(x, y);
    return `${(m(x) / m(y)).toFixed(2)} (ratio of means); per round ${rs.map((r) => r.toFixed(2)).join(', ')}, median ${median(rs).toFixed(2)}`;
  };
  console.log(`ratio gateway/direct, b/a (same pod): ${ratio('b', 'a')}`);
  console.log(`ratio local gateway/direct, c/a' (same pod on the holder): ${ratio('c', "a'")}`);
  console.log(`sources seen by the server as expected: ${mismatches.length === 0 ? 'yes' : `NO: ${mismatches.join('; ')}`}`);
  console.log(`load: before ${load0}\n      after  ${load1}`);
}

withLab('default', 'bgt', run).catch((e: unknown) => {
  console.error((e as Error).stack ?? String(e));
  process.exit(1);
});
