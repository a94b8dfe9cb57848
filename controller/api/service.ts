// Resource semantics shared by the HTTP handlers and the in-process controller: create, update,
// patch, delete, get, list with Kubernetes rules (resourceVersion preconditions, status
// subresource, generation, no-op writes skipped, namespace lifecycle, admission, authorization).
import { randomBytes } from 'node:crypto';
import { validateConfigMapData, validateObjectMeta, type FieldProblem } from '../logic/validation.js';
import {
  fieldRequirementsMatch,
  parseFieldSelectorString,
  parseLabelSelectorString,
  requirementsMatch,
  SelectorSyntaxError,
  type FieldRequirement,
  type Requirement,
} from '../../lib/kube/selectors.js';
import { authorize, type UserInfo, type Verb } from './auth.js';
import { ApiError, errors, type Qualified } from './errors.js';
import { applyPatch } from './patch.js';
import { apiVersionOf, resourceKey, type Registry, type ResourceDef } from './resources.js';
import type { Store } from './store.js';
import type { KubeList, KubeObject } from '../../lib/kube/types.js';
import { KUBE_SYSTEM, NODE_LEASE_NAMESPACE } from '../../lib/kube/well-known.js';

/** Structural checks of core kinds beyond metadata (kube-apiserver's, for the kinds that have them here). */
function coreProblems(def: { group: string; plural: string }, obj: KubeObject): FieldProblem[] {
  if (def.group === '' && def.plural === 'configmaps') return validateConfigMapData(obj as unknown as Record<string, unknown>);
  return [];
}

export type Operation = 'create' | 'update' | 'delete';

export interface RequestContext {
  user: UserInfo;
  /** writes made by the controller itself: skip the user-facing protections of admission hooks */
  internal?: boolean;
  dryRun?: boolean;
}

export interface AdmissionRequest {
  op: Operation;
  ctx: RequestContext;
  resource: ResourceDef;
  version: string;
  subresource?: string;
  /** new object (create/update) */
  object?: KubeObject;
  /** current object (update/delete) */
  old?: KubeObject;
}

/** Returns field problems (422) or throws an ApiError; may mutate `object` (defaulting). */
// biome-ignore lint/suspicious/noConfusingVoidType: a hook that checks nothing may return nothing
export type AdmissionHook = (req: AdmissionRequest, service: ResourceService) => FieldProblem[] | void;

export const SYSTEM_NAMESPACES = ['default', KUBE_SYSTEM, 'kube-public', NODE_LEASE_NAMESPACE];

