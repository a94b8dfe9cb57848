// Discovery documents (legacy, non-aggregated: kubectl falls back to them) and a minimal OpenAPI v3
// description that tells kubectl that the server validates fields itself (so kubectl does not need a
// full schema for client-side validation) and lists every patchable kind.
import { createHash } from 'node:crypto';
import { apiVersionOf, verbsOf, type Registry, type ResourceDef } from './resources.js';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-egresslab',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'node',
  compiler: 'node',
  platform: 'linux/amd64',
};

export function apiVersions(serverAddress: string) {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groupDoc(reg: Registry, group: string) {
  const versions = reg.versionsOf(group).map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  const p = reg.preferredVersion(group);
  return { kind: 'APIGroup', apiVersion: 'v1', name: group, versions, preferredVersion: { groupVersion: `${group}/${p}`, version: p } };
}

export function apiGroupList(reg: Registry) {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: reg.groups().map((g) => groupDoc(reg, g)) };
}

export function apiGroup(reg: Registry, group: string) {
  return reg.groups().includes(group) ? groupDoc(reg, group) : undefined;
}

function resourceEntries(r: ResourceDef) {
  const main: Record<string, unknown> = {
    name: r.plural,
    singularName: r.singular,
    namespaced: r.namespaced,
    kind: r.kind,
    verbs: [...verbsOf(), 'deletecollection'].sort(),
  };
  if (r.shortNames) main.shortNames = r.shortNames;
  if (r.categories) main.categories = r.categories;
  main.storageVersionHash = createHash('sha256').update(`${r.group}/${r.plural}`).digest('base64').slice(0, 11);
  const out: Record<string, unknown>[] = [main];
  if (r.statusSubresource)
    out.push({ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] });
  return out;
}

export function apiResourceList(reg: Registry, group: string, version: string) {
  const rs = reg.inGroupVersion(group, version);
  if (rs.length === 0) return undefined;
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(group, version), resources: rs.flatMap(resourceEntries) };
}

/** All group/versions as OpenAPI v3 path keys ("api/v1", "apis/networking.gke.io/v1alpha1"). */
function gvPaths(reg: Registry): { key: string; group: string; version: string }[] {
  const out = [{ key: 'api/v1', group: '', version: 'v1' }];
  for (const g of reg.groups()) for (const v of reg.versionsOf(g)) out.push({ key: `apis/${g}/${v}`, group: g, version: v });
  return out;
}

export function openApiV3Root(reg: Registry) {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const p of gvPaths(reg)) {
    const hash = createHash('sha256')
      .update(JSON.stringify(openApiV3GroupVersion(reg, p.group, p.version)))
      .digest('hex')
      .slice(0, 32)
      .toUpperCase();
    paths[p.key] = { serverRelativeURL: `/openapi/v3/${p.key}?hash=${hash}` };
  }
  return { paths };
}

const QUERY_PARAMS = ['dryRun', 'fieldManager', 'fieldValidation', 'force', 'pretty'];

export function openApiV3GroupVersion(reg: Registry, group: string, version: string) {
  const rs = reg.inGroupVersion(group, version);
  if (rs.length === 0 && !(group === '' && version === 'v1')) return undefined;
  const prefix = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const paths: Record<string, unknown> = {};
  for (const r of rs) {
    const gvk = { group: r.group, version, kind: r.kind };
    const item = r.namespaced ? `${prefix}/namespaces/{namespace}/${r.plural}/{name}` : `${prefix}/${r.plural}/{name}`;
    const op = (action: string) => ({
      operationId: `${action}${r.kind}`,
      'x-kubernetes-action': action,
      'x-kubernetes-group-version-kind': gvk,
      parameters: QUERY_PARAMS.map((name) => ({ name, in: 'query', schema: { type: 'string' }, uniqueItems: true })),
      responses: { '200': { description: 'OK' } },
    });
    paths[item] = { get: op('get'), put: op('put'), patch: op('patch'), delete: op('delete') };
    if (r.statusSubresource) paths[`${item}/status`] = { get: op('get'), put: op('put'), patch: op('patch') };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'egresslab', version: SERVER_VERSION.gitVersion },
    paths,
    components: { schemas: {} },
  };
}
