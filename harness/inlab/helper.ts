/**
 * The in-lab helper: ONE long-lived process per lab container, started by the harness through a
 * single `docker exec` whose standard input and output stay attached. It replaces a `docker exec`
 * (runc, containerd-shim, several engine round trips: ~150-250 ms of CPU on these machines) and,
 * for probes, a Node start (~200 ms of CPU) per call: commands are spawned here directly, probes
 * run in-process, and waiting for a responder's observation is a file poll here instead of a
 * `grep` per poll from the host.
 *
 * Pod network namespaces: a request for a netns goes to a child helper started once per netns
 * (`nsenter --net=/run/netns/NS node helper.js --child`), so its sockets and commands live in that netns.
 *
 * Protocol: one JSON object per line each way.
 *   -> {"id":1,"op":"exec","argv":["ip","-j","addr"],"stdin":"...","env":{},"timeoutMs":5000,"netns":"pod-x"}
 *   <- {"id":1,"ok":true,"result":{"exitCode":0,"stdout":"...","stderr":""}}
 *   -> {"id":2,"op":"spawn","argv":[...],"netns":"pod-x"}          detached, like `docker exec -d`
 *   -> {"id":3,"op":"probe","args":{ProbeClientOptions, mode once},"netns":"pod-x"}
 *   <- {"id":3,"ok":true,"result":ClientRecord}
 *   -> {"id":5,"op":"start-probe","args":{..., mode continuous},"out":"/run/egresslab/probe-T.jsonl","netns":"pod-x"}
 *   <- {"id":5,"ok":true,"result":{"token":"T"}}        records are appended to `out` as they settle
 *   -> {"id":6,"op":"stop-probe","args":{"token":"T"},"netns":"pod-x"}
 *   <- {"id":6,"ok":true,"result":{"records":N}}        once every packet in flight has settled
 *   -> {"id":7,"op":"wait-match","file":"/run/egresslab/agent-status.json","pattern":"\"phase\": *\"running\"","timeoutMs":20000}
 *   <- {"id":7,"ok":true,"result":true}                 false when it did not match in time
 *   -> {"id":4,"op":"watch","file":"/run/egresslab/observed.jsonl","needle":"...","since":0,"timeoutMs":1500}
 *   <- {"id":4,"ok":true,"result":["<matching line>", ...]}      [] when nothing matched in time
 *      (also returned, in file order: the capture statistics lines, "p":"stats", of the same window;
 *      with "ports":[...], of the TCP segments only those that matter to connections from those ports)
 *   <- {"id":N,"ok":false,"error":"..."}
 * The first line out is {"ready":true,"pid":P}. The helper exits when its standard input closes
 * (the harness process ended or closed the channel); processes it spawned detached live on.
 * Runs on Node 18 inside lab containers: no dependencies.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { appendFileSync, openSync, closeSync, readFileSync, readSync, fstatSync } from 'node:fs';
import { constants } from 'node:os';
import { runProbe } from './probe-core.js';
import { programArgs } from '../util/args.js';
import { issueText } from '../util/errors.js';
import { STATS_NEEDLE, onLines, probeClientIssues, segmentMatters, type ClientRecord, type Observation, type ProbeClientOptions } from './protocol.js';

interface Request {
  id: number;
  op: 'exec' | 'spawn' | 'probe' | 'watch' | 'ping' | 'start-probe' | 'stop-probe' | 'wait-match';
  /** wait-match: a regular expression the file's content must match */
  pattern?: string;
  /** start-probe: the file each record is appended to (one JSON line per settled packet) */
  out?: string;
  netns?: string;
  argv?: string[];
  stdin?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  args?: ProbeClientOptions;
  file?: string;
  needle?: string;
  since?: number;
  /** watch: keep of the TCP segments only those that matter to connections from these local ports (segmentMatters) */
  ports?: number[];
}

const isChild =
  programArgs('helper.js', {
    flags: { child: {} },
    about: '  Serves exec, spawn, probe and watch requests (JSON lines on standard input); --child: the helper of one network namespace.',
  }).flags.child ?? false;
const NETNS = /^[A-Za-z0-9._-]{1,64}$/;

function send(msg: unknown): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

function reply(id: number, p: Promise<unknown>): void {
  p.then(
    (result) => send({ id, ok: true, result }),
    (e: unknown) => send({ id, ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
}

function signalCode(signal: NodeJS.Signals | null): number {
  const n = signal ? (constants.signals as Record<string, number>)[signal] : undefined;
  return n ? 128 + n : -1;
}

function execOp(r: Request): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const argv = r.argv ?? [];
    if (!argv.length) return reject(new Error('exec: empty command'));
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...(r.env ?? {}) }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let failed: string | undefined;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      // what `docker exec` answers for a missing or unusable executable
      failed = `exec: ${JSON.stringify(argv[0])}: ${e.code === 'ENOENT' ? 'executable file not found in $PATH' : e.message}`;
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (failed) return resolve({ exitCode: failed.includes('not found') ? 127 : 126, stdout: '', stderr: `${failed}\n` });
      resolve({ exitCode: code ?? signalCode(signal), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(r.stdin ?? '');
    if (r.timeoutMs) {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`timed out after ${r.timeoutMs} ms`));
      }, r.timeoutMs);
    }
  });
}