export const CONTROLLER_USER: UserInfo = { name: 'system:egress-nat-controller', uid: 'egress-nat-controller', groups: ['system:masters'] };

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export interface Selectors {
  labels: Requirement[];
  fields: FieldRequirement[];
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function q(def: ResourceDef): Qualified {
  return { resource: def.plural, group: def.group, kind: def.kind };
}

/** Fields compared for generation: everything but metadata, status, apiVersion and kind. */
function specPart(o: KubeObject): string {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return JSON.stringify(rest);
}

function comparable(o: KubeObject): string {
  const c = structuredClone(o);
  delete c.metadata.resourceVersion;
  delete (c.metadata as Record<string, unknown>).managedFields;
  return JSON.stringify(c);
}

/**
 * Finalizers are refused (issue 12): DELETE here is immediate, so an object waiting on a finalizer
 * would be deleted under its controller's feet. Refusing says so instead of ignoring them.
 */
function finalizerProblems(obj: KubeObject): FieldProblem[] {
  const f = obj.metadata.finalizers as unknown;
  if (f === undefined || f === null || (Array.isArray(f) && f.length === 0)) return [];
  return [
    {
      field: 'metadata.finalizers',
      value: f,
      type: 'FieldValueInvalid',
      detail: 'finalizers are not supported by this API server (DELETE removes an object at once, it would never wait for them); remove them',
    },
  ];
}

export class ResourceService {
  private readonly hooks = new Map<string, AdmissionHook[]>();
  /** the namespace of the AnthosNetworkGatewayNodes (a node writes its own there only) */
  gatewayNamespace = 'kube-system';

  constructor(
    readonly store: Store,
    readonly registry: Registry,
  ) {}

  addAdmission(def: Pick<ResourceDef, 'group' | 'plural'>, hook: AdmissionHook): void {
    const k = resourceKey(def);
    this.hooks.set(k, [...(this.hooks.get(k) ?? []), hook]);
  }

  def(group: string, plural: string): ResourceDef {
    const d = this.registry.resources.find((r) => r.group === group && r.plural === plural);
    if (!d) throw new Error(`unknown resource ${group}/${plural}`);
    return d;
  }

  // ------------------------------------------------------------------ reads

  /** Object as served at `version` (per-version resources only serve their own version's objects). */
  get(def: ResourceDef, version: string, ns: string | undefined, name: string): KubeObject {
    const o = this.store.get(resourceKey(def), def.namespaced ? ns : undefined, name);
    if (!o) throw errors.notFound(q(def), name);
    if (def.perVersionObjects && o.apiVersion !== apiVersionOf(def.group, version)) {
      throw errors.notFound(
        q(def),
        name,
        ` at version ${version} (it exists as ${o.apiVersion}; use ${def.plural}.${o.apiVersion.split('/')[1]}.${def.group})`,
      );
    }
    return this.present(def, version, o);
  }

  tryGet(def: ResourceDef, version: string, ns: string | undefined, name: string): KubeObject | undefined {
    try {
      return this.get(def, version, ns, name);
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return undefined;
      throw e;
    }
  }

  parseSelectors(labelSelector?: string, fieldSelector?: string): Selectors {
    try {
      return { labels: parseLabelSelectorString(labelSelector ?? ''), fields: parseFieldSelectorString(fieldSelector ?? '') };
    } catch (e) {
      if (e instanceof SelectorSyntaxError) throw errors.badRequest(`unable to parse requirement: ${e.message}`);
      throw e;
    }
  }

  /** Whether a stored object is visible at `version` and matches the selectors. */
  visible(def: ResourceDef, version: string, ns: string | undefined, sel: Selectors, o: KubeObject): boolean {
    if (def.perVersionObjects && o.apiVersion !== apiVersionOf(def.group, version)) return false;
    if (ns !== undefined && def.namespaced && o.metadata.namespace !== ns) return false;
    if (!requirementsMatch(sel.labels, o.metadata.labels)) return false;
    return fieldRequirementsMatch(sel.fields, o);
  }

  list(def: ResourceDef, version: string, opts: ListOptions = {}): KubeList {
    const sel = this.parseSelectors(opts.labelSelector, opts.fieldSelector);
    const rv = this.store.resourceVersion;
    let items = this.store
      .list(resourceKey(def), def.namespaced ? opts.namespace : undefined)
      .filter((o) => this.visible(def, version, opts.namespace, sel, o))
      .map((o) => this.present(def, version, o));
    let cont: string | undefined;
    let remaining: number | undefined;
    if (opts.continue) {
      let after: string;
      try {
        after = (JSON.parse(Buffer.from(opts.continue, 'base64url').toString('utf8')) as { after: string }).after;
      } catch {
        throw errors.badRequest('invalid continue token');
      }
      items = items.filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > after);
    }
    if (opts.limit && opts.limit > 0 && items.length > opts.limit) {
      remaining = items.length - opts.limit;
      items = items.slice(0, opts.limit);
      const last = items[items.length - 1]!;
      cont = Buffer.from(JSON.stringify({ rv, after: `${last.metadata.namespace ?? ''}/${last.metadata.name}` })).toString('base64url');
    }
    const metadata: KubeList['metadata'] = { resourceVersion: String(rv) };
    if (cont) {
      metadata.continue = cont;
      metadata.remainingItemCount = remaining;
    }
    return { apiVersion: apiVersionOf(def.group, version), kind: def.listKind, metadata, items };
  }

  present(def: ResourceDef, version: string, o: KubeObject): KubeObject {
    if (!def.perVersionObjects) o.apiVersion = apiVersionOf(def.group, version);
    o.kind = def.kind;
    return o;
  }

  // ------------------------------------------------------------------ writes

  create(def: ResourceDef, version: string, ns: string | undefined, body: unknown, ctx: RequestContext): KubeObject {
    const obj = this.checkBody(def, version, ns, body);
    const md = obj.metadata;
    if (!md.name && md.generateName) md.name = `${md.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`;
    namespaceNameLabel(def, obj);
    if (def.namespaced) this.requireNamespace(ns!);
    this.authz(ctx, 'create', def, ns, md.name, obj);
    const problems = [
      ...validateObjectMeta(obj, { namespaced: def.namespaced, nameIsLabel: def.plural === 'namespaces' }),
      ...finalizerProblems(obj),
      ...coreProblems(def, obj),
    ];
    if (problems.length) throw errors.invalid(q(def), md.name ?? '', problems);
    const existing = this.store.get(resourceKey(def), def.namespaced ? ns : undefined, md.name!);
    if (existing) {
      const extra = def.perVersionObjects && existing.apiVersion !== obj.apiVersion ? ` (as ${existing.apiVersion})` : '';
      throw errors.alreadyExists(q(def), md.name!, extra);
    }
    delete md.resourceVersion;
    delete md.uid;
    delete md.deletionTimestamp;
    delete (md as Record<string, unknown>).managedFields;
    if (def.custom && def.statusSubresource) delete obj.status;
    if (def.generation) md.generation = 1;
    else delete md.generation;
    this.admit({ op: 'create', ctx, resource: def, version, object: obj });
    if (ctx.dryRun) return this.present(def, version, { ...obj, metadata: { ...md, uid: 'dry-run', creationTimestamp: this.store.timestamp() } });
    return this.present(def, version, this.store.create(resourceKey(def), obj));
  }

  update(def: ResourceDef, version: string, ns: string | undefined, name: string, body: unknown, ctx: RequestContext, subresource?: string): KubeObject {
    this.authz(ctx, 'update', def, ns, name, undefined, subresource);
    const obj = this.checkBody(def, version, ns, body);
    if (obj.metadata.name !== undefined && obj.metadata.name !== name) {
      throw errors.badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`);
    }
    obj.metadata.name = name;
    const current = this.get(def, version, ns, name);
    return this.applyUpdate(def, version, current, obj, ctx, subresource);
  }

  patch(
    def: ResourceDef,
    version: string,
    ns: string | undefined,
    name: string,
    contentType: string,
    patch: unknown,
    ctx: RequestContext,
    subresource?: string,
  ): KubeObject {
    this.authz(ctx, 'patch', def, ns, name, undefined, subresource);
    const current = this.get(def, version, ns, name);
    const patched = applyPatch(contentType, current, patch, def.kind, def.custom);
    if (!isObj(patched)) throw errors.badRequest('the patch did not produce an object');
    const obj = patched as unknown as KubeObject;
    if (!isObj(obj.metadata)) throw errors.badRequest('the patch removed metadata');
    if (obj.metadata.name !== name) throw errors.badRequest('the patch may not change metadata.name');
    if (def.namespaced && obj.metadata.namespace !== current.metadata.namespace) throw errors.badRequest('the patch may not change metadata.namespace');
    if (obj.metadata.uid !== current.metadata.uid) throw errors.badRequest('the patch may not change metadata.uid');
    return this.applyUpdate(def, version, current, this.checkBody(def, version, ns, obj), ctx, subresource);
  }

  delete(
    def: ResourceDef,
    version: string,
    ns: string | undefined,
    name: string,
    ctx: RequestContext,
    preconditions?: { uid?: string; resourceVersion?: string },
  ): KubeObject {
    this.authz(ctx, 'delete', def, ns, name);
    const current = this.get(def, version, ns, name);
    if (preconditions?.uid && preconditions.uid !== current.metadata.uid) {
      throw errors.conflict(q(def), name, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${current.metadata.uid}`);
    }
    if (preconditions?.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion) {
      throw errors.conflict(
        q(def),
        name,
        `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`,
      );
    }
    this.authz(ctx, 'delete', def, ns, name, current);
    if (def.group === '' && def.plural === 'namespaces' && SYSTEM_NAMESPACES.includes(name)) {
      throw new ApiError(403, 'Forbidden', `namespaces "${name}" is forbidden: this namespace may not be deleted`, { name, kind: 'namespaces' });
    }
    this.admit({ op: 'delete', ctx, resource: def, version, old: current });
    if (ctx.dryRun) return current;
    if (def.group === '' && def.plural === 'namespaces') {
      for (const r of this.registry.resources) {
        if (!r.namespaced) continue;
        for (const o of this.store.list(resourceKey(r), name)) this.store.delete(resourceKey(r), name, o.metadata.name!);
      }
    }
    const gone = this.store.delete(resourceKey(def), def.namespaced ? ns : undefined, name);
    return this.present(def, version, gone ?? current);
  }

  // ------------------------------------------------------------------ helpers

  private applyUpdate(def: ResourceDef, version: string, current: KubeObject, obj: KubeObject, ctx: RequestContext, subresource?: string): KubeObject {
    namespaceNameLabel(def, obj);
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== current.metadata.resourceVersion) throw errors.conflict(q(def), current.metadata.name!);
    let next: KubeObject;
    if (subresource === 'status') {
      next = structuredClone(current);
      if (obj.status === undefined) delete next.status;
      else next.status = obj.status;
    } else {
      next = obj;
      if (def.statusSubresource) {
        if (current.status === undefined) delete next.status;
        else next.status = current.status;
      }
      // immutable / server-owned metadata
      next.metadata.uid = current.metadata.uid;
      next.metadata.creationTimestamp = current.metadata.creationTimestamp;
      // server-owned: a client cannot set or clear it
      if (current.metadata.deletionTimestamp) next.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
      else delete next.metadata.deletionTimestamp;
      if (def.perVersionObjects) next.apiVersion = current.apiVersion;
      if (def.generation) {
        const g = current.metadata.generation ?? 1;
        next.metadata.generation = specPart(next) !== specPart(current) ? g + 1 : g;
      } else delete next.metadata.generation;
    }
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    next.kind = current.kind;
    this.authz(ctx, 'update', def, current.metadata.namespace, current.metadata.name, next, subresource, current);
    if (subresource !== 'status') {
      const problems = [
        ...validateObjectMeta(next, { namespaced: def.namespaced, nameIsLabel: def.plural === 'namespaces' }),
        ...finalizerProblems(next),
        ...coreProblems(def, next),
      ];
      if (problems.length) throw errors.invalid(q(def), current.metadata.name!, problems);
    }
    this.admit({ op: 'update', ctx, resource: def, version, subresource, object: next, old: current });
    if (comparable(next) === comparable(current)) return current; // no-op: no new resourceVersion
    if (ctx.dryRun) return next;
    return this.present(def, version, this.store.update(resourceKey(def), next));
  }

  private checkBody(def: ResourceDef, version: string, ns: string | undefined, body: unknown): KubeObject {
    if (!isObj(body)) throw errors.badRequest('the request body must be a JSON object');
    const obj = structuredClone(body) as KubeObject;
    const gv = apiVersionOf(def.group, version);
    if (obj.apiVersion !== undefined && obj.apiVersion !== gv) {
      throw errors.badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${gv})`);
    }
    if (obj.kind !== undefined && obj.kind !== def.kind) {
      throw errors.badRequest(`the kind in the data (${String(obj.kind)}) does not match the expected kind (${def.kind})`);
    }
    obj.apiVersion = gv;
    obj.kind = def.kind;
    if (!isObj(obj.metadata)) obj.metadata = {};
    if (def.namespaced) {
      if (obj.metadata.namespace !== undefined && obj.metadata.namespace !== '' && obj.metadata.namespace !== ns) {
        throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      obj.metadata.namespace = ns;
    } else delete obj.metadata.namespace;
    return obj;
  }

  private requireNamespace(ns: string): void {
    if (!this.store.get(resourceKey({ group: '', plural: 'namespaces' }), undefined, ns)) {
      throw new ApiError(404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' });
    }
  }

  private authz(
    ctx: RequestContext,
    verb: Verb,
    def: ResourceDef,
    ns: string | undefined,
    name: string | undefined,
    object?: KubeObject,
    subresource?: string,
    old?: KubeObject,
  ): void {
    if (ctx.internal) return;
    const why = authorize({ user: ctx.user, verb, resource: def, namespace: ns, name, object, subresource, old, gatewayNamespace: this.gatewayNamespace });
    if (why) throw errors.forbidden(ctx.user.name, verb, q(def), name, def.namespaced ? ns : undefined, why);
  }

  private admit(req: AdmissionRequest): void {
    const problems: FieldProblem[] = [];
    for (const h of this.hooks.get(resourceKey(req.resource)) ?? []) {
      const p = h(req, this);
      if (p) problems.push(...p);
    }
    if (problems.length) {
      const name = req.object?.metadata.name ?? req.old?.metadata.name ?? '';
      throw errors.invalid(q(req.resource), name, problems);
    }
  }
}

/** As kube-apiserver (1.21+): every Namespace carries the immutable label kubernetes.io/metadata.name=<name>. */
function namespaceNameLabel(def: ResourceDef, obj: KubeObject): void {
  if (def.group !== '' || def.plural !== 'namespaces' || typeof obj.metadata.name !== 'string') return;
  obj.metadata.labels = { ...(obj.metadata.labels ?? {}), 'kubernetes.io/metadata.name': obj.metadata.name };
}
