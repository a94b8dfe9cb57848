/**
 * The responder: runs inside a lab container (the fake internet, a VPC endpoint, or lazily in a pod
 * or node) and
 *  - answers TCP and UDP probes with what it observed (source IP and port),
 *  - records every arriving probe packet (TCP SYN, UDP, ICMP echo request) from a live tcpdump
 *    capture into a JSON-lines log, so that a probe whose reply is lost (a pod IP on the internet)
 *    still tells which source it left with.
 * With --redirect-all it answers on every TCP/UDP port (an nft redirect to its port).
 * Usage: node responder.js --name NAME [--port 7007] [--redirect-all] [--log FILE] [--ready FILE]
 */
import { spawn, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer } from 'node:net';
import { PcapStreamReader, TCP_FLAGS, decodePacket } from '../pcap/pcap.js';
import { OBSERVED_LOG, RESPONDER_PORT, decodeProbe, icmpToken, synKey, type Observation, type Reply } from './protocol.js';

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const name = arg('name', 'responder')!;
const port = Number(arg('port', String(RESPONDER_PORT)));
const redirectAll = process.argv.includes('--redirect-all');
const logFile = arg('log', OBSERVED_LOG)!;
const readyFile = arg('ready');
mkdirSync(dirname(logFile), { recursive: true });

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

// Capture: only inbound probe-shaped packets.
const filter = redirectAll
  ? 'inbound and ((tcp[13] & 0x12 == 0x02) or udp or icmp[0] == 8)'
  : `inbound and ((tcp dst port ${port} and tcp[13] & 0x12 == 0x02) or udp dst port ${port} or icmp[0] == 8)`;
const dump = spawn('tcpdump', ['-i', 'any', '-n', '-U', '-s', '256', '-w', '-', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
const reader = new PcapStreamReader();
let listening = false;
let servers = 0;
function maybeReady(): void {
  if (listening && servers === 2 && readyFile) writeFileSync(readyFile, `${process.pid}\n`);
}
dump.stderr.on('data', (d: Buffer) => {
  if (!listening && /listening on/.test(d.toString())) {
    listening = true;
    maybeReady();
  }
});
dump.stdout.on('data', (chunk: Buffer) => {
  const lines: string[] = [];
  for (const pkt of reader.push(chunk)) {
    const p = decodePacket(pkt);
    if (!p.ip || p.direction === 'out') continue;
    const { ip } = p;
    let o: Observation | undefined;
    if (ip.tcp && ip.tcp.flags & TCP_FLAGS.SYN && !(ip.tcp.flags & TCP_FLAGS.ACK)) {
      o = { t: p.t, p: 'tcp', src: ip.src, dst: ip.dst, sport: ip.tcp.sport, dport: ip.tcp.dport, k: synKey(ip.dst, ip.tcp.dport) };
    } else if (ip.udp) {
      o = { t: p.t, p: 'udp', src: ip.src, dst: ip.dst, sport: ip.udp.sport, dport: ip.udp.dport };
      const probe = decodeProbe(ip.udp.payload);
      if (probe) {
        o.tok = probe.token;
        o.pseq = probe.seq;
      }
    } else if (ip.icmp && ip.icmp.type === 8) {
      o = { t: p.t, p: 'icmp', src: ip.src, dst: ip.dst, id: ip.icmp.id, seq: ip.icmp.seq };
      const tok = icmpToken(ip.icmp.payload);
      if (tok) o.tok = tok;
    }
    if (o) lines.push(JSON.stringify(o));
  }
  if (lines.length) appendFileSync(logFile, `${lines.join('\n')}\n`);
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
