// The controller's append-only log on disk (issue 12): a torn last line (what a crash mid-append
// leaves) is dropped with a warning; a bad record with valid records after it is corruption, and the
// controller refuses to start naming the file, the line and what to do, changing nothing on disk;
// a resourceVersion is never handed out twice.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FilePersistence, PersistenceError, type LogEntry } from './persistence.js';
import { Store } from './store.js';
import type { KubeObject } from '../../lib/kube/types.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'egresslab-persist-'));
  dirs.push(d);
  return d;
}

const cm = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default' } }) as KubeObject;
const entry = (rv: number, name: string): LogEntry => ({
  rv,
  type: 'ADDED',
  rkey: '/configmaps',
  object: { ...cm(name), metadata: { ...cm(name).metadata, resourceVersion: String(rv) } },
});
const line = (e: LogEntry): string => `${JSON.stringify(e)}\n`;

/** A data dir whose log holds `text`; returns the log's path. */
function withLog(text: string): { dir: string; log: string } {
  const dir = dataDir();
  writeFileSync(join(dir, 'log.jsonl'), text);
  return { dir, log: join(dir, 'log.jsonl') };
}

function openStore(dir: string, warnings: string[] = []): Store {
  return new Store({ persistence: new FilePersistence(dir, false, (w) => warnings.push(w)) });
}

/** Creates a ConfigMap; its resourceVersion. */
function createCm(store: Store, name: string): number {
  return Number(store.create('/configmaps', cm(name)).metadata.resourceVersion);
}

describe('FilePersistence: torn tail', () => {
  it('drops a torn last line (no newline) with a warning naming the file, the line and the bytes, and keeps every record before it', () => {
    const good = line(entry(1, 'a')) + line(entry(2, 'b'));
    const torn = '{"rv":3,"type":"ADDED","rke';
    const { dir, log } = withLog(good + torn);
    const warnings: string[] = [];
    const store = openStore(dir, warnings);
    expect(store.resourceVersion).toBe(2);
    expect(store.get('/configmaps', 'default', 'b')?.metadata.name).toBe('b');
    expect(warnings).toEqual([
      `${log}: dropped a torn last line (line 3, ${torn.length} bytes: ${JSON.stringify(torn)}), as a crash during a write leaves it; the 2 records before it are kept`,
    ]);
    // the next write starts on a line boundary and gets the next resourceVersion
    expect(createCm(store, 'c')).toBe(3);
    store.close();
    expect(readFileSync(log, 'utf8')).toBe(good + line({ ...entry(3, 'c'), object: store.get('/configmaps', 'default', 'c')! }));
  });

  it('drops bad lines that end the file (a complete but garbled last line, then zeros a crash left) the same way', () => {
    const good = line(entry(1, 'a'));
    const { dir, log } = withLog(`${good}{"rv":2,"ty\n\0\0\0\0`);
    const warnings: string[] = [];
    const store = openStore(dir, warnings);
    expect(store.resourceVersion).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      new RegExp(
        `^${log.replace(/[.]/g, '\\.')}: dropped a torn end \\(lines 2-3, 16 bytes: .*\\), as a crash during a write leaves it; the 1 record before it is kept$`,
      ),
    );
    store.close();
    expect(readFileSync(log, 'utf8')).toBe(good);
  });

  it('says nothing and changes nothing when the log is whole', () => {
    const text = line(entry(1, 'a')) + line(entry(2, 'b'));
    const { dir, log } = withLog(text);
    const warnings: string[] = [];
    openStore(dir, warnings).close();
    expect(warnings).toEqual([]);
    expect(readFileSync(log, 'utf8')).toBe(text);
  });
});

describe('FilePersistence: corruption before valid records', () => {
  it('refuses to start, naming the file, the line, the records after it and what to do; the file is not changed', () => {
    const text = `${line(entry(1, 'a'))}not json at all\n${line(entry(2, 'b'))}${line(entry(3, 'c'))}`;
    const { dir, log } = withLog(text);
    let error: unknown;
    try {
      openStore(dir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PersistenceError);
    expect((error as Error).message).toBe(
      `${log} line 2 is not a valid record (not JSON: ${JSON.stringify('not json at all')}), and 2 valid records follow it (lines 3-4) that a replay up to it would lose: ` +
        'refusing to start. Nothing was changed. Look at the line: repair or delete it by hand, ' +
        `or move the data directory ${dir} aside to start empty; then start again`,
    );
    expect(readFileSync(log, 'utf8')).toBe(text);
  });

  it('a line that is JSON but not a log record (a field missing) is corruption too, not a crash', () => {
    const text = `${line(entry(1, 'a'))}{"rv":2}\n${line(entry(3, 'c'))}`;
    const { dir, log } = withLog(text);
    expect(() => openStore(dir)).toThrow(
      `${log} line 2 is not a valid record (type: must be ADDED, MODIFIED or DELETED, got undefined), and 1 valid record follows it (line 3) that a replay up to it would lose: refusing to start`,
    );
    expect(readFileSync(log, 'utf8')).toBe(text);
  });

  it('a resourceVersion that does not increase is refused: it would be handed out twice', () => {
    const text = line(entry(1, 'a')) + line(entry(5, 'b')) + line(entry(5, 'c'));
    const { dir, log } = withLog(text);
    expect(() => openStore(dir)).toThrow(
      `${log} line 3: resourceVersion 5 does not increase (line 2 has 5), so later writes would reuse resourceVersions: refusing to start`,
    );
    expect(readFileSync(log, 'utf8')).toBe(text);
  });

  it('a snapshot that cannot be read is refused naming the file, not a bare SyntaxError', () => {
    const dir = dataDir();
    writeFileSync(join(dir, 'snapshot.json'), '{"rv":4,"objects":[');
    expect(() => openStore(dir)).toThrow(
      new RegExp(`^${join(dir, 'snapshot.json').replace(/[.]/g, '\\.')} cannot be read \\(not JSON: .*\\): refusing to start`),
    );
  });
});

describe('resourceVersions are never reused', () => {
  it('across restarts, a torn tail and snapshots, every write gets a resourceVersion above every one handed out before', () => {
    const dir = dataDir();
    const seen: number[] = [];
    let store = new Store({ persistence: new FilePersistence(dir, false), compactEvery: 3 });
    for (const n of ['a', 'b', 'c', 'd']) seen.push(createCm(store, n)); // a snapshot after c
    store.close();
    appendFileSync(join(dir, 'log.jsonl'), '{"rv":99,"type":"MOD'); // crash mid-append
    store = new Store({ persistence: new FilePersistence(dir, false, () => {}), compactEvery: 3 });
    seen.push(createCm(store, 'e'), createCm(store, 'f'));
    store.close();
    store = new Store({ persistence: new FilePersistence(dir, false), compactEvery: 3 });
    seen.push(createCm(store, 'g'));
    store.close();
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});
