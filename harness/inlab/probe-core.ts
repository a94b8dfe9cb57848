/**
 * The probe engine, shared by the probe client program (one process per continuous probe) and the
 * in-lab helper (probes in-process, no process per probe): TCP, UDP and ICMP probes, once or
 * continuous, TCP stream mode. See probe-client.ts for the options. Node 18, no dependencies.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { encodeProbe, splitReplies, type ClientRecord, type ProbeClientOptions, type Reply } from './protocol.js';

export interface ProbeRun {
  /** resolves when every packet is settled (all `count` sent, or stop() was called) */
  done: Promise<void>;
  /** stop sending; packets in flight still settle */
  stop(): void;
}

/** Runs one probe (mode once) or a continuous probe; every settled packet goes to `emit`. */
export function runProbe(opts: ProbeClientOptions, emit: (r: ClientRecord) => void): ProbeRun {
  let stopping = false;
  const stopHooks: (() => void)[] = [];
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

  /**
   * TCP stream: one connection, one line per probe; replies are matched by seq. A break settles every
   * line in flight with the error and marks every later line `connectionError` (replied false) —
   * unless `reconnect`, which opens a new connection for the next line.
   */
  function tcpStreamer(): { probe(seq: number): Promise<ClientRecord>; close(): void } {
    interface Pending {
      rec: ClientRecord;
      start: bigint;
      resolve: (r: ClientRecord) => void;
      timer: NodeJS.Timeout;
    }
    const pending = new Map<number, Pending>();
    let sock: Socket | null = null;
    let conn = 0;
    let localPort: number | undefined;
    let broken: string | undefined;
    let buf = '';
    const settle = (p: Pending, error?: string) => {
      clearTimeout(p.timer);
      pending.delete(p.rec.seq);
      if (error) p.rec.error = error;
      p.resolve(p.rec);
    };
    const breakWith = (s: Socket, why: string) => {
      if (s !== sock || broken) return;
      broken = why;
      for (const p of [...pending.values()]) {
        if (p.rec.conn !== conn) continue;
        p.rec.connectionError = why;
        settle(p, why);
      }
      s.destroy();
    };
    const open = () => {
      conn++;
      broken = undefined;
      localPort = undefined;
      buf = '';
      const s = connect({ host: opts.to, port: opts.port, ...(opts.localPort ? { localPort: opts.localPort } : {}) });
      sock = s;
      s.setNoDelay(true);
      let connected = false;
      s.on('connect', () => {
        connected = true;
        localPort = s.localPort;
        for (const p of pending.values()) if (p.rec.conn === conn) p.rec.localPort = localPort;
      });
      s.on('data', (d: Buffer) => {
        if (s !== sock) return;
        const { replies, rest } = splitReplies(buf + d.toString('latin1'));
        buf = rest;
        for (const r of replies) {
          if (r.token !== opts.token || r.seq === undefined) continue;
          const p = pending.get(r.seq);
          if (!p) continue; // already timed out: a late answer does not make the line replied
          p.rec.replied = true;
          p.rec.rttMs = Number(process.hrtime.bigint() - p.start) / 1e6;
          p.rec.observedSource = r.observedSource;
          p.rec.observedPort = r.observedPort;
          settle(p);
        }
      });
      s.on('error', (e: NodeJS.ErrnoException) => breakWith(s, connected ? (e.code ?? e.message) : `connect failed: ${e.code ?? e.message}`));
      s.on('end', () => breakWith(s, 'closed by peer'));
      s.on('close', () => breakWith(s, 'closed'));
    };
    return {
      probe(seq) {
        return new Promise((resolve) => {
          if (!sock || (broken && opts.reconnect)) open();
          const rec: ClientRecord = { seq, t: Date.now(), replied: false, conn };
          if (localPort !== undefined) rec.localPort = localPort;
          if (broken) {
            rec.connectionError = broken;
            rec.error = 'connection broken';
            resolve(rec);
            return;
          }
          const p: Pending = { rec, start: process.hrtime.bigint(), resolve, timer: setTimeout(() => settle(p, 'timeout'), opts.timeoutMs) };
          pending.set(seq, p);
          sock!.write(encodeProbe(opts.token, seq));
        });
      },
      close() {
        sock?.destroy();
      },
    };
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
      // a ping that cannot start: every packet is a loss with the reason, and 'close' still follows
      child.on('error', (e) => emit({ seq: 1, t: Date.now(), replied: false, error: `ping: ${e.message}` }));
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
      stopHooks.push(stopChild);
      // 'close', not 'exit': 'exit' can come before ping's last output lines were read, and a
      // reply ping did print would then be counted as lost (seen with two pings started at once)
      child.on('close', () => {
        // Packets never reported (the last one when it got no answer) are losses.
        const total = stopping ? lastSeen : count;
        for (let seq = 1; seq <= total; seq++) if (!settled.has(seq)) emit({ seq, t: Date.now(), replied: false, error: 'timeout' });
        resolve();
      });
    });
  }

  async function main(): Promise<void> {
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
    const u = opts.proto === 'udp' ? udpProber() : opts.stream ? tcpStreamer() : undefined;
    const inflight: Promise<void>[] = [];
    const began = Date.now();
    let wake: (() => void) | undefined;
    stopHooks.push(() => wake?.());
    for (let seq = 1; seq <= opts.count && !stopping; seq++) {
      inflight.push((u ? u.probe(seq) : tcpProbe(seq)).then(emit));
      const next = began + seq * opts.intervalMs;
      const wait = next - Date.now();
      if (wait > 0 && !stopping) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, wait);
          wake = () => (clearTimeout(t), r());
        });
        wake = undefined;
      }
    }
    await Promise.all(inflight);
    u?.close();
  }

  return {
    done: main(),
    stop() {
      if (stopping) return;
      stopping = true;
      for (const h of stopHooks) h();
    },
  };
}
