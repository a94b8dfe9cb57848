/**
 * The agent's liveness beacon: an authenticated UDP heartbeat to the controller every
 * `heartbeatIntervalMs`, sent from a worker thread of its own so that the agent's main event loop
 * (nft and ip spawns, JSON of large objects, garbage collection) never delays it. Node liveness used
 * to ride on HTTPS Lease renewals every 200 ms, chained one after the other: on a busy machine a
 * slow answer or a stalled loop postponed the next renewal past the 600 ms expiry and the controller
 * declared a healthy node Down (a spurious failover).
 *
 * The thread runs at nice -10 (a thread's own priority: the rest of the agent keeps the default),
 * as keepalived runs VRRP at a raised priority, so the node's own busy work never delays a
 * heartbeat. A main-thread watchdog gates the beacon: the thread only sends while the main loop has checked in
 * within `watchdogMs` (default 2000 ms), so an agent whose main loop is wedged stops proving
 * liveness after that long, while a brief stall of the main loop costs nothing. A killed, stopped
 * or paused agent (every thread frozen) stops at once. Until its first heartbeat is acknowledged, the
 * agent's first thread beats at the fast interval, doubling up to the current one (see `wait` in the worker).
 *
 * Wire format: lib/liveness/heartbeat.ts (the worker below is plain JavaScript evaluated in a
 * thread, so it spells the same format out; integration/beacon.test.ts checks the two agree). The controller
 * checks the MAC with the node's bearer token, the source address against the node's address, and
 * that (epoch, seq) only grows (no replay).
 */
import { Worker } from 'node:worker_threads';

export interface BeaconOptions {
  node: string;
  /** the node's bearer token: the MAC key */
  token: string;
  /** bind address (the node IP) */
  bind: string;
  target: string;
  port: number;
  /** interval while this node holds a floating IP (fast: setFast(true)) */
  intervalMs: number;
  /** interval otherwise (default: intervalMs) */
  idleIntervalMs?: number;
  watchdogMs?: number;
  /** nice value of the heartbeat thread (default -10) */
  nice?: number;
  /** the nft binary of the ARP fence keeper (default nft) */
  nftPath?: string;
  log?: (m: string) => void;
}

