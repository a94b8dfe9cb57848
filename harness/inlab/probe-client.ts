/**
 * The probe client: runs inside a lab container, in a pod's network namespace or a node's host
 * network. One JSON argument:
 *   {"to":"8.8.8.8","port":80,"proto":"tcp","timeoutMs":1000,"token":"<16 hex>",
 *    "mode":"once"|"continuous","intervalMs":20,"count":100}
 * once: prints one ClientRecord as JSON. continuous: prints one ClientRecord per line as each
 * packet is settled (replied or timed out) until `count` packets are sent or SIGTERM arrives.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { encodeProbe, type ClientRecord, type Proto, type Reply } from './protocol.js';

interface Options {
  to: string;
  port: number;
  proto: Proto;
  timeoutMs: number;
  token: string;
  mode: 'once' | 'continuous';
  intervalMs: number;
  count: number;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as Options;
let stopping = false;

function emit(r: ClientRecord): void {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

function tcpProbe(seq: number): Promise<ClientRecord> {
  return new Promise((resolve) => {
    const t = Date.now();
    const start = process.hrtime.bigint();
    const rec: ClientRecord = { seq, t, replied: false };
    const sock = connect({ host: opts.to, port: opts.port });
    let buf = '';
    const done = (error?: string) => {
      clearTimeout(timer);
      if (error && !rec.replied) rec.error = error;
      sock.destroy();
      resolve(rec);
    };
    const timer = setTimeout(() => done('timeout'), opts.timeoutMs);
    sock.setNoDelay(true);
    sock.on('connect', () => {
      rec.localPort = sock.localPort;
      sock.write(encodeProbe(opts.token, seq));
    });
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const r = JSON.parse(buf.slice(0, nl)) as Reply;
        rec.replied = true;
        rec.rttMs = Number(process.hrtime.bigint() - start) / 1e6;
        rec.observedSource = r.observedSource;
        rec.observedPort = r.observedPort;
      } catch {
        rec.error = 'unparsable reply';
      }
      done();
    });
    sock.on('error', (e) => done((e as NodeJS.ErrnoException).code ?? e.message));
  });
}

/** UDP: one socket for the whole run (one flow, like a streaming application). */
function udpProber(): { probe(seq: number): Promise<ClientRecord>; close(): void } {
  const sock = createSocket('udp4');
  const pending = new Map<number, { rec: ClientRecord; start: bigint; resolve: (r: ClientRecord) => void; timer: NodeJS.Timeout }>();
  sock.on('message', (msg) => {
    try {
      const r = JSON.parse(msg.toString()) as Reply;
      if (r.token !== opts.token || r.seq === undefined) return;
      const p = pending.get(r.seq);
      if (!p) return;
      pending.delete(r.seq);
      clearTimeout(p.timer);
      p.rec.replied = true;
      p.rec.rttMs = Number(process.hrtime.bigint() - p.start) / 1e6;
      p.rec.observedSource = r.observedSource;
      p.rec.observedPort = r.observedPort;
      p.resolve(p.rec);
    } catch {
      /* not ours */
    }
  });
  sock.on('error', () => {});
  return {
    probe(seq) {
      return new Promise((resolve) => {
        const rec: ClientRecord = { seq, t: Date.now(), replied: false };
        const start = process.hrtime.bigint();
        const timer = setTimeout(() => {
          pending.delete(seq);
          rec.error = 'timeout';
          resolve(rec);
        }, opts.timeoutMs);
        pending.set(seq, { rec, start, resolve, timer });
        sock.send(encodeProbe(opts.token, seq), opts.port, opts.to, (err) => {
          if (err) {
            clearTimeout(timer);
            pending.delete(seq);
            rec.error = (err as NodeJS.ErrnoException).code ?? err.message;
            resolve(rec);
            return;
          }
          try {
            rec.localPort = sock.address().port;
          } catch {
            /* unbound */
          }
        });
      });
    },
    close() {
      sock.close();
    },
  };
}

/** ICMP: iputils ping carries the token as its fill pattern; -D/-O give per-packet outcomes. */
function icmpRun(count: number, intervalMs: number): Promise<void> {
  return new Promise((resolve) => {
    const waitS = Math.max(opts.timeoutMs / 1000, 0.05).toFixed(3);
    const args = ['-n', '-D', '-O', '-p', opts.token, '-W', waitS, '-c', String(count)];
    if (count > 1) args.push('-i', (Math.max(intervalMs, 2) / 1000).toFixed(3));
    args.push(opts.to);
    const child = spawn('ping', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const settled = new Set<number>();
    let lastSeen = 0;
    let buf = '';
    const onLine = (line: string) => {
      const ts = /^\[(\d+\.\d+)\]/.exec(line);
      const t = ts ? Math.round(Number(ts[1]) * 1000) : Date.now();
      const ok = /icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms/.exec(line);
      const miss = /no answer yet for icmp_seq=(\d+)/.exec(line);
      const err = /From ([\d.]+) icmp_seq=(\d+) (.*)/.exec(line);
      if (ok) {
        const seq = Number(ok[1]);
        const rtt = Number(ok[2]);
        if (settled.has(seq)) return;
        settled.add(seq);
        lastSeen = Math.max(lastSeen, seq);
        emit({ seq, t: Math.round(t - rtt), replied: true, rttMs: rtt });
      } else if (miss) {
        const seq = Number(miss[1]);
        if (settled.has(seq)) return;
        settled.add(seq);
        lastSeen = Math.max(lastSeen, seq);
        emit({ seq, t, replied: false, error: 'timeout' });
      } else if (err) {
        const seq = Number(err[2]);
        if (settled.has(seq)) return;
        settled.add(seq);
        emit({ seq, t, replied: false, error: err[3] });
      }
    };
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    const stopChild = () => child.kill('SIGINT');
    process.on('SIGTERM', stopChild);
    child.on('exit', () => {
      // Packets never reported (the last one when it got no answer) are losses.
      const total = stopping ? lastSeen : count;
      for (let seq = 1; seq <= total; seq++) if (!settled.has(seq)) emit({ seq, t: Date.now(), replied: false, error: 'timeout' });
      resolve();
    });
  });
}

async function main(): Promise<void> {
  process.on('SIGTERM', () => {
    stopping = true;
  });
  if (opts.proto === 'icmp') {
    await icmpRun(opts.mode === 'once' ? 1 : opts.count, opts.intervalMs);
    return;
  }
  if (opts.mode === 'once') {
    if (opts.proto === 'tcp') emit(await tcpProbe(1));
    else {
      const u = udpProber();
      emit(await u.probe(1));
      u.close();
    }
    return;
  }
  const u = opts.proto === 'udp' ? udpProber() : undefined;
  const inflight: Promise<void>[] = [];
  const began = Date.now();
  for (let seq = 1; seq <= opts.count && !stopping; seq++) {
    inflight.push((u ? u.probe(seq) : tcpProbe(seq)).then(emit));
    const next = began + seq * opts.intervalMs;
    const wait = next - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(inflight);
  u?.close();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
