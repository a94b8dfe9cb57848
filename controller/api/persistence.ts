// Crash-safe persistence for the object store: an append-only log of committed events (one JSON
// line per event, fdatasync'ed before the write is acknowledged) plus a periodic snapshot written to
// a temporary file, fsync'ed and renamed over the previous one. On start the snapshot is loaded and
// the log replayed. The resourceVersion counter and the watch history since the snapshot are
// restored, so watches resume across a restart.
//
// What a crash leaves is a torn end: the last append cut short (no newline, or garbage and zeros
// after the last whole record). That end is dropped, with a warning naming the file, the lines and
// the bytes. A bad record with valid records after it is not a crash but corruption: replaying up to
// it and truncating there would silently lose every later write and hand their resourceVersions out
// again, so the controller refuses to start (PersistenceError: the file, the line, what to do) and
// changes nothing on disk. So does a resourceVersion that does not increase, and a snapshot that
// cannot be read.
import { closeSync, existsSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeObject } from '../../lib/kube/types.js';

export type CommittedType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface LogEntry {
  rv: number;
  type: CommittedType;
  rkey: string;
  object: KubeObject;
}

export interface LoadedState {
  rv: number;
  /** rv covered by the snapshot: history before it is gone */
  snapshotRV: number;
  objects: Map<string, { rkey: string; object: KubeObject }>;
  /** log entries after the snapshot, in order */
  log: LogEntry[];
}

/** The data on disk cannot be used as it is: the message names the file, the line and what to do. */
export class PersistenceError extends Error {
  override name = 'PersistenceError';
}

export interface Persistence {
  load(): LoadedState;
  append(e: LogEntry): void;
  /** writes a snapshot of the given state and truncates the log */
  snapshot(rv: number, objects: Iterable<{ rkey: string; object: KubeObject }>): void;
  readonly entriesSinceSnapshot: number;
  close(): void;
}

export function objectKey(rkey: string, ns: string | undefined, name: string): string {
  return `${rkey}|${ns ?? ''}|${name}`;
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  }
}

const TYPES: readonly string[] = ['ADDED', 'MODIFIED', 'DELETED'];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Why `v` is not an object as stored (metadata with a name), or null. */
function objectProblem(v: unknown): string | null {
  if (!isRecord(v)) return `must be an object, got ${JSON.stringify(v)}`;
  if (!isRecord(v.metadata) || typeof v.metadata.name !== 'string' || v.metadata.name === '') return 'metadata.name: missing';
  return null;
}

/** Why a parsed log line is not a log record, or null. */
function entryProblem(v: unknown): string | null {
  if (!isRecord(v)) return `must be a JSON object, got ${JSON.stringify(v)}`;
  if (typeof v.rv !== 'number' || !Number.isSafeInteger(v.rv) || v.rv < 1) return `rv: must be a positive whole number, got ${JSON.stringify(v.rv)}`;
  if (typeof v.type !== 'string' || !TYPES.includes(v.type)) return `type: must be ADDED, MODIFIED or DELETED, got ${JSON.stringify(v.type)}`;
  if (typeof v.rkey !== 'string' || v.rkey === '') return `rkey: must be a resource key, got ${JSON.stringify(v.rkey)}`;
  const o = objectProblem(v.object);
  return o && `object: ${o}`;
}

