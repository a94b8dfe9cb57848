// Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge patch
// good enough for what kubectl apply/edit/patch send for the core types served here.
import { ApiError, errors } from './errors.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JObj = { [k: string]: Json };

function isObj(v: unknown): v is JObj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const out: JObj = isObj(target) ? structuredClone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v) as Json;
  }
  return out;
}

// ---------------------------------------------------------------- JSON patch (RFC 6902)

function decodePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw errors.badRequest(`invalid JSON pointer ${JSON.stringify(p)}`);
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function getAt(doc: Json, path: string[]): Json | undefined {
  let cur: Json | undefined = doc;
  for (const seg of path) {
    if (Array.isArray(cur)) cur = cur[Number(seg)];
    else if (isObj(cur)) cur = Object.hasOwn(cur, seg) ? cur[seg] : undefined;
    else return undefined;
  }
  return cur;
}

function parentOf(doc: Json, path: string[], op: string): { parent: JObj | Json[]; key: string } {
  if (path.length === 0) throw errors.badRequest(`json patch ${op}: the root cannot be the target`);
  const parent = getAt(doc, path.slice(0, -1));
  if (!isObj(parent) && !Array.isArray(parent)) throw errors.badRequest(`json patch ${op}: parent of /${path.join('/')} does not exist`);
  return { parent, key: path[path.length - 1]! };
}

function arrayIndex(arr: Json[], key: string, forAdd: boolean, op: string): number {
  if (forAdd && key === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(key)) throw errors.badRequest(`json patch ${op}: invalid array index ${JSON.stringify(key)}`);
  const i = Number(key);
  if (i > arr.length || (!forAdd && i >= arr.length)) throw errors.badRequest(`json patch ${op}: index ${i} out of range`);
  return i;
}

function addAt(doc: Json, path: string[], value: Json, op: string): Json {
  if (path.length === 0) return value;
  const { parent, key } = parentOf(doc, path, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true, op), 0, value);
  else parent[key] = value;
  return doc;
}

function removeAt(doc: Json, path: string[], op: string): Json {
  const { parent, key } = parentOf(doc, path, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, false, op), 1);
  else {
    if (!Object.hasOwn(parent, key)) throw errors.badRequest(`json patch ${op}: /${path.join('/')} does not exist`);
    delete parent[key];
  }
  return doc;
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isObj(v))
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys(v[k])]),
    );
  return v;
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw errors.badRequest('json patch must be a list of operations');
  let doc = structuredClone(target) as Json;
  for (const raw of ops) {
    if (!isObj(raw)) throw errors.badRequest('json patch operation must be an object');
    const op = raw.op;
    if (typeof raw.path !== 'string') throw errors.badRequest(`json patch ${String(op)}: missing path`);
    const path = decodePointer(raw.path);
    switch (op) {
      case 'add':
        doc = addAt(doc, path, structuredClone(raw.value ?? null), op);
        break;
      case 'remove':
        doc = removeAt(doc, path, op);
        break;
      case 'replace':
        if (getAt(doc, path) === undefined) throw errors.badRequest(`json patch replace: /${path.join('/')} does not exist`);
        if (path.length === 0) doc = structuredClone(raw.value ?? null);
        else {
          doc = removeAt(doc, path, op);
          doc = addAt(doc, path, structuredClone(raw.value ?? null), op);
        }
        break;
      case 'move':
      case 'copy': {
        if (typeof raw.from !== 'string') throw errors.badRequest(`json patch ${op}: missing from`);
        const from = decodePointer(raw.from);
        const v = getAt(doc, from);
        if (v === undefined) throw errors.badRequest(`json patch ${op}: ${raw.from} does not exist`);
        const copy = structuredClone(v);
        if (op === 'move') doc = removeAt(doc, from, op);
        doc = addAt(doc, path, copy, op);
        break;
      }
      case 'test':
        if (!deepEqual(getAt(doc, path), raw.value)) throw new ApiError(422, 'Invalid', `json patch test failed at ${raw.path}`);
        break;
      default:
        throw errors.badRequest(`json patch: unknown operation ${JSON.stringify(op)}`);
    }
  }
  return doc;
}

// ---------------------------------------------------------------- strategic merge patch

/**
 * Merge keys of the lists that strategic merge patch merges (per kind, by field path with `[]` for
 * list elements). Lists not named here are replaced, as for atomic lists. Primitive lists marked
 * with the key "" are merged as sets (e.g. finalizers).
 */