async function spawnOp(r: Request): Promise<{ pid: number | undefined }> {
  const argv = r.argv ?? [];
  if (!argv.length) throw new Error('spawn: empty command');
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: 'ignore', env: { ...process.env, ...(r.env ?? {}) } });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  child.unref();
  return { pid: child.pid };
}

function probeOp(r: Request): Promise<ClientRecord> {
  const args = r.args;
  const issues = args ? probeClientIssues(args) : [{ path: 'args', value: undefined, message: 'is required' }];
  if (issues.length) return Promise.reject(new Error(`probe: ${issues.map(issueText).join('; ')}`));
  let rec: ClientRecord | undefined;
  const run = runProbe({ ...args!, mode: 'once', count: 1 }, (x) => (rec = x));
  return run.done.then(() => rec ?? { seq: 1, t: Date.now(), replied: false, error: 'no record' });
}

/** Continuous probes running in this process, by token. */
const running = new Map<string, { stop(): void; done: Promise<void>; count: number }>();

function startProbeOp(r: Request): Promise<{ token: string }> {
  const args = r.args;
  const issues = args ? probeClientIssues(args) : [{ path: 'args', value: undefined, message: 'is required' }];
  if (!r.out) issues.push({ path: 'out', value: r.out, message: 'is required' });
  if (issues.length) return Promise.reject(new Error(`start-probe: ${issues.map(issueText).join('; ')}`));
  if (running.has(args!.token)) return Promise.reject(new Error(`start-probe: token ${args!.token} is running already`));
  const out = r.out!;
  try {
    appendFileSync(out, '');
  } catch (e) {
    return Promise.reject(new Error(`start-probe: cannot create ${out}: ${(e as Error).message}`));
  }
  // biome-ignore lint/suspicious/noConfusingVoidType: replaced by the watcher's own stop
  const entry = { stop: () => undefined as void, done: Promise.resolve(), count: 0 };
  const run = runProbe({ ...args!, mode: 'continuous' }, (rec) => {
    entry.count++;
    try {
      appendFileSync(out, `${JSON.stringify(rec)}\n`);
    } catch (e) {
      process.stderr.write(`continuous probe ${args!.token}: cannot record: ${(e as Error).message}\n`);
    }
  });
  entry.stop = run.stop;
  entry.done = run.done
    .catch((e: unknown) => void process.stderr.write(`continuous probe ${args!.token}: ${e instanceof Error ? e.message : String(e)}\n`))
    .finally(() => running.delete(args!.token));
  running.set(args!.token, entry);
  return Promise.resolve({ token: args!.token });
}

async function stopProbeOp(r: Request): Promise<{ records: number }> {
  const token = r.args?.token ?? '';
  const e = running.get(token);
  if (!e) return { records: -1 }; // finished already (its count reached) or never started here
  e.stop();
  await e.done;
  return { records: e.count };
}

/**
 * A log line's "t": read from its start where it is written first (the responder's lines: a log of
 * every TCP segment is long, and a JSON parse of each line per read would cost more than the read),
 * else parsed; undefined for a torn line.
 */
function lineTime(l: string): number | undefined {
  const m = /^\{"t":(\d+(?:\.\d+)?)[,}]/.exec(l);
  if (m) return Number(m[1]);
  try {
    return (JSON.parse(l) as { t?: number }).t;
  } catch {
    return undefined;
  }
}

/**
 * Lines of `file` containing `needle` whose JSON "t" is not before since-5 ms: returned as soon as
 * there is one, else [] after timeoutMs. The file is read incrementally (it only grows).
 * A responder's capture statistics lines (STATS_NEEDLE) of the same window come along, in file
 * order, without counting as a match: the reader needs them to know whether the capture dropped
 * packets (then what it logged proves nothing), but they are not what it waits for.
 */
function watchOp(r: Request): Promise<string[]> {
  const file = r.file ?? '';
  const needle = r.needle ?? '';
  const since = (r.since ?? 0) - 5;
  const deadline = Date.now() + (r.timeoutMs ?? 0);
  let offset = 0;
  let rest = '';
  const found: string[] = [];
  let matched = 0;
  const ports = r.ports ? new Set(r.ports) : undefined;
  const flows = new Set<string>();
  const matters = (l: string): boolean => {
    if (!ports) return true;
    try {
      return segmentMatters(JSON.parse(l) as Observation, ports, flows);
    } catch {
      return false; // a torn line
    }
  };
  const scan = (): void => {
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return; // not there yet
    }
    try {
      const size = fstatSync(fd).size;
      if (size < offset) offset = 0; // replaced
      while (offset < size) {
        const buf = Buffer.alloc(Math.min(1 << 20, size - offset));
        const n = readSync(fd, buf, 0, buf.length, offset);
        if (n <= 0) break;
        offset += n;
        const text = rest + buf.subarray(0, n).toString('utf8');
        const lines = text.split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) {
          const match = l.includes(needle);
          if (!match && !l.includes(STATS_NEEDLE)) continue;
          if (!(lineTime(l)! >= since)) continue;
          if (match && !matters(l)) continue;
          found.push(l);
          if (match) matched++;
        }
      }
    } finally {
      closeSync(fd);
    }
  };
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      try {
        scan();
      } catch (e) {
        return reject(new Error(`watch ${file}: ${(e as Error).message}`));
      }
      if (matched || Date.now() >= deadline) return resolve(found);
      setTimeout(tick, 10);
    };
    tick();
  });
}