/** At most 80 characters of `text`, as a JSON string (control characters and zeros visible). */
function preview(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;
const lineRange = (a: number, b: number): string => (a === b ? `line ${a}` : `lines ${a}-${b}`);

function refusal(what: string, dir: string): PersistenceError {
  return new PersistenceError(
    `${what}: refusing to start. Nothing was changed. Look at the line: repair or delete it by hand, ` +
      `or move the data directory ${dir} aside to start empty; then start again`,
  );
}

interface ReadLog {
  entries: LogEntry[];
  /** bytes up to the end of the last valid record */
  goodBytes: number;
  /** the warning about a dropped torn end, when there is one */
  torn?: string;
}

/**
 * Reads the log's records. Bad lines at the end (a torn end) are reported in `torn`; a bad line with
 * a valid record after it, or a resourceVersion that does not increase, throws a PersistenceError.
 */
function readLog(buf: Buffer, path: string, dir: string): ReadLog {
  const entries: LogEntry[] = [];
  let goodBytes = 0;
  let lastRV = 0;
  let lastRVLine = 0;
  /** the first bad line after the last valid record: its number, offset and why */
  let bad: { line: number; offset: number; why: string } | undefined;
  let validAfterBad: { first: number; last: number; count: number } | undefined;
  let lineNo = 0;
  for (let start = 0; start < buf.length; ) {
    lineNo++;
    const nl = buf.indexOf(0x0a, start);
    const end = nl < 0 ? buf.length : nl;
    const text = buf.subarray(start, end).toString('utf8');
    let e: unknown;
    let why: string | null;
    try {
      e = JSON.parse(text);
      why = nl < 0 ? 'no newline: the write was cut short' : entryProblem(e);
    } catch {
      why = `not JSON: ${preview(text)}`;
    }
    if (why !== null) {
      bad ??= { line: lineNo, offset: start, why };
    } else if (bad) {
      validAfterBad = validAfterBad ? { ...validAfterBad, last: lineNo, count: validAfterBad.count + 1 } : { first: lineNo, last: lineNo, count: 1 };
    } else {
      const entry = e as LogEntry;
      if (entry.rv <= lastRV) {
        throw refusal(
          `${path} line ${lineNo}: resourceVersion ${entry.rv} does not increase (line ${lastRVLine} has ${lastRV}), so later writes would reuse resourceVersions`,
          dir,
        );
      }
      lastRV = entry.rv;
      lastRVLine = lineNo;
      entries.push(entry);
      goodBytes = end + 1;
    }
    start = end + 1;
  }
  if (bad && validAfterBad) {
    throw refusal(
      `${path} line ${bad.line} is not a valid record (${bad.why}), and ${plural(validAfterBad.count, 'valid record follows', 'valid records follow')} it (${lineRange(validAfterBad.first, validAfterBad.last)}) that a replay up to it would lose`,
      dir,
    );
  }
  if (!bad) return { entries, goodBytes };
  const dropped = buf.subarray(bad.offset).toString('utf8');
  const what = bad.line === lineNo ? `a torn last line (line ${bad.line}` : `a torn end (${lineRange(bad.line, lineNo)}`;
  return {
    entries,
    goodBytes,
    torn: `${path}: dropped ${what}, ${buf.length - bad.offset} bytes: ${preview(dropped)}), as a crash during a write leaves it; the ${plural(entries.length, 'record before it is kept', 'records before it are kept')}`,
  };
}

function readSnapshot(path: string, dir: string): { rv: number; objects: { rkey: string; object: KubeObject }[] } {
  const refuse = (why: string): PersistenceError =>
    new PersistenceError(
      `${path} cannot be read (${why}): refusing to start without the state it holds. Nothing was changed. ` +
        `Restore it from a backup, or move the data directory ${dir} aside to start empty; then start again`,
    );
  let snap: unknown;
  try {
    snap = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw refuse(`not JSON: ${(error as Error).message}`);
  }
  if (!isRecord(snap) || typeof snap.rv !== 'number' || !Number.isSafeInteger(snap.rv) || snap.rv < 0) throw refuse('rv: must be a whole number');
  if (!Array.isArray(snap.objects)) throw refuse('objects: must be a list');
  snap.objects.forEach((o: unknown, i) => {
    const why = !isRecord(o) || typeof o.rkey !== 'string' ? 'rkey: missing' : objectProblem(o.object);
    if (why) throw refuse(`objects[${i}]: ${why}`);
  });
  return snap as { rv: number; objects: { rkey: string; object: KubeObject }[] };
}

export class FilePersistence implements Persistence {
  private fd: number | undefined;
  private count = 0;
  private readonly logPath: string;
  private readonly snapPath: string;

  constructor(
    private readonly dir: string,
    private readonly sync = true,
    /** where the warning about a dropped torn end goes */
    private readonly warn: (message: string) => void = (m) => console.error(`persistence: ${m}`),
  ) {
    mkdirSync(dir, { recursive: true });
    this.logPath = join(dir, 'log.jsonl');
    this.snapPath = join(dir, 'snapshot.json');
  }

  get entriesSinceSnapshot(): number {
    return this.count;
  }

  load(): LoadedState {
    const objects = new Map<string, { rkey: string; object: KubeObject }>();
    let rv = 0;
    let snapshotRV = 0;
    if (existsSync(this.snapPath)) {
      const snap = readSnapshot(this.snapPath, this.dir);
      rv = snap.rv;
      snapshotRV = snap.rv;
      for (const o of snap.objects) objects.set(objectKey(o.rkey, o.object.metadata.namespace, o.object.metadata.name!), o);
    }
    const log: LogEntry[] = [];
    let goodBytes = 0;
    if (existsSync(this.logPath)) {
      const read = readLog(readFileSync(this.logPath), this.logPath, this.dir);
      goodBytes = read.goodBytes;
      if (read.torn) this.warn(read.torn);
      for (const e of read.entries) {
        if (e.rv <= snapshotRV) continue;
        log.push(e);
        rv = Math.max(rv, e.rv);
        const k = objectKey(e.rkey, e.object.metadata.namespace, e.object.metadata.name!);
        if (e.type === 'DELETED') objects.delete(k);
        else objects.set(k, { rkey: e.rkey, object: e.object });
      }
    }
    this.fd = openSync(this.logPath, 'a+');
    // drop the torn end (reported above) so later appends start on a line boundary
    ftruncateSync(this.fd, goodBytes);
    this.count = log.length;
    return { rv, snapshotRV, objects, log };
  }

  append(e: LogEntry): void {
    if (this.fd === undefined) throw new Error('persistence not loaded');
    writeSync(this.fd, `${JSON.stringify(e)}\n`);
    if (this.sync) fdatasyncSync(this.fd);
    this.count++;
  }

  snapshot(rv: number, objects: Iterable<{ rkey: string; object: KubeObject }>): void {
    const tmp = `${this.snapPath}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, JSON.stringify({ rv, objects: [...objects] }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.snapPath);
    fsyncDir(this.dir);
    // entries <= rv are now covered by the snapshot; truncate the log
    if (this.fd !== undefined) {
      ftruncateSync(this.fd, 0);
      if (this.sync) fsyncSync(this.fd);
    }
    this.count = 0;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** In-memory persistence (tests, benchmarks that do not measure the disk). */
export class MemoryPersistence implements Persistence {
  entries: LogEntry[] = [];
  snap: { rv: number; objects: { rkey: string; object: KubeObject }[] } | undefined;
  get entriesSinceSnapshot(): number {
    return this.entries.length;
  }
  load(): LoadedState {
    const objects = new Map<string, { rkey: string; object: KubeObject }>();
    let rv = this.snap?.rv ?? 0;
    for (const o of this.snap?.objects ?? []) objects.set(objectKey(o.rkey, o.object.metadata.namespace, o.object.metadata.name!), o);
    for (const e of this.entries) {
      rv = Math.max(rv, e.rv);
      const k = objectKey(e.rkey, e.object.metadata.namespace, e.object.metadata.name!);
      if (e.type === 'DELETED') objects.delete(k);
      else objects.set(k, { rkey: e.rkey, object: e.object });
    }
    return { rv, snapshotRV: this.snap?.rv ?? 0, objects, log: structuredClone(this.entries) };
  }
  append(e: LogEntry): void {
    this.entries.push(structuredClone(e));
  }
  snapshot(rv: number, objects: Iterable<{ rkey: string; object: KubeObject }>): void {
    this.snap = { rv, objects: structuredClone([...objects]) };
    this.entries = [];
  }
  close(): void {}
}
