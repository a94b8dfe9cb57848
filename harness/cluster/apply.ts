/**
 * `egresslab apply -f FILE|DIR`: client-side apply like `kubectl apply` (create, or patch the live
 * object from the manifest), through the typed client. Manifests are YAML (multi-document) or JSON,
 * a directory is read in file-name order (.yaml, .yml, .json), `kind: List` is flattened. The
 * manifest is recorded in the `kubectl.kubernetes.io/last-applied-configuration` annotation as kubectl
 * does, so kubectl and egresslab apply can be mixed; fields removed from a manifest since the last
 * apply are removed from the object (JSON merge patch with nulls).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KubeApiError, type KubeClient, type ResourceRef } from '../../lib/kube/client.js';
import type { KubeObject } from '../../lib/kube/types.js';
import { ValidationError } from '../util/errors.js';

export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** One object of a manifest file, with where it came from (for messages). */
export interface Manifest {
  source: string;
  object: KubeObject;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function manifestFiles(path: string): string[] {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (error) {
    throw new ValidationError('apply', [{ path: '-f', value: path, message: `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})` }]);
  }
  if (!st.isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => /\.(ya?ml|json)$/i.test(f))
    .sort()
    .map((f) => join(path, f));
}

/** Reads every object of a file or directory, in order; refuses a document that is not an object with apiVersion, kind and metadata.name. */
export function loadManifests(path: string): Manifest[] {
  const out: Manifest[] = [];
  const issues: { path: string; value: unknown; message: string }[] = [];
  for (const file of manifestFiles(path)) {
    const text = readFileSync(file, 'utf8');
    const docs = parseAllDocuments(text);
    const list = Array.isArray(docs) ? docs : [docs];
    list.forEach((doc, i) => {
      const where = list.length > 1 ? `${file} (document ${i + 1})` : file;
      if (doc.errors.length) {
        issues.push({ path: where, value: undefined, message: `is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}` });
        return;
      }
      const value = doc.toJS() as unknown;
      if (value === null || value === undefined) return; // empty document
      const items = isObj(value) && value.kind === 'List' && Array.isArray(value.items) ? (value.items as unknown[]) : [value];
      items.forEach((o, k) => {
        const at = items.length > 1 || items[0] !== value ? `${where} items[${k}]` : where;
        if (!isObj(o)) return issues.push({ path: at, value: o, message: 'is not an object' });
        const missing = ['apiVersion', 'kind'].filter((f) => typeof o[f] !== 'string' || !o[f]);
        if (!isObj(o.metadata) || typeof o.metadata.name !== 'string' || !o.metadata.name) missing.push('metadata.name');
        if (missing.length) return issues.push({ path: at, value: undefined, message: `lacks ${missing.join(', ')}` });
        out.push({ source: at, object: o as KubeObject });
      });
    });
  }
  if (issues.length) throw new ValidationError('apply', issues);
  if (out.length === 0) throw new ValidationError('apply', [{ path: '-f', value: path, message: 'holds no objects' }]);
  return out;
}

interface Discovered {
  ref: ResourceRef;
  kind: string;
}

/** Maps apiVersion + kind to a resource through the server's discovery documents (cached per client). */
export class Resolver {
  private readonly cache = new Map<string, Promise<Map<string, Discovered>>>();
  constructor(private readonly client: KubeClient) {}

  private groupVersion(apiVersion: string): Promise<Map<string, Discovered>> {
    let p = this.cache.get(apiVersion);
    if (!p) {
      const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
      const path = group ? `/apis/${group}/${version}` : `/api/${version}`;
      p = this.client.request<{ resources: { name: string; kind: string; namespaced: boolean }[] }>('GET', path).then((list) => {
        const m = new Map<string, Discovered>();
        for (const r of list.resources) {
          if (r.name.includes('/')) continue;
          m.set(r.kind, { kind: r.kind, ref: { group, version, plural: r.name, namespaced: r.namespaced } });
        }
        return m;
      });
      this.cache.set(apiVersion, p);
      p.catch(() => this.cache.delete(apiVersion));
    }
    return p;
  }

  /** The resource (plural, namespaced) an apiVersion and kind map to, found by API discovery (cached). */
  async resolve(apiVersion: string, kind: string): Promise<Discovered> {
    let m: Map<string, Discovered>;
    try {
      m = await this.groupVersion(apiVersion);
    } catch (error) {
      if (error instanceof KubeApiError && error.code === 404)
        throw new Error(`no matches for kind "${kind}" in version "${apiVersion}" (the server does not serve ${apiVersion})`);
      throw error;
    }
    const d = m.get(kind);
    if (!d) throw new Error(`no matches for kind "${kind}" in version "${apiVersion}"`);
    return d;
  }
}

/** JSON with object keys sorted at every level (Go's encoding/json of a map). */
export function sortedJson(v: unknown): string {
  const sort = (x: unknown): unknown =>
    Array.isArray(x)
      ? x.map(sort)
      : isObj(x)
        ? Object.fromEntries(
            Object.keys(x)
              .sort()
              .map((k) => [k, sort(x[k])]),
          )
        : x;
  return JSON.stringify(sort(v));
}

/** JSON merge patch from `last` to `desired`: desired's fields, plus null for fields only `last` had. */
export function applyPatch(last: Obj | undefined, desired: Obj): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(desired)) {
    const lv = last?.[k];
    out[k] = isObj(v) && isObj(lv) ? applyPatch(lv, v) : v;
  }
  if (last) for (const k of Object.keys(last)) if (!(k in desired)) out[k] = null;
  return out;
}