// Runs in the worker: plain JavaScript (Node 18 in the lab), everything it needs passed in workerData.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { createSocket } = require('node:dgram');
const { createHmac, timingSafeEqual } = require('node:crypto');
const o = workerData;
const fed = new BigInt64Array(o.shared, 0, 1);
const counters = new Int32Array(o.shared, 8, 2);
const flags = new Int32Array(o.shared, 16, 1);
const licence = new BigInt64Array(o.shared, 24, 1);
const acks = new Int32Array(o.shared, 32, 2);
const epoch = Date.now();
// The licence: a lower bound of the controller's deadline for this node (lib/liveness/heartbeat.ts).
// The controller's deadline is set by the LAST heartbeat it received, m >= the last acknowledged k:
// R_m + grace(m) >= sent_m + grace(m). So the bound is the minimum of sent_k + grace_k and, for every
// heartbeat sent after k, its send time + its grace (known from an acknowledgement at that interval,
// else the controller's shortest). A switch to the fast interval lowers it at once.
const sent = new Map(); // seq -> { at, interval }, for seq > last acknowledged
const graceOf = new Map(); // interval -> grace the controller grants at that interval
let minGrace = 0;
let acked = null; // { seq, at, grace } of the last acknowledgement
let downs = null; // the controller's "downs" token of the last acknowledgement
function relicense() {
  if (!acked) return;
  let lic = acked.at + acked.grace;
  for (const [, e] of sent) lic = Math.min(lic, e.at + (graceOf.get(e.interval) ?? minGrace));
  Atomics.store(licence, 0, BigInt(Math.floor(lic)));
}
let seq = 0;
let gated = false;
// this thread only (Linux nice is per thread): like keepalived's VRRP process, the heartbeat must
// not wait behind the busy work of its own node (needs CAP_SYS_NICE; without it, best effort)
try { require('node:os').setPriority(o.nice); } catch (e) { parentPort.postMessage({ log: 'heartbeat thread keeps the default priority (' + e.message + ')' }); }
const sock = createSocket({ type: 'udp4' });
sock.on('error', (e) => parentPort.postMessage({ log: 'heartbeat socket: ' + e.message }));
// the interval follows the main thread's fast flag (a holder beats fast); a switch to fast beats at
// once, so the controller's shorter grace period starts from a fresh heartbeat
const interval = () => (Atomics.load(flags, 0) ? o.intervalMs : o.idleIntervalMs);
let timer = null;
// Until the controller has acknowledged a heartbeat of the agent's run (at an agent's start it may
// not listen yet: a lab starts its controller and its agents at once), the wait doubles from the fast
// interval up to the current one (100, 200, 400, 800, 1000 ms by default): a controller that starts
// listening a moment after the first beat counts the node Up by the next one, not a whole idle
// interval later, and one that never answers costs no more than a few extra beats. Not for a thread
// started again after one was acknowledged (the licence is set): its beats keep the interval they
// would have had, so the licence the old thread earned stays a lower bound of the controller's deadline.
const fresh = Atomics.load(licence, 0) === 0n;
let unacked = 0;
const wait = () => (acked || !fresh ? interval() : Math.min(interval(), o.intervalMs * 2 ** Math.min(unacked++, 20)));
function beat(ms) {
  const age = Date.now() - Number(Atomics.load(fed, 0));
  if (age > o.watchdogMs) {
    Atomics.add(counters, 1, 1);
    if (!gated) parentPort.postMessage({ log: 'main loop silent for ' + age + ' ms: heartbeats suspended until it checks in again' });
    gated = true;
    return;
  }
  if (gated) parentPort.postMessage({ log: 'main loop back: heartbeats resumed' });
  gated = false;
  const payload = 'EGLHB3 ' + o.node + ' ' + epoch + ' ' + (++seq) + ' ' + ms;
  const mac = createHmac('sha256', o.token).update(payload).digest('hex').slice(0, 32);
  sent.set(seq, { at: Date.now(), interval: ms });
  // 256 unacknowledged beats: the oldest is long past any grace, the licence has run out anyway
  if (sent.size > 256) sent.delete(sent.keys().next().value);
  relicense();
  sock.send(payload + ' ' + mac, o.port, o.target, (err) => {
    if (err) return;
    if (Atomics.add(counters, 0, 1) === 0) parentPort.postMessage({ first: true });
  });
}
function loop() {
  // one reading: the interval announced is the one waited (a switch in between would announce 100 ms
  // and beat again only after 1 s)
  const ms = wait();
  beat(ms);
  timer = setTimeout(loop, ms);
}
// the controller's acknowledgement (lib/liveness/heartbeat.ts):
//   EGLHA2 <node> <epoch> <seq> <graceMs> <minGraceMs> <downs> <mac>
// only for a heartbeat of this thread still awaiting one (no replay, no reordering), MAC-checked
sock.on('message', (msg, rinfo) => {
  if (msg.length > 256 || rinfo.port !== o.port) return;
  const p = msg.toString('latin1').split(' ');
  if (p.length !== 8 || p[0] !== 'EGLHA2' || p[1] !== o.node || p[2] !== String(epoch)) return;
  const seq = Number(p[3]);
  const beat = sent.get(seq);
  if (!beat || !/^[0-9]+$/.test(p[4]) || !/^[0-9]+$/.test(p[5])) return;
  const grace = Number(p[4]);
  const min = Number(p[5]);
  if (grace > 600000 || min > grace) return;
  const want = createHmac('sha256', o.token).update(p.slice(0, 7).join(' ')).digest('hex').slice(0, 32);
  if (p[7].length !== want.length || !timingSafeEqual(Buffer.from(p[7]), Buffer.from(want))) return;
  for (const k of sent.keys()) if (k <= seq) sent.delete(k);
  acked = { seq, at: beat.at, grace };
  graceOf.set(beat.interval, grace);
  minGrace = min;
  // the controller had this node Down since the last acknowledgement (or restarted): the main
  // thread must re-read what it holds before answering for it again
  if (downs !== null && p[6] !== downs) Atomics.add(acks, 1, 1);
  downs = p[6];
  relicense();
  Atomics.add(acks, 0, 1);
  keepFence();
});
// The ARP fence's keeper (armed by agent/node/gateway-module.ts): on each acknowledgement, the armed
// IPs' @alive elements are refreshed up to the licence less the margin, through an nft -i session
// of this thread (its priority: a child inherits it). A healthy holder whose main loop stalls for
// longer than the licensed element time keeps answering ARP; a Down since arming stops it at once
// (the main thread re-reads what it holds, then arms again).
let fence = null; // { table, ips, marginMs, maxMs, downs }
let nft = null;
function nftSession() {
  if (nft) return nft;
  const p = require('node:child_process').spawn(o.nftPath, ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
  p.on('error', (e) => { parentPort.postMessage({ log: 'ARP fence keeper: ' + e.message }); if (nft === p) nft = null; });
  p.on('exit', () => { if (nft === p) nft = null; });
  p.stderr.on('data', (d) => parentPort.postMessage({ log: 'ARP fence keeper: nft: ' + String(d).trim().slice(0, 300) }));
  p.stdin.on('error', () => {});
  nft = p;
  return p;
}
function keepFence() {
  if (!fence || !fence.ips.length || Atomics.load(acks, 1) !== fence.downs) return;
  const ms = Math.min(fence.maxMs, Math.floor(Number(Atomics.load(licence, 0)) - fence.marginMs - Date.now()));
  if (ms <= 0) return;
  nftSession().stdin.write('add element arp ' + fence.table + ' alive { ' + fence.ips.map((ip) => ip + ' timeout ' + ms + 'ms expires ' + ms + 'ms').join(', ') + ' }\\n');
}
sock.bind({ address: o.bind, port: 0 }, loop);
parentPort.on('message', (m) => {
  if (m === 'stop') { sock.close(); if (nft) nft.kill(); process.exit(0); }
  if (m && typeof m === 'object' && 'fence' in m) { fence = m.fence; keepFence(); }
  if (m === 'fast' && timer) { clearTimeout(timer); loop(); }
});
`;

export class Beacon {
  private worker: Worker | null = null;
  private feeder: NodeJS.Timeout | null = null;
  private readonly shared = new SharedArrayBuffer(40);
  private readonly fed = new BigInt64Array(this.shared, 0, 1);
  private readonly counters = new Int32Array(this.shared, 8, 2);
  private readonly flags = new Int32Array(this.shared, 16, 1);
  private readonly licence = new BigInt64Array(this.shared, 24, 1);
  /** [acknowledgements, times the controller had this node Down (its `downs` changed)] */
  private readonly acks = new Int32Array(this.shared, 32, 2);
  private firstSent: () => void = () => undefined;
  restarts = 0;
  /** resolves once the first heartbeat went out */
  readonly first = new Promise<void>((r) => (this.firstSent = r));

  constructor(private readonly o: BeaconOptions) {}

  start(): void {
    const watchdogMs = this.o.watchdogMs ?? 2000;
    const feed = (): void => void Atomics.store(this.fed, 0, BigInt(Date.now()));
    feed();
    // twice per watchdog period: a main loop stalled for less than half of it costs nothing
    this.feeder = setInterval(feed, Math.max(50, Math.floor(watchdogMs / 2)));
    this.feeder.unref();
    this.spawn(watchdogMs);
  }

  private spawn(watchdogMs: number): void {
    const w = new Worker(WORKER, {
      eval: true,
      workerData: {
        node: this.o.node,
        token: this.o.token,
        bind: this.o.bind,
        target: this.o.target,
        port: this.o.port,
        intervalMs: this.o.intervalMs,
        idleIntervalMs: this.o.idleIntervalMs ?? this.o.intervalMs,
        watchdogMs,
        nice: this.o.nice ?? -10,
        nftPath: this.o.nftPath ?? 'nft',
        shared: this.shared,
      },
    });
    w.on('message', (m: { log?: string; first?: boolean }) => {
      if (m.first) this.firstSent();
      if (m.log) this.o.log?.(m.log);
    });
    w.on('error', (e) => this.o.log?.(`heartbeat thread failed: ${e.message}`));
    w.on('exit', (code) => {
      if (this.worker !== w) return; // stopped
      // a heartbeat thread that died must not leave a live agent silent: start it again
      this.worker = null;
      this.o.log?.(`heartbeat thread exited (code ${code}): starting it again in 1 s`);
      this.restarts++;
      setTimeout(() => {
        if (this.feeder) this.spawn(watchdogMs);
      }, 1000).unref();
    });
    w.unref();
    this.worker = w;
    // a restarted thread keeps the fence armed as it was
    if (this.lastFence) w.postMessage({ fence: this.lastFence });
  }

  /** Fast (this node holds a floating IP) or idle interval; a switch to fast beats at once. */
  setFast(fast: boolean): void {
    const was = Atomics.exchange(this.flags, 0, fast ? 1 : 0) === 1;
    if (fast && !was) this.worker?.postMessage('fast');
  }

  /**
   * A time (Date.now() ms) before which the controller cannot declare this node Down, from its
   * acknowledgements (see the worker's relicense); undefined while no heartbeat was ever
   * acknowledged (a controller that does not acknowledge: the caller keeps its own bound).
   */
  licenceUntil(): number | undefined {
    const v = Number(Atomics.load(this.licence, 0));
    return v > 0 ? v : undefined;
  }

  /**
   * Arms the heartbeat thread's ARP fence keeper for `ips` of nft table `table` (arp family), or
   * disarms it (null): on every acknowledgement it refreshes their @alive elements up to the
   * licence less `marginMs` (at most `maxMs`), as long as the Down count is still `downs`.
   */
  setFence(f: { table: string; ips: readonly string[]; marginMs: number; maxMs: number; downs: number } | null): void {
    const key = f ? JSON.stringify(f) : '';
    if (key === this.fenceKey) return;
    this.fenceKey = key;
    this.lastFence = f ? { ...f, ips: [...f.ips] } : null;
    this.worker?.postMessage({ fence: this.lastFence });
  }

  private fenceKey = '';
  private lastFence: { table: string; ips: string[]; marginMs: number; maxMs: number; downs: number } | null = null;

  /** How many times the controller's acknowledgements said it had this node Down since the previous one. */
  downsSeen(): number {
    return Atomics.load(this.acks, 1);
  }

  get fast(): boolean {
    return Atomics.load(this.flags, 0) === 1;
  }

  status(): Record<string, unknown> {
    return {
      target: `${this.o.target}:${this.o.port}`,
      intervalMs: this.fast ? this.o.intervalMs : (this.o.idleIntervalMs ?? this.o.intervalMs),
      fast: this.fast,
      sent: Atomics.load(this.counters, 0),
      suspendedTicks: Atomics.load(this.counters, 1),
      acknowledged: Atomics.load(this.acks, 0),
      downsSeen: Atomics.load(this.acks, 1),
      licenceMs: this.licenceUntil() === undefined ? null : Math.max(0, (this.licenceUntil() ?? 0) - Date.now()),
      running: !!this.worker,
      restarts: this.restarts,
    };
  }

  async stop(): Promise<void> {
    if (this.feeder) clearInterval(this.feeder);
    this.feeder = null;
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
