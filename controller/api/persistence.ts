// Crash-safe persistence for the object store: an append-only log of committed events (one JSON
// line per event, fdatasync'ed before the write is acknowledged) plus a periodic snapshot written to
// a temporary file, fsync'ed and renamed over the previous one. On start the snapshot is loaded and
// the log replayed; a torn last line (crash mid-append) is discarded. The resourceVersion counter and
// the watch history since the snapshot are restored, so watches resume across a restart.
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

export class FilePersistence implements Persistence {
  private fd: number | undefined;
  private count = 0;
  private readonly logPath: string;
  private readonly snapPath: string;

  constructor(
    private readonly dir: string,
    private readonly sync = true,
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
      const snap = JSON.parse(readFileSync(this.snapPath, 'utf8')) as { rv: number; objects: { rkey: string; object: KubeObject }[] };
      rv = snap.rv;
      snapshotRV = snap.rv;
      for (const o of snap.objects) objects.set(objectKey(o.rkey, o.object.metadata.namespace, o.object.metadata.name!), o);
    }
    const log: LogEntry[] = [];
    let goodBytes = 0;
    if (existsSync(this.logPath)) {
      const buf = readFileSync(this.logPath);
      let start = 0;
      while (start < buf.length) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0) break; // torn tail: no newline
        const line = buf.subarray(start, nl).toString('utf8');
        let e: LogEntry;
        try {
          e = JSON.parse(line) as LogEntry;
        } catch {
          break; // torn/corrupt tail
        }
        start = nl + 1;
        goodBytes = start;
        if (e.rv <= snapshotRV) continue;
        log.push(e);
        rv = Math.max(rv, e.rv);
        const k = objectKey(e.rkey, e.object.metadata.namespace, e.object.metadata.name!);
        if (e.type === 'DELETED') objects.delete(k);
        else objects.set(k, { rkey: e.rkey, object: e.object });
      }
    }
    this.fd = openSync(this.logPath, 'a+');
    // drop a torn tail so later appends start on a line boundary
    ftruncateSync(this.fd, goodBytes);
    this.count = log.length;
    return { rv, snapshotRV, objects, log };
  }

  append(e: LogEntry): void {
    if (this.fd === undefined) throw new Error('persistence not loaded');
    writeSync(this.fd, JSON.stringify(e) + '\n');
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