/**
 * Whether merge-patching `patch` onto `live` (RFC 7386: null deletes, objects merge, anything else
 * replaces) would change it. Pure: apply decides "unchanged" from the objects, not from resource
 * versions, which another writer (the controller's status) may bump between apply's read and its
 * patch.
 */
export function mergePatchChanges(live: unknown, patch: Obj): boolean {
  const base = isObj(live) ? live : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) {
      if (k in base) return true;
    } else if (isObj(v)) {
      if (!isObj(base[k]) || mergePatchChanges(base[k], v)) return true;
    } else if (JSON.stringify(base[k]) !== JSON.stringify(v)) return true;
  }
  return false;
}

export type ApplyAction = 'created' | 'configured' | 'unchanged';

/** What `apply` did with one object (created, configured, unchanged) or why it failed. */
export interface ApplyResult {
  source: string;
  /** kubectl's name: egressnatpolicy.networking.gke.io/egress */
  name: string;
  action?: ApplyAction;
  error?: string;
}

/** The manifest as kubectl records it: its annotations without the last-applied one (an empty map stays, as in kubectl's). */
function withoutLastApplied(o: KubeObject): KubeObject {
  const copy = JSON.parse(JSON.stringify(o)) as KubeObject;
  const ann = { ...(copy.metadata.annotations ?? {}) };
  delete ann[LAST_APPLIED];
  copy.metadata.annotations = ann;
  return copy;
}

/** "The X is invalid: field: message" with every cause of a 422, as kubectl prints it. */
export function describeApiError(error: unknown): string {
  if (!(error instanceof KubeApiError)) return (error as Error).message ?? String(error);
  const st = error.status;
  const causes = (st?.details as { causes?: { field?: string; message?: string }[] } | undefined)?.causes ?? [];
  let msg = `Error from server (${st?.reason ?? error.code}): ${error.message}`;
  const missing = causes.filter((c) => c.field && !error.message.includes(c.field));
  if (missing.length) msg += `\n${missing.map((c) => `  ${c.field}: ${c.message ?? ''}`).join('\n')}`;
  return msg;
}

/** Applies one object as `kubectl apply` does (create, or a three-way merge against the last-applied annotation). */
export async function applyManifest(client: KubeClient, resolver: Resolver, m: Manifest): Promise<ApplyResult> {
  const o = m.object;
  let display = `${o.kind.toLowerCase()}/${o.metadata.name}`;
  try {
    const { ref } = await resolver.resolve(o.apiVersion, o.kind);
    display = `${o.kind.toLowerCase()}${ref.group ? `.${ref.group}` : ''}/${o.metadata.name}`;
    const desired = withoutLastApplied(o);
    const namespace = ref.namespaced ? (o.metadata.namespace ?? 'default') : undefined;
    if (ref.namespaced) desired.metadata.namespace = namespace;
    else delete desired.metadata.namespace;
    // As kubectl writes it (Go's encoding/json: map keys sorted, then a newline), so that a later
    // kubectl apply of the same manifest finds nothing to change.
    const lastText = `${sortedJson(desired)}\n`;
    const live = await client.tryGet(ref, o.metadata.name!, namespace);
    if (!live) {
      const body = JSON.parse(lastText) as KubeObject;
      body.metadata.annotations = { ...(body.metadata.annotations ?? {}), [LAST_APPLIED]: lastText };
      await client.create(ref, body, namespace);
      return { source: m.source, name: display, action: 'created' };
    }
    let last: Obj | undefined;
    try {
      const text = live.metadata.annotations?.[LAST_APPLIED];
      last = text ? (JSON.parse(text) as Obj) : undefined;
    } catch {
      last = undefined;
    }
    const patch = applyPatch(last, desired as unknown as Obj);
    delete patch.status;
    const meta = (isObj(patch.metadata) ? patch.metadata : {}) as Obj;
    delete meta.resourceVersion;
    meta.annotations = { ...(isObj(meta.annotations) ? meta.annotations : {}), [LAST_APPLIED]: lastText };
    patch.metadata = meta;
    // nothing to change: no request (as kubectl), and no version to compare with one that the
    // controller's own writes may have bumped meanwhile (seen in a full run: "configured" for an
    // object whose manifest had not changed)
    if (!mergePatchChanges(live, patch)) return { source: m.source, name: display, action: 'unchanged' };
    await client.patch(ref, o.metadata.name!, patch, { ...(namespace ? { namespace } : {}), type: 'merge' });
    return { source: m.source, name: display, action: 'configured' };
  } catch (error) {
    return { source: m.source, name: display, error: describeApiError(error) };
  }
}

/** Applies every manifest in order (an error does not stop the others, as with kubectl). */
export async function applyAll(client: KubeClient, manifests: Manifest[]): Promise<ApplyResult[]> {
  const resolver = new Resolver(client);
  const results: ApplyResult[] = [];
  for (const m of manifests) results.push(await applyManifest(client, resolver, m));
  return results;
}
