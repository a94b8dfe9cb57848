// ConfigMap key -> file projection, like a kubelet mounting a ConfigMap: the file is written
// atomically (temp file + fsync + rename) whenever the key changes, and removed when the ConfigMap
// or the key disappears. The agent (ip-masq-agent semantics) watches the file.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KubeObject } from './types.js';
import { R, type Informer, type KubeClient } from './client.js';

export interface Projection {
  informer: Informer;
  stop(): Promise<void>;
}

function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function current(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function projectConfigMapKey(
  client: KubeClient,
  ref: { namespace: string; name: string; key: string },
  path: string,
  onChange: (content: string | undefined) => void = () => {},
): Projection {
  const apply = (cm: KubeObject | undefined): void => {
    const data = (cm as (KubeObject & { data?: Record<string, string> }) | undefined)?.data;
    const value = data?.[ref.key];
    if (value === undefined) {
      if (current(path) !== undefined) {
        rmSync(path, { force: true });
        onChange(undefined);
      }
    } else if (current(path) !== value) {
      writeAtomic(path, value);
      onChange(value);
    }
  };
  const informer = client.informer(
    R.configmaps,
    { namespace: ref.namespace, fieldSelector: `metadata.name=${ref.name}` },
    {
      onAdd: apply,
      onUpdate: apply,
      onDelete: () => apply(undefined),
      onSync: (items) => apply(items[0]),
    },
  );
  return { informer, stop: () => informer.stop() };
}
