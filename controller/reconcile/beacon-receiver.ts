/**
 * Receives the agents' liveness heartbeats (agent/node/beacon.ts): UDP datagrams
 * `EGLHB3 <node> <epoch> <seq> <intervalMs> <mac>` (lib/liveness/heartbeat.ts). A heartbeat counts only when the node is known, the datagram
 * comes from the node's own address, its MAC verifies with the node's bearer token, and
 * (epoch, seq) is newer than the last accepted one (no replay, no forgery by another node or by
 * anything else on the segment). Rejections are counted and logged once per node and reason.
 */
import { createSocket, type Socket } from 'node:dgram';
import { timingSafeEqual } from 'node:crypto';
import { heartbeatAck, heartbeatMac, heartbeatPayload, HEARTBEAT_MAGIC, type HeartbeatGrant } from '../../lib/liveness/heartbeat.js';

export interface BeaconKey {
  /** the node's bearer token (MAC key) */
  token: string;
  /** the only source address accepted */
  ip: string;
}

export type BeaconVerdict = { ok: true; node: string; epoch: number; seq: number; intervalMs: number } | { ok: false; node?: string; reason: string };

/** The intervals a heartbeat may announce (ms). */
export const BEACON_INTERVAL_RANGE = { min: 10, max: 60_000 } as const;

/** Pure check of one datagram; `last` is updated on acceptance. */
export function verifyBeacon(
  text: string,
  from: string,
  keys: ReadonlyMap<string, BeaconKey>,
  last: Map<string, { epoch: number; seq: number }>,
): BeaconVerdict {
  const parts = text.split(' ');
  if (parts.length !== 6 || parts[0] !== HEARTBEAT_MAGIC) return { ok: false, reason: 'not a heartbeat' };
  const [, node, e, s, i, mac] = parts as [string, string, string, string, string, string];
  const key = keys.get(node);
  if (!key) return { ok: false, node, reason: 'unknown node' };
  if (from !== key.ip) return { ok: false, node, reason: `sent from ${from}, not the node's address ${key.ip}` };
  const epoch = Number(e);
  const seq = Number(s);
  if (!Number.isSafeInteger(epoch) || !Number.isSafeInteger(seq) || epoch <= 0 || seq <= 0) return { ok: false, node, reason: 'bad epoch or sequence number' };
  const intervalMs = Number(i);
  if (!/^[0-9]+$/.test(i) || intervalMs < BEACON_INTERVAL_RANGE.min || intervalMs > BEACON_INTERVAL_RANGE.max) {
    return { ok: false, node, reason: `bad interval ${JSON.stringify(i)} (must be ${BEACON_INTERVAL_RANGE.min}-${BEACON_INTERVAL_RANGE.max} ms)` };
  }
  const want = Buffer.from(heartbeatMac(key.token, heartbeatPayload(node, epoch, seq, intervalMs)));
  const got = Buffer.from(mac);
  if (got.length !== want.length || !timingSafeEqual(got, want)) return { ok: false, node, reason: 'bad MAC' };
  const prev = last.get(node);
  if (prev && (epoch < prev.epoch || (epoch === prev.epoch && seq <= prev.seq))) return { ok: false, node, reason: 'replayed or reordered' };
  last.set(node, { epoch, seq });
  return { ok: true, node, epoch, seq, intervalMs };
}

export interface BeaconReceiverOptions {
  host: string;
  port: number;
  keys: () => ReadonlyMap<string, BeaconKey>;
  /** an accepted heartbeat; returns what it granted, acknowledged to the sender, or undefined (no acknowledgement) */
  onBeat: (node: string, epoch: number, seq: number, intervalMs: number) => HeartbeatGrant | undefined;
  log?: (m: string) => void;
}

export class BeaconReceiver {
  private sock: Socket | null = null;
  private readonly last = new Map<string, { epoch: number; seq: number }>();
  private readonly reported = new Set<string>();
  accepted = 0;
  acked = 0;
  rejected = 0;

  constructor(private readonly o: BeaconReceiverOptions) {}

  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      const s = createSocket({ type: 'udp4' });
      s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
      s.once('error', reject);
      s.bind(this.o.port, this.o.host, () => {
        s.off('error', reject);
        s.on('error', (e) => this.o.log?.(`heartbeats: socket error: ${e.message}`));
        this.sock = s;
        resolve(s.address().port);
      });
    });
  }

  private onMessage(msg: Buffer, from: string, port: number): void {
    if (msg.length > 256) return;
    const keys = this.o.keys();
    const v = verifyBeacon(msg.toString('latin1'), from, keys, this.last);
    if (v.ok) {
      this.accepted++;
      const grace = this.o.onBeat(v.node, v.epoch, v.seq, v.intervalMs);
      const key = keys.get(v.node);
      // the acknowledgement goes back to the verified source only (never a third party), authenticated like the heartbeat
      if (grace !== undefined && key && this.sock) {
        this.sock.send(heartbeatAck(key.token, v.node, v.epoch, v.seq, grace), port, from, (e) => {
          if (e) this.o.log?.(`heartbeats: acknowledgement to ${v.node}: ${e.message}`);
        });
        this.acked++;
      }
      return;
    }
    this.rejected++;
    const k = `${v.node ?? from}|${v.reason}`;
    if (v.reason !== 'replayed or reordered' && !this.reported.has(k)) {
      this.reported.add(k);
      this.o.log?.(`heartbeats: refused a datagram from ${from}${v.node ? ` claiming node ${v.node}` : ''}: ${v.reason}`);
    }
  }

  stop(): void {
    try {
      this.sock?.close();
    } catch {
      /* closed */
    }
    this.sock = null;
  }
}