const MERGE_KEYS: Record<string, Record<string, string>> = {
  '*': { 'metadata.ownerReferences': 'uid', 'metadata.finalizers': '' },
  Pod: {
    'spec.containers': 'name',
    'spec.initContainers': 'name',
    'spec.ephemeralContainers': 'name',
    'spec.volumes': 'name',
    'spec.imagePullSecrets': 'name',
    'spec.containers[].env': 'name',
    'spec.containers[].ports': 'containerPort',
    'spec.containers[].volumeMounts': 'mountPath',
    'spec.initContainers[].env': 'name',
    'spec.initContainers[].ports': 'containerPort',
    'spec.initContainers[].volumeMounts': 'mountPath',
    'status.conditions': 'type',
    'status.podIPs': 'ip',
    'status.containerStatuses': 'name',
  },
  Node: { 'spec.taints': 'key', 'status.conditions': 'type', 'status.addresses': 'type', 'spec.podCIDRs': '' },
  Namespace: { 'spec.finalizers': '' },
};

function mergeKeyFor(kind: string, path: string): string | undefined {
  return MERGE_KEYS[kind]?.[path] ?? MERGE_KEYS['*']![path];
}

export function strategicMergePatch(target: unknown, patch: unknown, kind: string): unknown {
  return smpObject(isObj(target) ? target : {}, isObj(patch) ? patch : {}, kind, '');
}

function smpObject(target: JObj, patch: JObj, kind: string, path: string): Json {
  if (patch.$patch === 'replace') {
    const copy = structuredClone(patch);
    delete copy.$patch;
    return stripDirectives(copy);
  }
  if (patch.$patch === 'delete') return null;
  const out: JObj = structuredClone(target);
  const retain = patch.$retainKeys;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    const childPath = path ? `${path}.${k}` : k;
    if (v === null) {
      delete out[k];
    } else if (isObj(v)) {
      const merged = smpObject(isObj(out[k]) ? (out[k] as JObj) : {}, v, kind, childPath);
      if (merged === null) delete out[k];
      else out[k] = merged;
    } else if (Array.isArray(v)) {
      const key = mergeKeyFor(kind, childPath);
      out[k] =
        key === undefined ? (stripDirectives(structuredClone(v)) as Json) : smpList(Array.isArray(out[k]) ? (out[k] as Json[]) : [], v, key, kind, childPath);
    } else {
      out[k] = v;
    }
  }
  if (Array.isArray(retain)) {
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  // apply $setElementOrder where given
  for (const [k, order] of Object.entries(patch)) {
    if (!k.startsWith('$setElementOrder/') || !Array.isArray(order)) continue;
    const field = k.slice('$setElementOrder/'.length);
    const list = out[field];
    const key = mergeKeyFor(kind, path ? `${path}.${field}` : field);
    if (!Array.isArray(list) || key === undefined) continue;
    const ident = (x: Json): string => JSON.stringify(key === '' ? x : isObj(x) ? x[key] : x);
    const rank = new Map(order.map((o, i) => [JSON.stringify(key === '' ? o : isObj(o) ? o[key] : o), i]));
    out[field] = [...list].sort((a, b) => (rank.get(ident(a)) ?? Number.MAX_SAFE_INTEGER) - (rank.get(ident(b)) ?? Number.MAX_SAFE_INTEGER));
  }
  return out;
}

function smpList(target: Json[], patch: Json[], key: string, kind: string, path: string): Json[] {
  if (key === '') {
    // set-like primitive list: union, keeping order
    const out = [...target];
    for (const v of patch) if (!out.some((x) => deepEqual(x, v))) out.push(v);
    return out;
  }
  if (patch.some((p) => isObj(p) && p.$patch === 'replace')) {
    return patch.filter((p) => !(isObj(p) && p.$patch === 'replace')).map((p) => stripDirectives(structuredClone(p)));
  }
  const out = [...target];
  for (const p of patch) {
    if (!isObj(p) || p[key] === undefined) {
      out.push(stripDirectives(structuredClone(p)));
      continue;
    }
    const idx = out.findIndex((x) => isObj(x) && deepEqual(x[key], p[key]));
    if (p.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = smpObject(out[idx] as JObj, p, kind, `${path}[]`) as Json;
    else out.push(stripDirectives(structuredClone(p)));
  }
  return out;
}

function stripDirectives(v: Json): Json {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (isObj(v)) {
    const out: JObj = {};
    for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
    return out;
  }
  return v;
}

export const PATCH_TYPES = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

export function applyPatch(contentType: string, target: unknown, patch: unknown, kind: string, custom: boolean): unknown {
  const ct = contentType.split(';')[0]!.trim();
  switch (ct) {
    case PATCH_TYPES.merge:
      return mergePatch(target, patch);
    case PATCH_TYPES.json:
      return jsonPatch(target, patch);
    case PATCH_TYPES.strategic:
      if (custom) throw errors.unsupportedMediaType(ct, [PATCH_TYPES.json, PATCH_TYPES.merge]);
      return strategicMergePatch(target, patch, kind);
    default:
      throw errors.unsupportedMediaType(ct, custom ? [PATCH_TYPES.json, PATCH_TYPES.merge] : [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.strategic]);
  }
}
