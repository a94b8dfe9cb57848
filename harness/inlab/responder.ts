/**
 * The responder: runs inside a lab container (the fake internet, a VPC endpoint, or lazily in a pod
 * or node) and
 *  - answers TCP and UDP probes with what it observed (source IP and port),
 *  - records every arriving probe packet (every TCP segment of a probe flow, UDP, ICMP echo
 *    request) from a live tcpdump capture into a JSON-lines log, so that a probe whose reply is lost
 *    (a pod IP on the internet) still tells which source it left with, and a segment in the middle
 *    of a connection that left with another source shows too,
 *  - appends the capture's statistics to the same log shortly after traffic (a CaptureStats record:
 *    the kernel drop count; a capture that dropped packets voids the verdicts built on it).
 * With --redirect-all it answers on every TCP/UDP port (an nft redirect to its port).
 * Usage: node responder.js --name NAME [--port 7007] [--redirect-all] [--log FILE] [--ready FILE]
 */
import { spawn, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { PcapStreamReader, decodePacket } from '../pcap/pcap.js';
import { OBSERVED_LOG, RESPONDER_PORT, decodeProbe, icmpToken, onLines, parseTcpdumpStats, synKey, type Observation, type Reply } from './protocol.js';
import { CaptureStatsLog } from './capture-stats.js';
import { programArgs } from '../util/args.js';

const { flags } = programArgs('responder.js', {
  flags: {
    name: { value: true, arg: 'NAME' },
    port: { value: true, int: true },
    'redirect-all': {},
    log: { value: true, arg: 'FILE' },
    ready: { value: true, arg: 'FILE' },
  },
  about: `  Answers TCP and UDP probes with what it observed and logs every probe packet it sees (default port ${RESPONDER_PORT}, log ${OBSERVED_LOG}).`,
});
const name = flags.name ?? 'responder';
const port = flags.port ?? RESPONDER_PORT;
const redirectAll = flags['redirect-all'] ?? false;
const logFile = flags.log ?? OBSERVED_LOG;
const readyFile = flags.ready;
mkdirSync(dirname(logFile), { recursive: true });
// Open once (appending): every TCP segment of a flow is logged, an open and close per batch would
// cost more than the write.
const logFd = openSync(logFile, 'a');
function log(lines: string): void {
  writeSync(logFd, lines);
}

function clean(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

function reply(src: string, sport: number, payload: Buffer | string): string {
  const probe = decodeProbe(payload);
  const r: Reply = { responder: name, observedSource: clean(src), observedPort: sport, t: Date.now() };
  if (probe) {
    r.token = probe.token;
    r.seq = probe.seq;
  }
  return `${JSON.stringify(r)}\n`;
}

if (redirectAll) {
  // Every TCP/UDP port reaches this responder; the capture still sees the original destination.
  execFileSync('nft', ['-f', '-'], {
    input: `table ip egresslab_responder {}\ndelete table ip egresslab_responder\ntable ip egresslab_responder {\n  chain pre {\n    type nat hook prerouting priority dstnat; policy accept;\n    meta l4proto { tcp, udp } redirect to :${port}\n  }\n}\n`,
  });
}

const tcp = createServer((sock) => {
  let buf = '';
  sock.setNoDelay(true);
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      sock.write(reply(sock.remoteAddress ?? '?', sock.remotePort ?? 0, line));
    }
  });
  sock.on('error', () => {});
});
const udp = createSocket('udp4');
udp.on('message', (msg, rinfo) => {
  udp.send(reply(rinfo.address, rinfo.port, msg), rinfo.port, rinfo.address);
});

/** This network namespace's IPv4 addresses (Node 18.0-18.3 said 4 for 'IPv4'). */
function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && (String(a.family) === 'IPv4' || String(a.family) === '4'))
    .map((a) => a!.address);
}