/** Polls a file (every 20 ms, in-process: no fork) until its content matches `pattern`. */
function waitMatchOp(r: Request): Promise<boolean> {
  let re: RegExp;
  try {
    re = new RegExp(r.pattern ?? '');
  } catch (e) {
    return Promise.reject(new Error(`wait-match: bad pattern: ${(e as Error).message}`));
  }
  const deadline = Date.now() + (r.timeoutMs ?? 0);
  return new Promise((resolve) => {
    const tick = (): void => {
      let text = '';
      try {
        text = readFileSync(r.file ?? '', 'utf8');
      } catch {
        /* not there yet */
      }
      if (re.test(text)) return resolve(true);
      if (Date.now() >= deadline) return resolve(false);
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** Child helpers, one per pod network namespace (parent only). */
const children = new Map<string, { proc: ChildProcessWithoutNullStreams; ids: Set<number>; ready: Promise<void> }>();

function childFor(netns: string): { proc: ChildProcessWithoutNullStreams; ids: Set<number>; ready: Promise<void> } {
  let c = children.get(netns);
  if (c) return c;
  // nsenter, not ip netns exec: lab containers may not mount (harness/lab/runtime.ts inPlace)
  const proc = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath, process.argv[1]!, '--child'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const ids = new Set<number>();
  let errText = '';
  let markReady: () => void = () => undefined;
  let markFailed: (e: Error) => void = () => undefined;
  const ready = new Promise<void>((res, rej) => ((markReady = res), (markFailed = rej)));
  ready.catch(() => undefined);
  onLines(proc.stdout, (line) => {
    let msg: { id?: number; ready?: boolean };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return;
    }
    if (msg.ready) return markReady();
    if (typeof msg.id === 'number') ids.delete(msg.id);
    process.stdout.write(`${line}\n`);
  });
  proc.stderr.on('data', (d: Buffer) => (errText = (errText + d.toString('utf8')).slice(-2000)));
  proc.stdin.on('error', () => undefined);
  proc.on('close', () => {
    children.delete(netns);
    const why = `the helper in netns ${netns} exited${errText ? `: ${errText.trim()}` : ''}`;
    markFailed(new Error(why));
    for (const id of ids) send({ id, ok: false, error: why });
    ids.clear();
  });
  c = { proc, ids, ready };
  children.set(netns, c);
  return c;
}

const OPS: Record<Request['op'], (r: Request) => Promise<unknown>> = {
  exec: execOp,
  spawn: spawnOp,
  probe: probeOp,
  watch: watchOp,
  'wait-match': waitMatchOp,
  'start-probe': startProbeOp,
  'stop-probe': stopProbeOp,
  ping: () => Promise.resolve({ pid: process.pid }),
};

/** Ops that only read the container's files: the parent serves them for every netns. */
const FILE_OPS: ReadonlySet<Request['op']> = new Set(['watch', 'wait-match']);

function handle(r: Request): void {
  try {
    route(r);
  } catch (e) {
    // never let one bad request end the helper (and every probe it runs)
    send({ id: r.id, ok: false, error: e instanceof Error ? e.message : String(e) });
  }
}

function route(r: Request): void {
  if (!isChild && r.netns && !FILE_OPS.has(r.op)) {
    if (!NETNS.test(r.netns)) return send({ id: r.id, ok: false, error: `bad netns name ${JSON.stringify(r.netns)}` });
    const c = childFor(r.netns);
    c.ids.add(r.id);
    const { netns: _drop, ...rest } = r;
    c.ready.then(
      () => c.proc.stdin.write(`${JSON.stringify(rest)}\n`),
      () => undefined, // the close handler answered
    );
    return;
  }
  const op = Object.hasOwn(OPS, r.op) ? OPS[r.op] : undefined;
  if (!op) return send({ id: r.id, ok: false, error: `unknown op ${JSON.stringify(r.op)}` });
  reply(r.id, op(r));
}

onLines(process.stdin, (line) => {
  if (!line.trim()) return;
  let r: Request;
  try {
    r = JSON.parse(line) as Request;
  } catch {
    send({ id: -1, ok: false, error: `unparsable request ${JSON.stringify(line.slice(0, 200))}` });
    return;
  }
  handle(r);
});
process.stdin.on('end', () => {
  for (const c of children.values()) c.proc.kill('SIGTERM');
  process.exit(0);
});
process.stdout.on('error', () => process.exit(0));
// last resort: report, keep serving (continuous probes of other callers keep running)
process.on('uncaughtException', (e) => process.stderr.write(`helper: ${e.stack ?? e.message}\n`));
send({ ready: true, pid: process.pid });