// Capture: only inbound probe-shaped packets. TCP: every segment of a probe flow, not only SYNs (a
// data segment retransmitted after a failover may leave with another source). Not the iperf3 flows
// of bench/gateway-throughput.ts (port 5201 at the internet, kept from this responder's redirect):
// they are no probes, and decoding each of their segments would cost the machine what that bench
// measures. (Their size cannot tell them apart: a probe stream's lines queued during an outage are
// retransmitted in full-sized segments too.) In a node's host namespace, segments the node only
// forwards (a pod's traffic to some other port 7007) are not its probes either: without
// --redirect-all TCP is taken for this namespace's addresses only. (Endpoints answer for any address.)
const local = localAddresses();
const tcpHere = local.length ? ` and (${local.map((a) => `dst host ${a}`).join(' or ')})` : '';
const filter = redirectAll
  ? 'inbound and ((tcp and not port 5201) or udp or icmp[0] == 8)'
  : `inbound and ((tcp dst port ${port}${tcpHere}) or udp dst port ${port} or icmp[0] == 8)`;
// --immediate-mode: each packet reaches us as it arrives. Without it the kernel hands packets over in
// blocks, up to a second late, and a statistics reading would find packets still waiting there.
// (Immediate mode costs nothing while idle: tcpdump sleeps in poll.)
const dump = spawn('tcpdump', ['-i', 'any', '-n', '-U', '--immediate-mode', '-s', '256', '-w', '-', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
const reader = new PcapStreamReader();
let listening = false;
let servers = 0;
function maybeReady(): void {
  if (listening && servers === 2 && readyFile) writeFileSync(readyFile, `${process.pid}\n`);
}

/** The record of one packet worth logging, or undefined. */
function observe(pkt: ReturnType<typeof decodePacket>): Observation | undefined {
  if (!pkt.ip || pkt.direction === 'out') return undefined;
  const { ip } = pkt;
  if (ip.tcp) {
    return { t: pkt.t, p: 'tcp', src: ip.src, dst: ip.dst, sport: ip.tcp.sport, dport: ip.tcp.dport, k: synKey(ip.dst, ip.tcp.dport), f: ip.tcp.flags };
  }
  if (ip.udp) {
    const o: Observation = { t: pkt.t, p: 'udp', src: ip.src, dst: ip.dst, sport: ip.udp.sport, dport: ip.udp.dport };
    const probe = decodeProbe(ip.udp.payload);
    if (probe) {
      o.tok = probe.token;
      o.pseq = probe.seq;
    }
    return o;
  }
  if (ip.icmp && ip.icmp.type === 8) {
    const o: Observation = { t: pkt.t, p: 'icmp', src: ip.src, dst: ip.dst, id: ip.icmp.id, seq: ip.icmp.seq };
    const tok = icmpToken(ip.icmp.payload);
    if (tok) o.tok = tok;
    return o;
  }
  return undefined;
}

// Capture statistics (capture-stats.ts): asked for shortly after traffic, logged with the observations.
const stats = new CaptureStatsLog({
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (t) => clearTimeout(t as NodeJS.Timeout),
  ask: () => void dump.kill('SIGUSR1'),
  write: (rec) => log(`${JSON.stringify(rec)}\n`),
});

// A reader (a continuous probe that stopped) asks for statistics. SIGWINCH because its default
// action is to ignore it: sent to a responder of an older egresslab (no handler), it does no harm,
// where SIGUSR2 would end it.
process.on('SIGWINCH', () => stats.requested());

onLines(dump.stderr, (line) => {
  if (!listening && /listening on/.test(line)) {
    listening = true;
    maybeReady();
    stats.started();
    return;
  }
  const figures = parseTcpdumpStats(line);
  if (figures) stats.answer(figures);
  else if (/pcap_stats/.test(line)) {
    console.error(line);
    stats.failed();
  }
});
dump.stdout.on('data', (chunk: Buffer) => {
  const lines: string[] = [];
  const packets = reader.push(chunk);
  for (const pkt of packets) {
    const o = observe(decodePacket(pkt));
    if (o) lines.push(JSON.stringify(o));
  }
  if (lines.length) log(`${lines.join('\n')}\n`);
  stats.packets(packets.length);
});
dump.on('exit', (code) => {
  console.error(`tcpdump exited (${code}); responder ${name} stops`);
  process.exit(1);
});

tcp.listen(port, '0.0.0.0', () => {
  servers++;
  maybeReady();
});
udp.bind(port, '0.0.0.0', () => {
  servers++;
  maybeReady();
});

function stop(): void {
  dump.kill('SIGTERM');
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
console.log(`responder ${name} on :${port}${redirectAll ? ' (all ports)' : ''}, log ${logFile}`);
